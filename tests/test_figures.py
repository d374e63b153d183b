"""Every figure script of the phase/dynamics section runs at its small size, and what it draws is right."""
import importlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

from dynamics.halvagal import eigen_field, euclidean_closed_form
from dynamics.moments import default_spectrum, simsiam_thresholds

FIGURES = ("tian21_fig3_phase_portraits", "tian21_fig4_dpdt_parabola", "tian21_fig5_byol_curriculum",
           "commutator_thm3", "methods_collapse_regions", "surviving_modes_wd", "halvagal_eigen_dynamics")


@pytest.fixture(scope="module")
def drawn():
    """`make(small=True)` of every figure (float64), figures closed; the numbers they drew."""
    out = {}
    with jax.enable_x64(True):
        for name in FIGURES:
            fig, data = importlib.import_module(f"figures.{name}").make(True)
            plt.close(fig)
            out[name] = data
    return out


@pytest.mark.parametrize("name", FIGURES[:2])
def test_figure_script_writes_its_png(name, tmp_path):
    module = importlib.import_module(f"figures.{name}")
    path = module.run(name, module.make, ["--small", "--out", str(tmp_path)])
    assert path == tmp_path / f"{name}.png" and path.stat().st_size > 10_000


def test_fig3_fixed_points_match_tian21(drawn):
    # c = 1, tau = 1: eta = 0.01 gives p_pm = (1 +- sqrt(0.96)) / 2, saddle below, stable above;
    # eta = 1 leaves only the origin.
    fps = drawn["tian21_fig3_phase_portraits"]
    p = sorted(f[0] for f in fps[0.01])
    assert p == pytest.approx([0.0, (1 - np.sqrt(0.96)) / 2, (1 + np.sqrt(0.96)) / 2], abs=1e-12)
    assert [f[2] for f in sorted(fps[0.01])] == [True, False, True]
    assert [f[0] for f in fps[1.0]] == [0.0]


def test_fig4_cubic_is_p_times_p_tau_minus_cp_minus_eta(drawn):
    for eta, d in drawn["tian21_fig4_dpdt_parabola"].items():
        p = d["p"]
        np.testing.assert_allclose(d["dpdt"], p * (p * (1 - 1.5 * p) - eta), atol=1e-14)


def test_fig5_byol_from_tau0_zero_reaches_p_plus(drawn):
    d = drawn["tian21_fig5_byol_curriculum"]
    assert not d["collapsed"].any()
    np.testing.assert_allclose(d["final"][:, 0], d["p_plus"], atol=1e-5)  # t = 400, slowest rate 2 eta
    np.testing.assert_allclose(d["final"][:, 2], 1.0, atol=1e-5)


def test_thm3_commutator_stays_below_its_bound(drawn):
    d = drawn["commutator_thm3"]
    assert np.all(d["commutator"] <= d["bound"] * (1 + 1e-6) + 1e-12)
    assert d["commutator"][-1] < 1e-3 * d["commutator"][0]


def test_surviving_modes_simsiam_follows_the_threshold_staircase(drawn):
    d = drawn["surviving_modes_wd"]
    expected = (d["wd"][:, None] < simsiam_thresholds(default_spectrum())[None, :]).sum(1)
    assert np.abs(d["simsiam"] - expected).max() <= 1  # one grid cell: a mode just past may still decay
    assert np.all(d["phinet"] >= d["simsiam"])
    assert np.all(d["directpred"] == d["directpred"][0])  # eta drops out of the setter's mode ratios


def test_collapse_regions_phinet_contains_simsiam(drawn):
    d = drawn["methods_collapse_regions"]["sigma2"]
    assert np.all(d["phinet"][d["simsiam"]]) and np.all(d["xphinet"][d["simsiam"]])


def test_halvagal_euclidean_autodiff_flow_equals_the_closed_form(x64):
    ls, cs, lam = jnp.array([1.0, 0.3]), jnp.array([1.5, 0.9]), jnp.array([0.2, 0.05])
    for alpha in (0.5, 1.0):
        np.testing.assert_allclose(eigen_field("euclidean", alpha, ls, cs, 0.01)(lam),
                                   euclidean_closed_form(lam, alpha, ls, cs, 0.01), rtol=1e-12)
        iso = eigen_field("isoloss", alpha, ls, cs)(lam)
        np.testing.assert_allclose(iso, 2 * lam * (ls - cs * lam**alpha), rtol=1e-12)
        # the cosine loss is scale-invariant: its flow conserves sum(lam) (= |w|^2)
        assert abs(float(jnp.sum(eigen_field("cosine", alpha, ls, cs)(lam)))) < 1e-12


def test_halvagal_figure_isoloss_recruits_weak_modes_sooner(drawn):
    d = drawn["halvagal_eigen_dynamics"]
    half = lambda lam: d["ts"][np.argmax(lam[:, -1] > 0.5 * lam[-1, -1])]
    assert half(d["isoloss"]) < 0.5 * half(d["euclidean"])
    np.testing.assert_allclose(d["isoloss"][-1], d["euclidean"][-1], rtol=1e-4)


def test_simulate_default_figure_is_the_commands_modes_png(tmp_path, capsys):
    # The README's picture of `python -m dynamics.simulate --wd 5e-4` is that command's own modes.png;
    # at --small (SimSiam alone, default horizon 20 / wd) the top mode sits on its predicted fixed point.
    import json

    from figures import simulate_default
    path = simulate_default.main(["--small", "--out", str(tmp_path)])
    assert path.stat().st_size > 10_000
    run = json.loads(capsys.readouterr().out.splitlines()[0])
    top = run["modes"][0]
    assert abs(top["s"] - top["fixed_point"]["s"]) < 1e-3 * top["fixed_point"]["s"]
