"""The training run: epoch loop, evaluation, checkpoints, metrics, summary, and the CLI.

Public API (the state and step live in ``selfsup.step`` and are re-exported here)
----------
``train_epoch(state, step_fn, dataset, config, epoch, *, mesh=None, on_step=None, log=None)``
-> ``(state, stats)``: one pass over ``dataset.ssl_images`` in the order
``permutation(fold_in(key(seed), 10**6 + epoch))``, the last incomplete batch dropped; step ``s`` gets the
key ``fold_in(key(seed), s)``. ``on_step(s, state, metrics)`` is called after every step (copy what you
keep: the next step donates ``state``). Every ``log_every`` steps the mean metrics go to ``log`` (a callable
taking a dict) and the loss is checked: NaN/inf raises ``NonFiniteLossError`` naming the step range.
``stats``: images/s after the first step, and that first step's time (compile + run). With ``resident``
(a ``ResidentData``, which ``train`` makes when the images fit: ``place``) the permutation, batch gather and
step keys run on device and the epoch makes no host-to-device copy; the batches and keys are the same.
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
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from dynamics import jit_cache
from selfsup import checkpoint, data, distributed, rundir
from selfsup import evaluate as ev
from selfsup.config import PRESETS, Config, Parser, add_flags, from_args, preset, presets_help, run_cli
from selfsup.step import TrainState, default_info, init_state, make_step, steps_per_epoch

__all__ = ["Config", "NonFiniteLossError", "TrainState", "default_info", "init_state", "main", "make_step",
           "steps_per_epoch", "train", "train_epoch", "ResidentData", "host_batches", "place"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step range."""


def _put(x, mesh: Mesh | None, spec: PartitionSpec):
    return jax.device_put(x, NamedSharding(mesh, spec)) if mesh is not None else jax.device_put(x)


def mean_metrics(buf: list, first: int, last: int, epoch: int) -> dict:
    """Mean of the buffered step metrics of steps first..last; raise ``NonFiniteLossError`` naming the step
    range if the loss is not finite (shared by every training loop: trainer, continual, online, bio)."""
    host = jax.device_get(buf)
    loss = np.array([m["loss"] for m in host])
    if not np.all(np.isfinite(loss)):
        bad = first + int(np.flatnonzero(~np.isfinite(loss))[0])
        raise NonFiniteLossError(f"loss became {loss[bad - first]} between steps {first} and {last} "
                                 f"(first non-finite at step {bad}, epoch {epoch})")
    return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def flush_metrics(buf: list, first: int, last: int, epoch: int, log) -> None:
    """``mean_metrics`` of steps first..last, written to ``log`` (if any) with the epoch and last step."""
    record = mean_metrics(buf, first, last, epoch)
    if log is not None:
        log({"epoch": epoch, "step": last, **record})


def train_epoch(state, step_fn, dataset, config: Config, epoch: int, *, mesh=None, on_step=None, log=None,
                resident=None):
    info = dataset.info
    spe, bs = steps_per_epoch(config, info), config.batch_size
    n = min(dataset.n_ssl, config.max_images) if config.max_images else dataset.n_ssl
    s0 = int(jax.device_get(state.step))
    if resident is not None:  # order, batch gather and step keys on device: no host -> device copy per step
        feed = resident.epoch(epoch, s0, spe)
    else:
        feed = host_batches(dataset.ssl_images, n, bs, config.seed, epoch, s0, spe,
                            put=lambda x: _put(x, mesh, PartitionSpec("data")))
    buf, first, t0, t_first = [], s0, time.perf_counter(), 0.0
    bar = _progress(config, spe, epoch)
    for i, (images, step_key) in enumerate(feed):
        s = s0 + i
        state, metrics = step_fn(state, images, step_key)
        if i == 0:
            jax.block_until_ready(metrics)
            t_first, t0 = time.perf_counter() - t0, time.perf_counter()
        if on_step is not None:
            on_step(s, state, metrics)
        buf.append(metrics)
        if len(buf) == config.log_every or i == spe - 1:
            flush_metrics(buf, first, s, epoch, log)
            bar.set_postfix(loss=f"{float(jax.device_get(buf[-1]['loss'])):.4f}")
            buf, first = [], s + 1
        bar.update(1)
    jax.block_until_ready(state)
    bar.close()
    dt = time.perf_counter() - t0
    return state, {"images_per_s": (spe - 1) * bs / dt if spe > 1 else math.nan, "first_step_s": t_first}


def host_batches(gather, n: int, batch: int, seed: int, epoch: int, s0: int, steps: int, put=jax.device_put):
    """Yield ``(images, key)`` for the ``steps`` steps of ``epoch`` from the host: the batch of step i is
    ``put(gather(sort(order[i B:(i + 1) B])))`` with ``order = permutation(fold_in(key(seed), 10**6 +
    epoch), n)``, its key ``fold_in(key(seed), s0 + i)`` (the streaming twin of ``ResidentData.epoch``;
    shared by the trainer and the bio trainer)."""
    key = jax.random.key(seed)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 10**6 + epoch), n))
    for i in range(steps):
        yield put(gather(np.sort(order[i * batch:(i + 1) * batch]))), jax.random.fold_in(key, s0 + i)


