"""Backbones: the im2col 3x3 convolution against flax's ``nn.Conv`` (same parameters, outputs, gradients), and
the strided 4-conv net's shapes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfsup import nets


@pytest.mark.parametrize("shape,features,stride", [((3, 32, 32, 3), 8, 1), ((2, 16, 16, 5), 7, 2),
                                                    ((2, 9, 7, 4), 6, 2), ((1, 8, 8, 3), 4, 1)])
def test_patch_conv_equals_flax_conv_outputs_and_gradients(shape, features, stride):
    x = jax.random.normal(jax.random.key(0), shape)
    ours = nets.PatchConv3x3(features, stride)
    ref = nn.Conv(features, (3, 3), (stride, stride), use_bias=False)
    p = ours.init(jax.random.key(1), x)
    p_ref = ref.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, p) == jax.tree.map(jnp.shape, p_ref)  # same parameter tree
    np.testing.assert_allclose(p["params"]["kernel"], p_ref["params"]["kernel"])  # same initialiser and key
    np.testing.assert_allclose(ours.apply(p, x), ref.apply(p, x), rtol=1e-5, atol=1e-5)
    loss = lambda m: lambda p, x: (jnp.sin(m.apply(p, x)) ** 2).sum()
    g, g_ref = jax.grad(loss(ours), (0, 1))(p, x), jax.grad(loss(ref), (0, 1))(p, x)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_strided_net_keeps_a_4x4_map_of_4w_channels():
    net = nets.StridedConvNet(width=8)
    x = jnp.zeros((2, 32, 32, 3))
    v = net.init(jax.random.key(0), x, True)
    h, _ = net.apply(v, x, True, mutable=["batch_stats"])
    assert h.shape == (2, 4 * 4 * 32)
    widths = [v["params"][f"PatchConv3x3_{i}"]["kernel"].shape[-1] for i in range(4)]
    assert widths == [8, 16, 32, 32]
