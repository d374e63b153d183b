"""The contrastive hinge loss of Tang, Yang & Amit (2022) on L1 distances, and its trainer registration.

Public API
----------
``hinge_loss(a, b, *, T=2.0, d=1.0, k=0, grad_block=False) -> (loss, aux)``: for a batch of pairs
``(a_i, b_i)`` (both (N, D)) with ``D_ij = ||a_j - b_i||_1``::

    L = (1 / N) [ sum_i [D_ii - (T - d)]_+  +  sum_{(i, j) in neg} [(T + d) - D_ij]_+ ]

Positives are pulled below ``T - d`` (1 by default), negatives pushed above ``T + d`` (3). ``neg`` is every
``i != j`` when ``k = 0``, or only the ``k`` nearest diagonals on each side, ``0 < |i - j| <= k`` (few
negatives; rows near the edges have fewer). ``grad_block`` detaches ``a`` (the loss value is unchanged; only
``b`` receives gradient). The sum over pairs is divided by the number of anchors ``N`` so the learning rate
does not depend on the batch size. ``aux``: ``pos`` / ``neg`` (the two sums / N), ``pos_dist`` (mean D_ii),
``neg_dist`` (mean D_ij over the negatives used), ``neg_active`` (fraction of negatives closer than T + d).

``trainer_loss(o, cfg, *, grad_block)``: the form ``selfsup.methods`` registers as ``hinge`` (all negatives)
and ``hinge-gb`` (grad block on view 1), so ``selfsup.train`` uses them like any other method; the loss acts
on ``trainer_embedding`` of the projector outputs (unit-normalised and scaled so that the margins T = 2,
d = 1 bite, see its docstring). The learning rules of ``selfsup.bio`` train with ``hinge_loss`` too. This
module imports nothing from ``selfsup`` (the dependency runs one way: ``selfsup.methods`` ->
``selfsup.hinge``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def negative_mask(n: int, k: int = 0) -> jax.Array:
    """(n, n) bool: the negative pairs, all i != j (k = 0) or 0 < |i - j| <= k."""
    if k < 0:
        raise ValueError(f"k={k} must be >= 0 (0: all negatives)")
    off = jnp.abs(jnp.arange(n)[:, None] - jnp.arange(n)[None, :])
    return (off > 0) & (off <= k) if k else off > 0


def l1_distances(a, b) -> jax.Array:
    """D_ij = ||a_j - b_i||_1 for a, b of shape (N, D)."""
    return jnp.abs(b[:, None, :] - a[None, :, :]).sum(-1)


def hinge_loss(a, b, *, T: float = 2.0, d: float = 1.0, k: int = 0, grad_block: bool = False):
    """Contrastive hinge loss on L1 distances (module docstring); returns (scalar, aux dict)."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must both be (N, D); got {a.shape} and {b.shape}")
    if not 0 <= d <= T:
        raise ValueError(f"thresholds T={T}, d={d} must satisfy 0 <= d <= T")
    if grad_block:
        a = jax.lax.stop_gradient(a)
    n = a.shape[0]
    dist = l1_distances(a, b)
    diag = jnp.diagonal(dist)
    mask = negative_mask(n, k)
    pos = jax.nn.relu(diag - (T - d)).sum() / n
    neg_terms = jnp.where(mask, jax.nn.relu((T + d) - dist), 0.0)
    neg = neg_terms.sum() / n
    n_neg = jnp.maximum(mask.sum(), 1)
    aux = {"pos": pos, "neg": neg, "pos_dist": diag.mean(),
           "neg_dist": jnp.where(mask, dist, 0.0).sum() / n_neg,
           "neg_active": ((neg_terms > 0) & mask).sum() / n_neg}
    return pos + neg, aux


def trainer_embedding(z, *, T: float = 2.0, d: float = 1.0):
    """The embedding the trainer's hinge loss acts on: ``z / ||z||_2 * r``, ``r = (T + d) sqrt(pi / (4 D))``.

    Why: the margins are absolute L1 distances, but the projector's BN-standardised outputs (D = 128) lie
    about 150 apart in L1, so every negative is far outside ``T + d`` and the contrastive term is exactly 0.
    On a sphere of radius r in D dimensions, ``||a - b||_1 ~ sqrt(2 D / pi) ||a - b||_2`` and
    ``||a - b||_2 = r sqrt(2 - 2 cos)``; this r puts two orthogonal (unrelated) embeddings exactly at
    ``T + d``. So negatives with a positive cosine (BN-centred outputs at init: about half) are inside the
    margin and pushed toward orthogonality, and positives are pulled below ``T - d``, i.e. to
    ``cos > 1 - ((T - d) / (T + d))^2`` (8/9 for T = 2, d = 1)."""
    r = (T + d) * jnp.sqrt(jnp.pi / (4 * z.shape[-1]))
    return z * jax.lax.rsqrt(jnp.maximum((z * z).sum(-1, keepdims=True), 1e-24)) * r


def trainer_loss(o, cfg, *, grad_block: bool):
    """Trainer-registry form (``selfsup.methods`` registers ``hinge`` / ``hinge-gb`` with it): hinge loss
    between the two views' embeddings ``trainer_embedding(z1)``, ``trainer_embedding(z2)``."""
    loss, aux = hinge_loss(trainer_embedding(o["z1"]), trainer_embedding(o["z2"]), grad_block=grad_block)
    return loss, {"sim": loss, "pos_dist": aux["pos_dist"], "neg_dist": aux["neg_dist"],
                  "neg_active": aux["neg_active"]}
