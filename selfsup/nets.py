"""Flax networks: backbones, projector and predictor heads (docs/methods.md section 2).

Public API
----------
``SmallConvNet(width)``: 3 x (3x3 conv - BN - ReLU) with widths (w, 2w, 4w), strides (1, 2, 2), global average
pool; feature size 4w (the former default, ``arch="small-gap"``).
``ResNet18()``: the CIFAR ResNet-18 (3x3 stride-1 stem, no max-pool, BasicBlocks 2-2-2-2 with widths
64-128-256-512, global average pool); 11,168,832 parameters, feature size 512.
``ConvNet(width)``: the default CPU backbone, 4 x (3x3 conv - BN - ReLU) with 2x2 max-pools, the final 4 x 4
map flattened (features keep the digit's layout: 16 * 4w for 28 x 28 inputs); its pool is ``max_pool2(x)``
(flax's SAME 2 x 2 max-pool as four strided slices: the same values, a cheaper gradient on XLA:CPU).
``Projector(hidden, out, layers)``: (layers - 1) x (Linear - BN - ReLU), then Linear - BN without affine
(SimSiam's reference code); ``style="byol"``: the same blocks with biases, then a plain Linear (BYOL).
``Predictor(hidden, out)``: the bottleneck MLP Linear - BN - ReLU - Linear (bias initialised as in PyTorch,
U(-/+ 1/sqrt(hidden)), so that p is never exactly 0); ``LinearPredictor(out)``:
bias-free ``p = Wp z``, stored as the flax kernel ``K = Wp^T`` (``p = z @ K``).
``Encoder(backbone, projector)``: ``f = projector o backbone``; returns ``(features, z)``.
``build(config) -> Nets``: the modules a config asks for (``encoder``, ``predictor``, ``ca1`` or None).
``apply(module, params, stats, x, train) -> (out, new_stats)``: one call for modules with or without BN.

Every module has a ``dtype`` (the compute dtype of its convolutions, matmuls and BN output; ``build`` sets
``jnp.bfloat16`` for ``config.dtype == "bfloat16"``): parameters and BN statistics stay float32 (flax's
``param_dtype`` and its float32 BN reductions), and ``apply`` returns float32.
Every module takes ``train`` (BN uses batch statistics and updates its running averages, momentum 0.9 as
PyTorch's 0.1). Under a jit whose batch is sharded over devices, BN statistics are those of the global batch.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_MOMENTUM = 0.9  # flax's convention: running = momentum * running + (1 - momentum) * batch
_BN = dict(momentum=BN_MOMENTUM, epsilon=1e-5)


def max_pool2(x):
    """2 x 2 max-pool with stride 2 and SAME padding (odd sizes padded at the end, ``ceil(n / 2)`` outputs):
    the values of ``nn.max_pool(x, (2, 2), (2, 2), padding="SAME")``, as the maximum of four strided slices.

    Why: XLA:CPU differentiates ``reduce_window`` max with a select-and-scatter (2 cores, a (256, 28, 28, 16)
    map: forward + gradient 45.8 ms, forward alone 0.6 ms); the gradient of ``maximum`` is elementwise
    (4.6 ms). The default ConvNet SimSiam step gets about 1.5x faster (``benchmarks/vs_pytorch.py``). The
    gradients agree except at exact ties inside a window, which ``maximum`` splits evenly where
    select-and-scatter picks one; after a ReLU the only ties are zeros, whose gradient the ReLU discards."""
    h, w = x.shape[1], x.shape[2]
    if h % 2 or w % 2:
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
    return jnp.maximum(jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]),
                       jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))


class ConvNet(nn.Module):
    """4 x (3x3 conv - BN - ReLU), widths (w, 2w, 4w, 4w), 2x2 max-pool after the 1st, 2nd and 4th conv;
    the final map (4 x 4 for 28 x 28 inputs) is flattened, so the features keep the digit's layout."""
    width: int = 16
    dtype: Any = jnp.float32  # compute dtype (parameters stay float32)

    @nn.compact
    def __call__(self, x, train: bool):
        for mult, pool in ((1, True), (2, True), (4, False), (4, True)):
            x = nn.Conv(self.width * mult, (3, 3), use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
            if pool:  # pooling, not strides: keeps every position and is cheaper to differentiate on XLA:CPU
                x = max_pool2(x)
        return x.reshape(x.shape[0], -1)


class PatchConv3x3(nn.Module):
    """A 3x3 convolution without bias, 'SAME' padding as ``nn.Conv`` (same parameter name, shape and
    initialiser, same outputs to float rounding), computed as one matmul over the nine shifted slices of the
    padded input (im2col). Why: on XLA:CPU the gradient of ``conv_general_dilated`` at these shapes is
    1.3-2.7x slower than slicing plus a matmul (a 512-image 32x32 batch, 3->32 channels: 211 vs 92 ms;
    32->64 at stride 2: 565 vs 205 ms, forward and gradient on 2 cores)."""
    features: int
    stride: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, h, w, c = x.shape
        s = self.stride
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features), jnp.float32)
        ho, wo = -(-h // s), -(-w // s)
        ph, pw = max((ho - 1) * s + 3 - h, 0), max((wo - 1) * s + 3 - w, 0)
        xp = jnp.pad(x.astype(self.dtype), ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
        cols = [xp[:, i:i + (ho - 1) * s + 1:s, j:j + (wo - 1) * s + 1:s] for i in range(3) for j in range(3)]
        patches = jnp.concatenate(cols, -1).reshape(n * ho * wo, 9 * c)
        return (patches @ kernel.reshape(9 * c, -1).astype(self.dtype)).reshape(n, ho, wo, self.features)


class StridedConvNet(nn.Module):
    """4 x (3x3 conv - BN - ReLU), widths (w, 2w, 4w, 4w), strides 1-2-2-2 (``arch="strided"``): the map
    halves at the 2nd, 3rd and 4th conv instead of by max-pools (32 x 32 -> 4 x 4, flattened, so features
    keep the layout). For the same widths it computes about 35% fewer multiply-adds than ``ConvNet`` (its
    last conv runs on a 4 x 4 instead of an 8 x 8 map) and needs no pooling gradient; its convolutions are
    ``PatchConv3x3``: the CIFAR CPU regime's backbone (``--preset cifar10-cpu``)."""
    width: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        for mult, stride in ((1, 1), (2, 2), (4, 2), (4, 2)):
            x = PatchConv3x3(self.width * mult, stride, self.dtype)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
        return x.reshape(x.shape[0], -1)


class SmallConvNet(nn.Module):
    """The former default (kept as ``arch="small-gap"`` to show the effect): its global average pool over
    a 7 x 7 map of 9 x 9 receptive fields throws the digit's layout away."""
    width: int = 32
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        for i, stride in enumerate((1, 2, 2)):
            x = nn.Conv(self.width * 2 ** i, (3, 3), (stride, stride), use_bias=False, dtype=self.dtype)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
        return x.mean((1, 2))


class BasicBlock(nn.Module):
    width: int
    stride: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        bn = lambda: nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)
        y = nn.Conv(self.width, (3, 3), (self.stride, self.stride), use_bias=False, dtype=self.dtype)(x)
        y = nn.Conv(self.width, (3, 3), use_bias=False, dtype=self.dtype)(nn.relu(bn()(y)))
        y = bn()(y)
        if self.stride != 1 or x.shape[-1] != self.width:
            x = nn.Conv(self.width, (1, 1), (self.stride, self.stride), use_bias=False, dtype=self.dtype)(x)
            x = bn()(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(64, (3, 3), use_bias=False, dtype=self.dtype)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
        for i, width in enumerate((64, 128, 256, 512)):
            for j in range(2):
                x = BasicBlock(width, 2 if (i > 0 and j == 0) else 1, self.dtype)(x, train)
        return x.mean((1, 2))


class Projector(nn.Module):
    """(layers - 1) x (Linear - BN - ReLU), then Linear. ``style="simsiam"`` (SimSiam's code): no biases and
    a final BN without affine; ``style="phinet"`` (the PhiNets code, ``models/phinet.py``): the same with an
    affine final BN (learnt scale and bias); ``style="byol"`` (BYOL, solo-learn): biases and no final BN, so
    the output (and DirectPred's F) is not standardised."""
    hidden: int
    out: int
    layers: int = 2
    style: str = "simsiam"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        byol = self.style == "byol"
        for _ in range(self.layers - 1):
            x = nn.Dense(self.hidden, use_bias=byol, dtype=self.dtype)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
        if byol:
            return nn.Dense(self.out, bias_init=_uniform_bias(x.shape[-1]), dtype=self.dtype)(x)
        x = nn.Dense(self.out, use_bias=False, dtype=self.dtype)(x)
        affine = self.style == "phinet"  # the PhiNets code's final BatchNorm1d keeps its scale and bias
        return nn.BatchNorm(use_running_average=not train, use_scale=affine, use_bias=affine,
                            dtype=self.dtype, **_BN)(x)


def _uniform_bias(fan_in: int):
    """PyTorch's default Linear bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / fan_in ** 0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Predictor(nn.Module):
    hidden: int
    out: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, dtype=self.dtype, **_BN)(x))
        # A zero bias (flax's default) makes p exactly 0 for a sample whose hidden ReLUs are all off, and the
        # cosine loss's gradient 1/|p| then explodes; the reference (PyTorch) code has a random bias.
        return nn.Dense(self.out, bias_init=_uniform_bias(self.hidden), dtype=self.dtype)(x)


class LinearPredictor(nn.Module):
    out: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(self.out, use_bias=False, dtype=self.dtype)(x)


class Encoder(nn.Module):
    backbone: nn.Module
    projector: nn.Module

    def __call__(self, x, train: bool):
        h = self.backbone(x, train)
        return h, self.projector(h, train)


class Nets(NamedTuple):
    encoder: Encoder
    predictor: nn.Module
    ca1: nn.Module | None  # PhiNet's second predictor g


def build(config: Any, *, linear_predictor: bool = False, ca1: bool = False,
          projector: str | None = None) -> Nets:
    """Modules for ``config`` (arch, width, proj_hidden, proj_dim, proj_layers, pred_hidden, predictor);
    ``projector`` (the ``Projector`` style) "simsiam", "phinet" or "byol", by default the method's."""
    if projector is None:
        from selfsup import methods  # the registry knows each method's projector
        projector = methods.METHODS[config.method].projector
    dt = compute_dtype(config)
    backbone = {"resnet18": lambda: ResNet18(dt), "small-gap": lambda: SmallConvNet(config.width, dt),
                "small": lambda: ConvNet(config.width, dt),
                "strided": lambda: StridedConvNet(config.width, dt)}[config.arch]()
    proj = Projector(config.proj_hidden, config.proj_dim, config.proj_layers, projector, dt)
    from selfsup import methods
    m = methods.METHODS.get(config.method)
    expanding = m is not None and not m.simsiam_predictor  # BYOL: hidden = proj_hidden (4096 in the paper)
    hidden = config.pred_hidden or (config.proj_hidden if expanding else max(1, config.proj_dim // 4))
    linear = linear_predictor or config.predictor == "linear"
    pred = LinearPredictor(config.proj_dim, dt) if linear else Predictor(hidden, config.proj_dim, dt)
    return Nets(Encoder(backbone, proj), pred, Predictor(hidden, config.proj_dim, dt) if ca1 else None)


def compute_dtype(config: Any):
    """``jnp.bfloat16`` for ``config.dtype == "bfloat16"`` (mixed precision), else ``jnp.float32``."""
    return jnp.bfloat16 if getattr(config, "dtype", "float32") == "bfloat16" else jnp.float32


def apply(module: nn.Module, params, stats, x, train: bool):
    """Run ``module`` on ``x``; returns ``(output, new_batch_stats)`` ({} for modules without BN). Outputs
    are float32 whatever the compute dtype, so losses, F and the EMA target never see bfloat16."""
    variables = {"params": params, **({"batch_stats": stats} if stats else {})}
    if not train or not stats:
        return _f32(module.apply(variables, x, train)), stats
    out, upd = module.apply(variables, x, train, mutable=["batch_stats"])
    return _f32(out), upd["batch_stats"]


def _f32(tree):
    return jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if a.dtype == jnp.bfloat16 else a, tree)


def feature_dim(config: Any, image_shape=(28, 28, 1)) -> int:
    """Size of the backbone features h for ``config.arch`` on images of ``image_shape`` (H, W, C)."""
    if config.arch == "resnet18":
        return 512
    if config.arch == "small-gap":
        return 4 * config.width
    def cells(n):  # three SAME 2 x 2 max-pools: ceil(n / 2), three times
        for _ in range(3):
            n = (n + 1) // 2
        return n
    return 4 * config.width * cells(image_shape[0]) * cells(image_shape[1])


def dummy_input(image_shape) -> jnp.ndarray:
    return jnp.zeros((2, *image_shape), jnp.float32)
