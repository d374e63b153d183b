"""The method registry: each method is a loss plus flags, and the EMA / predictor setters (docs/methods.md
section 1).

Public API
----------
``Method(name, loss, target, clean_view, ca1, linear_predictor, setter)``; ``METHODS`` maps names to
methods; ``register_method(method, *, replace=False)`` adds one (a new method is a new loss).

A loss is ``loss(o, cfg) -> (scalar, aux: dict[str, scalar])``. ``o`` holds, for views x1, x2 (and the clean
image x0), arrays of shape (B, d):
``z1, z2`` online projector outputs (differentiable); ``p1, p2`` predictor outputs h(z); ``t1, t2`` the
cross-view targets, already stop-gradient: sg(z) for ``target="online"``, the EMA encoder's projections for
``target="ema"``; ``q1, q2`` = g(p) and ``z0`` (stop-gradient) when ``clean_view`` is set; ``h1, h2``
backbone features. ``cfg`` is the training config (fields ``lam``, ...).

Flags: ``target`` "online" | "ema"; ``clean_view`` None | "online" | "ema" (source of z0); ``ca1`` (PhiNet's
second predictor g); ``linear_predictor`` (force the bias-free linear predictor); ``setter`` None or
``setter(F, eps) -> Wp`` (the predictor is not trained, it is set from the EMA correlation F every ``freq``
steps); ``projector`` "simsiam" (Linear-BN-ReLU blocks, last Linear-BN) | "phinet" (the same with an
affine last BN, as in the PhiNets code) | "byol" (Linear-BN-ReLU-Linear with
biases, no final BN: BYOL, DirectPred, DirectCopy); ``ema_schedule`` "cosine" (m0 -> 1) | "constant"
(``config.mem_beta``: X-PhiNet's momentum encoder, constant in the authors' code); ``simsiam_predictor``
(True: the predictor h is a bottleneck MLP, hidden d / 4, kept at the peak lr under ``config.fix_pred_lr`` as
in SimSiam and the PhiNets code; False, BYOL: h expands, hidden = ``proj_hidden``, and follows the lr
schedule as in solo-learn).

Helpers: ``neg_cos(p, z) = -mean_b cos(p_b, z_b)`` (``D`` of docs/methods.md); ``mse``;
``ema_momentum(step, total, m0) = 1 - (1 - m0)(cos(pi step / total) + 1) / 2``;
``ema_update(target, online, m) = m target + (1 - m) online``; ``ema_rate(method, config, step, total)``;
``update_corr(F, z, rho) = rho F + (1 - rho) z^T z / B``; ``directpred_wp``, ``directcopy_wp`` (the
authors' normalised setters, docs/methods.md section 1).
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from selfsup import hinge


def unit(x, eps=1e-12):
    """x / max(||x||, eps) along the last axis, with a finite gradient at x = 0 (norm's is NaN there)."""
    return x * jax.lax.rsqrt(jnp.maximum((x * x).sum(-1, keepdims=True), eps * eps))


def _cos(p, z):
    return (unit(p) * unit(z)).sum(-1)


def neg_cos(p, z):
    """D(p, z) = -cos(p, z), averaged over the batch."""
    return -_cos(p, z).mean()


def mse(a, b):
    """Mean squared error averaged over batch and dimensions."""
    return ((a - b) ** 2).mean()


def simsiam_loss(o, cfg):
    """L = D(p1, sg t2) / 2 + D(p2, sg t1) / 2."""
    loss = 0.5 * (neg_cos(o["p1"], o["t2"]) + neg_cos(o["p2"], o["t1"]))
    return loss, {"sim": loss}


def byol_loss(o, cfg):
    """L = (2 - 2 cos(p1, t2)) + (2 - 2 cos(p2, t1)), each averaged over the batch (BYOL's sum)."""
    loss = (2 - 2 * _cos(o["p1"], o["t2"]).mean()) + (2 - 2 * _cos(o["p2"], o["t1"]).mean())
    return loss, {"sim": loss}


def phinet_loss(o, cfg):
    """L = L_SimSiam + lam [MSE(g(p1), sg z0) + MSE(g(p2), sg z0)] / 2."""
    sim, _ = simsiam_loss(o, cfg)
    ca1 = 0.5 * (mse(o["q1"], o["z0"]) + mse(o["q2"], o["z0"]))
    return sim + cfg.lam * ca1, {"sim": sim, "ca1": ca1}


def directpred_wp(F, eps):
    """Wp = U diag(sqrt(max(s, 0) / max s) + eps) U^T for F = U diag(s) U^T (Tian21, authors' code)."""
    s, u = jnp.linalg.eigh(F)
    p = jnp.sqrt(jnp.maximum(s, 0) / jnp.maximum(s.max(), 1e-30)) + eps
    return (u * p) @ u.T


def directcopy_wp(F, eps):
    """Wp = F / lambda_max(F) + eps I (Wang et al. 2021)."""
    lmax = jnp.linalg.eigvalsh(F)[-1]
    return F / jnp.maximum(lmax, 1e-30) + eps * jnp.eye(F.shape[0], dtype=F.dtype)


class Method(NamedTuple):
    name: str
    loss: Callable[[dict, Any], tuple[jax.Array, dict]]
    target: str = "online"
    clean_view: str | None = None
    ca1: bool = False
    linear_predictor: bool = False
    setter: Callable | None = None
    projector: str = "simsiam"  # "simsiam" (last Linear-BN, no biases) | "phinet" (the same, affine last BN)
    #                             | "byol" (biases, no final BN)
    ema_schedule: str = "cosine"  # "cosine" (m0 -> 1, BYOL) or "constant" (config.mem_beta, X-PhiNet)
    # SimSiam family: with config.fix_pred_lr the predictor h keeps the peak lr, and its MLP is a bottleneck
    # (hidden d / 4). BYOL (solo-learn): h follows the lr schedule and expands (hidden = proj_hidden >= d).
    simsiam_predictor: bool = True

    @property
    def uses_ema(self) -> bool:
        return self.target == "ema" or self.clean_view == "ema"


METHODS: dict[str, Method] = {}


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to ``METHODS`` (error if the name exists, unless ``replace``)."""
    if method.target not in ("online", "ema"):
        raise ValueError(f"target={method.target!r} must be 'online' or 'ema'")
    if method.clean_view not in (None, "online", "ema"):
        raise ValueError(f"clean_view={method.clean_view!r} must be None, 'online' or 'ema'")
    if method.projector not in ("simsiam", "phinet", "byol"):
        raise ValueError(f"projector={method.projector!r} must be 'simsiam', 'phinet' or 'byol'")
    if method.ema_schedule not in ("cosine", "constant"):
        raise ValueError(f"ema_schedule={method.ema_schedule!r} must be 'cosine' or 'constant'")
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered (pass replace=True)")
    METHODS[method.name] = method
    return method


for _m in (
    Method("simsiam", simsiam_loss),
    Method("byol", byol_loss, target="ema", projector="byol", simsiam_predictor=False),
    Method("phinet", phinet_loss, clean_view="online", ca1=True, projector="phinet"),
    Method("xphinet", phinet_loss, clean_view="ema", ca1=True, ema_schedule="constant", projector="phinet"),
    Method("directpred", byol_loss, target="ema", linear_predictor=True, setter=directpred_wp,
           projector="byol"),
    Method("directcopy", byol_loss, target="ema", linear_predictor=True, setter=directcopy_wp,
           projector="byol"),
):
    register_method(_m)


def ema_momentum(step, total_steps, m0):
    """Cosine schedule m(k) = 1 - (1 - m0) (cos(pi k / K) + 1) / 2: m0 at k = 0, 1 at k = K."""
    frac = jnp.minimum(step / max(total_steps, 1), 1.0)
    return 1.0 - (1.0 - m0) * (jnp.cos(jnp.pi * frac) + 1.0) / 2.0


def ema_update(target, online, m):
    """xi <- m xi + (1 - m) theta, leaf by leaf."""
    return jax.tree.map(lambda t, o: m * t + (1.0 - m) * o, target, online)


def update_corr(F, z, rho):
    """F <- rho F + (1 - rho) E_b[z z^T] (uncentred, stop-gradient). The step calls it once per step with
    both views stacked, ``z = [z1; z2]`` (2B, d), as the authors' code does (luckmatters ``Accumulator``)."""
    z = jax.lax.stop_gradient(z)
    return rho * F + (1.0 - rho) * (z.T @ z) / z.shape[0]


def ema_rate(method: Method, config, step, total_steps):
    """The momentum encoder's EMA rate at ``step``: the cosine schedule from ``config.ema_m0`` to 1 (BYOL,
    DirectPred, DirectCopy) or the constant ``config.mem_beta`` (X-PhiNet, the authors' beta = 0.99)."""
    if method.ema_schedule == "constant":
        return jnp.asarray(config.mem_beta, jnp.float32)
    return ema_momentum(step, total_steps, config.ema_m0)


# The biologically plausible family's contrastive hinge loss is a trainer method like any other
# (`--method hinge` / `hinge-gb`); the loss lives beside this module in selfsup.hinge (the bio rules use
# it too).
HINGE_METHODS = ("hinge", "hinge-gb")
for _name, _gb in zip(HINGE_METHODS, (False, True)):
    register_method(Method(_name, partial(hinge.trainer_loss, grad_block=_gb)))
