"""CLI: ``python -m selfsup.continual --method xphinet --dataset mnist5k --tasks 5 [--cassle] [--resume |
--overwrite]``.

Prints one JSON object (average accuracy, forgetting and R for kNN and linear probe, run folder); bad flags,
a run folder holding another run (``selfsup.rundir``) and a corrupt checkpoint exit with status 2 and one
line.
"""
from __future__ import annotations

import json
from pathlib import Path

from dynamics import jit_cache
from selfsup import rundir
from selfsup.config import Parser, run_cli
from selfsup.continual.config import ContinualConfig, parse


def main(argv=None) -> dict:
    from selfsup.continual.continual import run_continual
    parser = Parser(prog="python -m selfsup.continual",
                    description="Class-incremental continual self-supervised learning.")
    rundir.add_cli_flags(parser, resume_help="continue after the last finished task")
    ns, cc = parse(parser, argv, ContinualConfig)
    cc = run_cli(parser, cc.validate)
    jit_cache.enable()
    resume = run_cli(parser, lambda: rundir.cli_resume(ns, Path(cc.train.out_dir) / cc.name))
    summary = run_cli(parser, lambda: run_continual(cc, resume=resume, overwrite=ns.overwrite))
    short = {k: summary[k] for k in ("method", "cassle", "lam_r", "tasks", "epochs_per_task", "wall_s",
                                     "run_dir")}
    for k in ("knn", "linear"):
        if k in summary:
            short[k] = {m: summary[k][m] for m in ("average_accuracy", "forgetting", "R")}
    print(json.dumps(short))
    return summary


if __name__ == "__main__":
    main()
