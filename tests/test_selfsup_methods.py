"""Losses, EMA, DirectPred/DirectCopy setters and networks against closed forms and numpy.

Float32 tolerances: 1e-6 relative for elementwise EMA arithmetic (one fused multiply-add per leaf), 1e-5 for
d = 6 eigen-decompositions, 1e-5 for gradients compared across two autodiff graphs of the same function.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from selfsup import data, methods, nets
from selfsup.config import Config
from selfsup.step import _forward_targets, _loss, _nets, init_state


def test_losses_at_identical_and_opposite_vectors():
    z = jax.random.normal(jax.random.key(0), (5, 8))
    cfg = Config()
    same = dict(p1=z, p2=z, t1=z, t2=z, z1=z, z2=z, q1=z, q2=z, z0=z)
    assert float(methods.simsiam_loss(same, cfg)[0]) == pytest.approx(-1.0, abs=1e-6)
    assert float(methods.byol_loss(same, cfg)[0]) == pytest.approx(0.0, abs=1e-5)
    assert float(methods.phinet_loss(same, cfg)[0]) == pytest.approx(-1.0, abs=1e-6)
    opp = {**same, "t1": -z, "t2": -z}
    assert float(methods.byol_loss(opp, cfg)[0]) == pytest.approx(8.0, abs=1e-5)  # (2 + 2) per side
    shifted = {**same, "q1": z + 1.0, "q2": z - 2.0}
    loss, aux = methods.phinet_loss(shifted, cfg.replace(lam=0.5))
    assert float(aux["ca1"]) == pytest.approx((1 + 4) / 2, rel=1e-6)
    assert float(loss) == pytest.approx(-1 + 0.5 * 2.5, rel=1e-6)


def test_cosine_loss_has_a_finite_gradient_at_a_zero_vector():
    g = jax.grad(lambda p: methods.neg_cos(p, jnp.ones((2, 3))))(jnp.zeros((2, 3)))
    assert np.all(np.isfinite(g))


def test_ema_update_is_exact_and_the_cosine_momentum_hits_its_endpoints():
    t = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(-3.0)}}
    o = {"a": jnp.array([5.0, -2.0]), "b": {"c": jnp.array(1.0)}}
    out = methods.ema_update(t, o, 0.75)
    np.testing.assert_allclose(out["a"], [0.75 * 1 + 0.25 * 5, 0.75 * 2 - 0.25 * 2], rtol=1e-6)
    np.testing.assert_allclose(out["b"]["c"], -2.0, rtol=1e-6)
    m0 = 0.99
    assert float(methods.ema_momentum(0, 100, m0)) == pytest.approx(m0)
    assert float(methods.ema_momentum(50, 100, m0)) == pytest.approx(m0 + (1 - m0) / 2)
    assert float(methods.ema_momentum(100, 100, m0)) == pytest.approx(1.0)


def test_directpred_and_directcopy_setters_match_numpy():
    a = np.asarray(jax.random.normal(jax.random.key(1), (40, 6)), np.float64)
    F = a.T @ a / 40
    s, u = np.linalg.eigh(F)
    want_dp = u @ np.diag(np.sqrt(np.clip(s, 0, None) / s.max()) + 0.1) @ u.T
    np.testing.assert_allclose(methods.directpred_wp(jnp.asarray(F, jnp.float32), 0.1), want_dp, atol=1e-5)
    want_dc = F / s.max() + 0.1 * np.eye(6)
    np.testing.assert_allclose(methods.directcopy_wp(jnp.asarray(F, jnp.float32), 0.1), want_dc, atol=1e-5)
    Fn = methods.update_corr(jnp.eye(6), jnp.asarray(a, jnp.float32), 0.3)
    np.testing.assert_allclose(Fn, 0.3 * np.eye(6) + 0.7 * F, atol=1e-5)


def test_registry_holds_six_methods_and_refuses_duplicates():
    assert {"simsiam", "byol", "phinet", "xphinet", "directpred", "directcopy"} <= set(methods.METHODS)
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method(methods.METHODS["simsiam"])
    with pytest.raises(ValueError, match="target='teacher'"):
        methods.register_method(methods.Method("x", methods.simsiam_loss, target="teacher"))


def test_hinge_loss_is_a_registered_trainer_method_acting_on_the_projections():
    """The trainer sees `hinge` like any other method; its loss on (z1, z2) equals the hinge loss computed
    independently in numpy (tests/test_selfsup_bio_rules.py's double loop) on the embeddings
    z / ||z||_2 * (T + d) sqrt(pi / (4 D)), T = 2, d = 1; grad block stops the gradient into z1."""
    from test_selfsup_bio_rules import _numpy_hinge
    z1, z2 = jax.random.normal(jax.random.key(0), (2, 8, 5))
    o = {"z1": z1, "z2": z2}
    loss, _ = methods.METHODS["hinge"].loss(o, Config.smoke())
    r = 3.0 * np.sqrt(np.pi / (4 * 5))
    emb = [np.asarray(z, np.float64) / np.linalg.norm(np.asarray(z, np.float64), axis=1, keepdims=True) * r
           for z in (z1, z2)]
    want, _, _ = _numpy_hinge(emb[0], emb[1], 2.0, 1.0, 0)
    assert 0 < want and float(loss) == pytest.approx(want, rel=1e-5)
    g = jax.grad(lambda a: methods.METHODS["hinge-gb"].loss({"z1": a, "z2": z2}, Config.smoke())[0])(z1)
    assert not np.any(np.asarray(g))


def test_cifar_resnet18_has_the_reference_parameter_count():
    """11,173,962 for the CIFAR ResNet-18 with a 10-way fc (kuangliu/pytorch-cifar) minus 512*10+10."""
    shapes = jax.eval_shape(lambda: nets.ResNet18().init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), False))
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
    assert n == 11_173_962 - 5130
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    out = jax.eval_shape(lambda v, x: nets.ResNet18().apply(v, x, False), shapes, x)
    assert out.shape == (2, 512)


@pytest.mark.parametrize("shape", [(3, 28, 28, 4), (2, 7, 7, 3), (2, 5, 6, 2)])
def test_max_pool2_matches_flax_max_pool_in_values_and_gradient(shape):
    """The slice-based pool of the default ConvNet equals flax's reduce_window pool (SAME, ceil(n / 2)
    outputs) exactly, and so does its gradient on tie-free inputs (random floats)."""
    x = jax.random.normal(jax.random.key(1), shape)
    ref = lambda x: nn.max_pool(x, (2, 2), (2, 2), padding="SAME")  # noqa: E731
    np.testing.assert_array_equal(nets.max_pool2(x), ref(x))
    w = jax.random.normal(jax.random.key(2), ref(x).shape)
    grad = jax.grad(lambda x, f: (f(x) * w).sum())
    np.testing.assert_array_equal(grad(x, nets.max_pool2), grad(x, ref))


def test_heads_shapes_and_bias_free_linear_predictor():
    cfg = Config(proj_dim=16, proj_hidden=32, width=4)
    net = nets.build(cfg, linear_predictor=True, ca1=True)
    v = net.predictor.init(jax.random.key(0), jnp.zeros((2, 16)), False)
    assert list(v["params"]["Dense_0"]) == ["kernel"] and "batch_stats" not in v
    v = net.encoder.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), False)
    last_bn = sorted(v["batch_stats"]["projector"])[-1]
    assert last_bn not in v["params"]["projector"]  # final projector BN has no affine parameters
    (h, z), _ = nets.apply(net.encoder, v["params"], v["batch_stats"], jnp.ones((3, 8, 8, 1)), True)
    assert h.shape == (3, 16) and z.shape == (3, 16)


@pytest.mark.parametrize("method", ["simsiam", "phinet", "byol"])
def test_no_gradient_flows_through_stop_gradient_targets(method):
    """The step's gradient equals the gradient of the same loss with targets from a frozen copy of theta.

    The reference computes z2 (SimSiam), z0 (PhiNet) and the EMA projections (BYOL) with parameters that are
    constants of the differentiated function, so no gradient can reach them by construction."""
    cfg = Config.smoke(method=method, width=4, proj_hidden=16, proj_dim=8)
    st = init_state(cfg, jax.random.key(0), info=_info(cfg))
    net, m = _nets(cfg), methods.METHODS[method]
    ks = jax.random.split(jax.random.key(1), 3)
    x1, x2, x0 = (jax.random.normal(k, (6, 8, 8, 1)) for k in ks)
    fixed, _ = _forward_targets(net, st, m, x1, x2, x0)
    g = jax.grad(lambda p: _loss(p, st.batch_stats, net, m, cfg, x1, x2, fixed, x0=x0)[0])(st.params)

    def reference(p, frozen):
        o = dict(fixed)
        for i, x in (("1", x1), ("2", x2)):
            (_, z), _ = nets.apply(net.encoder, p["encoder"], st.batch_stats["encoder"], x, True)
            o["z" + i] = z
            o["p" + i] = nets.apply(net.predictor, p["predictor"], st.batch_stats["predictor"], z, True)[0]
            if net.ca1 is not None:
                o["q" + i] = nets.apply(net.ca1, p["ca1"], st.batch_stats["ca1"], o["p" + i], True)[0]
            if m.target == "online":  # target from the frozen copy: a constant of p
                o["t" + i] = nets.apply(net.encoder, frozen, st.batch_stats["encoder"], x, True)[0][1]
        if m.clean_view == "online":  # PhiNet's z0 (computed inside the step's loss), from the frozen copy
            o["z0"] = nets.apply(net.encoder, frozen, st.batch_stats["encoder"], x0, True)[0][1]
        return m.loss(o, cfg)[0]

    want = jax.grad(reference)(st.params, st.params["encoder"])
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree.leaves(g["encoder"]))


def _info(cfg):
    return data.DataInfo("x", (8, 8, 1), 10, 64, (0.5,), (0.25,))
