"""DirectPred / DirectCopy setters in the linear model: the equivariant default, the normalised form, their
decoupled fixed points against the coupled per-mode system, SimSiam's reduced ODE and the matrix ODE."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynamics.matrix_ode import init_state, mode_summary, solve
from dynamics.methods import Hyper, get_method
from dynamics.moments import anisotropic, expected_moments
from dynamics.phase import prediction, sweep
from dynamics.phase_grid import PhaseConfig
from dynamics.reduced import Params, integrate
from dynamics.setters import SetterParams, setter_field, setter_fixed_point

SPEC = anisotropic([1.0, 0.5, 0.2, 0.05], 0.5)  # SimSiam thresholds 1/6, 1/16, 1/70, 1/880


def _tian21_p_plus(lam, c, eta):
    """SimSiam's stable root of p (l - c p) = eta, written out (Tian21), NaN past the threshold."""
    disc = lam**2 - 4 * eta * c
    return np.where(disc >= 0, (lam + np.sqrt(np.abs(disc))) / (2 * c), np.nan)


@pytest.mark.parametrize("name, k", [("directpred", 0.5), ("directcopy", 1.0)])
@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_equivariant_fixed_point_is_simsiams_p_plus_and_a_zero_of_the_coupled_field(x64, name, k, eps):
    # eta = 0.01: modes 0-2 are below their threshold, mode 3 above. Surviving modes sit at SimSiam's p_+;
    # the offset is e = eps P / (1 + eps) with P the top mode's p_+, and phi(f_j) = p_+,j - e.
    lam, s2 = SPEC
    c, eta = lam + s2, 0.01
    params = SetterParams(eta, eps, lam, s2)
    fp = setter_fixed_point(name, params)
    p_plus = _tian21_p_plus(lam, c, eta)
    e = eps * p_plus[0] / (1 + eps)
    assert list(fp["surviving"]) == [True, True, True, False] and fp["top"] == 0
    np.testing.assert_allclose(fp["p"][:3], p_plus[:3], rtol=1e-14)
    np.testing.assert_allclose(fp["s"][:3], (p_plus[:3] - e) ** (1 / k) / c[:3], rtol=1e-13)
    np.testing.assert_allclose(fp["threshold"], lam**2 / (4 * c), rtol=1e-14)
    # a zero of the coupled field for the surviving modes (the collapsed one parked at s = e^-80)
    u = np.log(np.where(fp["surviving"], fp["s"], np.exp(-80.0)))
    du = np.asarray(setter_field(name)(jnp.asarray(u), params))
    assert np.abs(du[:3]).max() < 1e-12
    # and the collapsed mode shrinks there: d log s / dt = 2 [e (l - c e) - eta] < 0
    assert du[3] == pytest.approx(2 * (e * (lam[3] - c[3] * e) - eta), abs=1e-12) and du[3] < 0


@pytest.mark.parametrize("name, speed", [("directpred", 1.0), ("directcopy", 2.0)])
def test_at_eps_zero_one_mode_is_simsiams_cubic_on_the_parabola(x64, name, speed):
    # eps = 0 decouples the modes; in p = phi(c s) the flow is dp/dt = 2k p (p (l - c p) - eta), which is
    # SimSiam's dp/dt on its invariant parabola s = p^2 / alpha_p (sympy-derived reduced system), with
    # time run 2k = 1 (DirectPred) or 2 (DirectCopy) times as fast.
    lam, s2, eta, p0 = 0.7, 0.4, 0.02, 0.3
    c, kk = lam + s2, (0.5 if name == "directpred" else 1.0)
    ts = np.linspace(0.0, 80.0, 9)
    sim = integrate("simsiam", jnp.array([p0, p0**2]), Params(eta=eta, lambda_j=lam, sigma2=s2),
                    jnp.asarray(speed * ts), rtol=1e-11, atol=1e-13)[:, 0]
    field = setter_field(name)
    params = SetterParams(eta, 0.0, jnp.array([lam]), jnp.array([s2]))
    u0 = np.log(p0 ** (1 / kk) / c)  # p0 = (c s0)^k
    ref = solve_ivp(lambda t, u: np.asarray(field(jnp.asarray(u), params)), (0.0, 80.0), [u0],
                    t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-12)
    p_setter = (c * np.exp(ref.y[0])) ** kk
    np.testing.assert_allclose(p_setter, np.asarray(sim), rtol=1e-8)


