"""Online self-supervised learning: one pass over a stream in small batches, evaluated along the way.

Public API
----------
``OnlineConfig(train, stream, tasks, split_seed, evals)`` (residual momentum: ``train.lam_r``), frozen;
``OnlineConfig.smoke(**kw)``.
``train.batch_size`` is the stream's batch (default 16); ``train.epochs`` must be 1 (each example is seen
exactly once). The learning-rate and EMA-momentum schedules run over the one pass (its length is known).
``stream_order(labels, stream, key, split) -> np.ndarray``: the order of the training images: ``iid`` a
random permutation; ``tasks`` the class-incremental stream (task after task, shuffled within each task).
``run_online(oc, *, dataset=None, resume=False, overwrite=False, on_eval=None) -> dict``: trains
``len(order) // B`` steps; step s gets ``fold_in(key(seed), s)`` and its batch is gathered on the device from
images placed there once (``selfsup.loop.place``; the summary's ``data_placement`` says which); before the
first step and after steps ``round(linspace(0, S, evals + 1))[1:]`` evaluates every task
(``evaluation.evaluate_tasks``: kNN and the 10-labels-per-class probe; the all-label linear probe once at the
end when ``train.linear_probe``) and checkpoints (full state + curve so far). A folder that already holds a
run is refused unless ``resume=True`` (same config: continues from the last checkpoint, bit-identically, or
starts if there is none) or ``overwrite=True`` (``selfsup.rundir``). Writes ``config.json`` (config, split,
git SHA, provenance), ``metrics.jsonl``, ``checkpoint.msgpack``, ``summary.json`` (``seen``, ``knn_all``,
``linear_10pc_all``, per-task ``knn`` at every point, final probes, ``task_starts``: examples seen when each
task begins in the ``tasks`` stream, else None; the point before the first step scores
the untrained encoder with BN statistics re-estimated on the training images, under ``bn_init`` with its
initial ones) and ``curve.png`` to
``<out_dir>/<name>/``.

CLI: ``python -m selfsup.continual.online --method phinet --dataset mnist5k [--stream iid|tasks] [--resume |
--overwrite]`` (``main(argv)``; writes ``curve.png`` beside the summary).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np

from selfsup import checkpoint, data, rundir
from selfsup.config import Config, validated_once
from selfsup.continual import plots, splits
from selfsup.continual import step as cstep
from selfsup.continual.continual import limit
from selfsup.continual.evaluation import evaluate_tasks
from selfsup.evaluate import reestimate_bn
from selfsup.loop import flush_metrics, metrics_log, place, resume_meta
from selfsup.step import init_state

DEFAULT_TRAIN = Config(batch_size=16, lr=0.4, epochs=1, warmup_epochs=0, baselines=False,
                       out_dir="runs/online", log_every=25)
STREAMS = ("iid", "tasks")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class OnlineConfig:
    train: Config = _f(DEFAULT_TRAIN, "trainer config (batch_size = stream batch)")
    stream: str = _f("iid", f"stream order, one of {STREAMS}")
    tasks: int = _f(5, "tasks of the class-incremental stream (stream=tasks)")
    split_seed: int = _f(0, "seed of the class split")
    evals: int = _f(10, "evaluation points along the stream (plus one before training)")

    # --preset keeps the stream's own trainer settings (with_preset): batch 16, one pass, its lr and folder
    PRESET_KEEP: ClassVar[tuple] = ("batch_size", "epochs", "warmup_epochs", "lr", "baselines", "out_dir",
                                    "log_every")

    @classmethod
    def smoke(cls, **kw) -> OnlineConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        train = Config.smoke(**{"batch_size": 16, "out_dir": "runs/smoke/online",
                                **{k: v for k, v in kw.items() if k not in names}})
        return cls(train=train, **{"evals": 2, **{k: v for k, v in kw.items() if k in names}})

    @property
    def name(self) -> str:
        t = self.train
        rm = f"-rm{t.lam_r:g}" if t.lam_r else ""
        return t.run_name or f"{t.method}{rm}-{t.dataset}-{self.stream}-b{t.batch_size}-s{t.seed}"

    @validated_once
    def validate(self) -> OnlineConfig:
        self.train.validate()
        if self.train.epochs != 1:
            raise ValueError(f"epochs={self.train.epochs} is invalid for online learning: must be 1 "
                             "(one pass)")
        if self.stream not in STREAMS:
            raise ValueError(f"stream={self.stream!r} is invalid: must be one of {STREAMS}")
        if self.evals < 1 or self.tasks < 1:
            raise ValueError(f"evals={self.evals}, tasks={self.tasks} are invalid: both must be >= 1")
        return self


def stream_order(labels, stream: str, key, split) -> np.ndarray:
    """Indices of the training images in stream order."""
    if stream == "iid":
        return np.asarray(jax.random.permutation(key, len(labels)))
    parts = [splits.task_indices(labels, c) for c in split]
    return np.concatenate([p[np.asarray(jax.random.permutation(jax.random.fold_in(key, t), len(p)))]
                           for t, p in enumerate(parts)])


def run_online(oc: OnlineConfig, *, dataset=None, resume: bool = False, overwrite: bool = False,
               on_eval=None) -> dict:
    """One pass over the stream; returns the summary (also written to summary.json). The run folder
    follows ``selfsup.rundir.open_run`` (``resume`` / ``overwrite``, one writer at a time)."""
    oc.validate()
    run = Path(oc.train.out_dir) / oc.name
    with rundir.open_run(run, dataclasses.asdict(oc), resume=resume, overwrite=overwrite):
        return _run_online(oc, run, dataset, resume, on_eval)


def _run_online(oc: OnlineConfig, run: Path, dataset, resume: bool, on_eval) -> dict:
    cfg, t_run = oc.train, time.perf_counter()
    dataset = dataset or data.from_config(cfg)
    dataset = limit(dataset, cfg.max_images)
    split = splits.class_split(dataset.num_classes, oc.tasks, oc.split_seed)
    key, info = jax.random.key(cfg.seed), dataset.info
    order = stream_order(dataset.y_train, oc.stream, jax.random.fold_in(key, 10**6), split)
    bs = cfg.batch_size
    n_steps = len(order) // bs
    points = np.unique(np.round(np.linspace(0, n_steps, oc.evals + 1)).astype(int))
    ckpt = run / "checkpoint.msgpack"
    state, meta = resume_meta(ckpt, init_state(cfg, key, info), dataclasses.asdict(oc), resume=resume)
    if meta is None:
        meta = {"step": 0, "curve": [], "config": dataclasses.asdict(oc)}
    rundir.write_config(run, dataclasses.asdict(oc), split=[s.tolist() for s in split])
    log = metrics_log(run / "metrics.jsonl", meta["step"], key="step")
    step = cstep.make_step(cfg, info._replace(n_train=n_steps * bs), )

    def evaluate(s: int, state) -> None:
        params, stats = jax.device_get((state.params["encoder"], state.batch_stats["encoder"]))
        scores = lambda st: evaluate_tasks(cfg, info, params, st, dataset, split, probe=False, few_label=True)
        if s == 0:  # the untrained encoder: BN statistics re-estimated on the training images (the fair
            # reference; selfsup.evaluate.reestimate_bn), its initial statistics kept under bn_init
            row = {"step": s, "seen": 0, **scores(reestimate_bn(cfg, info, params, stats, dataset.x_train)),
                   "bn_init": scores(stats)}
        else:
            row = {"step": s, "seen": s * bs, **scores(stats)}
        meta["curve"].append(row)
        meta["step"] = s
        checkpoint.save(ckpt, state, meta)
        if on_eval is not None:
            on_eval(row)

    if not meta["curve"]:
        evaluate(0, state)
    bar = _bar(oc, n_steps, meta["step"])
    buf, first = [], meta["step"]
    resident, where = place(dataset, cfg, None)  # the images on the device once, as selfsup.train
    start = meta["step"]
    feed = resident.stream(order, start, n_steps - start) if resident is not None else \
        ((data_batch(dataset, order, s, bs), jax.random.fold_in(key, s)) for s in range(start, n_steps))
    for s, (images, step_key) in enumerate(feed, start=start):
        state, m = step(state, {}, images, step_key)
        buf.append(m)
        if len(buf) == cfg.log_every or s + 1 in points:
            flush_metrics(buf, first, s, 0, log)  # epoch 0: the one pass
            buf, first = [], s + 1
        bar.update(1)
        if s + 1 in points:
            evaluate(s + 1, state)
    bar.close()
    return _finish(oc, run, meta, state, dataset, split, info, time.perf_counter() - t_run, where)


def task_starts(oc: OnlineConfig, dataset, split) -> list[int] | None:
    """Examples seen when each task's images begin in the ``tasks`` stream (the first is 0; the stream's
    class distribution shifts at the others); None for the ``iid`` stream."""
    if oc.stream != "tasks":
        return None
    sizes = [len(splits.task_indices(dataset.y_train, c)) for c in split]
    return [0, *np.cumsum(sizes[:-1]).astype(int).tolist()]


def data_batch(dataset, order, s: int, bs: int):
    """Images of batch s of the stream (each index once over the pass)."""
    return dataset.x_train[np.sort(order[s * bs:(s + 1) * bs])]


def _bar(oc, total, initial):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=f"{oc.name} (steps)", file=sys.stderr,
                disable=not oc.train.progress, leave=False)


def _finish(oc, run, meta, state, dataset, split, info, wall, where) -> dict:
    cfg, curve = oc.train, meta["curve"]
    final = {}
    if cfg.linear_probe:
        params, stats = jax.device_get((state.params["encoder"], state.batch_stats["encoder"]))
        final = evaluate_tasks(cfg, info, params, stats, dataset, split, probe=True)
    summary = {"method": cfg.method, "dataset": cfg.dataset, "stream": oc.stream,
               "batch_size": cfg.batch_size, "lam_r": cfg.lam_r, "seen": [r["seen"] for r in curve],
               "knn_all": [r["knn_all"] for r in curve],
               "knn": [r["knn"] for r in curve], "linear_10pc_all": [r["linear_10pc_all"] for r in curve],
               "init_bn_init": curve[0].get("bn_init"), "task_starts": task_starts(oc, dataset, split),
               "final": final, "data_placement": where,
               "wall_s": wall, "run_dir": str(run)}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    plots.save_curves({cfg.method: (summary["seen"], summary["knn_all"])}, run / "curve.png",
                      title=f"online, {oc.stream} stream, batch {cfg.batch_size}")
    return summary


def main(argv=None) -> dict:
    """CLI: one run; prints one JSON object (examples seen, kNN accuracy along the stream, final probes, run
    folder). Bad flags, a run folder holding another run and a corrupt checkpoint exit 2 with one line."""
    from dynamics import jit_cache
    from selfsup import rundir
    from selfsup.config import Parser, run_cli
    from selfsup.continual.config import parse
    parser = Parser(prog="python -m selfsup.continual.online",
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
