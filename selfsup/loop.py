"""The training loop shared by every selfsup trainer (``selfsup.train``, the continual and online loops,
``selfsup.bio``): the epoch over batches, where the images live, metrics and the checkpoint to resume from.

Public API
----------
``train_epoch(state, step_fn, dataset, config, epoch, *, mesh=None, on_step=None, log=None, resident=None)``
-> ``(state, stats)``: one pass over ``dataset.ssl_images`` in the order
``permutation(fold_in(key(seed), 10**6 + epoch))``, the last incomplete batch dropped; step ``s`` gets the
key ``fold_in(key(seed), s)``. ``on_step(s, state, metrics)`` is called after every step (copy what you
keep: the next step donates ``state``). Every ``log_every`` steps the mean metrics go to ``log`` (a callable
taking a dict) and the loss is checked: NaN/inf raises ``NonFiniteLossError`` naming the step range.
``stats``: images/s after the first step, and that first step's time (compile + run). With ``resident``
(a ``ResidentData``, made by ``place`` when the images fit) the permutation, batch gather and step keys run
on device and the epoch makes no host-to-device copy; the batches and keys are the same.
``host_batches(...)``, ``ResidentData``, ``place(dataset, config, mesh)``: the two ways batches reach the
step.
``mean_metrics`` / ``flush_metrics``: buffered step metrics, checked for NaN/inf. ``metrics_log(path, keep)``:
the metrics.jsonl writer, trimmed on resume. ``resume_meta(ckpt, state, config, *, resume)``: the checkpoint
to continue from, refused when saved with another config.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from selfsup import checkpoint, rundir
from selfsup.config import Config
from selfsup.step import steps_per_epoch


def put(x, mesh: Mesh | None, spec: PartitionSpec):
    """``x`` on the devices of ``mesh`` with sharding ``spec`` (on the default device without a mesh)."""
    return jax.device_put(x, NamedSharding(mesh, spec)) if mesh is not None else jax.device_put(x)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step range."""


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
                            put=lambda x: put(x, mesh, PartitionSpec("data")))
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
        self.images = put(images[:n], mesh, PartitionSpec())
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
