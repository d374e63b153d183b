"""Phase sweeps against closed forms, single runs, the fixed-point analysis and the matrix ODE (float64)."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynamics.analysis import collapse_wd
from dynamics.matrix_ode import aligned_state, vector_field
from dynamics.methods import Hyper, get_method
from dynamics.moments import anisotropic, expected_moments
from dynamics.phase import main, prediction, sweep
from dynamics.phase_grid import PhaseConfig, grid_points, point_values, systems
from dynamics.reduced import Params, integrate
from dynamics.setters import SetterParams, relative_survivors, setter_field

GRID = dict(x="wd", y="sigma2", x_range=(0.0, 0.3), y_range=(0.0, 2.0), nx=48, ny=24)


@pytest.fixture(scope="module")
def wd_sigma2_sweeps():
    with jax.enable_x64(True):
        return {m: sweep(PhaseConfig(method=m, **GRID)) for m in ("simsiam", "phinet")}


def _boundary_index(alive_row):
    """Number of leading grid points (in wd) that survive: the numerical boundary along one row."""
    return int(np.argmin(alive_row)) if not alive_row.all() else len(alive_row)


def test_simsiam_boundary_within_one_grid_cell_of_tau2_over_4c(wd_sigma2_sweeps):
    # Tian21: a non-collapsed stable fixed point exists iff eta < tau^2 / (4c), c = 1 + sigma2; the start
    # p0 = 0.5 on the parabola lies above the saddle p_- at every point here, so the boundary is the
    # threshold. One cell of slack: a point just past it may still be in the bottleneck at t_max.
    res = wd_sigma2_sweeps["simsiam"]
    wd, s2 = res["xs"], res["ys"]
    assert res["phase"].min() >= 0  # no solver failures
    for i, sigma2 in enumerate(s2):
        closed = int(np.sum(wd < 1.0 / (4 * (1 + sigma2))))
        numeric = _boundary_index(res["survivors"][i] == 1)
        assert abs(numeric - closed) <= 1, (sigma2, numeric, closed)
        assert np.all(res["survivors"][i, :numeric] == 1) and np.all(res["survivors"][i, numeric:] == 0)


def test_phinet_noncollapse_region_contains_simsiams(wd_sigma2_sweeps):
    simsiam, phinet = (wd_sigma2_sweeps[m]["survivors"] == 1 for m in ("simsiam", "phinet"))
    assert np.all(phinet[simsiam])
    assert phinet.sum() > simsiam.sum() * 1.2  # and strictly larger (thresholds +54% at lam = 1)


def test_phinet_boundary_within_one_grid_cell_of_the_fixed_point_analysis(wd_sigma2_sweeps):
    res = wd_sigma2_sweeps["phinet"]
    for i in (0, 11, 23):
        thr = collapse_wd("phinet", Params(sigma2=float(res["ys"][i]), lam=1.0), rtol=1e-8)
        numeric = _boundary_index(res["survivors"][i] == 1)
        assert abs(numeric - int(np.sum(res["xs"] < thr))) <= 1


@pytest.mark.parametrize("method", ["simsiam", "byol", "phinet"])
def test_sweep_point_equals_the_single_integrate_run(x64, method):
    # The sweep's own solver (Bogacki-Shampine, rtol 1e-10) against reduced.integrate (diffrax Tsit5,
    # rtol 1e-9, atol 1e-12) from the same row: both are accurate to ~1e-8, so agree to 1e-6.
    extra = {"tau": 0.3, "beta": 0.7} if method == "byol" else {}
    cfg = PhaseConfig(method=method, x="wd", y="p0", x_range=(0.0, 0.2), y_range=(0.05, 0.8), nx=3, ny=3,
                      sigma2=0.4, t_max=150.0, rtol=1e-10, atol=1e-14, **extra)
    res = sweep(cfg)
    X, Y = grid_points(cfg)
    y0, params = systems(cfg, point_values(cfg, X, Y))
    for r in (0, 4, 8):
        p_r = Params(*(float(np.ravel(a)[r]) if np.ndim(a) else float(a) for a in params))
        single = integrate(method, jnp.asarray(y0[r]), p_r, jnp.array([0.0, 150.0]))[-1]
        np.testing.assert_allclose(res["final"].reshape(9, -1)[r], single, rtol=1e-6, atol=1e-9)


def test_anisotropic_surviving_count_matches_per_mode_thresholds(x64):
    # l_j = j^-1, sigma2 = 0.5: mode j survives iff eta < l_j^2 / (4 (l_j + 0.5)); partial collapse between.
    cfg = PhaseConfig(method="simsiam", x="wd", y="exponent", x_range=(1e-3, 0.2), y_range=(1.0, 1.0 + 1e-9),
                      nx=24, ny=2, x_log=True, modes=4, t_max=2e4)
    res = sweep(cfg)
    lam = 1.0 / np.arange(1, 5)
    expected = (res["xs"][:, None] < lam**2 / (4 * (lam + 0.5))).sum(1)
    assert np.array_equal(res["survivors"][0], expected)
    assert set(res["phase"][0]) == {0, 1, 2}
    pred = prediction(cfg)["survivors"]
    assert np.array_equal(pred[0], expected)


@pytest.mark.parametrize("form", ["equivariant", "normalised"])
def test_directpred_multimode_field_equals_the_matrix_ode_on_aligned_states(x64, form):
    # Eigen-aligned W = Q diag(w): d log s_j / dt from the matrix ODE (setter at every instant) must equal
    # the coupled per-mode system 2 p_j (l_j - c_j p_j) - 2 eta.
    spec = anisotropic([1.0, 0.4, 0.1], [0.5, 0.3, 0.6])
    Q = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(3), (3, 3)))[0]
    w = jnp.array([0.7, 0.9, 0.2])
    for name in ("directpred", "directcopy"):
        method, hp = get_method(name), Hyper(eta=0.03, eps=0.05, setter_form=form)
        d = vector_field(method, hp, expected_moments(spec))(0.0, aligned_state(method, Q, w, p=jnp.zeros(3)))
        dw = jnp.diag(Q.T @ d["W"])  # W = Q diag(w): dW/dt = Q diag(dw/dt) on aligned states
        u_dot = setter_field(name, form)(jnp.log(w**2), SetterParams(0.03, 0.05, spec.lambdas, spec.sigma2s))
        np.testing.assert_allclose(2 * dw / w, u_dot, rtol=1e-12, atol=1e-12)


def test_directpred_normalised_relative_modes_do_not_depend_on_weight_decay(x64):
    # normalised setter: eta drops out of d(u_j - u_k)/dt, so the surviving shares s_j / s_max are the same
    # at every eta.
    cfg = PhaseConfig(method="directpred", x="wd", y="sigma2", x_range=(0.0, 0.3), y_range=(0.2, 1.0),
                      nx=4, ny=2, lambdas=(1.0, 0.3, 0.05, 0.01), t_max=200.0, rtol=1e-11, atol=1e-12,
                      setter_form="normalised")
    res = sweep(cfg)
    shares = res["final"] - res["final"].max(-1, keepdims=True)
    # log s ~ -300 at t_max: rtol 1e-11 leaves ~1e-8 of error in the differences
    np.testing.assert_allclose(shares, np.broadcast_to(shares[:, :1], shares.shape), atol=1e-6)
    assert np.array_equal(res["survivors"], np.asarray(relative_survivors(res["final"], cfg.s_tol)))


def test_interrupted_sweep_resumes_from_its_checkpoint(x64, tmp_path):
    cfg = PhaseConfig(method="simsiam", nx=8, ny=4, chunk=8, t_max=300.0)
    ckpt = tmp_path / "partial.npz"
    full = sweep(cfg, checkpoint=ckpt)
    saved = dict(np.load(ckpt))
    saved["done"][1:] = False  # as if interrupted after the first chunk, whose rows we mark
    saved["final"][:8] = 7.0
    np.savez(ckpt, **saved)
    resumed = sweep(cfg, checkpoint=ckpt)
    assert np.all(resumed["final"].reshape(32, -1)[:8] == 7.0)  # finished chunk reused, not recomputed
    np.testing.assert_array_equal(resumed["final"].reshape(32, -1)[8:], full["final"].reshape(32, -1)[8:])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dynamics.phase", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_json_summary_and_outputs(tmp_path):
    proc = _cli("--method", "simsiam", "--x", "wd", "--y", "sigma2", "--nx", "40", "--ny", "20", "--json",
                "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["grid"] == [20, 40] and out["modes"] == 1 and out["counts"]["failed"] == 0
    assert out["prediction"]["max_cells_from_boundary"] <= 1 and out["prediction"]["agreement"] > 0.97
    assert out["config"]["phase"]["x"] == "wd" and "git_sha" in out["config"]
    assert out["config"]["provenance"]["git_sha"] == out["config"]["git_sha"]
    assert out["config"]["provenance"]["device_count"] == len(jax.devices())
    for name in ("phase.npz", "summary.json", "config.json", "phase.png"):
        assert (tmp_path / "run" / name).exists()


@pytest.mark.parametrize("args, needle", [
    (["--method", "nope"], "'nope'"),
    (["--x", "speed"], "'speed'"),
    (["--x", "lam"], "--x lam does not apply to --method simsiam"),
    (["--x", "wd", "--y", "wd"], "both wd"),
    (["--x-range", "0.3,0.1"], "lo < hi"),
    (["--wd", "-1", "--x", "sigma2", "--y", "alpha_p"], "'-1'"),
    (["--x-scale", "log"], "positive range"),
    (["--modes", "4"], "--modes"),
])
def test_cli_bad_input_exits_2_with_one_line(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:  # in-process: validation precedes any computation
        main([*args, "--no-plot", "--out", "/nonexistent/never-written"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert needle in err and len(err.strip().splitlines()) == 1, err
