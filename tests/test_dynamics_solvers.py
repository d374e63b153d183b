"""The two lean solvers of `dynamics.solvers` against closed forms and scipy: the matrix ODE's Dormand-Prince,
and the phase sweeps' batched solver, whose settling and slot refilling change the work, not the answer
(float64)."""
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp

from dynamics.matrix_ode import init_state, solve
from dynamics.methods import Hyper, get_method
from dynamics.moments import anisotropic, expected_moments
from dynamics.phase_grid import PhaseConfig, grid_points, point_values, systems
from dynamics.reduced import reduced_field, state_names
from dynamics.solvers import _expm, _linsolve, solve_final, solve_saved


def _rows(cfg):
    X, Y = grid_points(cfg)
    return systems(cfg, point_values(cfg, X, Y))


def test_small_dense_solve_and_expm_match_numpy_and_scipy(x64):
    rng = np.random.default_rng(0)
    for d in (1, 2, 3, 4):
        a, b = rng.normal(size=(d, d)) + 3 * np.eye(d), rng.normal(size=(d, 2))
        np.testing.assert_allclose(_linsolve(jnp.asarray(a), jnp.asarray(b)), np.linalg.solve(a, b),
                                   rtol=1e-12)
        for scale in (1e-3, 1.0, 50.0, 2e3):
            m = rng.normal(size=(d, d)) * scale
            m -= (np.linalg.eigvals(m).real.max() + 0.05 * scale) * np.eye(d)  # decaying, as where it is used
            want = scipy.linalg.expm(m)
            err = np.abs(np.asarray(_expm(jnp.asarray(m))) - want).max()
            bound = 1e-10 * max(1.0, np.abs(m).sum(0).max()) * max(1.0, np.abs(want).max())
            assert err <= bound, (d, scale, err)


@pytest.mark.parametrize("method, extra", [("simsiam", {}), ("phinet", {}), ("byol", {"tau": 0.5})])
def test_settling_and_slot_refill_give_the_full_integration_to_tolerance(x64, method, extra):
    # Across the collapse threshold and across SimSiam's saddle p_- (the p0 axis): rows that settle early
    # (at their fixed point, or collapsed) end where integrating every row to t_max ends; 48 slots serve
    # 480 rows, so most slots run several rows one after another.
    cfg = PhaseConfig(method=method, x="wd", y="p0", x_range=(0.0, 0.3), y_range=(0.02, 0.9), nx=24, ny=20,
                      sigma2=0.5, **extra)
    y0, params = _rows(cfg)
    fast, n_fast, ok_fast = solve_final(reduced_field(method), y0, params, 2400.0, settle=True, slots=48)
    full, n_full, ok_full = solve_final(reduced_field(method), y0, params, 2400.0)
    assert np.asarray(ok_fast).all() and np.asarray(ok_full).all()
    assert np.sum(n_fast) < 0.5 * np.sum(n_full)  # most rows stop well before t_max
    np.testing.assert_allclose(fast, full, rtol=2e-5, atol=1e-8)
    s = state_names(method).index("s")
    assert np.array_equal(np.asarray(fast)[:, s] >= 1e-6, np.asarray(full)[:, s] >= 1e-6)
    # without settling, refilled slots integrate every row exactly as one slot per row does
    same, n_same, _ = solve_final(reduced_field(method), y0, params, 2400.0, slots=48)
    np.testing.assert_array_equal(same, full)
    np.testing.assert_array_equal(n_same, n_full)


def test_rows_with_their_own_horizons_match_scipy_one_by_one(x64):
    # Per-row t_max, 5 slots for 64 rows: each row against solve_ivp (LSODA).
    cfg = PhaseConfig(method="simsiam", x="wd", y="sigma2", x_range=(0.0, 0.3), y_range=(0.0, 1.5), nx=8,
                      ny=8)
    y0, params = _rows(cfg)
    t_max = np.geomspace(1.0, 3000.0, len(y0))
    y, _, ok = solve_final(reduced_field("simsiam"), y0, params, t_max, rtol=1e-9, atol=1e-12, settle=True,
                           slots=5, segment=8)
    assert np.asarray(ok).all()
    eta, sigma2 = np.asarray(params.eta), np.asarray(params.sigma2)

    def rhs(t, v, e, s2):  # Tian21's per-mode SimSiam field, tau = l = alpha_p = 1
        p, s = v
        c = 1.0 + s2
        return [s * (1.0 - c * p) - e * p, 2.0 * p * s * (1.0 - c * p) - 2.0 * e * s]

    for r in range(0, len(y0), 5):
        ref = solve_ivp(rhs, (0.0, t_max[r]), y0[r], args=(eta[r], sigma2[r]), method="LSODA", rtol=1e-10,
                        atol=1e-13).y[:, -1]
        np.testing.assert_allclose(np.asarray(y)[r], ref, rtol=1e-5, atol=1e-9)


def test_dormand_prince_hits_every_save_time_of_a_linear_system_exactly(x64):
    # y' = M y on a pytree {a: (2,), b: (2,)}: y(t) = expm(M t) y0 at each save time, to the tolerance.
    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 4))
    m -= (np.linalg.eigvals(m).real.max() + 0.2) * np.eye(4)
    y0 = rng.normal(size=4)
    field = lambda t, y, args: {"a": (m @ jnp.concatenate([y["a"], y["b"]]))[:2],
                                "b": (m @ jnp.concatenate([y["a"], y["b"]]))[2:]}
    ts = np.array([0.0, 0.3, 1.0, 2.5, 7.0, 20.0])
    ys, reached, _ = solve_saved(field, {"a": jnp.asarray(y0[:2]), "b": jnp.asarray(y0[2:])}, ts, rtol=1e-11,
                                 atol=1e-13, max_steps=100_000)
    assert int(reached) == len(ts)
    want = np.stack([scipy.linalg.expm(m * t) @ y0 for t in ts])
    np.testing.assert_allclose(np.concatenate([ys["a"], ys["b"]], axis=1), want, rtol=1e-8, atol=1e-11)


def test_matrix_ode_solve_matches_scipy_and_names_the_time_where_it_stops(x64):
    method, hp = get_method("byol"), Hyper(eta=0.05)
    C = expected_moments(anisotropic((1.0, 0.5, 0.2), (0.5,) * 3))
    st0 = init_state(jax.random.PRNGKey(2), method, 3)
    ts = np.linspace(0.0, 40.0, 5)
    ys = solve(method, hp, C, st0, ts, rtol=1e-11, atol=1e-13)
    flat0, unravel = jax.flatten_util.ravel_pytree(st0)
    from dynamics.matrix_ode import vector_field
    f = vector_field(method, hp, jnp.asarray(C))
    rhs = jax.jit(lambda y: jax.flatten_util.ravel_pytree(f(0.0, unravel(y), None))[0])
    ref = solve_ivp(lambda t, y: np.asarray(rhs(jnp.asarray(y))), (0.0, 40.0), np.asarray(flat0), t_eval=ts,
                    method="DOP853", rtol=1e-12, atol=1e-14).y.T
    got = np.stack([np.asarray(jax.flatten_util.ravel_pytree({k: v[i] for k, v in ys.items()})[0])
                    for i in range(len(ts))])
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)
    with pytest.raises(RuntimeError, match=r"byol: the matrix ODE stopped after 50 steps .*of 5"):
        solve(method, hp, C, st0, ts, max_steps=50)
