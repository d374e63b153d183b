"""Continual learning on mnist5k, 5 class-incremental tasks: the 10-labels-per-class probe's accuracy matrices
R[i, j], averaged over seeds, of SimSiam, BYOL, PhiNet and X-PhiNet without CaSSLe (top), with CaSSLe
(middle), and BYOL / X-PhiNet with residual momentum (bottom).

Rebuild: `python -m figures.continual_compare [--seeds 0,1,2]`. It calls ``selfsup.continual.compare`` with
its defaults (``--out-dir runs/continual-compare``), which reuses finished runs (30 runs, about 40 minutes
on 2 idle CPU cores when nothing is cached), and copies its ``R.png`` here as ``continual_compare.png``.
"""
import argparse
import shutil
from pathlib import Path

from selfsup.continual import compare

HERE = Path(__file__).resolve().parent


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.continual_compare")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (the committed PNG: 0,1,2)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    out_dir = "runs/continual-compare"
    compare.main(["--seeds", args.seeds, "--out-dir", out_dir, "--no-progress"])
    path = Path(args.out) / "continual_compare.png"
    shutil.copyfile(Path(out_dir) / "R.png", path)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
