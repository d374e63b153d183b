"""Fixed points, Jacobian eigenvalues and collapse thresholds against docs/theory.md section 3 (Tian21)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from dynamics.analysis import collapse_wd, fixed_points, simsiam_eigenvalues, simsiam_fixed_points
from dynamics.reduced import Params, collapsed, derive, integrate, reduced_field, state_names

ISO = Params(eta=0.05, sigma2=0.5, tau=1.0, alpha_p=1.0)


def test_simsiam_fixed_points_match_tian21_example(x64):
    # docs/theory.md section 3: sigma2 = 0.5, tau = 1, eta = 0.05 -> p_- = 0.054447, p_+ = 0.612220
    # (printed to 6 digits).
    p_minus, p_plus = simsiam_fixed_points(ISO)
    assert p_minus == pytest.approx(0.054447, abs=5e-7)
    assert p_plus == pytest.approx(0.612220, abs=5e-7)
    fps = fixed_points("simsiam", ISO)
    assert [fp.state["p"] for fp in fps] == pytest.approx([0.0, p_minus, p_plus], abs=1e-14)
    assert [fp.state["s"] for fp in fps] == pytest.approx([0.0, p_minus**2, p_plus**2], abs=1e-14)
    assert [fp.stable for fp in fps] == [True, False, True]  # origin stable, p_- saddle, p_+ stable
    assert collapse_wd("simsiam", ISO) == pytest.approx(1 / 6, rel=1e-14)


@pytest.mark.parametrize("alpha_p", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("lambda_j", [1.0, 0.3])
def test_jacobian_eigenvalues_match_closed_form_independent_of_alpha_p(x64, alpha_p, lambda_j):
    # Origin: {-2 eta, -eta}; p_pm: {-2 eta, -/+ p sqrt(tau^2 l^2 - 4 eta c)}; autodiff of the sympy field
    # against the closed form, to float64 round-off.
    params = ISO._replace(alpha_p=alpha_p, lambda_j=lambda_j, eta=0.01)
    origin, minus, plus = fixed_points("simsiam", params)
    assert origin.eigenvalues.real == pytest.approx([-0.02, -0.01], abs=1e-14)
    for fp in (minus, plus):
        expected = simsiam_eigenvalues(params, fp.state["p"])
        assert np.sort(fp.eigenvalues.real) == pytest.approx(expected, abs=1e-12)
        assert np.abs(fp.eigenvalues.imag).max() == 0.0


def test_simsiam_has_only_the_origin_above_threshold(x64):
    params = ISO._replace(eta=1 / 6 * 1.001)
    assert simsiam_fixed_points(params) is None
    assert [fp.state["p"] for fp in fixed_points("simsiam", params)] == [0.0]


def test_sympy_reduction_reproduces_tian21_equations():
    simsiam, byol = derive("simsiam"), derive("byol")
    free = set().union(*(e.free_symbols for e in (*simsiam.values(), *byol.values())))
    sym = {x.name: x for x in free}
    p, s, ap, eta, lj, s2, beta = (sym[n] for n in ("p", "s", "alpha_p", "eta", "lambda_j", "sigma2", "beta"))
    tau, c = sym["tau_fixed"], lj + s2
    assert sp.expand(simsiam["p"] - (ap * s * (tau * lj - c * p) - eta * p)) == 0
    assert sp.expand(simsiam["s"] - (2 * p * s * (tau * lj - c * p) - 2 * eta * s)) == 0
    t = sym["tau"]  # BYOL: s dtau/dt = beta (1 - tau) s - tau (ds/dt) / 2
    assert sp.expand(s * byol["tau"] - (beta * (1 - t) * s - t * byol["s"] / 2)) == 0
    assert sp.expand(byol["s"] - simsiam["s"].subs(tau, t)) == 0


def test_byol_fixed_points_have_tau_one_and_match_simsiam(x64):
    simsiam = fixed_points("simsiam", ISO)
    byol = fixed_points("byol", ISO)
    assert byol[0].state["tau"] == pytest.approx(ISO.beta / (ISO.beta - ISO.eta), rel=1e-14)
    for a, b in zip(simsiam[1:], byol[1:]):
        expected = (a.state["p"], a.state["s"], 1.0)
        assert (b.state["p"], b.state["s"], b.state["tau"]) == pytest.approx(expected, rel=1e-14)
        assert a.stable == b.stable
    for fp in byol:  # each is a zero of the sympy-derived 3-d field
        y = jnp.array([fp.state[n] for n in state_names("byol")])
        assert np.abs(reduced_field("byol")(y, ISO)).max() < 1e-14


@pytest.mark.parametrize("name", ["phinet", "xphinet"])
def test_phinet_fixed_points_are_zeros_of_the_sympy_field(x64, name):
    params = ISO._replace(lam=1.5, alpha_g=0.7, alpha_p=1.3)
    fps = fixed_points(name, params)
    assert [fp.stable for fp in fps] == [True, False, True]
    for fp in fps:
        y = jnp.array([fp.state[n] for n in state_names(name)])
        assert np.abs(reduced_field(name)(y, params)).max() < 1e-13


def test_phinet_threshold_exceeds_simsiam_and_grows_with_lam(x64):
    simsiam = collapse_wd("simsiam", ISO)
    lams = [0.25, 0.5, 1.0, 2.0, 4.0]
    phinet = [collapse_wd("phinet", ISO._replace(lam=lam)) for lam in lams]
    assert np.all(np.diff(phinet) > 0)
    assert all(simsiam < t <= (1 + lam) * simsiam for t, lam in zip(phinet, lams))
    assert phinet[2] == pytest.approx(0.25585, abs=5e-6)  # lam = 1: the value quoted in issue 26 (5 digits)
    # lam -> 0 recovers SimSiam's 1/6 (bisection tolerance 1e-10 relative).
    assert collapse_wd("phinet", ISO._replace(lam=1e-9)) == pytest.approx(1 / 6, rel=1e-8)
    # X-PhiNet has the same fixed points (tau_m = 1) and, here, the same threshold.
    assert collapse_wd("xphinet", ISO) == pytest.approx(phinet[2], rel=1e-9)


@pytest.mark.parametrize("name", ["phinet", "byol"])
@pytest.mark.parametrize("factor, survives", [(0.97, True), (1.03, False)])
def test_threshold_separates_survival_from_collapse_in_the_ode(x64, name, factor, survives):
    # Independent of the fixed-point algebra: integrate the reduced ODE (byol: the full (p, s, tau) system)
    # from the stable fixed point found at 0.99 x threshold, with eta 3% below / above the threshold.
    # Collapse means s < 1e-6 at t = 4000 (the ghost of the saddle-node is passed well before).
    threshold = collapse_wd(name, ISO)
    start = fixed_points(name, ISO._replace(eta=0.99 * threshold))[-1].state
    y0 = jnp.array([start[n] for n in state_names(name)])
    ys = integrate(name, y0, ISO._replace(eta=factor * threshold), jnp.array([0.0, 4000.0]))
    s = ys[-1, state_names(name).index("s")]
    assert (s > 1e-2) == survives and (s < 1e-6) == (not survives)


def test_integrate_and_collapsed_vmap_over_parameters_and_agree_with_the_threshold(x64):
    # The phase-diagram path: vmap the reduced integrator over (eta, lambda_j); classify the final states.
    # From p0 = 0.6, s0 = 0.36 (above every saddle here) a mode survives iff eta < l^2 / (4 (l + 0.5)),
    # grid points are kept >= 10% away from the boundary so t = 3000 settles them.
    etas, lams = jnp.array([0.02, 0.05, 0.1, 0.2]), jnp.array([1.0, 0.6, 0.35])
    E, L = (a.ravel() for a in jnp.meshgrid(etas, lams))
    one = jnp.ones_like(E)
    params = Params(eta=E, sigma2=0.5 * one, lambda_j=L, alpha_p=one, alpha_g=one, lam=one, beta=one, tau=one)
    ys = jax.vmap(lambda p: integrate("simsiam", jnp.array([0.6, 0.36]), p, jnp.array([0.0, 3000.0])))(params)
    thresholds = L**2 / (4 * (L + 0.5))
    assert np.all(np.abs(E / thresholds - 1) > 0.1)
    assert np.array_equal(np.asarray(collapsed("simsiam", ys[:, -1])), np.asarray(E > thresholds))
