"""Training, per-layer linear evaluation, checkpoints and run folders for one rule x schedule.

Public API
----------
``BioState(step, params, opt_state)``: the whole training state; ``params`` is the list of per-layer
groups of ``net.init``, ``opt_state`` one optax Adam state per group (a frozen group's moments and step
count are left untouched, so GLL/RLL layers resume their own Adam trajectory).
``init_state(config, key)``; ``make_step(config, info, total_steps)`` -> ``step(state, images_uint8, key) ->
(state, metrics)``: the host picks the active layer k (``schedules.active_layer``), then one ``jax.jit`` per
k (state donated) does: two views (keys ``fold_in(key, 2)``, ``fold_in(key, 3)``), loss and the rule's
gradients, Adam on the active groups only (frozen groups' arrays are passed through untouched, so they stay
bit-identical), and for URF ``B <- B + (W_new - W_old)``.
``embed_layers(config, groups, images) -> [F_1..F_L]``: pooled features of clean (normalised) images.
``evaluate_layers(config, groups, dataset) -> list[float]``: linear-probe test accuracy per layer
(``probe.linear_probe``: L-BFGS logistic regression on standardised features, scikit-learn's objective).
``train(config, *, dataset=None, resume=False, overwrite=False) -> (state, summary)``: writes ``config.json``
(+ git SHA, provenance), ``metrics.jsonl``, ``checkpoint.msgpack`` (after every epoch, atomic) and
``summary.json`` to ``<out_dir>/<name>/``. A folder that already holds a run is refused unless
``resume=True`` (same config: continues after the last finished epoch, bit-identically, or starts if there
is no checkpoint yet) or ``overwrite=True`` (``selfsup.rundir``).
``random_encoder(config, *, dataset=None) -> summary``: the same evaluation of the untrained network.
Step s uses key ``fold_in(key(seed), s)``; epoch e visits images in ``permutation(fold_in(key, 10**6 + e))``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from selfsup import augment, checkpoint, data, probe, rundir
from selfsup.bio import net, rules, schedules
from selfsup.bio.config import BioConfig
from selfsup.loop import host_batches, mean_metrics, place, resume_meta


class BioState(NamedTuple):
    step: jax.Array
    params: list
    opt_state: list


def _optimizer(config: BioConfig):
    return optax.adam(config.lr)


def init_state(config: BioConfig, key) -> BioState:
    """Parameters from ``fold_in(key, 0)`` (net.init), fresh Adam states, step 0."""
    config.validate()
    params = net.init(jax.random.fold_in(key, 0), config.arch(), rules.RULES[config.rule])
    opt = _optimizer(config)
    return BioState(jnp.zeros((), jnp.int32), params, [opt.init(g) for g in params])


_STEP_INDEPENDENT = dict(data_dir="", max_images=0, epochs=1, log_every=1, seed=0, out_dir="", run_name="",
                        progress=False)


@lru_cache(maxsize=32)
def _jitted_step(config: BioConfig, info: data.DataInfo, k: int):
    """The jitted step of layer k (-1: all); cached on the fields the step depends on."""
    arch, rule, spec = config.arch(), rules.RULES[config.rule], config.augment_spec()
    loss = schedules.loss_fn(config.schedule, arch, rule, config)
    opt = _optimizer(config)

    def step(state: BioState, images, key):
        x1 = augment.augment_batch(images, jax.random.fold_in(key, 2), spec, info.mean, info.std)
        x2 = augment.augment_batch(images, jax.random.fold_in(key, 3), spec, info.mean, info.std)
        (val, aux), grads = jax.value_and_grad(loss, has_aux=True)(state.params, x1, x2,
                                                                   jax.random.fold_in(key, 4), k)
        params, opt_state = list(state.params), list(state.opt_state)
        for l, active in enumerate(schedules.active_groups(k, arch.depth)):
            if not active:  # frozen: the same arrays go back, bit for bit
                continue
            p = params[l]
            upd, opt_state[l] = opt.update(grads[l], opt_state[l], p)
            params[l] = optax.apply_updates(p, upd)
            if rule.feedback == "increment":
                w_old = {"conv": p["conv"]["w"], "head": p["head"]["w"]}
                w_new = {"conv": params[l]["conv"]["w"], "head": params[l]["head"]["w"]}
                params[l] = {**params[l], "fb": rules.increment_feedback(p["fb"], w_old, w_new)}
        return BioState(state.step + 1, params, opt_state), {"loss": val, **aux}

    return jax.jit(step, donate_argnums=0)


def make_step(config: BioConfig, info: data.DataInfo, total_steps: int):
    """``step(state, images, key) -> (state, metrics)``: picks the layer on the host, then runs that
    layer's jitted step (module doc)."""
    key_config, depth = config.replace(**_STEP_INDEPENDENT), config.arch().depth

    def step(state: BioState, images, key):
        k = schedules.active_layer(config.schedule, int(state.step), key, total_steps, depth)
        state, metrics = _jitted_step(key_config, info, k)(state, images, key)
        return state, {**metrics, "layer": k}

    return step


def steps_per_epoch(config: BioConfig, n_images: int) -> int:
    n = min(n_images, config.max_images) if config.max_images else n_images
    if n < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n} training images")
    return n // config.batch_size


@jax.jit
def _clean(images, mean, std):
    return augment.eval_view(images, mean, std)


@lru_cache(maxsize=8)
def _features_fn(arch: net.Arch):
    return jax.jit(lambda g, x: [net.pooled(h, arch.grid) for h in net.features(g, x, arch)])


