"""Training schedules: which layers learn from which loss at each step.

Public API
----------
``SCHEDULES = ("e2e", "gll", "rll")``.

- ``e2e``: end to end; the hinge loss on the top head z_L trains every conv layer and that head through the
  rule's backward pass. Other heads stay at their initial values.
- ``gll``: greedy layer-wise; training is cut into L equal stages of ``total_steps // L`` steps (the last
  stage takes the remainder); in stage k only conv layer k and its head learn, from the hinge loss on z_k, on
  top of the frozen (stop-gradient) layers below. Layers above k are not evaluated.
- ``rll``: random layer-wise; every step draws k uniformly from {0, ..., L-1} with its own key and trains
  layer k and its head exactly as a GLL stage would.

Under the layer-wise schedules a "network" is one hidden layer plus its head, so the rule acts on the
head-to-layer backward (FA/URF: B of the head; DTP: the head's learned inverse), as in the paper.

``active_layer(schedule, step, key, total_steps, depth) -> int``: k, or -1 for every layer (e2e); computed
on the host (python ints), so each layer-wise step is traced with k static. (``lax.switch`` over the layers
under ``jax.grad`` measured 3-15x slower per step on CPU than the static branch, the top layer worst.)
``active_groups(k, depth) -> tuple[bool, ...]``: which parameter groups the optimiser may change this step.
``loss_fn(schedule, arch, rule, hp)`` -> ``f(groups, x1, x2, key, k) -> (loss, aux)`` (k a python int): the
schedule's loss (hinge on the two views' embeddings, plus for DTP the inverses' noise reconstruction loss,
which only reaches the inverse weights). ``hp`` holds ``hinge_t, hinge_d, neg_k, grad_block, dtp_eta,
dtp_sigma, batch_size`` (a ``BioConfig``). DTP's target step on the embedding is ``dtp_eta`` per example:
``t_z = z - dtp_eta * grad_z l(z)``, ``l`` the per-anchor hinge sum.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from selfsup.bio import net, rules
from selfsup.hinge import hinge_loss

SCHEDULES = ("e2e", "gll", "rll")


def active_layer(schedule: str, step: int, key, total_steps: int, depth: int) -> int:
    """The layer trained at ``step`` (-1: all); rll draws it uniformly with ``fold_in(key, 1)``."""
    if schedule == "e2e":
        return -1
    if schedule == "gll":
        return min(step // max(total_steps // depth, 1), depth - 1)
    if schedule == "rll":
        return int(jax.random.randint(jax.random.fold_in(key, 1), (), 0, depth))
    raise ValueError(f"schedule={schedule!r} is not one of {SCHEDULES}")


def active_groups(k: int, depth: int) -> tuple[bool, ...]:
    """Every group when k = -1, else only group k."""
    return tuple(k < 0 or l == k for l in range(depth))


def _hinge(z, hp):
    n = z.shape[0] // 2
    return hinge_loss(z[:n], z[n:], T=hp.hinge_t, d=hp.hinge_d, k=hp.neg_k, grad_block=hp.grad_block)


def _inv_head(group, h, arch, l, key, hp):
    f = lambda p, x: net.head_forward(p, x, grid=arch.grid)
    g = lambda v, z: net.head_inverse(v, z, grid=arch.grid, side=arch.spatial(l))
    return rules.inverse_loss(f, g, group["head"], group["inv"]["head"], h, key, hp.dtp_sigma)


def _inv_conv(group, x, arch, l, key, hp):
    pool = arch.pools[l]
    f = lambda p, x_: net.layer_forward(p, x_, pool=pool)
    g = lambda v, h: net.conv_inverse(v, h, pool=pool, side=arch.spatial(l - 1))
    return rules.inverse_loss(f, g, group["conv"], group["inv"]["conv"], x, key, hp.dtp_sigma)


def _finish(z, inv, hp):
    loss, aux = _hinge(z, hp)
    aux = {**aux, "hinge": loss, "inv": inv}
    return loss + inv, aux


def _e2e(groups, x, key, arch, rule, hp):
    eta, dtp = hp.dtp_eta * hp.batch_size, rule.feedback == "inverse"
    inv = jnp.zeros(())
    for l, g in enumerate(groups):
        if dtp and l > 0:
            inv = inv + _inv_conv(g, x, arch, l, jax.random.fold_in(key, l), hp)
        x = net.conv_block(g, x, arch, l, rule, eta)
    top = arch.depth - 1
    if dtp:
        inv = inv + _inv_head(groups[top], x, arch, top, jax.random.fold_in(key, 100), hp)
    return _finish(net.head_block(groups[top], x, arch, top, rule, eta), inv, hp)


def _local(groups, x, key, k, arch, rule, hp):
    for l in range(k):
        x = jax.lax.stop_gradient(net.layer_forward(groups[l]["conv"], x, pool=arch.pools[l]))
    eta = hp.dtp_eta * hp.batch_size
    h = net.conv_block(groups[k], x, arch, k, rule, eta)
    inv = (_inv_head(groups[k], h, arch, k, jax.random.fold_in(key, 100), hp)
           if rule.feedback == "inverse" else jnp.zeros(()))
    return _finish(net.head_block(groups[k], h, arch, k, rule, eta), inv, hp)


def loss_fn(schedule: str, arch: net.Arch, rule: rules.Rule, hp):
    """``f(groups, x1, x2, key, k) -> (loss, aux)`` for the schedule (module doc)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {SCHEDULES}")

    def f(groups, x1, x2, key, k: int):
        if (k < 0) != (schedule == "e2e") or k >= arch.depth:
            raise ValueError(f"layer k={k} does not fit schedule={schedule!r} with {arch.depth} layers")
        x = jnp.concatenate([x1, x2])
        return _e2e(groups, x, key, arch, rule, hp) if k < 0 else _local(groups, x, key, k, arch, rule, hp)
    return f
