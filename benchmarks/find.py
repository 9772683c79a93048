"""Speed of `otxlike find --backbone mmdet` against the bare cost of importing mmdet's models.

Run: .venv/bin/python benchmarks/find.py [--repeat N]

Each measurement is a fresh process (wall time, best of N). Cold find starts with an empty
backbone index (it imports mmdet and introspects); warm find reads the index. Ratios are against
`python -c "import mmdet.models"` measured in the same run. Targets (issue 5): warm <= 0.1x,
cold <= 1.2x, `otxlike --help` under 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def wall(cmd: list[str], env: dict, repeat: int, before=None) -> float:
    """Best wall time of ``cmd`` over ``repeat`` runs, in seconds; ``before`` runs untimed first."""
    best = float("inf")
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="otxlike-bench-"))
    env = {**os.environ, "OTXLIKE_CACHE_DIR": str(cache)}
    otx = [str(BIN / "otxlike")]

    def clear():
        for f in cache.glob("*.json"):
            f.unlink()

    bare = wall([sys.executable, "-c", "import mmdet.models"], env, args.repeat)
    cold = wall(otx + ["find", "--backbone", "mmdet"], env, args.repeat, before=clear)
    warm = wall(otx + ["find", "--backbone", "mmdet"], env, args.repeat)
    help_ = wall(otx + ["--help"], env, args.repeat)
    print(f"bare import mmdet.models  {bare:7.2f} s")
    print(f"find --backbone mmdet cold {cold:6.2f} s  ratio {cold / bare:5.2f}  (target <= 1.20)")
    print(f"find --backbone mmdet warm {warm:6.2f} s  ratio {warm / bare:5.2f}  (target <= 0.10)")
    print(f"otxlike --help            {help_:7.2f} s              (target <  0.30 s)")


if __name__ == "__main__":
    main()
