"""CaSSLe predictive distillation, as an extension of the training step.

An ``Extension`` adds a loss term to a method's loss without touching the method:
``targets(net, state, extra, x1, x2) -> dict`` computes stop-gradient arrays from the two views (added to
the loss's dict ``o``), and ``loss(params, stats, o) -> (term, aux, stats)`` returns the weighted term,
metrics and updated BN statistics. Trainable extension parameters live under ``params["distill"]`` (so the
optimizer and the gradient cover them), frozen ones in the step's ``extra`` pytree, which is an input of
the step and never differentiated (so no gradient can reach them).

Public API
----------
``similarity(method) -> l(p, z)``: ``2 - 2 cos`` averaged over the batch, for every method: the cassle code's
``predictive`` distiller uses ``byol_loss_func`` (2 - 2 cos), whatever the method's own loss (SimSiam's
``D = -cos`` would give the term half that gradient).
``cassle_term(predict, z1, z2, prev1, prev2, l) = [l(g_d(z1), sg prev1) + l(g_d(z2), sg prev2)] / 2``
(Fini et al. 2022), ``predict`` = g_d, ``prev_i = f_prev(x_i)`` the frozen previous-task encoder+projector.
Residual momentum is a trainer option (``Config.lam_r``, ``selfsup.step.residual_term``), not an extension.
``cassle(config, *, lam_d, hidden)``: the CaSSLe ``Extension``;
``init_distill(config, key, hidden) -> (params, stats)``: a fresh g_d (Linear-BN-ReLU-Linear,
d -> hidden -> d).
``freeze(state) -> dict``: a copy of the current encoder (params, BN statistics) to store as
``extra["frozen"]``; its forward pass uses batch statistics, as the EMA targets do, and the running
averages it would update are discarded, so the frozen function never changes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from selfsup import methods, nets


class Extension(NamedTuple):
    targets: Callable
    loss: Callable


def _cos(p, z):
    return (methods.unit(p) * methods.unit(z)).sum(-1)


def similarity(method: methods.Method) -> Callable:
    """l(p, z) = 2 - 2 cos averaged over the batch, for every ``method`` (cassle: predictive distiller)."""
    del method  # the same for every method, as in the cassle code
    return lambda p, z: 2.0 - 2.0 * _cos(p, z).mean()


def cassle_term(predict, z1, z2, prev1, prev2, l):
    """[l(g_d(z1), sg prev1) + l(g_d(z2), sg prev2)] / 2."""
    sg = jax.lax.stop_gradient
    return 0.5 * (l(predict(z1), sg(prev1)) + l(predict(z2), sg(prev2)))


def _net(config):
    return nets.build(config).encoder


def distill_predictor(config, hidden: int) -> nets.Predictor:
    return nets.Predictor(hidden, config.proj_dim)


def init_distill(config, key, hidden: int):
    """Parameters and BN statistics of a fresh distillation predictor g_d."""
    v = distill_predictor(config, hidden).init(key, jnp.zeros((2, config.proj_dim)), False)
    return v["params"], v["batch_stats"]


def freeze(state) -> dict:
    """Own copies of the online encoder's parameters and BN statistics (the step donates the state)."""
    copy = lambda t: jax.tree.map(jnp.copy, t)
    return {"params": copy(state.params["encoder"]), "stats": copy(state.batch_stats["encoder"])}


def frozen_projections(config, frozen, x1, x2):
    """(f_prev(x1), f_prev(x2)), stop-gradient, BN in batch mode with its updates discarded."""
    enc, sg = _net(config), jax.lax.stop_gradient
    fwd = lambda x: nets.apply(enc, sg(frozen["params"]), frozen["stats"], x, True)[0][1]
    return sg(fwd(x1)), sg(fwd(x2))


def cassle(config, *, lam_d: float, hidden: int) -> Extension:
    """CaSSLe: lam_d * cassle_term with g_d = params["distill"] and f_prev = extra["frozen"]."""
    method = methods.METHODS[config.method]
    l, gd = similarity(method), distill_predictor(config, hidden)

    def targets(net, state, extra, x1, x2):
        prev1, prev2 = frozen_projections(config, extra["frozen"], x1, x2)
        return {"prev1": prev1, "prev2": prev2}

    def loss(params, stats, o):
        s = dict(stats)

        def predict(z):
            p, s["distill"] = nets.apply(gd, params["distill"], s["distill"], z, True)
            return p
        term = cassle_term(predict, o["z1"], o["z2"], o["prev1"], o["prev2"], l)
        return lam_d * term, {"distill": term}, s
    return Extension(targets, loss)
