"""Shared entry point of the figure scripts: `--small` (a fast, coarse version for tests) and `--out DIR`.

Each script defines `make(small: bool) -> (matplotlib Figure, dict of the numbers drawn)`; `run(name, make,
argv)` writes `<out>/<name>.png` (default: next to the script, the committed PNG) in float64.
"""
import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def run(name: str, make, argv=None) -> Path:
    ap = argparse.ArgumentParser(prog=f"python -m figures.{name}")
    ap.add_argument("--small", action="store_true", help="coarse and fast (for tests)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    with jax.enable_x64(True):
        fig, _ = make(args.small)
    path = Path(args.out) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return path