def test_normalised_shares_settle_where_the_decoupled_analysis_says(x64):
    # Normalised DirectPred: every s_j -> 0 at the common rate 2 (K + eta), shares f_j / f_max settle at
    # phi^-1(p_j - eps), p_j = (l_j + sqrt(l_j^2 + 4 c_j K)) / (2 c_j); the top mode minimises
    # c (1 + eps) - l (here sigma2 differs per mode, so it is not the strongest one).
    lam, s2, eps, eta = np.array([1.0, 0.5, 0.2]), np.array([0.6, 0.3, 0.5]), 0.02, 0.01
    params = SetterParams(eta, eps, lam, s2)
    fp = setter_fixed_point("directpred", params, "normalised")
    c = lam + s2
    top = int(np.argmin(c * (1 + eps) - lam))
    K = (1 + eps) * (c[top] * (1 + eps) - lam[top])
    assert fp["top"] == top == 1 and fp["decay"] == pytest.approx(-2 * (K + eta), rel=1e-14)
    field = setter_field("directpred", "normalised")
    ref = solve_ivp(lambda t, u: np.asarray(field(jnp.asarray(u), params)), (0.0, 400.0),
                    np.log([0.3, 0.2, 0.4]), method="DOP853", rtol=1e-12, atol=1e-12)
    u = ref.y[:, -1]
    log_f = u + np.log(c)
    np.testing.assert_allclose(np.exp(log_f - log_f.max()), fp["share"], rtol=1e-7)
    rate = np.asarray(field(jnp.asarray(u), params))
    np.testing.assert_allclose(rate, fp["decay"], rtol=1e-7)


@pytest.mark.parametrize("name", ["directpred", "directcopy"])
def test_matrix_ode_from_a_random_start_settles_on_the_decoupled_fixed_point(x64, name):
    # Not eigen-aligned at t = 0: the set predictor aligns W with the data modes; three modes end on
    # their predicted (p, s), the fourth (past its threshold) collapses.
    method, hp = get_method(name), Hyper(eta=0.01, eps=0.05)
    st0 = init_state(jax.random.PRNGKey(4), method, SPEC.dim)
    C = expected_moments(SPEC)
    final = jax.tree_util.tree_map(lambda a: a[-1], solve(method, hp, C, st0, np.array([0.0, 4000.0])))
    modes = mode_summary(method, final, C, hp)
    fp = setter_fixed_point(name, SetterParams(hp.eta, hp.eps, *SPEC))
    order = np.argsort(-fp["s"])
    np.testing.assert_allclose(np.asarray(modes["s"])[:3], fp["s"][order][:3], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(modes["p"])[:3], fp["p"][order][:3], rtol=1e-6)
    assert modes["s"][3] < 1e-6


def test_equivariant_phase_sweep_agrees_with_the_decoupled_prediction(x64):
    cfg = PhaseConfig(method="directpred", x="wd", y="sigma2", x_range=(0.0, 0.3), y_range=(0.2, 1.0),
                      nx=24, ny=6, t_max=3000.0)
    res, pred = sweep(cfg), prediction(cfg)
    assert res["phase"].min() >= 0
    bad = np.argwhere(res["survivors"] != pred["survivors"])
    edge = np.argwhere(np.diff(pred["survivors"], axis=1) != 0)
    assert all(np.abs(edge[:, 1] - j).min() <= 1 for _, j in bad)  # disagreements only next to the boundary
    assert (res["survivors"] == pred["survivors"]).mean() > 0.9


def _simulate(*args):
    proc = subprocess.run([sys.executable, "-m", "dynamics.simulate", *args, "--json", "--no-plot"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_simulate_reduced_level_runs_the_setters_onto_their_fixed_points(tmp_path):
    out = _simulate("--method", "directpred,directcopy", "--level", "reduced", "--lambdas", "1,0.5,0.05",
                    "--sigma2", "0.5", "--wd", "0.01", "--s0", "0.3", "--t-max", "3000", "--eps", "0.05",
                    "--out", str(tmp_path / "r"))
    lam = np.array([1.0, 0.5, 0.05])
    p_plus = _tian21_p_plus(lam, lam + 0.5, 0.01)
    for run in out["runs"]:
        assert [m["collapsed"] for m in run["modes"]] == [False, False, True]
        for m, p in zip(run["modes"][:2], p_plus):
            assert m["p"] == pytest.approx(p, rel=1e-7)
            assert m["fixed_point"]["p"] == pytest.approx(p, rel=1e-12)
            assert m["s"] == pytest.approx(m["fixed_point"]["s"], rel=1e-7)
    normalised = _simulate("--method", "directpred", "--level", "reduced", "--lambdas", "1,0.5,0.05",
                           "--sigma2", "0.5", "--wd", "0.01", "--s0", "0.3", "--t-max", "3000",
                           "--setter", "normalised", "--out", str(tmp_path / "n"))
    assert normalised["surviving"] == 0  # the normalised setter shrinks every mode under this loss


@pytest.mark.slow
def test_default_simulate_keeps_simsiams_five_modes_for_both_setters(tmp_path):
    # The README's first command, setters only: 5 of 8 modes, each on its predicted fixed point.
    out = _simulate("--wd", "5e-4", "--method", "simsiam,directpred,directcopy", "--out", str(tmp_path))
    for run in out["runs"]:
        assert run["surviving"] == 5, run["method"]
        for m in run["modes"]:
            if not m["collapsed"]:
                fp = m["fixed_point"]
                assert (m["p"], m["s"]) == pytest.approx((fp["p"], fp["s"]), rel=1e-4)
