"""Optimisers (optax): SGD with momentum or LARS, linear warm-up + cosine decay, per-group learning rates.

Public API
----------
``lr_schedule(config, total_steps, steps_per_epoch)``: ``lr_peak = config.lr * batch_size / 256`` (the
linear scaling rule), linear warm-up from 0 over ``warmup_epochs``, then cosine decay to 0 at ``total_steps``.
``make_optimizer(config, total_steps, steps_per_epoch, *, frozen_predictor=False)``: an
``optax.multi_transform`` over two groups (``param_group``):

- scheduled (the encoder, PhiNet's g, CaSSLe's g_d): ``sgd`` = coupled weight decay ``g + wd * w``
  (PyTorch's SGD), momentum, scheduled lr; or ``lars`` (optax.lars; no weight decay and no trust-ratio
  adaptation on 1-D parameters, i.e. biases and BN).
- predictor (h only): the same, at the constant ``lr_peak`` when ``config.fix_pred_lr`` and the method has a
  SimSiam-family predictor (SimSiam's recipe and the PhiNets code: only h; BYOL's h follows the schedule, as
  in solo-learn); never updated when ``frozen_predictor`` (DirectPred / DirectCopy set it).

Weight decay comes from ``config.wd`` only; nothing else decays.
"""
from __future__ import annotations

from typing import Any

import jax
import optax


def lr_schedule(config: Any, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    peak = config.lr * config.batch_size / 256
    warm = min(config.warmup_epochs * steps_per_epoch, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(0.0 if warm else peak, peak, warm, max(total_steps, warm + 1))


def _is_matrix(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def _base(config: Any, lr) -> optax.GradientTransformation:
    if config.optimizer == "lars":
        return optax.lars(lr, weight_decay=config.wd, weight_decay_mask=_is_matrix,
                          trust_coefficient=config.lars_trust, trust_ratio_mask=_is_matrix,
                          momentum=config.momentum)
    return optax.chain(optax.add_decayed_weights(config.wd), optax.sgd(lr, momentum=config.momentum))


def param_group(name: str) -> str:
    """The learning-rate group of a top-level parameter collection: ``predictor`` (the predictor h) or
    ``scheduled`` (the encoder, PhiNet's g = ``ca1``, CaSSLe's g_d = ``distill``, anything else)."""
    return "predictor" if name == "predictor" else "scheduled"


def make_optimizer(config: Any, total_steps: int, steps_per_epoch: int, *,
                   frozen_predictor: bool = False) -> optax.GradientTransformation:
    sched = lr_schedule(config, total_steps, steps_per_epoch)
    peak = config.lr * config.batch_size / 256
    from selfsup.methods import METHODS
    method = METHODS.get(getattr(config, "method", ""))
    fixed = config.fix_pred_lr and (method is None or method.simsiam_predictor)
    pred = optax.set_to_zero() if frozen_predictor else _base(config, peak if fixed else sched)
    labels = lambda params: {k: param_group(k) for k in params}
    return optax.multi_transform({"scheduled": _base(config, sched), "predictor": pred}, labels)
