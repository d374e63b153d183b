"""Class-incremental continual self-supervised learning: tasks in sequence, every task evaluated after each.

Public API
----------
``run_continual(cc, *, dataset=None, resume=False, overwrite=False, on_task=None) -> dict``: trains
``cc.train.method`` on the tasks of ``splits.class_split(num_classes, cc.tasks, cc.split_seed)`` in
order, ``cc.train.epochs`` epochs each (the first ``max_images`` training images, if set, are split). Each
task starts from the previous task's networks (encoder, predictors, EMA encoder, F) with step 0 and a fresh
optimizer, so each task has its own learning-rate and EMA schedules; with ``cc.cassle`` a task after the
first also freezes a copy of the encoder + projector and trains a new g_d (``distill``). After each task
(and once before training, with ``eval_init``) every task is evaluated (``evaluation.evaluate_tasks``: kNN
and, with ``train.linear_probe``, a linear probe). Randomness: init ``key(seed)``; step s of task t gets
``fold_in(fold_in(key, s), t)``; epoch e of task t the data order ``fold_in(key, 10**6 + t * epochs +
e)``; g_d of task t ``fold_in(key, 2000 + t)``.

Writes to ``<out_dir>/<name>/``: ``config.json`` (resolved config, split, git SHA, provenance),
``metrics.jsonl`` (step records with ``task``), ``checkpoint.msgpack`` after every task (networks + the
finished rows of R, atomic), ``summary.json`` (``knn`` / ``linear``: ``metrics.summarize(R)``, plus
``R_init``: the untrained encoder with BN statistics re-estimated on the training images, the reference
every margin uses; ``R_init_bn_init``: with its initial statistics; ``split``, timings) and ``R.png``
(heat maps). A folder that already holds a run is refused unless ``resume=True`` (same config: continues
after the last finished task, or starts if none finished, and reproduces the uninterrupted R exactly: the
same computations run on the same inputs; tested) or ``overwrite=True`` (``selfsup.rundir``).
``on_task(t, row)`` is called after task t is saved.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from selfsup import checkpoint, data, rundir
from selfsup.continual import distill, metrics, plots, splits
from selfsup.continual import step as cstep
from selfsup.continual.config import ContinualConfig
from selfsup.continual.evaluation import evaluate_tasks
from selfsup.evaluate import reestimate_bn
from selfsup.loop import metrics_log, place, resume_meta, train_epoch
from selfsup.step import init_state


class TaskData(NamedTuple):
    """The training images of one task, in the shape ``train_epoch`` iterates over."""
    images: np.ndarray
    info: data.DataInfo

    @property
    def n_ssl(self) -> int:
        return len(self.images)

    def ssl_images(self, idx):
        return self.images[idx]

    @property
    def x_train(self) -> np.ndarray:  # what ``selfsup.loop.place`` puts on the devices
        return self.images

    x_unlabeled = None


def limit(dataset: data.Dataset, max_images: int) -> data.Dataset:
    """The dataset with only its first ``max_images`` training images (all if 0)."""
    if not max_images or max_images >= len(dataset.x_train):
        return dataset
    return data.Dataset(dataset.name, dataset.x_train[:max_images], dataset.y_train[:max_images],
                        dataset.x_test, dataset.y_test, dataset.num_classes)


def _networks(state):
    """What carries over between tasks (no optimizer state, no g_d)."""
    drop = lambda d: {k: v for k, v in d.items() if k != "distill"}
    return state._replace(params=drop(state.params), batch_stats=drop(state.batch_stats), opt_state=None)


def _start_task(state, cc: ContinualConfig, info, t: int, key):
    """(state, extra) for task t: fresh optimizer, and for CaSSLe a frozen copy and a new g_d."""
    extra = {}
    if cc.lam_d_used and t > 0:
        extra = {"frozen": distill.freeze(state)}
        gp, gs = distill.init_distill(cc.train, jax.random.fold_in(key, 2000 + t), cc.distill_hidden)
        state = state._replace(params={**state.params, "distill": gp},
                               batch_stats={**state.batch_stats, "distill": gs})
    return cstep.fresh_task_state(state, cc.train, info), extra


def _train_task(state, cc, task_data, t, key, log, bar):
    cfg = cc.train
    state, extra = _start_task(state, cc, task_data.info, t, key)
    lam_d = cc.lam_d_used if t > 0 else 0.0
    step = cstep.make_step(cfg, task_data.info, lam_d=lam_d, distill_hidden=cc.distill_hidden)
    fn = lambda st, images, k: step(st, extra, images, jax.random.fold_in(k, t))
    quiet = cfg.replace(progress=False)
    resident, _ = place(task_data, quiet, None)  # the task's images on the device once, as selfsup.train
    for e in range(cfg.epochs):
        state, _ = train_epoch(state, fn, task_data, quiet, t * cfg.epochs + e,
                               log=lambda r: log({"task": t, **r}), resident=resident)
        bar.update(1)
    return _networks(state)


def _evaluate(cc, info, state, dataset, split, *, reestimate: bool = False) -> dict:
    """Every task's scores; ``reestimate``: with BN statistics re-estimated on the training images first
    (the untrained encoder's fair reference, ``selfsup.evaluate.reestimate_bn``)."""
    params, stats = jax.device_get((state.params["encoder"], state.batch_stats["encoder"]))
    if reestimate:
        stats = reestimate_bn(cc.train, info, params, stats, dataset.x_train)
    return evaluate_tasks(cc.train, info, params, stats, dataset, split, probe=cc.train.linear_probe)


def _matrices(rows: list[dict]) -> dict:
    return {k: np.array([r[k] for r in rows]) for k in ("knn", "linear", "linear_10pc")
            if rows and k in rows[0]}


def run_continual(cc: ContinualConfig, *, dataset=None, resume: bool = False, overwrite: bool = False,
                  on_task=None) -> dict:
    """Train the tasks in sequence; returns the summary (also written to summary.json). The run folder
    follows ``selfsup.rundir.open_run`` (``resume`` / ``overwrite``, one writer at a time)."""
    cc.validate()
    run = Path(cc.train.out_dir) / cc.name
    with rundir.open_run(run, cc.to_dict(), resume=resume, overwrite=overwrite):
        return _run_continual(cc, run, dataset, resume, on_task)


def _run_continual(cc: ContinualConfig, run: Path, dataset, resume: bool, on_task) -> dict:
    cfg, t_run = cc.train, time.perf_counter()
    dataset = dataset or data.from_config(cfg)
    dataset = limit(dataset, cfg.max_images)
    split = splits.class_split(dataset.num_classes, cc.tasks, cc.split_seed)
    info, key = dataset.info, jax.random.key(cfg.seed)
    ckpt = run / "checkpoint.msgpack"
    state, meta = resume_meta(ckpt, _networks(init_state(cfg, key, info)), cc.to_dict(), resume=resume)
    if meta is None:
        meta = {"tasks_done": 0, "rows": [], "task_seconds": [], "R_init": None, "R_init_bn_init": None}
        if cc.eval_init:
            meta["R_init"] = _evaluate(cc, info, state, dataset, split, reestimate=True)
            meta["R_init_bn_init"] = _evaluate(cc, info, state, dataset, split)
    rundir.write_config(run, cc.to_dict(), split=[s.tolist() for s in split])
    log = metrics_log(run / "metrics.jsonl", meta["tasks_done"] * cfg.epochs)  # drops unfinished tasks
    bar = _bar(cc, meta["tasks_done"])
    for t in range(meta["tasks_done"], cc.tasks):
        t0 = time.perf_counter()
        idx = splits.task_indices(dataset.y_train, split[t])
        task_data = TaskData(dataset.x_train[idx], info._replace(n_train=len(idx)))
        state = _train_task(state, cc, task_data, t, key, log, bar)
        row = _evaluate(cc, info, state, dataset, split)
        meta = {**meta, "tasks_done": t + 1, "rows": meta["rows"] + [row],
                "task_seconds": meta["task_seconds"] + [time.perf_counter() - t0], "config": cc.to_dict()}
        checkpoint.save(ckpt, state, meta)
        if on_task is not None:
            on_task(t, row)
    bar.close()
    return _finish(cc, run, meta, split, time.perf_counter() - t_run)


def _bar(cc, tasks_done):
    import sys

    from tqdm.auto import tqdm
    return tqdm(total=cc.tasks * cc.train.epochs, initial=tasks_done * cc.train.epochs, file=sys.stderr,
                desc=f"{cc.name} (task x epoch)", disable=not cc.train.progress, leave=False)


def _finish(cc, run: Path, meta: dict, split, wall: float) -> dict:
    mats = _matrices(meta["rows"])
    summary = {"method": cc.train.method, "cassle": cc.cassle, "lam_r": cc.train.lam_r,
               "dataset": cc.train.dataset,
               "tasks": cc.tasks, "epochs_per_task": cc.train.epochs, "split": [s.tolist() for s in split],
               **{k: metrics.summarize(R) for k, R in mats.items()},
               "final_all": {k: meta["rows"][-1][k + "_all"] for k in mats},
               "R_init": meta["R_init"], "R_init_bn_init": meta.get("R_init_bn_init"),
               "task_seconds": meta["task_seconds"], "wall_s": wall,
               "run_dir": str(run)}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    plots.save_heatmaps(mats, run / "R.png", title=cc.name)
    return summary
