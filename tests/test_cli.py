"""The command line through typer's CliRunner: output, exit codes, bad input."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import snapshot


def _one_error_line(result, code=2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_help_imports_no_heavy_module():
    code = ("import sys; from typer.testing import CliRunner; from otxlike.cli.app import app;"
            "r = CliRunner().invoke(app, ['--help']);"
            "print(r.exit_code, [m for m in ('torch', 'mmengine', 'rich') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 []"


def test_build_task_prints_what_it_wrote(cli, tmp_path, digits):
    result = cli("build", "--task", "classification", "--workspace", tmp_path / "ws",
                 "--train-data-roots", digits.train_root, "--val-data-roots", digits.val_root)
    assert result.exit_code == 0, result.output
    assert f"[*] Workspace Path: {(tmp_path / 'ws').resolve()}" in result.output
    assert "Load Model Template ID: cls_resnet18" in result.output
    assert (tmp_path / "ws" / "model.py").is_file()


def test_build_default_folder_name(cli, tmp_path):
    result = cli("build", "--task", "classification", cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "otxlike-workspace-CLASSIFICATION" / "workspace.yaml").is_file()


def test_find_mmdet_table(cli):
    result = cli("find", "--backbone", "mmdet")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "Index" in line)
    for col in ("Index", "Backbone Type", "Required-Args", "Options"):
        assert col in header
    row = next(line for line in result.output.splitlines() if "mmdet.ResNet " in line)
    assert "depth" in row and "18, 34, 50, 101, 152" in row
    # a row per required arg: TridentResNet (mmdet/models/backbones/trident_resnet.py) takes
    # num_branch, test_branch_idx, trident_dilations and, through **kwargs, ResNet's depth
    lines = result.output.splitlines()
    i = next(n for n, line in enumerate(lines) if "mmdet.TridentResNet" in line)
    rows = lines[i:next(n for n in range(i + 1, len(lines)) if lines[n].startswith("├"))]
    assert [row.split("│")[3].strip() for row in rows] == ["depth", "num_branch", "test_branch_idx",
                                                           "trident_dilations"]
    assert "18, 34, 50, 101, 152" in rows[0]
    assert "were checked in the compatibility matrix" not in result.output  # every mmdet backbone was
    detail = cli("find", "--backbone", "mmdet.Resnet")  # names match ignoring case, and say so
    assert detail.exit_code == 0 and "Backbone: mmdet.ResNet ('mmdet.Resnet' matched ignoring case)" in detail.output


def test_find_several_libraries_and_templates(cli):
    result = cli("find", "--backbone", "mmseg,torchvision")
    assert result.exit_code == 0 and "mmseg.UNet" in result.output and "torchvision.resnet18" in result.output
    result = cli("find", "--template")
    assert result.exit_code == 0 and "cls_resnet18" in result.output
    result = cli("find")
    assert result.exit_code == 0 and "Backbone libraries: mmdet, mmseg, mmpretrain, torchvision" in result.output


def test_swap_prints_and_missing_args_guide_the_user(cli, needs_input):
    workspace = needs_input
    result = cli("build", "--backbone", "mmdet.RegNet", cwd=workspace.root)
    assert result.exit_code == 0, result.output
    assert "required arg 'arch' = regnetx_400mf" in result.output
    assert "model.head.in_channels = 384" in result.output
    before = workspace.model_py.read_bytes()
    result = cli("build", "--backbone", "custom.needs_width", "--workspace", workspace.root)
    assert result.exit_code == 0, result.output
    assert "[!] custom.needs_width backbone has inputs that the user must enter: width" in result.output
    assert "Edit backbone.yaml and run 'otxlike build --backbone backbone.yaml'" in result.output
    assert workspace.model_py.read_bytes() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--task", "detektion"], "unknown task 'detektion'"),
        (["find", "--backbone", "mmdett"], "unknown backbone library 'mmdett'"),
        (["find", "--task", "nope"], "unknown task 'nope'"),
        (["build", "--backbone", "mmdet.RegNt"], "did you mean mmdet.RegNet"),
        (["build", "--backbone", "torchvision.resnet1"], "did you mean torchvision.resnet18"),
        (["build"], "nothing to build"),
    ],
)
def test_bad_input_in_a_workspace(cli, workspace, args, message):
    before = snapshot(workspace.root)
    line = _one_error_line(cli(*args, cwd=workspace.root))
    assert message in line
    assert snapshot(workspace.root) == before


@pytest.mark.parametrize("args", [["build", "--backbone", "mmdet.ResNet"], ["train"], ["eval"]])
def test_outside_a_workspace(cli, tmp_path, args):
    line = _one_error_line(cli(*args, cwd=tmp_path))
    assert "is not an otxlike workspace" in line and "otxlike build --task" in line
    assert list(tmp_path.iterdir()) == []


def test_missing_data_roots(cli, tmp_path):
    line = _one_error_line(cli("build", "--task", "classification", "--workspace", tmp_path / "ws",
                               "--train-data-roots", tmp_path / "nope"))
    assert "does not exist" in line
    assert not (tmp_path / "ws").exists()


def test_malformed_backbone_yaml(cli, workspace):
    workspace.backbone_yaml.write_text("backbone: {type: mmdet.RegNet, arch: [")
    before = snapshot(workspace.root)
    line = _one_error_line(cli("build", "--backbone", "backbone.yaml", cwd=workspace.root))
    assert "not valid YAML" in line
    assert snapshot(workspace.root) == before


def test_required_arg_still_missing(cli, needs_input):
    assert cli("build", "--backbone", "custom.needs_width", cwd=needs_input.root).exit_code == 0
    line = _one_error_line(cli("build", "--backbone", "backbone.yaml", cwd=needs_input.root))
    assert "width of custom.needs_width is still empty" in line


def test_train_with_bad_data_fails_before_training(cli, workspace, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    data = yaml.safe_load((workspace.root / "data.yaml").read_text())
    data["val"]["data_root"] = str(empty)
    (workspace.root / "data.yaml").write_text(yaml.safe_dump(data))
    line = _one_error_line(cli("train", cwd=workspace.root))
    assert "has no class folders with images" in line
    assert not (workspace.root / "outputs").exists() or not any((workspace.root / "outputs").iterdir())


def test_eval_without_training(cli, workspace):
    assert "run 'otxlike train' first" in _one_error_line(cli("eval", cwd=workspace.root))


def test_debug_shows_the_traceback_and_keeps_the_exit_code(cli, tmp_path):
    result = cli("--debug", "train", cwd=tmp_path)
    assert result.exit_code == 2, result.output  # a user error stays exit code 2 (docs/errors.md)
    assert "Traceback" in result.output and "OtxlikeError" in result.output
    assert "is not an otxlike workspace" in result.output.splitlines()[-1]


def test_doctor(cli):
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    assert "mmcv             2.1.0" in result.output and "ok (nms kept 1 of 2 boxes)" in result.output


def test_find_empty_backbone_is_an_error(cli):
    """An empty --backbone (a shell variable that was not set) is refused, not an empty table."""
    for value in ("", " ", ","):
        result = cli("find", "--backbone", value)
        assert result.exit_code == 2 and "--backbone is empty" in result.output, result.output


def test_folder_options_under_a_file(cli, tmp_path, digits):
    """--out / --workspace that are a file, or lie under one: one line each, nothing created."""
    afile = tmp_path / "afile.txt"
    afile.write_text("notes\n")
    cases = [
        (["sample", "digits", "--out", afile], "--out {} is a file".format(afile)),
        (["sample", "digits", "--task", "detection", "--out", afile / "x"], f"lies under the file {afile}"),
        (["build", "--task", "classification", "--workspace", afile / "sub", "--train-data-roots", digits.train_root,
          "--val-data-roots", digits.val_root], f"--workspace {afile / 'sub'} lies under the file {afile}"),
        (["build", "--task", "classification", "--workspace", afile, "--train-data-roots", digits.train_root,
          "--val-data-roots", digits.val_root], f"--workspace {afile} is a file"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.txt"] and afile.read_text() == "notes\n"


def test_an_error_line_keeps_square_brackets(cli, workspace):
    """Error lines are printed as text, not rich markup: ``[sgd]`` of the user's input stays."""
    result = cli("train", "-w", workspace.root, "--optimizer", "[sgd]")
    assert result.exit_code == 2 and "unknown --optimizer '[sgd]'" in result.output, result.output


