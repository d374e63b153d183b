"""The cosine loss at the sampled-data level, the cosine eigen-dynamics of dynamics.halvagal, SGD momentum.

References are independent of the code under test: a numpy per-sample cosine loss with central finite
differences, a numpy Monte Carlo of the per-sample gradient, the ratio-of-expectations fixed point in
closed form, and the matrix ODE for momentum SGD in model time.
"""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.halvagal import eigen_field, expected_cosine
from dynamics.matrix_ode import init_state, solve
from dynamics.methods import Hyper, Method, Term, get_method
from dynamics.moments import anisotropic, expected_moments, sample_moments
from dynamics.sgd import cosine_loss, run_sgd, sample_views, sgd_step

SPEC = anisotropic([1.0, 0.3, 0.1], [0.5, 0.2, 0.4])


def _np_cosine_loss(method, online, target, views, hp):
    """numpy: sum_terms weight * -mean_k cos(A x_a^k, T x_b^k); `online` matrices in the chains, `target`
    the (held) matrices behind the stop-gradient (the same dict for a term without stop-gradient)."""
    total = 0.0
    for term in method.terms:
        a, b = term.views
        A = np.eye(views.shape[-1])
        for name in reversed(term.online):
            A = online[name] @ A
        T = (target if term.stop_gradient else online)[term.target]
        u, v = views[a] @ A.T, views[b] @ T.T
        cos = np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        total -= (1.0 if term.weight is None else getattr(hp, term.weight)) * cos.mean()
    return total


@pytest.mark.parametrize("name", ["simsiam", "byol", "phinet", "simsiam-nosg"])
def test_cosine_loss_gradient_matches_finite_differences_of_a_numpy_reference(x64, name):
    method, hp = get_method(name), Hyper(lam=0.7)
    mats = init_state(jax.random.PRNGKey(3), method, 3, w_scale=1.1, p0=0.6, g0=0.4)
    mats = {k: v + 0.1 * jax.random.normal(jax.random.PRNGKey(9), v.shape) for k, v in mats.items()}
    views = sample_views(jax.random.PRNGKey(5), SPEC, 64)
    np_mats = {k: np.asarray(v) for k, v in mats.items()}
    grads = jax.grad(lambda m: cosine_loss(method, m, views, hp))(mats)
    h = 1e-6
    for name_m in method.trained:
        fd = np.zeros_like(np_mats[name_m])
        for idx in np.ndindex(fd.shape):
            plus, minus = dict(np_mats), dict(np_mats)
            plus[name_m], minus[name_m] = np_mats[name_m].copy(), np_mats[name_m].copy()
            plus[name_m][idx] += h
            minus[name_m][idx] -= h
            fd[idx] = (_np_cosine_loss(method, plus, np_mats, np.asarray(views), hp)
                       - _np_cosine_loss(method, minus, np_mats, np.asarray(views), hp)) / (2 * h)
        np.testing.assert_allclose(grads[name_m], fd, atol=1e-8, rtol=1e-6)
    assert float(cosine_loss(method, mats, views, hp)) == pytest.approx(
        _np_cosine_loss(method, np_mats, np_mats, np.asarray(views), hp), rel=1e-12)


def test_cosine_gradient_is_orthogonal_to_each_matrix_it_is_scale_free_in(x64):
    # Each SimSiam / PhiNet term is invariant to the scale of every online matrix: <M, dL/dM> = 0.
    method, hp = get_method("phinet"), Hyper(lam=1.0)
    mats = init_state(jax.random.PRNGKey(1), method, 3, p0=0.7, g0=0.3)
    mats = {k: v + 0.2 * jax.random.normal(jax.random.PRNGKey(2), v.shape) for k, v in mats.items()}
    views = sample_views(jax.random.PRNGKey(0), SPEC, 32)
    grads = jax.grad(lambda m: cosine_loss(method, m, views, hp))(mats)
    for k in method.trained:
        assert abs(float(jnp.sum(mats[k] * grads[k]))) < 1e-12 * float(jnp.linalg.norm(grads[k]))


