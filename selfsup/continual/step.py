"""The training step with the CaSSLe term, built from the trainer's pieces.

Public API
----------
``make_step(config, info, *, lam_d=0, distill_hidden=2048) -> step(state, extra, images, key)
-> (state, metrics)``: the trainer's step (``selfsup.step``: views, stop-gradient targets, the method's loss,
residual momentum when ``config.lam_r > 0``, optimizer, EMA, F, DirectPred setter) plus the CaSSLe term
(``lam_d > 0``: needs ``params["distill"]`` and ``extra["frozen"]``), see ``distill``. With ``lam_d = 0`` it
is the trainer's step itself. ``extra`` is read, never differentiated nor donated. Cached, so tasks with the
same number of steps per epoch and repeated runs compile once.
``build_step(config, info, extension, *, trainable_distill=False)``: the same for any ``distill.Extension``,
through the trainer's extension hook (``selfsup.step.make_step(..., extension=, tx=)``): one code path.
``make_optimizer(config, info, trainable_distill)``: the trainer's optimizer, plus (when the state has
``params["distill"]``) SGD for g_d on the learning-rate schedule (the cassle repo), also for DirectPred /
DirectCopy whose own predictor is frozen.
``fresh_task_state(state, config, info)``: the same networks with step 0 and a new optimizer state (each
task has its own learning-rate and EMA-momentum schedules, as separate runs in CaSSLe).
"""
from __future__ import annotations

from functools import lru_cache

import jax.numpy as jnp
import optax

from selfsup import methods, optim
from selfsup import step as trainer_step
from selfsup.continual import distill


def make_optimizer(config, info, trainable_distill: bool):
    spe = trainer_step.steps_per_epoch(config, info)
    frozen = methods.METHODS[config.method].setter is not None
    main = optim.make_optimizer(config, config.epochs * spe, spe, frozen_predictor=frozen)
    if not trainable_distill:
        return main
    # g_d follows the schedule (the cassle repo); a frozen DirectPred predictor must not freeze it too
    gd = optim.make_optimizer(config, config.epochs * spe, spe)
    return optax.multi_transform({"main": main, "distill": gd},
                                 lambda p: {k: ("distill" if k == "distill" else "main") for k in p})


def fresh_task_state(state, config, info):
    """state with step 0 and a fresh optimizer state for its params (g_d included when present)."""
    tx = make_optimizer(config, info, "distill" in state.params)
    return state._replace(step=jnp.zeros((), jnp.int32), opt_state=tx.init(state.params))


def make_step(config, info, *, lam_d: float = 0.0, distill_hidden: int = 2048):
    """The jitted ``step(state, extra, images, key)``; ``state`` is donated, ``extra`` is not."""
    # what the step cannot depend on is normalised away, so tasks with the same number of steps and runs
    # that differ only in their output folder share one compiled step
    config = config.replace(out_dir="", run_name="", progress=False)
    info = info._replace(n_train=trainer_step.steps_per_epoch(config, info) * config.batch_size)
    return _make_step(config, info, float(lam_d), int(distill_hidden))


@lru_cache(maxsize=16)
def _make_step(config, info, lam_d: float, distill_hidden: int):
    extension = distill.cassle(config, lam_d=lam_d, hidden=distill_hidden) if lam_d else None
    if extension is None:
        inner = trainer_step.make_step(config, info)
        return lambda state, extra, images, key: inner(state, images, key)
    return build_step(config, info, extension, trainable_distill=lam_d > 0)


def build_step(config, info, extension: distill.Extension, *, trainable_distill: bool = False):
    """The step with any ``extension`` (uncached), as ``step(state, extra, images, key)``."""
    tx = make_optimizer(config, info, trainable_distill)
    inner = trainer_step.make_step(config, info, extension=extension, tx=tx)
    return lambda state, extra, images, key: inner(state, images, key, extra)
