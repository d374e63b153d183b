"""One training run of the theory check: record (F, Wp) while training, measure the end state, resume.

Public API
----------
``Recorder(record_every, rel_tol, steps_per_epoch)``: ``on_step`` hook for ``selfsup.train.train``. It sums
``state.corr`` (the trainer's EMA correlation F of the projector outputs, rho = 0.3, so about the last two
batches) over windows of ``record_every`` steps (restarting each epoch, the last one ending with it) and,
at each window's end (and after step 0), stores
``measure.snapshot(window mean of F, Wp)`` with ``Wp = kernel^T`` of the linear predictor. The window
mean averages about ``record_every`` batches of both views, so the small eigenvalues are not just sampling
noise of two batches. ``arrays()`` stacks the records: ``step``, ``epoch`` (T,), ``s``, ``wp_sym``, ``cos``,
``p`` (T, d), ``asym``, ``erank``, ``surviving``, ``align_mean``, ``exponent`` (T,).
``view_moments(config, info, params, stats, images, key) -> (C11, C12)`` (d, d): over two augmented views of
``images`` with BN in inference mode, ``C11 = E[(z1 z1^T + z2 z2^T) / 2]`` (F at the end of training, from
every image) and ``C12 = E[(z1 z2^T + z2 z1^T) / 2]``. In the eigenbasis u_j of C11 the linear theory's
per-mode moments are ``lambda_j = u_j^T C12 u_j`` (signal shared by the views) and
``sigma2_j = s_j - lambda_j`` (augmentation noise), docs/theory.md section 8.
``run_point(config, dataset, *, record_every, rel_tol) -> (result, arrays)``: trains ``config`` (it must have
a bias-free linear predictor) in ``<out_dir>/<name>/`` with the recorder, then measures the end state.
Finished points (``theory_point.json`` with the same config) are loaded, not re-run; an interrupted point
continues from the trainer's per-epoch checkpoint when the saved trajectory covers the same epochs, and
restarts otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from selfsup import augment, methods, nets
from selfsup.config import Config
from selfsup.step import steps_per_epoch
from selfsup.theory import measure as tm
from selfsup.train import train

_SCALARS = ("asym", "erank", "surviving", "align_mean", "exponent", "exponent_r2")


class Recorder:
    def __init__(self, record_every: int, rel_tol: float, spe: int, records: list | None = None):
        self.record_every, self.rel_tol, self.spe = record_every, rel_tol, spe
        self.records = list(records or [])
        self._sum, self._n = 0.0, 0

    def on_step(self, s: int, state, metrics) -> None:
        i = s % self.spe  # windows restart with each epoch, so a resumed run records the same windows
        if i == 0:
            self._sum, self._n = 0.0, 0
        self._sum = self._sum + np.asarray(jax.device_get(state.corr), np.float64)
        self._n += 1
        if s == 0 or (i + 1) % self.record_every == 0 or i == self.spe - 1:
            wp = np.asarray(jax.device_get(state.params["predictor"]["Dense_0"]["kernel"]), np.float64).T
            snap = tm.snapshot(self._sum / self._n, wp, rel_tol=self.rel_tol)
            self.records.append({"step": s, "epoch": s // self.spe, **snap})
            self._sum, self._n = 0.0, 0

    def arrays(self) -> dict:
        keys = ("step", "epoch", "s", "wp_sym", "cos", "p", *_SCALARS)
        return {k: np.stack([np.asarray(r[k]) for r in self.records]) for k in keys} if self.records else {}

    @classmethod
    def from_arrays(cls, a: dict, record_every: int, rel_tol: float, spe: int) -> Recorder:
        keys = ("step", "epoch", "s", "wp_sym", "cos", "p", *_SCALARS)
        recs = [{k: (a[k][i] if a[k].ndim > 1 else a[k][i].item()) for k in keys}
                for i in range(len(a.get("step", ())))]
        return cls(record_every, rel_tol, spe, recs)


def save_npz(path: Path, arrays: dict) -> None:
    """np.savez to a temporary file in the same folder, then os.replace (never a half-written file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@lru_cache(maxsize=16)
def _views_fn(config: Config, info):
    enc, spec = nets.build(config).encoder, config.augment_spec()

    @jax.jit
    def f(params, stats, images, key):
        zs = [nets.apply(enc, params, stats, augment.augment_batch(images, k, spec, info.mean, info.std),
                         False)[0][1] for k in jax.random.split(key)]
        return (zs[0].T @ zs[0] + zs[1].T @ zs[1]) / 2, (zs[0].T @ zs[1] + zs[1].T @ zs[0]) / 2
    return f


def view_moments(config: Config, info, params, stats, images, key, *, batch_size: int = 500):
    """(C11, C12), float64 (d, d): view second moments of the projector outputs over ``images``."""
    f, n = _views_fn(config, info), len(images)
    c11 = c12 = 0.0
    for i in range(0, n, batch_size):
        a, b = f(params, stats, np.asarray(images[i:i + batch_size]), jax.random.fold_in(key, i))
        c11, c12 = c11 + np.asarray(a, np.float64), c12 + np.asarray(b, np.float64)
    return c11 / n, c12 / n


def _same(a: dict, b: dict) -> bool:
    return {**a, "progress": None} == {**b, "progress": None}


def _checkpoint_epochs(path: Path, config: Config) -> int:
    """Epochs in the trainer's checkpoint if it was saved with ``config``, else -1 (the point restarts)."""
    try:
        meta = json.loads(serialization.msgpack_restore(path.read_bytes())["meta"])
    except Exception:  # unreadable checkpoint
        return -1
    return int(meta["epochs_done"]) if _same(meta["config"], dataclasses.asdict(config)) else -1


def _start(config: Config, run: Path, rec_args) -> tuple[Recorder, bool]:
    """Recorder (with saved records when resuming) and whether the trainer resumes from its checkpoint."""
    ckpt, traj = run / "checkpoint.msgpack", run / "trajectory.npz"
    if ckpt.is_file() and traj.is_file():
        with np.load(traj) as z:
            a = {k: z[k] for k in z.files}
        done = int(a.get("epochs_done", -2))
        if done == _checkpoint_epochs(ckpt, config) and done >= 1:
            return Recorder.from_arrays(a, *rec_args), True
    return Recorder(*rec_args), False


def _load_point(run: Path, config: Config):
    path = run / "theory_point.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if not _same(result.get("train_config", {}), dataclasses.asdict(config)):
        return None
    with np.load(run / "trajectory.npz") as z:
        return result, {k: z[k] for k in z.files}


def run_point(config: Config, dataset, *, record_every: int, rel_tol: float):
    """Train one (method, wd) point with the recorder; returns (result dict, arrays dict)."""
    if not (methods.METHODS[config.method].linear_predictor or config.predictor == "linear"):
        raise ValueError(f"method={config.method!r} with predictor={config.predictor!r}: the theory check "
                         "needs the bias-free linear predictor (predictor='linear')")
    run = Path(config.out_dir) / config.name
    loaded = _load_point(run, config)
    if loaded is not None:
        return loaded
    run.mkdir(parents=True, exist_ok=True)
    info, t0 = dataset.info, time.perf_counter()
    rec, resume = _start(config, run, (record_every, rel_tol, steps_per_epoch(config, dataset.info)))
    on_epoch = lambda epoch, state, record: save_npz(run / "trajectory.npz",
                                                      {**rec.arrays(), "epochs_done": epoch + 1})
    # not resuming = restarting the point: the trainer's folder is replaced (its trajectory does not match)
    state, summary = train(config, dataset=dataset, resume=resume, overwrite=not resume, on_step=rec.on_step,
                           on_epoch=on_epoch)
    params, stats = jax.device_get(state.params["encoder"]), jax.device_get(state.batch_stats["encoder"])
    c11, c12 = view_moments(config, info, params, stats, dataset.x_test,
                            jax.random.fold_in(jax.random.key(config.seed), 2**30))
    s_end, u_end = tm.eig_desc(c11)
    lam_j = np.einsum("ij,ik,kj->j", u_end, c12, u_end)
    traj = rec.arrays()
    result = {"method": config.method, "wd": config.wd,
              **{k: summary[k] for k in ("knn_acc", "out_std", "out_std_healthy", "erank")},
              **{k: float(summary[k]) for k in ("linear_acc", "linear_acc_10pc") if k in summary},
              "erank_F": tm.spectral_erank(s_end), "surviving_F": tm.surviving(s_end, rel_tol),
              "sigma2_hat": float(np.trace(c11 - c12) / np.trace(c12)),
              **{f"{k}_first": float(traj[k][0]) for k in ("align_mean", "asym")},
              **{f"{k}_final": float(traj[k][-1]) for k in _SCALARS},
              "images_per_s": summary["images_per_s"], "wall_s": time.perf_counter() - t0,
              "resumed": resume, "train_config": dataclasses.asdict(config)}
    arrays = {**traj, "s_end": s_end, "lambda_end": lam_j, "sigma2_end": s_end - lam_j,
              "epochs_done": config.epochs}
    save_npz(run / "trajectory.npz", arrays)
    (run / "theory_point.json").write_text(json.dumps(result, indent=1))
    return result, arrays