@pytest.mark.parametrize("file, old, new, message", [
    ("model.py", "model = dict(", "my_model = dict(", "defines no model = dict(type=...)"),
    ("data_pipeline.py", "input_size = 32", "input_size = 'abc'", "input_size = 'abc'"),
])
def test_broken_config_variables_are_one_line(workspace, cli, file, old, new, message):
    """A renamed `model` or a non-numeric input_size is refused by every verb that reads the config,
    before anything runs or is written."""
    path = workspace.root / file
    path.write_text(path.read_text().replace(old, new, 1))
    for args in (["train", "--epochs", "1"], ["build", "--backbone", "mmdet.RegNet"]):
        result = cli(*args, "-w", workspace.root)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (workspace.root / "outputs").exists() or not any((workspace.root / "outputs").iterdir())


def _as_nobody():
    """argv prefix running a command as user nobody, or None (not root, no setpriv, or nobody
    cannot run this Python)."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run([*prefix, sys.executable, "-c", "import otxlike"], capture_output=True).returncode != 0:
        return None
    return prefix


def test_a_read_only_workspace_is_refused_in_one_line(digits):
    """Run as user nobody on a workspace it may not write: every writing verb says so, exit 2."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from otxlike.configedit.data import create_workspace

    from tests.conftest import snapshot

    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("needs root and setpriv to run as another user")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        ws = create_workspace("classification", base / "ws", train_root=digits.train_root, val_root=digits.val_root).root
        (base / "cache").mkdir(mode=0o777)
        os.chmod(base / "cache", 0o777)
        subprocess.run(["chmod", "-R", "a+rX,a-w", str(ws)], check=True)
        before = snapshot(ws)
        env = {**os.environ, "OTXLIKE_CACHE_DIR": str(base / "cache"), "HOME": str(base / "cache")}
        for args in (["build", "--backbone", "mmdet.RegNet"], ["train", "--epochs", "1"], ["build", "--weights", "none"]):
            done = subprocess.run([*prefix, sys.executable, "-m", "otxlike", *args, "-w", str(ws)],
                                  capture_output=True, text=True, env=env, cwd=base)
            assert done.returncode == 2, (args, done.stderr)
            assert "is not writable by this user; nothing was changed" in done.stderr, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1
        assert snapshot(ws) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)])
        shutil.rmtree(base, ignore_errors=True)


