"""Continual learning on mnist5k, 5 class-incremental tasks: the linear-probe accuracy matrices R[i, j] of
SimSiam, BYOL, PhiNet and X-PhiNet, each without (top) and with (bottom) CaSSLe distillation.

Rebuild: `python -m figures.continual_compare [--epochs 10]`. It calls ``selfsup.continual.compare`` with
``--out-dir runs/continual-compare-e<epochs>``, which reuses finished runs (about 11 minutes on 2 CPU cores
when nothing is cached), and copies its ``R.png`` here as ``continual_compare.png``.
"""
import argparse
import shutil
from pathlib import Path

from selfsup.continual import compare

HERE = Path(__file__).resolve().parent


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.continual_compare")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per task (the committed PNG: 10)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    out_dir = f"runs/continual-compare-e{args.epochs}"
    compare.main(["--epochs", str(args.epochs), "--out-dir", out_dir, "--no-progress"])
    path = Path(args.out) / "continual_compare.png"
    shutil.copyfile(Path(out_dir) / "R.png", path)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
