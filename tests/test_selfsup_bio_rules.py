"""selfsup.bio: hinge loss, learning rules (custom_vjp) and DTP targets against numpy / closed forms.

Tolerances: float32 throughout. Identities that run the same arithmetic are asserted exactly; comparisons
with an independent numpy computation (float64) use rtol 1e-5 (float32 has ~7 digits; sums of <= 600 terms).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfsup import hinge
from selfsup.bio import net, rules, schedules
from selfsup.bio.config import BioConfig

RTOL = 1e-5
ARCH = net.Arch(channels=(2, 3, 3, 4, 4), embed_dim=5, in_shape=(12, 12, 1))  # tiny: fast to compile
HP = BioConfig.smoke()


# ----------------------------------------------------------------------------------------- hinge loss
def _numpy_hinge(a, b, T, d, k):
    n = len(a)
    D = np.array([[np.abs(a[j] - b[i]).sum() for j in range(n)] for i in range(n)])
    L, ga, gb = 0.0, np.zeros_like(a), np.zeros_like(b)
    for i in range(n):
        for j in range(n):
            if i == j and D[i, i] > T - d:
                L += D[i, i] - (T - d)
                gb[i] += np.sign(b[i] - a[i])
                ga[i] -= np.sign(b[i] - a[i])
            elif i != j and (k == 0 or abs(i - j) <= k) and D[i, j] < T + d:
                L += (T + d) - D[i, j]
                gb[i] -= np.sign(b[i] - a[j])
                ga[j] += np.sign(b[i] - a[j])
    return L / n, ga / n, gb / n


@pytest.mark.parametrize("k", [0, 2])
def test_hinge_loss_and_gradients_match_direct_numpy_evaluation(k):
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.3, 0.3, (12, 8))  # L1 distances ~ 1.6: positives and negatives on both sides
    b = a + rng.normal(0, 0.1, a.shape)
    L, ga, gb = _numpy_hinge(a, b, 2.0, 1.0, k)
    assert 0 < L and np.abs(ga).sum() > 0  # both kinds of terms are active
    f = lambda a_, b_: hinge.hinge_loss(a_, b_, T=2.0, d=1.0, k=k)[0]
    val, (da, db) = jax.value_and_grad(f, (0, 1))(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(val, L, rtol=RTOL)
    np.testing.assert_allclose(da, ga, rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(db, gb, rtol=RTOL, atol=1e-7)


def test_hinge_grad_block_keeps_value_and_b_gradient_and_zeroes_a_gradient():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.uniform(-0.3, 0.3, (10, 6)), jnp.float32)
    b = a + 0.1 * jnp.asarray(rng.normal(size=a.shape), jnp.float32)
    f = lambda gb: jax.value_and_grad(lambda a_, b_: hinge.hinge_loss(a_, b_, grad_block=gb)[0], (0, 1))(a, b)
    (v0, (da0, db0)), (v1, (da1, db1)) = f(False), f(True)
    assert v0 == v1 and np.abs(da0).sum() > 0
    np.testing.assert_array_equal(da1, 0.0)
    np.testing.assert_array_equal(db1, db0)


def test_negative_mask_selects_k_nearest_diagonals():
    m = np.asarray(hinge.negative_mask(5, 1))
    assert m.sum() == 8 and m[0, 1] and m[1, 0] and not m[0, 2] and not m.diagonal().any()
    assert np.asarray(hinge.negative_mask(5)).sum() == 20


@pytest.mark.parametrize("kw, match", [({"d": 3.0}, "0 <= d <= T"), ({"k": -1}, "k=-1")])
def test_hinge_rejects_bad_thresholds(kw, match):
    with pytest.raises(ValueError, match=match):
        hinge.hinge_loss(jnp.zeros((4, 2)), jnp.zeros((4, 2)), **kw)


def test_hinge_is_a_trainer_method_and_its_module_imports_nothing_from_selfsup():
    import ast
    import inspect

    from selfsup import methods
    assert methods.HINGE_METHODS == ("hinge", "hinge-gb")
    assert set(methods.HINGE_METHODS) <= set(methods.METHODS)
    tree = list(ast.walk(ast.parse(inspect.getsource(hinge))))
    imported = [n.module or "" for n in tree if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in tree if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.split(".")[0] == "selfsup"], imported  # no methods <-> hinge cycle
    z1, z2 = jnp.ones((4, 3)), jnp.zeros((4, 3))
    loss, aux = methods.METHODS["hinge"].loss({"z1": z1, "z2": z2}, None)
    want = hinge.hinge_loss(hinge.trainer_embedding(z1), hinge.trainer_embedding(z2))[0]
    np.testing.assert_allclose(loss, want)


# ------------------------------------------------------------------------------ FA / URF backward pass
def _two_layer(lin1, lin2, w1, b1, w2, b2, x, y):
    h = net.hardtanh(lin1(w1, b1, x))
    return 0.5 * ((lin2(w2, b2, h) - y) ** 2).sum()


def test_fa_random_feedback_keeps_forward_and_updates_equal_delta_transpose_x_hand_computed():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    w1, b1, w2, b2 = (rng.normal(size=s) * 0.5 for s in [(4, 6), (4, 6), (6, 3), (6, 3)])
    fa = rules.linear(rules.dense, "fixed")
    args = [jnp.asarray(v, jnp.float32) for v in (w1, b1, w2, b2, x, y)]
    np.testing.assert_array_equal(fa(args[0], args[1], args[4]), args[4] @ args[0])  # forward unchanged
    g = jax.grad(lambda *p: _two_layer(fa, fa, *p, args[4], args[5]), (0, 1, 2, 3))(*args[:4])
    a1 = x @ w1                                                   # hand computation, float64
    h = np.clip(a1, -1, 1)
    delta2 = h @ w2 - y
    delta1 = (delta2 @ b2.T) * (np.abs(a1) < 1)                   # B's delta: B replaces W in the backward
    np.testing.assert_allclose(g[2], h.T @ delta2, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(g[0], x.T @ delta1, rtol=RTOL, atol=1e-6)
    np.testing.assert_array_equal(g[1], 0.0)                      # fixed B
    np.testing.assert_array_equal(g[3], 0.0)
    bp_lin = rules.linear(rules.dense, "none")
    bp = jax.grad(lambda w: _two_layer(bp_lin, bp_lin, w, *args[1:4], *args[4:]))(args[0])
    assert np.abs(bp - g[0]).max() > 1e-3                        # a random B is not backprop


def test_hebbian_feedback_gradient_is_relu_x_transpose_delta():
    rng = np.random.default_rng(3)
    x, w, b, c = (rng.normal(size=s) for s in [(5, 4), (4, 3), (4, 3), (5, 3)])
    heb = rules.linear(rules.dense, "hebbian")
    args = (jnp.asarray(v, jnp.float32) for v in (w, b, x))
    gw, gb, gx = jax.grad(lambda *p: (heb(*p) * c).sum(), (0, 1, 2))(*args)
    np.testing.assert_allclose(gw, x.T @ c, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gb, np.maximum(x, 0).T @ c, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(gx, c @ b.T, rtol=RTOL, atol=1e-6)


def _im2col(x):
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.stack([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], 3)
    return cols.reshape(n * h * w, 9 * c)


def test_fa_conv_uses_feedback_kernel_in_transposed_convolution_hand_computed():
    rng = np.random.default_rng(4)
    x, w, b = rng.normal(size=(2, 5, 5, 3)), rng.normal(size=(3, 3, 3, 4)), rng.normal(size=(3, 3, 3, 4))
    delta = rng.normal(size=(2, 5, 5, 4))
    fa = rules.linear(rules.conv, "fixed")
    xs, ws, bs = (jnp.asarray(v, jnp.float32) for v in (x, w, b))
    out = fa(ws, bs, xs)
    cols = _im2col(x)
    np.testing.assert_allclose(out, (cols @ w.reshape(27, 4)).reshape(delta.shape), rtol=RTOL, atol=1e-5)
    gw, gx = jax.grad(lambda w_, x_: (fa(w_, bs, x_) * delta).sum(), (0, 1))(ws, xs)
    np.testing.assert_allclose(gw, (cols.T @ delta.reshape(-1, 4)).reshape(w.shape), rtol=RTOL, atol=1e-5)
    dcols = (delta.reshape(-1, 4) @ b.reshape(27, 4).T).reshape(2, 5, 5, 3, 3, 3)  # (n, y, x, ki, kj, c)
    dxp = np.zeros((2, 7, 7, 3))
    for i in range(3):
        for j in range(3):
            dxp[:, i:i + 5, j:j + 5] += dcols[:, :, :, i, j]
    np.testing.assert_allclose(gx, dxp[:, 1:-1, 1:-1], rtol=RTOL, atol=1e-5)


def _groups_grads(rule_name, schedule, k, groups, x1, x2):
    f = schedules.loss_fn(schedule, ARCH, rules.RULES[rule_name], HP)
    return jax.jit(jax.grad(lambda g: f(g, x1, x2, jax.random.key(0), k)[0]))(groups)


@pytest.mark.parametrize("schedule, k", [("e2e", -1), ("gll", 2)])
def test_fa_with_feedback_equal_to_weights_reproduces_backprop_gradients(schedule, k):
    groups = net.init(jax.random.key(0), ARCH, rules.RULES["fa"])
    groups = [{**g, "fb": {"conv": g["conv"]["w"], "head": g["head"]["w"]}} for g in groups]  # B = W^T
    x1 = jax.random.normal(jax.random.key(1), (8, 12, 12, 1))
    x2 = x1 + 0.3 * jax.random.normal(jax.random.key(2), x1.shape)
    g_fa = _groups_grads("fa", schedule, k, groups, x1, x2)
    g_bp = _groups_grads("bp", schedule, k, [{**g, "fb": {}} for g in groups], x1, x2)
    assert sum(float(jnp.abs(g["conv"]["w"]).sum()) for g in g_bp) > 0
    for a, b in zip(g_fa, g_bp):
        for part in ("conv", "head"):
            jax.tree.map(np.testing.assert_array_equal, a[part], b[part])


# -------------------------------------------------------------------------------------------- DTP
def _dtp_chain():
    arch = ARCH
    groups = net.init(jax.random.key(3), arch, rules.RULES["dtp"])
    fs = [lambda p, x, l=l: net.layer_forward(p, x, pool=arch.pools[l]) for l in range(arch.depth)]
    gs = [None] + [lambda v, h, l=l: net.conv_inverse(v, h, pool=arch.pools[l], side=arch.spatial(l - 1))
                   for l in range(1, arch.depth)]
    ps, vs = [g["conv"] for g in groups], [g["inv"].get("conv", {}) for g in groups]
    x = jax.random.normal(jax.random.key(4), (4, 12, 12, 1))
    return fs, gs, ps, vs, x


def _forward(fs, ps, x):
    hs = []
    for f, p in zip(fs, ps):
        x = f(p, x)
        hs.append(x)
    return hs


def test_dtp_difference_correction_gives_target_equal_activation_when_top_target_equals_top_activation():
    fs, gs, ps, vs, x = _dtp_chain()
    hs, ts = rules.propagate_targets(fs, gs, ps, vs, x, lambda h: h)
    for h, t in zip(hs, ts):
        np.testing.assert_array_equal(t, h)
    plain = gs[-1](vs[-1], hs[-1])  # without the correction, t_{L-1} = g(t_L) is not h_{L-1}
    assert float(jnp.abs(plain - hs[-2]).max()) > 0.1


def test_dtp_backward_propagates_the_explicit_difference_targets_and_local_gradients():
    fs, gs, ps, vs, x = _dtp_chain()
    eta = 0.5
    hs = _forward(fs, ps, x)
    c_top = 0.2 * jax.random.normal(jax.random.key(5), hs[-1].shape)
    _, ts = rules.propagate_targets(fs, gs, ps, vs, x, lambda h: h - eta * c_top)
    blocks = [rules.dtp_block(f, g, eta) for f, g in zip(fs, gs)]

    def chain(ps_, e1):  # e1: a zero probe on h_1 to read the cotangent arriving there
        h = x
        for l, (blk, p, v) in enumerate(zip(blocks, ps_, vs)):
            h = blk(p, v, h) + (e1 if l == 0 else 0.0)
        return (h * c_top).sum()

    gp, ge = jax.jit(jax.grad(chain, (0, 1)))(ps, jnp.zeros_like(hs[0]))
    np.testing.assert_allclose(ge, (hs[0] - ts[0]) / eta, rtol=1e-4, atol=1e-5)
    local = lambda p: 0.5 * ((fs[1](p, hs[0]) - ts[1]) ** 2).sum() / eta  # layer 2's local target loss
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    jax.tree.map(close, gp[1], jax.grad(local)(ps[1]))