BREAKS = {
    "model.py does not parse": lambda ws: ws.model_py.write_text(ws.model_py.read_text() + "\nmodel = dict(\n"),
    "data.yaml is a list": lambda ws: (ws.root / "data.yaml").write_text("- a\n- b\n"),
    "workspace.yaml is not YAML": lambda ws: (ws.root / "workspace.yaml").write_text("::: [\n"),
    "data_pipeline.py is gone": lambda ws: ws.data_pipeline_py.unlink(),
    "template.yaml is gone": lambda ws: (ws.root / "template.yaml").unlink(),
}


@pytest.mark.parametrize("damage", list(BREAKS))
def test_every_verb_on_a_broken_workspace_is_one_line_and_exit_2(cli, workspace, digits, damage):
    """No verb answers a damaged workspace with a traceback or exit 1 (left for bugs of otxlike)."""
    BREAKS[damage](workspace)
    verbs = [["build", "--backbone", "mmdet.RegNet"], ["build", "--data-root", digits.root], ["train", "--epochs", "1"],
             ["eval"], ["export"], ["optimize"], ["predict", digits.val_root / "3"]]
    if damage == "template.yaml is gone":  # only what needs the template: the backbone swap's defaults
        verbs = verbs[:1]
    if damage == "data.yaml is a list":  # a backbone swap does not read the data
        verbs = verbs[1:]
    for verb in verbs:
        result = cli(*verb, "-w", workspace.root)
        assert result.exit_code == 2, (damage, verb, result.output)
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, (verb, result.output)
