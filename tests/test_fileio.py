"""Safe writes and the manifest: symlinks written through, modes kept, no lost history entries."""

import multiprocessing
import os
import stat

import yaml

from otxlike.configedit.backbone import swap_backbone
from otxlike.fileio import atomic_write_text
from otxlike.workspace.workspace import Workspace


def test_a_symlinked_file_is_written_through_and_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared" / "model.py"
    shared.parent.mkdir()
    shared.write_text("old\n")
    shared.chmod(0o640)
    link = tmp_path / "ws" / "model.py"
    link.parent.mkdir()
    link.symlink_to(shared)
    backup = atomic_write_text(link, "new\n", tmp_path / "backup")
    assert link.is_symlink() and shared.read_text() == "new\n"
    assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    assert backup.read_text() == "old\n" and not backup.is_symlink()


def test_new_files_and_workspaces_follow_the_umask(tmp_path, workspace):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(workspace.root.stat().st_mode) == 0o777 & ~old


def _record_many(root, tag, n):
    ws = Workspace.load(root)  # read once, like a command that runs for a while
    for i in range(n):
        ws.record("probe", {"who": tag, "i": i})


def test_concurrent_commands_lose_no_manifest_entry(workspace):
    before = len(workspace.manifest["history"])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(workspace.root, tag, 25)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    history = yaml.safe_load((workspace.root / "workspace.yaml").read_text())["history"]
    assert len(history) == before + 50
    assert sorted(e["i"] for e in history if e.get("who") == "a") == list(range(25))


def test_a_swap_during_a_long_command_is_not_undone(workspace):
    long_running = Workspace.load(workspace.root)  # e.g. a train that started before the swap
    swap_backbone(Workspace.load(workspace.root), "torchvision.resnet18")
    long_running.record("train", {"run": "x"})
    manifest = yaml.safe_load((workspace.root / "workspace.yaml").read_text())
    assert manifest["backbone"] == "torchvision.resnet18"
    assert [e["action"] for e in manifest["history"][-2:]] == ["backbone", "train"]