def test_views_give_the_batch_moments_of_the_euclidean_path(x64):
    key = jax.random.PRNGKey(11)
    views = sample_views(key, SPEC, 40)
    np.testing.assert_allclose(np.einsum("aki,bkj->abij", views, views) / 40, sample_moments(key, SPEC, 40),
                               rtol=0, atol=1e-14)


def test_cosine_sgd_is_scale_equivariant_in_the_learning_rate(x64):
    # SimSiam, cosine, wd = 0: dL/dM is homogeneous of degree -1 in (W, Wp), so starting from a * state
    # with lr is a * (the run from state with lr / a^2), step by step on the same batches.
    method, hp, a = get_method("simsiam"), Hyper(eta=0.0), 3.0
    st0 = init_state(jax.random.PRNGKey(0), method, 3, p0=0.5)
    kw = dict(n_steps=200, batch=16, record_every=200, loss="cosine")
    scaled = {k: a * v for k, v in st0.items()}
    _, big = run_sgd(method, hp, SPEC, scaled, jax.random.PRNGKey(4), lr=0.05, **kw)
    _, ref = run_sgd(method, hp, SPEC, st0, jax.random.PRNGKey(4), lr=0.05 / a**2, **kw)
    for k in ("W", "Wp"):
        np.testing.assert_allclose(big[k][-1], a * ref[k][-1], rtol=1e-10, atol=1e-12)
    assert float(jnp.abs(ref["W"][-1] - st0["W"]).max()) > 1e-2  # it moved


@pytest.mark.parametrize("name", ["simsiam", "phinet"])
def test_under_cosine_weight_decay_only_shrinks_norms_and_raises_the_step(x64, name):
    # W_k = q^k V_k, q = 1 - lr wd, for every trained matrix, where V follows wd = 0 with step lr q^-(2k+1).
    method, lr, wd, n = get_method(name), 0.05, 0.4, 30
    st = init_state(jax.random.PRNGKey(0), method, 3, p0=0.5, g0=0.5)
    ref, key, q = dict(st), jax.random.PRNGKey(6), 1 - lr * wd
    decayed = sgd_step(method, Hyper(eta=wd), SPEC, lr, 16, loss="cosine")
    for k in range(n):
        st = decayed(st, key, k)
        ref = sgd_step(method, Hyper(eta=0.0), SPEC, lr * q ** -(2 * k + 1), 16, loss="cosine")(ref, key, k)
    for m in method.trained:
        np.testing.assert_allclose(st[m], q**n * ref[m], rtol=1e-9, atol=1e-13)
    assert q**n < 0.6  # the norms did shrink


def test_cosine_sgd_needs_sampled_views_and_a_known_loss(x64):
    method = get_method("simsiam")
    st0 = init_state(jax.random.PRNGKey(0), method, 3)
    with pytest.raises(ValueError, match="batch >= 1"):
        run_sgd(method, Hyper(), SPEC, st0, jax.random.PRNGKey(0), lr=0.01, n_steps=1, loss="cosine")
    with pytest.raises(ValueError, match="allowed: euclidean, cosine"):
        run_sgd(method, Hyper(), SPEC, st0, jax.random.PRNGKey(0), lr=0.01, n_steps=1, batch=4, loss="l1")


@pytest.mark.parametrize("name", ["directpred", "directcopy"])
def test_under_cosine_the_two_setter_forms_are_one_predictor_up_to_scale(x64, name):
    # sqrt(f) + eps sqrt(f_max) = sqrt(f_max) (sqrt(f / f_max) + eps) and F + eps f_max I = f_max (F / f_max
    # + eps I): cos(Wp W x1, W x2) ignores the factor, so the runs coincide; under the Euclidean loss they
    # do not.
    method = get_method(name)
    st0 = init_state(jax.random.PRNGKey(0), method, 3, w_scale=1.5)
    run = lambda form, loss: run_sgd(method, Hyper(eta=0.05, eps=0.1, setter_form=form), SPEC, st0,
                                     jax.random.PRNGKey(2), lr=0.05, n_steps=200, batch=32, record_every=200,
                                     loss=loss)[1]["W"][-1]
    np.testing.assert_allclose(run("equivariant", "cosine"), run("normalised", "cosine"), rtol=1e-8,
                               atol=1e-12)
    assert float(jnp.abs(run("equivariant", "euclidean") - run("normalised", "euclidean")).max()) > 1e-2


