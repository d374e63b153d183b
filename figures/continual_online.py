"""Online learning on mnist5k: kNN and 10-labels-per-class probe accuracy (all 10 classes) along one pass over
the 4000 training images in batches of 16, mean +- std over seeds, for SimSiam, BYOL, PhiNet and X-PhiNet at
the default flags of ``python -m selfsup.continual.online``.

Rebuild: `python -m figures.continual_online [--stream iid|tasks] [--seeds 0,1,2]`. It calls
``selfsup.continual.online_compare`` (finished runs in ``runs/online/`` are reused; 12 runs, about 6 minutes
on 2 idle CPU cores when nothing is cached) and copies its PNG here as ``continual_online.png``.
"""
import argparse
import shutil
from pathlib import Path

from selfsup.continual import online_compare

HERE = Path(__file__).resolve().parent


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.continual_online")
    ap.add_argument("--stream", default="iid", choices=("iid", "tasks"))
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (the committed PNG: 0,1,2)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    out_dir = "runs/online"
    online_compare.main(["--stream", args.stream, "--seeds", args.seeds, "--out-dir", out_dir])
    path = Path(args.out) / "continual_online.png"
    shutil.copyfile(Path(out_dir) / f"online-{args.stream}.png", path)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