def embed_layers(config: BioConfig, groups, images, info: data.DataInfo, *, chunk: int = 500) -> list:
    """Pooled features flat(grid_pool(h_l)) of every layer for clean images, as numpy float32."""
    arch = config.arch()
    f = _features_fn(arch)
    out = []
    for i in range(0, len(images), chunk):
        x = _clean(jnp.asarray(images[i:i + chunk]), jnp.asarray(info.mean), jnp.asarray(info.std))
        out.append([np.asarray(h) for h in f(groups, x)])
    return [np.concatenate([o[l] for o in out]) for l in range(arch.depth)]


def evaluate_layers(config: BioConfig, groups, dataset: data.Dataset) -> list[float]:
    """Linear-probe test accuracy of every layer's pooled features (train split -> test split)."""
    tr = embed_layers(config, groups, dataset.x_train, dataset.info)
    te = embed_layers(config, groups, dataset.x_test, dataset.info)
    return [probe.linear_probe(a, dataset.y_train, b, dataset.y_test, num_classes=dataset.num_classes)
            for a, b in zip(tr, te)]


def _load(config: BioConfig, dataset):
    if dataset is None:
        dataset = data.from_config(config, seed=0)  # the fixed split
    if tuple(dataset.x_train.shape[1:]) != config.arch().in_shape:
        raise ValueError(f"dataset images {dataset.x_train.shape[1:]} do not match {config.arch().in_shape}")
    return dataset


def train_epoch(state, step_fn, dataset, config: BioConfig, epoch: int, log=None, resident=None):
    """One pass in the order ``permutation(fold_in(key, 10**6 + epoch))``, last incomplete batch dropped;
    with ``resident`` (``selfsup.loop.ResidentData``) the batches are gathered on the device, with the
    same order and keys."""
    from tqdm.auto import tqdm
    n = min(len(dataset.x_train), config.max_images) if config.max_images else len(dataset.x_train)
    spe, bs = steps_per_epoch(config, n), config.batch_size
    s0, buf = int(state.step), []
    if resident is not None:
        feed = resident.epoch(epoch, s0, spe)
    else:
        feed = host_batches(lambda idx: dataset.x_train[idx], n, bs, config.seed, epoch, s0, spe)
    bar = tqdm(total=spe, desc=f"{config.name} epoch {epoch + 1}/{config.epochs}", leave=False,
               disable=not config.progress, file=sys.stderr)
    for i, (images, step_key) in enumerate(feed):
        state, metrics = step_fn(state, images, step_key)
        buf.append(metrics)
        if len(buf) == config.log_every or i == spe - 1:
            rec = mean_metrics(buf, s0 + i + 1 - len(buf), s0 + i, epoch)
            rec.pop("layer", None)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            if log is not None:
                log({"epoch": epoch, "step": s0 + i, **rec})
            buf = []
        bar.update(1)
    bar.close()
    return state


def _summary(config, accs, extra):
    best = int(np.argmax(accs))
    return {"rule": config.rule, "schedule": config.schedule, "dataset": config.dataset, "seed": config.seed,
            "linear_acc": accs, "best_layer": best + 1, "best_acc": accs[best], **extra}


def train(config: BioConfig, *, dataset=None, resume: bool = False, overwrite: bool = False):
    """Run ``config`` (module doc); returns the final state and the summary dict. The run folder follows
    ``selfsup.rundir.open_run`` (``resume`` / ``overwrite``, one writer at a time)."""
    config.validate()
    dataset = _load(config, dataset)
    run = Path(config.out_dir) / config.name
    saved = dataclasses.asdict(config.replace(progress=True))
    with rundir.open_run(run, saved, resume=resume, overwrite=overwrite):
        return _train(config, run, saved, dataset, resume)


def _train(config: BioConfig, run: Path, saved: dict, dataset, resume: bool):
    ckpt, metrics_path = run / "checkpoint.msgpack", run / "metrics.jsonl"
    state, meta = resume_meta(ckpt, init_state(config, jax.random.key(config.seed)), saved, resume=resume)
    start = int(meta["epochs_done"]) if meta else 0
    rundir.write_config(run, saved)
    kept = [ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["epoch"] < start] \
        if metrics_path.exists() and start else []
    metrics_path.write_text("".join(ln + "\n" for ln in kept))

    def log(rec):
        with metrics_path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    n = min(len(dataset.x_train), config.max_images) if config.max_images else len(dataset.x_train)
    total = config.epochs * steps_per_epoch(config, n)
    step_fn, t0 = make_step(config, dataset.info, total), time.perf_counter()
    resident, where = place(dataset, config, None)  # the images on the device once, as selfsup.train
    for epoch in range(start, config.epochs):
        state = train_epoch(state, step_fn, dataset, config, epoch, log, resident)
        checkpoint.save(ckpt, state, {"epochs_done": epoch + 1, "config": saved})
    t_train = time.perf_counter() - t0
    accs = evaluate_layers(config, jax.device_get(state.params), dataset)
    summary = _summary(config, accs, {"steps": total, "data_placement": where, "train_s": t_train,
                                      "eval_s": time.perf_counter() - t0 - t_train, "run_dir": str(run)})
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return state, summary


def random_encoder(config: BioConfig, *, dataset=None) -> dict[str, Any]:
    """Per-layer linear accuracy of the untrained network at ``config.seed`` (the baseline)."""
    config.validate()
    dataset = _load(config, dataset)
    state = init_state(config, jax.random.key(config.seed))
    accs = evaluate_layers(config, jax.device_get(state.params), dataset)
    return _summary(config.replace(rule="random", schedule="none"), accs, {"steps": 0})
