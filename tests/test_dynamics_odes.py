"""The matrix ODE and the reduced ODE against the exact laws of docs/theory.md section 3, scipy, and each
other (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics.matrix_ode import aligned_state, init_state, solve, vector_field
from dynamics.methods import Hyper, directcopy_predictor, directpred_predictor, get_method
from dynamics.moments import anisotropic, expected_moments, isotropic
from dynamics.reduced import Params, integrate, state_names

ANISO = anisotropic([1.0, 0.3, 0.1], [0.5, 0.2, 0.4])
TS = np.linspace(0.0, 30.0, 7)  # numpy float64 (a module-level jnp array would be float32)


def _random_state(name, spectrum, seed=0, **kw):
    method = get_method(name)
    return method, init_state(jax.random.PRNGKey(seed), method, spectrum.dim, **kw)


@pytest.mark.parametrize("name", ["simsiam", "byol"])
def test_balance_law_holds_to_integrator_precision(x64, name):
    # W W^T - Wp^T Wp / alpha_p = exp(-2 eta t) C for any target dynamics (Tian21 Thm 1).
    hp = Hyper(eta=0.04, alpha_p=2.5, beta=0.7)
    method, st0 = _random_state(name, ANISO, w_scale=1.5, p0=0.3)
    ys = solve(method, hp, expected_moments(ANISO), st0, TS, rtol=1e-12, atol=1e-14)
    balance = lambda W, Wp: W @ W.T - Wp.T @ Wp / hp.alpha_p
    c0 = balance(st0["W"], st0["Wp"])
    for i, t in enumerate(TS):
        expected = jnp.exp(-2 * hp.eta * t) * c0
        assert np.abs(balance(ys["W"][i], ys["Wp"][i]) - expected).max() < 1e-9


@pytest.mark.parametrize("name", ["simsiam", "byol"])
def test_exact_integral_of_the_reduced_system(x64, name):
    # s(t) = p^2 / alpha_p + exp(-2 eta t) (s0 - p0^2 / alpha_p), any target ratio tau(t).
    params = Params(eta=0.03, alpha_p=2.0, lambda_j=0.7, sigma2=0.4, beta=0.5)
    y0 = jnp.array([0.2, 0.9] + ([0.3] if name == "byol" else []))
    ys = integrate(name, y0, params, jnp.linspace(0.0, 60.0, 13), rtol=1e-11, atol=1e-13)
    t = jnp.linspace(0.0, 60.0, 13)
    expected = ys[:, 0] ** 2 / 2.0 + jnp.exp(-0.06 * t) * (0.9 - 0.2**2 / 2.0)
    assert np.abs(ys[:, 1] - expected).max() < 1e-10


def test_without_predictor_the_encoder_decays_as_exp_of_minus_noise_plus_wd(x64):
    # Wp = I, stop-gradient: dW/dt = -W (X' + eta I), so W(t) = W0 diag(exp(-(sigma2_j + eta) t)).
    hp = Hyper(eta=0.02)
    method, st0 = _random_state("simsiam-nopred", ANISO)
    ys = solve(method, hp, expected_moments(ANISO), st0, TS)
    for i, t in enumerate(TS):
        expected = st0["W"] * jnp.exp(-(ANISO.sigma2s + hp.eta) * t)
        assert np.abs(ys["W"][i] - expected).max() < 1e-10


def test_without_stop_gradient_the_encoder_collapses(x64):
    # Same start, same eta: with stop-gradient the top mode settles at s = p_+^2 (up to the balance-law
    # remainder exp(-2 eta t) ~ 1e-13); without it W -> 0.
    spectrum, hp, ts = isotropic(3, 0.5), Hyper(eta=0.01), jnp.array([0.0, 1500.0])
    C = expected_moments(spectrum)
    finals = {}
    for name in ("simsiam", "simsiam-nosg"):
        method, st0 = _random_state(name, spectrum, w_scale=1.5)
        finals[name] = solve(method, hp, C, st0, ts)["W"][-1]
    p_plus = (1 + np.sqrt(1 - 4 * hp.eta * 1.5)) / 3.0
    s_top = np.linalg.eigvalsh(finals["simsiam"] @ finals["simsiam"].T)[-1]
    assert s_top == pytest.approx(p_plus**2, rel=1e-6)
    assert np.abs(finals["simsiam-nosg"]).max() < 1e-6


@pytest.mark.parametrize("name", ["simsiam", "byol", "phinet", "xphinet"])
def test_reduced_ode_matches_matrix_ode_from_an_aligned_start(x64, name):
    hp = Hyper(eta=0.02, alpha_p=1.5, alpha_g=0.8, lam=1.3, beta=0.6)
    params = [Params(hp.eta, hp.alpha_p, hp.alpha_g, hp.lam, hp.beta, lj, s2) for lj, s2 in zip(*ANISO)]
    p0, g0, s0, tau0 = np.array([0.4, 0.3, 0.2]), np.array([0.5, 0.2, 0.6]), np.array([0.5, 0.2, 0.3]), 0.8
    Q, _ = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(3), (3, 3)))
    method = get_method(name)
    st0 = aligned_state(method, Q, np.sqrt(s0), p0, g0, tau=tau0, tau_m=tau0)
    ys = solve(method, hp, expected_moments(ANISO), st0, TS)
    init = {"p": p0, "g": g0, "s": s0, "tau": np.full(3, tau0), "tau_m": np.full(3, tau0)}
    for j in range(3):
        y0 = jnp.array([init[n][j] for n in state_names(name)])
        red = integrate(name, y0, params[j], TS, rtol=1e-11, atol=1e-13)
        W = ys["W"]
        per_mode = {"s": jnp.einsum("tij,tij->tj", W, W)[:, j],
                    "p": jnp.einsum("ij,tik,kj->tj", Q, ys["Wp"], Q)[:, j]}
        if "Wg" in ys:
            per_mode["g"] = jnp.einsum("ij,tik,kj->tj", Q, ys["Wg"], Q)[:, j]
        for target, ratio in (("Wa", "tau"), ("Wm", "tau_m")):
            if target in ys:
                per_mode[ratio] = jnp.einsum("tij,tij->tj", W, ys[target])[:, j] / per_mode["s"]
        for k, n in enumerate(state_names(name)):
            assert np.abs(per_mode[n] - red[:, k]).max() < 1e-8, n
    assert np.abs(jnp.einsum("tij,tik->tjk", W, W) * (1 - jnp.eye(3))).max() < 1e-10  # stays aligned


def _lemma1_numpy(X, C11, hp):
    """Tian21 Lemma 1, written independently in numpy: BYOL with EMA target (SimSiam when Wa = W)."""

    def f(t, y):
        W, Wp, Wa = y.reshape(3, 3, 3)
        R = -Wp @ W @ C11 + Wa @ X
        dWp = hp.alpha_p * R @ W.T - hp.eta * Wp
        dW = Wp.T @ R - hp.eta * W
        return np.concatenate([dW.ravel(), dWp.ravel(), (hp.beta * (W - Wa)).ravel()])

    return f


def test_matrix_ode_matches_scipy_solve_ivp_on_lemma1(x64):
    hp = Hyper(eta=0.03, alpha_p=1.7, beta=0.5)
    method, st0 = _random_state("byol", ANISO, w_scale=1.2, p0=0.4)
    st0 = {**st0, "Wp": st0["Wp"] + 0.1 * jax.random.normal(jax.random.PRNGKey(9), (3, 3))}
    ys = solve(method, hp, expected_moments(ANISO), st0, TS, rtol=1e-12, atol=1e-14)
    X, C11 = np.diag(ANISO.lambdas), np.diag(ANISO.lambdas + ANISO.sigma2s)
    y0 = np.concatenate([np.asarray(st0[k]).ravel() for k in ("W", "Wp", "Wa")])
    ref = solve_ivp(_lemma1_numpy(X, C11, hp), (0.0, 30.0), y0, method="DOP853", t_eval=np.asarray(TS),
                    rtol=1e-12, atol=1e-14)
    ours = np.concatenate([np.asarray(ys[k]).reshape(len(TS), -1) for k in ("W", "Wp", "Wa")], axis=1)
    assert np.abs(ours - ref.y.T).max() < 1e-9


def _commutator_and_K(W, Wp, c, hp):
    """[F, Wp] and K = c [(alpha_p/2) F + Wp^2 - Wp / c] + (3/2) eta I (tau = 1), batched over time."""
    F = W @ np.swapaxes(W, -1, -2)
    K = c * (hp.alpha_p / 2 * F + Wp @ Wp - Wp / c) + 1.5 * hp.eta * np.eye(F.shape[-1])
    return F @ Wp - Wp @ F, K


def test_commutator_follows_tian21_thm3_and_its_bound(x64):
    # Isotropic X = I, symmetric predictor: d[F,Wp]/dt = -([F,Wp] K + K [F,Wp]) exactly (checked at saved
    # states against the autodiff field), hence ||[F,Wp](t)|| <= ||[F,Wp](0)|| exp(-2 int_0^t lambda_min(K)),
    # and with l0 = min lambda_min(K) > 0 (eta = 0.12 > 1/(6c) makes K positive) at least like exp(-2 l0 t).
    spectrum, hp, c = isotropic(4, 0.5), Hyper(eta=0.12, alpha_p=1.3, symmetric_wp=True), 1.5
    method, st0 = _random_state("simsiam", spectrum, w_scale=1.2)
    A = jax.random.normal(jax.random.PRNGKey(5), (4, 4))
    st0 = {**st0, "Wp": 0.4 * jnp.eye(4) + 0.2 * (A + A.T)}
    C = expected_moments(spectrum)
    ts = np.linspace(0.0, 20.0, 2001)
    ys = {k: np.asarray(v) for k, v in solve(method, hp, C, st0, ts).items()}
    D, K = _commutator_and_K(ys["W"], ys["Wp"], c, hp)
    field = vector_field(method, hp, C)
    for i in range(0, len(ts), 400):
        W, Wp = ys["W"][i], ys["Wp"][i]
        d = field(0.0, {"W": W, "Wp": Wp})
        dF, F = d["W"] @ W.T + W @ d["W"].T, W @ W.T
        dD = dF @ Wp - Wp @ dF + F @ d["Wp"] - d["Wp"] @ F
        assert np.abs(dD + D[i] @ K[i] + K[i] @ D[i]).max() < 1e-12
    norms, lam_min = np.linalg.norm(D, axis=(1, 2)), np.linalg.eigvalsh(K)[:, 0]
    integral = np.concatenate([[0.0], np.cumsum(np.diff(ts) * (lam_min[1:] + lam_min[:-1]) / 2)])
    assert np.all(norms <= norms[0] * np.exp(-2 * integral) * (1 + 1e-6))  # 1e-6: trapezoid error
    l0 = lam_min.min()
    assert l0 > 0 and np.all(norms <= norms[0] * np.exp(-2 * l0 * ts) * (1 + 1e-9))
    assert norms[-1] < 1e-3 * norms[0]


@pytest.mark.parametrize("eps", [0.01, 0.1])
def test_directpred_and_directcopy_setters(x64, eps):
    A = jax.random.normal(jax.random.PRNGKey(2), (5, 5))
    F = A @ A.T
    s, U = np.linalg.eigh(np.asarray(F))
    cases = {"normalised": ((directpred_predictor, np.sqrt(s / s.max()) + eps),
                            (directcopy_predictor, s / s.max() + eps)),
             "equivariant": ((directpred_predictor, np.sqrt(s) + eps * np.sqrt(s.max())),
                             (directcopy_predictor, s + eps * s.max()))}
    for form, pairs in cases.items():
        for setter, expected_p in pairs:
            Wp = setter(F, eps, form)
            assert np.abs(F @ Wp - Wp @ F).max() < 1e-12  # commutes with F
            k = 0.5 if setter is directpred_predictor else 1.0  # top: (1 + eps) (1 or s_max^k)
            top = (1 + eps) * (1.0 if form == "normalised" else s.max() ** k)
            assert np.linalg.eigvalsh(Wp)[-1] == pytest.approx(top, abs=1e-12)
            assert np.abs(np.asarray(Wp) - (U * expected_p) @ U.T).max() < 1e-12
    # equivariant: W -> a W (F -> a^2 F) scales DirectPred's predictor by a, DirectCopy's by a^2
    np.testing.assert_allclose(directpred_predictor(9 * F, eps), 3 * directpred_predictor(F, eps), atol=1e-12)
    np.testing.assert_allclose(directcopy_predictor(9 * F, eps), 9 * directcopy_predictor(F, eps), atol=1e-11)
    with pytest.raises(ValueError, match="'cosine'.*allowed: equivariant, normalised"):
        directpred_predictor(F, eps, "cosine")


@pytest.mark.parametrize("use_x64", [True, False])
def test_start_state_and_moments_built_in_numpy_equal_their_jax_formulas(use_x64):
    # init_state / expected_moments do their arithmetic in numpy (no per-op compiles); the values must be
    # the JAX formulas' (to one rounding), in the dtype JAX would give, and a traced spectrum must still work.
    with jax.enable_x64(use_x64):
        key, method = jax.random.PRNGKey(7), get_method("xphinet")
        st = init_state(key, method, 5, 3, w_scale=1.3, p0=0.4, g0=0.6, tau=0.9)
        W = 1.3 * jax.random.normal(key, (3, 5)) / jnp.sqrt(5)
        eye = jnp.eye(3, dtype=W.dtype)
        want = {"W": W, "Wp": 0.4 * eye, "Wg": 0.6 * eye, "Wm": 0.9 * W}
        assert set(st) == set(method.matrices) == set(want)
        for k, v in want.items():
            assert isinstance(st[k], jax.Array) and st[k].dtype == v.dtype and st[k].shape == v.shape
            np.testing.assert_allclose(st[k], v, rtol=4 * float(jnp.finfo(v.dtype).eps), atol=0)
        lam, s2 = ANISO
        C = expected_moments(ANISO)
        assert isinstance(C, jax.Array) and C.dtype == jnp.asarray(1.0).dtype
        for a in range(3):
            for b in range(3):
                np.testing.assert_array_equal(C[a, b], np.diag(lam + s2 * (a == b != 0)).astype(C.dtype))
        traced = jax.jit(lambda l, s: expected_moments(type(ANISO)(l, s)))(jnp.asarray(lam), jnp.asarray(s2))
        np.testing.assert_array_equal(traced, C)
