"""PhiNet's threshold gain taken apart: PhiNet with Wg = I is SimSiam with its loss x (1 + lam); the trained-g
gain depends only on l / (l + sigma2) and vanishes for weak modes; the small-eta saddle is SimSiam's."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.analysis import collapse_wd, fixed_points, saddle, simsiam_eigenvalues
from dynamics.matrix_ode import init_state, solve, vector_field
from dynamics.methods import Hyper, get_method
from dynamics.moments import anisotropic, expected_moments
from dynamics.phase import prediction, sweep
from dynamics.phase_grid import PhaseConfig
from dynamics.reduced import Params, integrate, reduced_field, state_names

ISO = Params(eta=0.05, sigma2=0.5, tau=1.0, alpha_p=1.0, lam=1.0)
ANISO = anisotropic([1.0, 0.3, 0.1], [0.5, 0.2, 0.4])
TS = np.linspace(0.0, 30.0, 7)


def test_phinet_with_identity_g_is_simsiam_with_the_loss_scaled_reduced(x64):
    # Two sympy derivations from different loss terms (clean-input term with g = 1; SimSiam's term twice,
    # weights 1 and lam), integrated from the same start; and SimSiam at eta / k with time k t, k = 1 + lam.
    params = ISO._replace(eta=0.03, alpha_p=1.7, lam=0.8, lambda_j=0.6, sigma2=0.3, tau=0.9)
    y0, ts = jnp.array([0.2, 0.5]), jnp.linspace(0.0, 40.0, 9)
    eyeg = integrate("phinet-eyeg", y0, params, ts, rtol=1e-11, atol=1e-13)
    scaled = integrate("simsiam-scaled", y0, params, ts, rtol=1e-11, atol=1e-13)
    k = 1 + params.lam
    simsiam = integrate("simsiam", y0, params._replace(eta=params.eta / k), k * ts, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(eyeg, scaled, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(eyeg, simsiam, rtol=1e-9, atol=1e-12)
    assert np.abs(eyeg[-1] - eyeg[0]).max() > 0.05  # it moved


def test_phinet_with_identity_g_is_simsiam_with_the_loss_scaled_matrix_ode(x64):
    # Matrix level from a random (not eigen-aligned) start: phinet-eyeg and simsiam-scaled trajectories
    # agree, and PhiNet's own field at Wg = I has the same W, Wp components.
    hp = Hyper(eta=0.02, alpha_p=1.4, lam=1.3)
    C = expected_moments(ANISO)
    st0 = init_state(jax.random.PRNGKey(1), get_method("simsiam"), ANISO.dim, w_scale=1.2, p0=0.4)
    st0 = {**st0, "Wp": st0["Wp"] + 0.1 * jax.random.normal(jax.random.PRNGKey(2), (3, 3))}
    ys = {m: solve(get_method(m), hp, C, st0, TS) for m in ("phinet-eyeg", "simsiam-scaled")}
    for key in ("W", "Wp"):
        assert np.abs(ys["phinet-eyeg"][key] - ys["simsiam-scaled"][key]).max() < 1e-10
    d_eyeg = vector_field(get_method("phinet-eyeg"), hp, C)(0.0, st0)
    d_phinet = vector_field(get_method("phinet"), hp, C)(0.0, {**st0, "Wg": jnp.eye(3)})
    for key in ("W", "Wp"):
        np.testing.assert_allclose(d_phinet[key], d_eyeg[key], rtol=1e-12, atol=1e-14)


def test_identity_g_threshold_is_one_third_above_trained_phinet(x64):
    # (1 + lam) tau^2 l^2 / (4c) = 2 / (4 * 1.5) = 1/3 at lam = 1, sigma2 = 0.5, l = tau = 1.
    for name in ("phinet-eyeg", "simsiam-scaled"):
        assert collapse_wd(name, ISO) == pytest.approx(1 / 3, rel=1e-14)
        fps = fixed_points(name, ISO)
        assert [fp.stable for fp in fps] == [True, False, True]
        # zeros of the sympy field, eigenvalues {-2 eta, -/+ k p sqrt(tau^2 l^2 - 4 eta c / k)}
        for fp in fps:
            y = jnp.array([fp.state[n] for n in state_names(name)])
            assert np.abs(reduced_field(name)(y, ISO)).max() < 1e-14
        for fp in fps[1:]:
            expected = np.sort([-0.1, (1 if fp is fps[1] else -1) * 2 * fp.state["p"] * np.sqrt(1 - 0.3 / 2)])
            np.testing.assert_allclose(np.sort(fp.eigenvalues.real), expected, atol=1e-12)
            np.testing.assert_allclose(simsiam_eigenvalues(ISO, fp.state["p"], 2.0), expected, atol=1e-12)
    phinet = collapse_wd("phinet", ISO)
    assert 1 / 6 < phinet < 1 / 3 and phinet == pytest.approx(0.2558536, rel=1e-6)
    for lam in (0.5, 2.0):  # SimSiam < trained-g PhiNet < g = I PhiNet = (1 + lam) / 6
        p = ISO._replace(lam=lam)
        eyeg = collapse_wd("phinet-eyeg", p)
        assert 1 / 6 < collapse_wd("phinet", p) < eyeg and eyeg == pytest.approx((1 + lam) / 6, rel=1e-14)


@pytest.mark.parametrize("factor, survives", [(0.97, True), (1.03, False)])
def test_identity_g_threshold_separates_survival_from_collapse_in_the_ode(x64, factor, survives):
    # From the stable fixed point at 0.99 x 1/3 (the closed form, not the code's), integrate 3% below / above.
    start = fixed_points("phinet-eyeg", ISO._replace(eta=0.99 / 3))[-1].state
    ys = integrate("phinet-eyeg", jnp.array([start["p"], start["s"]]), ISO._replace(eta=factor / 3),
                   jnp.array([0.0, 3000.0]))
    assert (ys[-1, 1] > 1e-2) == survives and (ys[-1, 1] < 1e-6) == (not survives)


def test_trained_g_gain_depends_only_on_l_over_c_and_vanishes_for_weak_modes(x64):
    # Scaling p = (l/c) P, eta = (l^2/c) E, the fixed-point equation depends on l and c only through
    # r = l / c: the threshold ratio to SimSiam's l^2 / (4c) is a function of r. For r -> 0 first-order
    # perturbation of the tangency at P = 1/2, E = 1/4 gives ratio - 1 = (alpha_g / alpha_p) lam^2 r^2.
    def ratio(l, s2, **kw):
        return collapse_wd("phinet", Params(lambda_j=l, sigma2=s2, **kw)) / (l**2 / (4 * (l + s2)))

    base = ratio(1.0, 0.5)
    for l, s2 in ((0.2, 0.1), (0.03, 0.015)):
        assert ratio(l, s2) == pytest.approx(base, rel=1e-9)
    for lam, alpha_g in ((1.0, 1.0), (2.0, 1.0), (1.0, 2.0)):
        r = 0.02
        gain = ratio(r, 1 - r, lam=lam, alpha_g=alpha_g) - 1  # l = r, c = 1
        assert gain == pytest.approx(alpha_g * lam**2 * r**2, rel=0.01)
    assert ratio(0.01, 0.5) - 1 < 1e-3  # the default spectrum's weakest mode: no gain


def test_small_eta_saddle_is_simsiams_for_trained_g_and_k_times_lower_for_the_scaled_loss(x64):
    # SimSiam p_- = eta / (tau l) + O(eta^2); PhiNet's differs by the relative -(alpha_g / alpha_p) lam^2
    # eta^2 / l^2 (its q = g p = O(p^4 / eta) near the saddle); the loss x k moves it to eta / (k tau l).
    for eta in (1e-3, 3e-3):
        p = ISO._replace(eta=eta, lam=2.0)
        sim, phi, scaled = saddle("simsiam", p), saddle("phinet", p), saddle("simsiam-scaled", p)
        assert sim == pytest.approx(eta, rel=2 * eta)
        assert phi / sim - 1 == pytest.approx(-4 * eta**2, rel=0.05)
        assert scaled == pytest.approx(sim / 3, rel=2 * eta)


def test_phase_sweep_of_identity_g_agrees_with_the_scaled_closed_form(x64):
    cfg = PhaseConfig(method="phinet-eyeg", x="wd", y="lam", x_range=(0.0, 0.6), y_range=(0.0, 2.0),
                      nx=24, ny=5, t_max=2000.0)
    res, pred = sweep(cfg), prediction(cfg)
    assert res["phase"].min() >= 0
    boundary = (res["survivors"] == 1).sum(1)  # surviving wd cells per lam row
    expected = (res["xs"][None, :] < (1 + res["ys"][:, None]) / 6).sum(1)
    assert np.abs(boundary - expected).max() <= 1
    assert (pred["survivors"].sum(1) == expected).all()


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300)


def test_cli_analysis_and_simulate_take_the_new_methods(tmp_path):
    out = json.loads(_run("dynamics.analysis", "--method", "phinet-eyeg", "--lam", "1", "--json").stdout)
    assert out["collapse_wd"] == pytest.approx(1 / 3, rel=1e-12)
    proc = _run("dynamics.simulate", "--method", "phinet-eyeg,simsiam-scaled", "--level", "reduced",
                "--sigma2", "0.5", "--wd", "0.2", "--t-max", "500", "--json", "--no-plot",
                "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    p_plus = (1 + np.sqrt(1 - 4 * 0.2 * 1.5 / 2)) / 3  # above SimSiam's threshold 1/6, below 1/3
    for run in runs:
        assert run["surviving"] == 1 and run["modes"][0]["p"] == pytest.approx(p_plus, rel=1e-6)


def test_phinet_gain_figure_draws_the_closed_forms(x64, tmp_path):
    import matplotlib.pyplot as plt

    from figures import phinet_gain

    fig, d = phinet_gain.make(True)
    plt.close(fig)
    thr, lams = d["thresholds"], d["lams"]
    np.testing.assert_allclose(thr["simsiam"], 1 / 6, rtol=1e-14)
    for name in ("simsiam-scaled", "phinet-eyeg"):
        np.testing.assert_allclose(thr[name], (1 + lams) / 6, rtol=1e-14)
    assert np.all(thr["phinet"][1:] < thr["phinet-eyeg"][1:]) and np.all(thr["phinet"][1:] > 1 / 6)
    np.testing.assert_allclose(thr["xphinet"], thr["phinet"], rtol=1e-8)
    small = d["etas"] < 2e-3  # saddle: eta / l to O(eta); the scaled loss halves it at lam = 1
    np.testing.assert_allclose(d["saddles"]["simsiam"][small], d["etas"][small], rtol=4e-3)
    np.testing.assert_allclose(d["saddles"]["phinet-eyeg"][small], d["etas"][small] / 2, rtol=4e-3)
    assert phinet_gain.main(["--small", "--out", str(tmp_path)]).stat().st_size > 10_000
