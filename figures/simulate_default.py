"""The picture of the README's first command, `python -m dynamics.simulate --wd 5e-4`: every method's mode
eigenvalues s_j(t) (matrix ODE, seed 0, default 8-mode spectrum), predicted stable fixed points dashed.
All six methods keep the five modes whose threshold l^2 / (4 (l + sigma2)) exceeds 5e-4: SimSiam, BYOL, PhiNet
and X-PhiNet on their fixed points (`dynamics.analysis`), DirectPred and DirectCopy, with the linear model's
default equivariant setter (`p_j = sqrt(f_j) + eps sqrt(f_max)`, `Wp = F + eps f_max I`), on theirs
(`dynamics.setters.setter_fixed_point`: SimSiam's p_+, a different s). With `--setter normalised`
(the authors' form) they would shrink every mode.

Rebuild: `python -m figures.simulate_default` (about 20 s on 2 CPU cores; it is exactly the command's own
`modes.png`); `--small` runs SimSiam alone.
"""
import argparse
import shutil
import tempfile
from pathlib import Path

from dynamics import simulate

HERE = Path(__file__).resolve().parent


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.simulate_default")
    ap.add_argument("--small", action="store_true", help="SimSiam only (for tests)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    sim = ["--wd", "5e-4"] + (["--method", "simsiam"] if args.small else [])
    path = Path(args.out) / "simulate_default.png"
    with tempfile.TemporaryDirectory() as tmp:
        simulate.main([*sim, "--out", tmp, "--json"])
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "modes.png", path)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