class ResidentData:
    """The uint8 self-supervised training images, put on the devices once (replicated on each: mnist5k is
    3 MB, CIFAR-10 150 MB) with one jitted function that gathers a batch, so an epoch makes no host-to-device
    copy: each epoch's permutation, every batch's (sorted) indices and every step's key
    ``fold_in(key(seed), step)`` are computed on device, exactly as the streaming path computes them on the
    host (the two give identical batches and keys; tested). ``place(dataset, config, mesh)`` decides."""

    def __init__(self, images: np.ndarray, n: int, batch: int, seed: int, mesh):
        self.images = _put(images[:n], mesh, PartitionSpec())
        self.n, self.batch, self.key = n, batch, jax.random.key(seed)
        out = NamedSharding(mesh, PartitionSpec("data")) if mesh is not None else None
        self._gather = jax.jit(self._gather_fn, out_shardings=(out, None, None))
        self._prepare = jax.jit(self._prepare_fn, static_argnums=2)
        self._keys = jax.jit(self._keys_fn, static_argnums=2)

    def _keys_fn(self, key, s0, steps):
        return jax.vmap(lambda s: jax.random.fold_in(key, s))(s0 + jnp.arange(steps, dtype=jnp.uint32))

    def _prepare_fn(self, key, offs, steps):
        order = jax.random.permutation(jax.random.fold_in(key, offs[0]), self.n)
        return order, self._keys_fn(key, offs[1], steps)

    def _gather_fn(self, images, order, keys, i):
        idx = jnp.sort(jax.lax.dynamic_slice(order, (i * self.batch,), (self.batch,)))
        return images[idx], keys[i], i + 1

    def epoch(self, epoch: int, s0: int, steps: int):
        """Yield ``(images, key)`` for the ``steps`` steps of ``epoch`` starting at global step ``s0``."""
        offs = jax.device_put(np.array([10**6 + epoch, s0], np.uint32))  # explicit, once an epoch
        order, keys = self._prepare(self.key, offs, steps)
        yield from self._batches(order, keys, steps)

    def stream(self, order: np.ndarray, s0: int, steps: int):
        """Yield ``(images, key)`` for steps ``s0 .. s0 + steps - 1`` of a fixed one-pass ``order`` (the
        online stream): step s gets ``images[sort(order[s B:(s + 1) B])]`` and ``fold_in(key(seed), s)``."""
        part = np.asarray(order[s0 * self.batch:(s0 + steps) * self.batch], np.int32)
        part = jax.device_put(part)  # explicit, once for the whole pass
        keys = self._keys(self.key, jax.device_put(np.uint32(s0)), steps)
        yield from self._batches(part, keys, steps)

    def _batches(self, order, keys, steps: int):
        i = jax.device_put(np.int32(0))
        for _ in range(steps):
            images, step_key, i = self._gather(self.images, order, keys, i)
            yield images, step_key


def place(dataset, config: Config, mesh) -> tuple[ResidentData | None, str]:
    """``(ResidentData or None, "device" | "host")``: the training images go on the devices when they take
    at most a quarter of the smallest device memory (where the backend reports it; 4 GiB otherwise), else
    batches stream from the host (STL-10 with its unlabeled images); there the copy of the next batch
    overlaps the running step, since JAX dispatches steps asynchronously."""
    n = min(dataset.n_ssl, config.max_images) if config.max_images else dataset.n_ssl
    nbytes = n * int(np.prod(dataset.info.image_shape))
    limits = [d.memory_stats().get("bytes_limit") for d in jax.local_devices() if d.memory_stats()]
    budget = min(limits) // 4 if limits and all(limits) else 4 * 2**30
    if nbytes > budget or dataset.x_unlabeled is not None:
        return None, "host"
    return ResidentData(dataset.x_train, n, config.batch_size, config.seed, mesh), "device"


def _progress(config: Config, total: int, epoch: int):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}",
                disable=not config.progress, leave=False, file=sys.stderr)


def metrics_log(path: Path, keep: int, *, key: str = "epoch"):
    """Append-writer for metrics.jsonl; on resume drops the records whose ``key`` ("epoch", or "step" for
    the online stream) is not below ``keep``, i.e. not covered by the checkpoint."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)[key] < keep]
        path.write_text("".join(ln + "\n" for ln in lines))

    def log(record: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
    return log


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


def resume_meta(ckpt: Path, state, config: dict, *, resume: bool):
    """``(state, meta)`` from the checkpoint when resuming and there is one, else ``(state, None)``; a
    checkpoint saved with another config raises ``RunFolderError`` naming the fields (shared by the
    trainers)."""
    if not (resume and ckpt.exists()):
        return state, None
    state, meta = checkpoint.load(ckpt, state)
    saved = meta.get("config")
    diff = rundir.config_diff(saved, config) if isinstance(saved, dict) else ["config"]
    if diff:
        raise rundir.RunFolderError(f"{ckpt}: saved with a different config "
                                    f"({rundir.describe_diff(saved or {}, config, diff)}); allowed: --resume "
                                    "with the same config, --overwrite, or another --run-name / --out-dir")
    return state, meta


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
    state = _put(state, mesh, PartitionSpec())
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