@pytest.mark.parametrize("name", ["simsiam", "byol"])
def test_momentum_sgd_follows_the_ode_in_model_time_lr_steps_over_one_minus_mu(x64, name):
    # Exact moments, model time t = lr * steps / (1 - mu): momentum 0 and 0.9 both converge to the matrix
    # ODE at T = 5 with error proportional to the step dt = lr / (1 - mu) (measured: 0.9 has ~14x the
    # error of 0.0 at equal dt, from the buffer's lag; ratio 2.0 per halving for both).
    method, hp, T = get_method(name), Hyper(eta=0.02, alpha_p=1.5, beta=0.5), 5.0
    st0 = init_state(jax.random.PRNGKey(0), method, SPEC.dim, w_scale=1.2, p0=0.4)
    ode = {k: v[-1] for k, v in solve(method, hp, expected_moments(SPEC), st0, np.array([0.0, T])).items()}
    finals = {}
    for mu in (0.0, 0.9):
        errs = []
        for dt in (0.02, 0.01, 0.005):
            n = int(round(T / dt))
            ts, tr = run_sgd(method, hp, SPEC, st0, jax.random.PRNGKey(1), lr=dt * (1 - mu), n_steps=n,
                             record_every=n, momentum=mu)
            assert float(ts[-1]) == pytest.approx(T, rel=1e-12)
            errs.append(max(float(jnp.abs(tr[k][-1] - ode[k]).max()) for k in ode))
        ratios = np.array(errs[:-1]) / np.array(errs[1:])
        assert np.all(np.abs(ratios - 2.0) < 0.2), (mu, errs)
        assert errs[-1] < 2e-3, (mu, errs)
        finals[mu] = tr["W"][-1]
    np.testing.assert_allclose(finals[0.9], finals[0.0], atol=3e-3)  # the same trajectory in model time
    # and not in lr * steps: the same steps at mu = 0 only reach t = 0.5
    _, short = run_sgd(method, hp, SPEC, st0, jax.random.PRNGKey(1), lr=0.0005, n_steps=1000,
                       record_every=1000)
    assert float(jnp.abs(short["W"][-1] - finals[0.9]).max()) > 0.05


# --- dynamics.halvagal: exact per-sample cosine against numpy Monte Carlo --------------------------------
LS, CS = np.array([1.0, 0.5, 0.25, 0.1]), np.array([1.5, 1.0, 0.75, 0.6])


def _np_views(n, seed):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((n, 4)) * np.sqrt(LS)
    noise = np.sqrt(CS - LS)
    return x0 + rng.standard_normal(x0.shape) * noise, x0 + rng.standard_normal(x0.shape) * noise


def test_expected_cosine_matches_monte_carlo(x64):
    a, b = np.array([1.0, 0.3, 0.1, 0.01]), np.array([0.5, 0.4, 0.3, 0.2])
    x1, x2 = _np_views(400_000, 0)
    u, v = a * x1, b * x2
    cos = np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    se = cos.std() / np.sqrt(cos.size)
    assert abs(float(expected_cosine(jnp.array(a), jnp.array(b), LS, CS)) - cos.mean()) < 5 * se
    # one mode: E[cos] = E[sign(x1 x2)] = (2 / pi) arcsin(l / c) (Sheppard's formula)
    one = expected_cosine(jnp.array([2.0]), jnp.array([0.3]), LS[:1], CS[:1])
    assert float(one) == pytest.approx(2 / np.pi * np.arcsin(LS[0] / CS[0]), abs=1e-8)


