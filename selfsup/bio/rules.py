"""Learning rules as replacements of a layer's backward pass (``jax.custom_vjp``), so ``jax.grad`` of a loss
yields each rule's weight updates.

Public API
----------
``Rule(name, feedback)``; ``RULES`` maps ``bp``, ``fa``, ``urf``, ``urf-hebb``, ``dtp`` to rules.
``feedback`` says what the backward pass of a weight layer uses and how its feedback weights B learn:

- ``"none"`` (``bp``): the true backward, ``dx = delta W^T``.
- ``"fixed"`` (``fa``, Lillicrap et al. 2016): ``dx = delta B^T`` with a fixed random B; dW = x^T delta.
- ``"increment"`` (``urf``, Amit 2019): as ``fixed``, and after each optimiser step B receives W's increment,
  ``B <- B + (W_new - W_old)`` (see ``increment_feedback``), so B - W never changes.
- ``"hebbian"`` (``urf-hebb``): as ``fixed``, and B's gradient is the Hebbian ``relu(x)^T delta`` (W's rule
  with the pre-synaptic activity rectified); the optimiser applies it like W's.
- ``"inverse"`` (``dtp``, Lee et al. 2015): difference target propagation; see ``dtp_block``.

Convention: a feedback weight ``B`` is stored in the layout of ``W`` (dense (in, out), conv HWIO) and takes
the place of ``W`` in the backward pass, so ``B = W`` in this layout is the paper's ``B = W^T`` and gives
backprop exactly. For a convolution FA means the transposed convolution of the backward uses kernel B.

``linear(op, feedback)``: ``f(w, b, x) = op(x, w)`` with the rule's backward (``op(x, w)`` is linear in each
argument: ``dense`` or ``conv``). ``dtp_block(f, g, eta)``: ``blk(p, v, x) = f(p, x)`` whose backward maps
the cotangent ``c`` of ``h = f(p, x)`` (read as the target error ``h - t = eta c``) to the parameter gradient
``vjp_p f(c)`` (the gradient of the local loss ``||h - t||^2 / (2 eta)``) and to the input cotangent
``[g(v, h) - g(v, h - eta c)] / eta``, i.e. the target ``t_{l-1} = h_{l-1} + g(t_l) - g(h_l)`` (difference
correction). The inverse's parameters ``v`` get no gradient from it (they learn from ``inverse_loss``).
``propagate_targets(fs, gs, ps, vs, x, t_top)``: the same targets computed explicitly, layer by layer
(``t_top`` maps the top activation to its target).
``inverse_loss(f, g, p, v, x, key, sigma)``: ``mean ||g(v, f(sg p, x~)) - x~||^2``, ``x~ = sg x + sigma eps``.
"""
from __future__ import annotations

from functools import cache
from typing import NamedTuple

import jax
import jax.numpy as jnp

FEEDBACKS = ("none", "fixed", "increment", "hebbian", "inverse")


class Rule(NamedTuple):
    name: str
    feedback: str

    @property
    def has_feedback(self) -> bool:
        """Whether the rule keeps random feedback weights B."""
        return self.feedback in ("fixed", "increment", "hebbian")


RULES = {r.name: r for r in (Rule("bp", "none"), Rule("fa", "fixed"), Rule("urf", "increment"),
                             Rule("urf-hebb", "hebbian"), Rule("dtp", "inverse"))}


def dense(x, w):
    """x (N, in) @ w (in, out)."""
    return x @ w


def conv(x, w):
    """3x3 'SAME' stride-1 convolution of x (N, H, W, C) with kernel w (kh, kw, C, C')."""
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _vjp(fun, primal, cot):
    return jax.vjp(fun, primal)[1](cot)[0]


@cache
def linear(op, feedback: str):
    """``f(w, b, x) = op(x, w)`` whose backward uses B for dx and the rule's update for B (module doc)."""
    if feedback not in FEEDBACKS:
        raise ValueError(f"feedback={feedback!r} is not one of {FEEDBACKS}")
    if feedback in ("none", "inverse"):
        return lambda w, b, x: op(x, w)

    @jax.custom_vjp
    def f(w, b, x):
        return op(x, w)

    def fwd(w, b, x):
        return op(x, w), (w, b, x)

    def bwd(res, delta):
        w, b, x = res
        dw = _vjp(lambda w_: op(x, w_), w, delta)                    # x^T delta
        dx = _vjp(lambda x_: op(x_, b), x, delta)                    # delta B^T
        db = (_vjp(lambda b_: op(jax.nn.relu(x), b_), b, delta) if feedback == "hebbian"
              else jnp.zeros_like(b))                                # relu(x)^T delta, or B fixed
        return dw, db, dx

    f.defvjp(fwd, bwd)
    return f


def increment_feedback(fb, w_old, w_new):
    """URF: B <- B + (W_new - W_old), leaf by leaf."""
    return jax.tree.map(lambda b, o, n: b + (n - o), fb, w_old, w_new)


def dtp_block(f, g, eta: float):
    """``blk(p, v, x) = f(p, x)`` with the difference-target-propagation backward (module doc).

    ``g`` None means no target is needed below this block (the input cotangent is zero).
    """
    if eta <= 0:
        raise ValueError(f"dtp eta={eta} must be > 0")

    @jax.custom_vjp
    def blk(p, v, x):
        return f(p, x)

    def fwd(p, v, x):
        h = f(p, x)
        return h, (p, v, x, h)

    def bwd(res, c):
        p, v, x, h = res
        dp = _vjp(lambda p_: f(p_, x), p, c)
        dx = jnp.zeros_like(x) if g is None else (g(v, h) - g(v, h - eta * c)) / eta
        return dp, jax.tree.map(jnp.zeros_like, v), dx

    blk.defvjp(fwd, bwd)
    return blk


def propagate_targets(fs, gs, ps, vs, x, t_top):
    """Explicit DTP targets: forward h_l = f_l(p_l, h_{l-1}), then t_L = t_top(h_L) and
    t_{l-1} = h_{l-1} + g_l(v_l, t_l) - g_l(v_l, h_l) down to t_1. Returns (hs, ts), lists of length L."""
    hs = []
    for f, p in zip(fs, ps):
        x = f(p, x)
        hs.append(x)
    ts = [t_top(hs[-1])]
    for l in range(len(fs) - 1, 0, -1):
        ts.insert(0, hs[l - 1] + (gs[l](vs[l], ts[0]) - gs[l](vs[l], hs[l])))  # difference first: exact 0
    return hs, ts


def inverse_loss(f, g, p, v, x, key, sigma: float):
    """Noise-corrupted reconstruction loss of the inverse g (only v is trained): mean ||g(f(x~)) - x~||^2."""
    xn = jax.lax.stop_gradient(x) + sigma * jax.random.normal(key, x.shape, x.dtype)
    return jnp.mean((g(v, f(jax.lax.stop_gradient(p), xn)) - xn) ** 2)
