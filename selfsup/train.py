"""The training run: epoch loop, evaluation, checkpoints, metrics, summary, and the CLI.

Public API (the state and step live in ``selfsup.step``, the loop shared with the other trainers in
``selfsup.loop``)
----------
``train(config, *, dataset=None, resume=False, overwrite=False, on_step=None, on_epoch=None) -> (state,
summary)``: the run, on all local devices (the batch is split with ``jax.sharding``). Writes to
``<out_dir>/<name>/``: ``config.json`` (resolved config, git SHA and ``selfsup.rundir.provenance``: library
versions, devices, git state), ``metrics.jsonl`` (step records every ``log_every`` steps, an epoch record
with kNN accuracy and collapse metrics every ``eval_every`` epochs), ``checkpoint.msgpack`` (after every
epoch, atomically) and ``summary.json``. A folder that already holds a run is refused unless
``resume=True`` (same config: restarts after the last checkpointed epoch, bit-identical to the
uninterrupted run) or ``overwrite=True`` (``selfsup.rundir``); one process at a time writes a folder (lock
file). ``on_epoch(epoch, state, record)`` runs after each epoch.
``main(argv=None)``: ``python -m selfsup.train --method phinet --dataset mnist5k --epochs 5``; ``--smoke``
starts from ``Config.smoke()``, ``--preset NAME`` from a named recipe (``selfsup.config.PRESETS``, listed by
``--help``); ``--resume``, ``--overwrite``. Bad flags, a folder holding another run and a corrupt checkpoint
exit with status 2 and one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from dynamics import jit_cache
from selfsup import checkpoint, data, distributed, rundir
from selfsup import evaluate as ev
from selfsup.config import PRESETS, Config, Parser, add_flags, from_args, preset, presets_help, run_cli
from selfsup.loop import metrics_log, place, put, resume_meta, train_epoch
from selfsup.step import init_state, make_step


def _evaluate(config, info, state, dataset, *, probe=False) -> dict:
    return ev.evaluate(config, info, jax.device_get(state.params["encoder"]),
                       jax.device_get(state.batch_stats["encoder"]), dataset, probe=probe)


def train(config: Config, *, dataset=None, resume: bool = False, overwrite: bool = False, on_step=None,
          on_epoch=None):
    """Run ``config`` end to end; returns the final state and the summary dict.

    The run folder follows ``selfsup.rundir.open_run``: one that holds another run is refused (the error
    names the differing fields), one that holds this run needs ``resume`` (continue from the checkpoint, or
    from the start if there is none yet) or ``overwrite`` (remove it first); a second process writing the
    same folder is refused."""
    config.validate()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    if config.batch_size % mesh.size:
        raise ValueError(f"batch_size={config.batch_size} must be divisible by the {mesh.size} devices")
    run = Path(config.out_dir) / config.name
    if not distributed.is_main():  # --distributed: process 0 owns the run folder; the others only read it
        return _train(config, run, mesh, dataset, resume, on_step, on_epoch, write=False)
    with rundir.open_run(run, dataclasses.asdict(config), resume=resume, overwrite=overwrite):
        return _train(config, run, mesh, dataset, resume, on_step, on_epoch)


def _train(config: Config, run: Path, mesh, dataset, resume: bool, on_step, on_epoch, write: bool = True):
    dataset = dataset or data.from_config(config)
    bank = len(ev.eval_train(config, dataset)[0])
    if config.knn_k > bank:
        raise ValueError(f"knn_k={config.knn_k} is invalid: must be at most the {bank} training images of "
                         f"{config.dataset} in the kNN memory bank")
    info = dataset.info
    ckpt = run / "checkpoint.msgpack"
    state, meta = resume_meta(ckpt, init_state(config, jax.random.key(config.seed), info),
                              dataclasses.asdict(config), resume=resume)
    start = int(meta["epochs_done"]) if meta else 0
    if write:
        rundir.write_config(run, dataclasses.asdict(config), devices=mesh.size, processes=jax.process_count())
    log = metrics_log(run / "metrics.jsonl", start) if write else (lambda record: None)
    state = put(state, mesh, PartitionSpec())
    step_fn = make_step(config, info, mesh=mesh)
    resident, placement = place(dataset, config, mesh)
    speed, t_run = [], time.perf_counter()
    for epoch in range(start, config.epochs):
        state, stats = train_epoch(state, step_fn, dataset, config, epoch, mesh=mesh, on_step=on_step,
                                   log=log, resident=resident)
        speed.append(stats)
        record = {"epoch": epoch, "kind": "epoch", **stats}
        if config.eval_every and (epoch + 1) % config.eval_every == 0 or epoch == config.epochs - 1:
            record.update(_evaluate(config, info, state, dataset))
        log(record)
        if write:
            checkpoint.save(ckpt, state, {"epochs_done": epoch + 1, "config": dataclasses.asdict(config)})
        if on_epoch is not None:
            on_epoch(epoch, state, record)
    summary = {"method": config.method, "dataset": config.dataset, "arch": config.arch,
               "epochs": config.epochs,
               **_evaluate(config, info, state, dataset, probe=config.linear_probe),
               **({"baselines": ev.baselines(config, info, dataset, probe=config.linear_probe)}
                  if config.baselines else {}),
               "images_per_s": float(np.nanmean([s["images_per_s"] for s in speed])) if speed else math.nan,
               "first_step_s": speed[0]["first_step_s"] if speed else math.nan,
               "wall_s": time.perf_counter() - t_run, "devices": mesh.size, "processes": jax.process_count(),
               "data_placement": placement, "run_dir": str(run)}
    if write:
        (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return state, summary


def main(argv=None) -> dict:
    parser = Parser(prog="python -m selfsup.train", description=__doc__.split("\n")[0],
                    epilog=presets_help(),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser)
    parser.add_argument("--smoke", action="store_true", help="start from the tiny Config.smoke() preset")
    parser.add_argument("--preset", default="", help=f"start from a named recipe, one of {sorted(PRESETS)} "
                        "(listed below)")
    rundir.add_cli_flags(parser)
    parser.add_argument("--distributed", action="store_true",
                        help="multi-process run: jax.distributed.initialize() (SLURM, TPU pod, or "
                             "JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID); process 0 "
                             "writes")
    ns = parser.parse_args(argv)
    jit_cache.enable()
    if ns.distributed:
        run_cli(parser, distributed.initialize)

    def resolve():
        if ns.smoke and ns.preset:
            raise ValueError(f"--smoke and --preset={ns.preset} exclude each other")
        base = Config.smoke() if ns.smoke else preset(ns.preset) if ns.preset else Config()
        cfg = from_args(ns, base)
        if ns.preset:
            preset(ns.preset, **dataclasses.asdict(cfg))  # the dataset given must suit the preset
        return cfg.validate()
    config = run_cli(parser, resolve)
    resume = run_cli(parser, lambda: rundir.cli_resume(ns, Path(config.out_dir) / config.name))
    _, summary = run_cli(parser, lambda: train(config, resume=resume, overwrite=ns.overwrite))
    print(json.dumps(_rounded(summary)))
    return summary


def _rounded(x):
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return round(x, 4) if isinstance(x, float) else x


if __name__ == "__main__":
    main()