@pytest.mark.parametrize("lam", [[1e-3, 1e-3, 1e-3, 1e-3], [1e-3, 5e-4, 2e-4, 1e-4]])
def test_halvagal_cosine_field_is_the_per_sample_gradient_and_the_ratio_form_is_not(x64, lam):
    # d lam_m/dt = 2 w_m p_m E[d cos / d a_m] (a = p w online, w the held target, p = lam^alpha held),
    # per-sample gradient by hand in numpy, mean over 400k samples, within 5 standard errors per mode.
    lam, alpha = np.array(lam), 0.5
    w, p = np.sqrt(lam), lam**alpha
    x1, x2 = _np_views(400_000, 1)
    u, v = p * w * x1, w * x2
    nu, nv = np.linalg.norm(u, axis=1, keepdims=True), np.linalg.norm(v, axis=1, keepdims=True)
    dcos_da = x1 * (v / (nu * nv) - np.sum(u * v, 1, keepdims=True) * u / (nu**3 * nv))
    per_sample = 2 * w * p * dcos_da
    mc, se = per_sample.mean(0), per_sample.std(0) / np.sqrt(len(per_sample))
    exact = np.asarray(eigen_field("cosine-sample", alpha, LS, CS)(jnp.array(lam)))
    assert np.all(np.abs(exact - mc) < 5 * se + 1e-12), (exact, mc, se)
    ratio = np.asarray(eigen_field("cosine", alpha, LS, CS)(jnp.array(lam)))
    assert np.max(np.abs(ratio - mc)) > 0.2 * np.max(np.abs(mc))  # 4 modes: the ratio form is off (~40-90 %)
    # and dynamics.sgd's per-sample cosine loss on the same samples gives the same gradient
    simsiam_fixed_p = Method("fixed-p", (Term(("Wp", "W"), "W", (1, 2)),), ("W",))
    views = jnp.stack([jnp.zeros_like(jnp.asarray(x1)), jnp.asarray(x1), jnp.asarray(x2)])
    gW = jax.grad(lambda m: cosine_loss(simsiam_fixed_p, m, views, Hyper()))(
        {"W": jnp.diag(jnp.asarray(w)), "Wp": jnp.diag(jnp.asarray(p))})["W"]
    np.testing.assert_allclose(-2 * w * np.diag(np.asarray(gW)), mc, rtol=1e-9, atol=1e-15)


def test_halvagal_cosine_ratio_fixed_point_equalises_p_c_over_l_not_p(x64):
    alpha = 0.5
    lam = (0.4 * LS / CS) ** (1 / alpha)  # p_m = lam_m^alpha = 0.4 l_m / c_m: p c / l the same for all m
    rate = np.asarray(eigen_field("cosine", alpha, LS, CS)(jnp.array(lam)))
    assert np.max(np.abs(rate)) < 1e-12
    equal_p = np.full(4, np.mean(lam))  # equal p_m instead: not a fixed point
    assert np.max(np.abs(np.asarray(eigen_field("cosine", alpha, LS, CS)(jnp.array(equal_p))))) > 1e-2


# --- CLI -------------------------------------------------------------------------------------------------
def _simulate(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dynamics.simulate", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


# bad --loss / --momentum input: tests/test_dynamics_cli.py (the one bad-input test of the CLIs)


def test_simulate_sgd_cosine_with_momentum_runs_in_model_time(tmp_path):
    proc = _simulate("--method", "simsiam", "--level", "sgd", "--loss", "cosine", "--momentum", "0.5",
                     "--dim", "3", "--sigma2", "0.5", "--wd", "0.05", "--t-max", "4", "--lr", "0.02",
                     "--batch", "16", "--n-save", "3", "--json", "--no-plot", "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["config"]["sim"]["loss"] == "cosine" and out["config"]["sim"]["momentum"] == 0.5
    assert all("fixed_point" not in m for m in out["modes"])  # the Euclidean analysis does not apply
    ts = np.load(tmp_path / "r" / "simsiam.npz")["ts"]
    np.testing.assert_allclose(ts, [0.0, 2.0, 4.0])  # 100 steps of lr 0.02 / (1 - 0.5) per record
