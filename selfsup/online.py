"""CLI: ``python -m selfsup.online --method phinet --dataset mnist5k [--stream iid|tasks] [--resume |
--overwrite]``.

One pass over the training images in batches of 16 (each seen once), kNN evaluation at ``--evals`` points;
prints one JSON object (examples seen, kNN accuracy along the stream, final linear probe, run folder) and
writes ``curve.png``. The logic lives in ``selfsup.continual.online``. Bad flags, a run folder holding
another run (``selfsup.rundir``) and a corrupt checkpoint exit with status 2 and one line.
"""
from __future__ import annotations

import json
from pathlib import Path


def main(argv=None) -> dict:
    from dynamics import jit_cache
    from selfsup import rundir
    from selfsup.config import Parser, run_cli
    from selfsup.continual.config import parse
    from selfsup.continual.online import OnlineConfig, run_online
    parser = Parser(prog="python -m selfsup.online",
                    description="Online self-supervised learning: one pass over a stream.")
    rundir.add_cli_flags(parser, resume_help="continue from the last evaluation point")
    ns, oc = parse(parser, argv, OnlineConfig)
    oc = run_cli(parser, oc.validate)
    jit_cache.enable()
    resume = run_cli(parser, lambda: rundir.cli_resume(ns, Path(oc.train.out_dir) / oc.name))
    summary = run_cli(parser, lambda: run_online(oc, resume=resume, overwrite=ns.overwrite))
    print(json.dumps({k: summary[k] for k in ("method", "stream", "seen", "knn_all", "final", "wall_s",
                                              "run_dir")}))
    return summary


if __name__ == "__main__":
    main()
