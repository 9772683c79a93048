"""Transfer: does a backbone trained by `otxlike train` on one task give another task a head start?

Run: .venv/bin/python benchmarks/transfer.py [--cls-epochs 5] [--det-epochs 4] [--out DIR]

1. Train the classification template (ResNet-18, from random weights) on the digits sample.
2. Make two detection workspaces (ATSS, ResNet-18 + FPN) on the digit canvases: one whose backbone
   starts from step 1's checkpoint (`build --backbone mmdet.ResNet --weights <best_*.pth>`: its
   `backbone.` part), one from random weights (`--weights none`). Same data, seed and epochs.
3. Print both bbox mAPs (eval on val) and the wall times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cls-epochs", type=int, default=5)
    parser.add_argument("--det-epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    from otxlike.configedit.backbone import swap_backbone
    from otxlike.configedit.data import create_workspace
    from otxlike.engine.evaluate import evaluate
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train
    from otxlike.tasks import get_task
    from otxlike.workspace.workspace import Workspace

    out = args.out or Path(tempfile.mkdtemp(prefix="otxlike-transfer-"))
    digits = get_task("classification").write_sample(out / "digits")
    canvases = get_task("detection").write_sample(out / "canvases")

    start = time.perf_counter()
    cls = Workspace.load(create_workspace("classification", out / "cls", train_root=digits.train_root,
                                          val_root=digits.val_root).root)
    cls_run = train(cls, hparams=HParams(epochs=args.cls_epochs, weights="none"))
    print(f"classification: top-1 {cls_run.metrics['accuracy/top1']:.2f} % after {args.cls_epochs} epochs "
          f"({time.perf_counter() - start:.0f} s), checkpoint {cls_run.checkpoint.name}", flush=True)

    results = {}
    for name, weights in (("from the digits classifier", str(cls_run.checkpoint)), ("from random weights", "none")):
        start = time.perf_counter()
        ws = Workspace.load(create_workspace("detection", out / f"det-{weights == 'none'}",
                                             train_root=canvases.train_root, val_root=canvases.val_root).root)
        swap_backbone(ws, "mmdet.ResNet", weights)
        train(ws, hparams=HParams(epochs=args.det_epochs))
        results[name] = (evaluate(ws).metrics.get("coco/bbox_mAP", 0.0), time.perf_counter() - start)
        print(f"detection {name}: bbox mAP {results[name][0]:.3f} ({results[name][1]:.0f} s)", flush=True)
    (pre, _), (scratch, _) = results.values()
    print(f"transfer gain: bbox mAP {pre:.3f} vs {scratch:.3f} from scratch ({pre - scratch:+.3f}) "
          f"after {args.det_epochs} epochs")


if __name__ == "__main__":
    main()
