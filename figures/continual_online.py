"""Online learning on mnist5k: kNN accuracy (all 10 classes) along one pass over the 4000 training images in
batches of 16 (i.i.d. stream), for SimSiam, BYOL, PhiNet and X-PhiNet at the default flags of
``python -m selfsup.online``.

Rebuild: `python -m figures.continual_online [--stream iid|tasks]` (about 2 minutes on 2 CPU cores; finished
runs in ``runs/online-compare/`` are reused), writes ``continual_online.png`` here.
"""
import argparse
import dataclasses
import json
from pathlib import Path

from selfsup.continual import plots
from selfsup.continual.online import OnlineConfig, run_online

HERE = Path(__file__).resolve().parent
METHODS = ("simsiam", "byol", "phinet", "xphinet")


def _run(oc: OnlineConfig) -> dict:
    run = Path(oc.train.out_dir) / oc.name
    if (run / "summary.json").exists() and json.loads((run / "config.json").read_text())["train"] == \
            dataclasses.asdict(oc.train):
        return json.loads((run / "summary.json").read_text())
    return run_online(oc)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.continual_online")
    ap.add_argument("--stream", default="iid", choices=("iid", "tasks"))
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    base = OnlineConfig(stream=args.stream)
    curves = {}
    for m in METHODS:
        s = _run(dataclasses.replace(base, train=base.train.replace(method=m, out_dir="runs/online-compare",
                                                                    progress=False)))
        curves[m] = (s["seen"], s["knn_all"])
    path = plots.save_curves(curves, Path(args.out) / "continual_online.png",
                             title=f"online, {args.stream} stream, batch 16, one pass (mnist5k)")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
