"""The layer-wise CNN of Tang, Yang & Amit (2022), sized for a CPU: 5 conv layers with Hardtanh and no
normalisation, a linear head on every layer, and the weights each learning rule needs beside them.

Public API
----------
``Arch(channels, pools, embed_dim, grid, in_shape)``: layer ``l`` is
``h_l = pool_l(hardtanh(conv3x3(h_{l-1}, W_l) + b_l))`` (``pool_l`` a 2x2 average pool where ``pools[l]``);
its head is ``z_l = flat(grid_pool(h_l)) @ A_l + a_l`` with ``grid_pool`` the adaptive average pool to a
``grid x grid`` map (PyTorch's AdaptiveAvgPool2d windows). 5 conv layers + the top head = the paper's 6
weight layers. ``arch.spatial(l)``: side of ``h_l``.
``init(key, arch, rule) -> list of L groups``; group ``l`` is a dict ``conv`` {w, b}, ``head`` {w, b},
``fb`` (rules with feedback: {conv, head}, random B in W's layout, independent of W), ``inv`` (DTP: the
inverses ``g_l`` of the conv layer (l >= 1; maps h_l back to h_{l-1}: ``hardtanh(conv3x3(up(h), V) + c)``)
and of the head (``unpool(z @ V + c)``, back to h_l)). Every role has its own key, so W, heads and B are
the same for every rule at a given seed. Init: N(0, 1 / fan_in), biases 0.
``conv_block(group, x, arch, l, rule, eta)`` / ``head_block(group, h, arch, l, rule, eta)``: layer l / head l
with the rule's backward (``rules.linear`` for bp / FA / URF, ``rules.dtp_block`` for DTP, target step eta).
``layer_forward`` / ``head_forward`` / ``conv_inverse`` / ``head_inverse``: the plain functions.
``features(groups, x, arch) -> [h_1, ..., h_L]`` (plain forward); ``pooled(h, grid)``: ``flat(grid_pool(h))``,
the features a head and the linear evaluation see.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from selfsup.bio import rules


class Arch(NamedTuple):
    channels: tuple[int, ...] = (16, 32, 32, 64, 64)
    pools: tuple[bool, ...] = (True, True, False, False, False)
    embed_dim: int = 64
    grid: int = 1
    in_shape: tuple[int, int, int] = (28, 28, 1)

    @property
    def depth(self) -> int:
        return len(self.channels)

    def spatial(self, l: int) -> int:
        """Side of h_l (l = -1: the input)."""
        s = self.in_shape[0]
        for p in self.pools[:l + 1]:
            s //= 2 if p else 1
        return s

    def feature_dim(self, l: int) -> int:
        return self.grid ** 2 * self.channels[l]

    def validate(self) -> Arch:
        if len(self.pools) != len(self.channels) or not self.channels:
            raise ValueError(f"pools={self.pools} must have one entry per conv layer {self.channels}")
        if self.in_shape[0] != self.in_shape[1]:
            raise ValueError(f"in_shape={self.in_shape}: square images only")
        if self.spatial(self.depth - 1) < self.grid:
            raise ValueError(f"grid={self.grid} exceeds the top layer's side {self.spatial(self.depth - 1)}")
        return self


def hardtanh(x):
    return jnp.clip(x, -1.0, 1.0)


def avg_pool2(x):
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))


def up2(x, side: int):
    """Nearest-neighbour upsampling by 2, zero-padded to ``side`` (the transpose shape of ``avg_pool2``)."""
    x = jnp.repeat(jnp.repeat(x, 2, 1), 2, 2)
    pad = side - x.shape[1]
    return jnp.pad(x, ((0, 0), (0, pad), (0, pad), (0, 0))) if pad else x


def _pool_matrix(side: int, grid: int) -> np.ndarray:
    """(grid, side) averaging weights of AdaptiveAvgPool: cell i covers [floor(i s/g), ceil((i+1) s/g))."""
    m = np.zeros((grid, side), np.float32)
    for i in range(grid):
        a, b = (i * side) // grid, -(-(i + 1) * side // grid)
        m[i, a:b] = 1.0 / (b - a)
    return m


def pooled(h, grid: int):
    """flat(grid_pool(h)): (N, H, W, C) -> (N, grid * grid * C)."""
    p = jnp.asarray(_pool_matrix(h.shape[1], grid))
    return jnp.einsum("ih,nhwc,jw->nijc", p, h, p).reshape(h.shape[0], -1)


def unpool(y, side: int):
    """(N, g, g, C) -> (N, side, side, C): each pixel gets the mean of the cells whose window covers it."""
    u = _pool_matrix(side, y.shape[1]).T
    u = jnp.asarray(u / u.sum(1, keepdims=True))
    return jnp.einsum("hi,nijc,wj->nhwc", u, y, u)


def _normal(key, shape, fan_in):
    return jax.random.normal(key, shape) / np.sqrt(fan_in)


def init(key, arch: Arch, rule: rules.Rule) -> list[dict]:
    """Parameter groups, one per layer (module doc)."""
    arch.validate()
    groups, c_in = [], arch.in_shape[-1]
    for l, c in enumerate(arch.channels):
        k = jax.random.split(jax.random.fold_in(key, l), 6)
        f = arch.feature_dim(l)
        g = {"conv": {"w": _normal(k[0], (3, 3, c_in, c), 9 * c_in), "b": jnp.zeros(c)},
             "head": {"w": _normal(k[1], (f, arch.embed_dim), f), "b": jnp.zeros(arch.embed_dim)},
             "fb": {}, "inv": {}}
        if rule.has_feedback:
            g["fb"] = {"conv": _normal(k[2], (3, 3, c_in, c), 9 * c_in),
                       "head": _normal(k[3], (f, arch.embed_dim), f)}
        if rule.feedback == "inverse":
            g["inv"] = {"head": {"w": _normal(k[4], (arch.embed_dim, f), arch.embed_dim), "b": jnp.zeros(f)}}
            if l > 0:
                g["inv"]["conv"] = {"w": _normal(k[5], (3, 3, c, c_in), 9 * c), "b": jnp.zeros(c_in)}
        groups.append(g)
        c_in = c
    return groups


def layer_forward(p, x, *, pool: bool):
    y = hardtanh(rules.conv(x, p["w"]) + p["b"])
    return avg_pool2(y) if pool else y


def head_forward(p, h, *, grid: int):
    return pooled(h, grid) @ p["w"] + p["b"]


def conv_inverse(v, h, *, pool: bool, side: int):
    """g_l: h_l -> h_{l-1} space, hardtanh(conv3x3(up(h), V) + c)."""
    return hardtanh(rules.conv(up2(h, side) if pool else h, v["w"]) + v["b"])


def head_inverse(v, z, *, grid: int, side: int):
    """g: z_l -> h_l space, unpool(z @ V + c)."""
    return unpool((z @ v["w"] + v["b"]).reshape(z.shape[0], grid, grid, -1), side)


def conv_block(group, x, arch: Arch, l: int, rule: rules.Rule, eta: float = 1.0):
    """h_l from h_{l-1} with the rule's backward."""
    pool = arch.pools[l]
    if rule.feedback == "inverse":
        f = lambda p, x_: layer_forward(p, x_, pool=pool)
        g = None if l == 0 else lambda v, h: conv_inverse(v, h, pool=pool, side=arch.spatial(l - 1))
        return rules.dtp_block(f, g, eta)(group["conv"], group["inv"].get("conv", {}), x)
    lin = rules.linear(rules.conv, rule.feedback)
    y = hardtanh(lin(group["conv"]["w"], group["fb"].get("conv"), x) + group["conv"]["b"])
    return avg_pool2(y) if pool else y


def head_block(group, h, arch: Arch, l: int, rule: rules.Rule, eta: float = 1.0):
    """z_l from h_l with the rule's backward."""
    if rule.feedback == "inverse":
        f = lambda p, h_: head_forward(p, h_, grid=arch.grid)
        g = lambda v, z: head_inverse(v, z, grid=arch.grid, side=arch.spatial(l))
        return rules.dtp_block(f, g, eta)(group["head"], group["inv"]["head"], h)
    lin = rules.linear(rules.dense, rule.feedback)
    return lin(group["head"]["w"], group["fb"].get("head"), pooled(h, arch.grid)) + group["head"]["b"]


def features(groups, x, arch: Arch) -> list:
    """[h_1, ..., h_L] of a plain forward pass."""
    hs = []
    for l, g in enumerate(groups):
        x = layer_forward(g["conv"], x, pool=arch.pools[l])
        hs.append(x)
    return hs
