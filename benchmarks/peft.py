"""PEFT: how close do LoRA and adapters get to full fine-tuning, with how few parameters, how fast?

Run: .venv/bin/python benchmarks/peft.py [--pre-epochs 5] [--epochs 3] [--out DIR] [--methods ...]
     [--pretrained CKPT]

1. Train the classification template (ResNet-18, from random weights) on digits 0-4.
2. For each method, a workspace on digits 5-9 whose backbone starts from step 1's checkpoint
   (``build --weights <best_*.pth>``), the method's add-in lines (``build --addin``), then
   ``train`` (same epochs, schedule, seed): full fine-tuning (no add-ins), linear probing, LoRA r=4
   on the convolutions of layer3 and layer4, bottleneck adapters (dim 16) after the blocks of
   layer3 and layer4.
3. Print trainable %, top-1 on the 5-9 val split and the training wall time of each, and the
   issue's target: LoRA or adapters with <= 5 % trainable reach >= 95 % of full fine-tuning's
   top-1, and train faster.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONVS = [f"backbone.layer{s}.{b}.conv{c}" for s in (3, 4) for b in (0, 1) for c in (1, 2)]
METHODS = {
    "full fine-tuning": [],
    "linear probe": ["(LinearProbe): ...->(backbone)->..."],
    "LoRA r=4": [f"(LoRA(r=4).adapt_output): ...->({path}){{inout1}}->..." for path in CONVS],
    "adapters dim=16": [f"(Adapter(dim=16).adapt_output): ...->(backbone.layer{s}.{b}){{inout1}}->..."
                        for s in (3, 4) for b in (0, 1)],
    # LoRA's scaling alpha / r = 4 (peft's examples use lora_alpha = 16 with r = 4..16)
    "LoRA r=4 alpha=16": [f"(LoRA(r=4, alpha=16).adapt_output): ...->({path}){{inout1}}->..." for path in CONVS],
    "LoRA r=4 alpha=16 + BitFit": [f"(LoRA(r=4, alpha=16).adapt_output): ...->({path}){{inout1}}->..."
                                   for path in CONVS] + ["(BitFit): ...->(backbone)->..."],
}
#: What runs without --methods (the issue's four); the others are variants to compare.
DEFAULT = ("full fine-tuning", "linear probe", "LoRA r=4", "adapters dim=16")


def split_digits(src: Path, dst: Path, classes: tuple[str, ...]) -> Path:
    """Copy the class folders ``classes`` of src/{train,val} to dst/{train,val}."""
    for split in ("train", "val"):
        for c in classes:
            shutil.copytree(src / split / c, dst / split / c)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pre-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT), choices=list(METHODS),
                        help="methods to run (full fine-tuning is the reference of the last column)")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="a checkpoint of step 1 from an earlier run (skips pretraining)")
    args = parser.parse_args()

    import warnings

    import yaml

    warnings.simplefilter("ignore")
    from otxlike.configedit.addins import set_addins
    from otxlike.configedit.backbone import set_weights
    from otxlike.configedit.data import create_workspace
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train
    from otxlike.tasks import get_task
    from otxlike.workspace.workspace import Workspace

    out = args.out or Path(tempfile.mkdtemp(prefix="otxlike-peft-"))
    digits = get_task("classification").write_sample(out / "digits")
    first = split_digits(Path(digits.train_root).parent, out / "digits-0-4", tuple("01234"))
    second = split_digits(Path(digits.train_root).parent, out / "digits-5-9", tuple("56789"))

    start = time.perf_counter()
    if args.pretrained is None:
        pre = Workspace.load(create_workspace("classification", out / "pre", train_root=first / "train",
                                              val_root=first / "val").root)
        pre_run = train(pre, hparams=HParams(epochs=args.pre_epochs, weights="none"))
        print(f"pretrain on 0-4: top-1 {pre_run.metrics['accuracy/top1']:.2f} % after {args.pre_epochs} epochs "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        pretrained = pre_run.checkpoint
    else:
        pretrained = args.pretrained

    rows = {}
    for name in args.methods:
        lines = METHODS[name]
        folder = "".join(c if c.isalnum() else "-" for c in name.lower())
        ws = Workspace.load(create_workspace("classification", out / folder,
                                             train_root=second / "train", val_root=second / "val").root)
        set_weights(ws, str(pretrained))
        if lines:
            set_addins(ws, lines)
        run = train(ws, hparams=HParams(epochs=args.epochs))
        params = yaml.safe_load((run.run_dir / "hparams.yaml").read_text())["params"]
        rows[name] = (params["percent"], run.metrics["accuracy/top1"], run.seconds)
        print(f"{name}: {params['percent']:.3g} % trainable, top-1 {run.metrics['accuracy/top1']:.2f} %, "
              f"{run.seconds:.0f} s", flush=True)

    print(f"\nDigits 5-9 after {args.epochs} epochs from a ResNet-18 trained {args.pre_epochs} epochs on 0-4 "
          "(2 CPU cores):\n")
    print("| method | trainable % | top-1 % | wall s | top-1 vs full |")
    print("|---|---|---|---|---|")
    if "full fine-tuning" not in rows:
        for name, (pct, top1, secs) in rows.items():
            print(f"| {name} | {pct:.3g} | {top1:.2f} | {secs:.0f} | - |")
        return
    full_top1, full_time = rows["full fine-tuning"][1], rows["full fine-tuning"][2]
    for name, (pct, top1, secs) in rows.items():
        print(f"| {name} | {pct:.3g} | {top1:.2f} | {secs:.0f} | {100 * top1 / full_top1:.1f} % |")
    met = [n for n in rows if n.startswith(("LoRA", "adapters"))
           and rows[n][0] <= 5 and rows[n][1] >= 0.95 * full_top1 and rows[n][2] < full_time]
    print(f"\ntarget (<= 5 % trainable, >= 95 % of full fine-tuning's top-1, faster): "
          f"{'met by ' + ', '.join(met) if met else 'not met'}")


if __name__ == "__main__":
    main()
