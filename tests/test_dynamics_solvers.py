"""The matrix ODE's lean Dormand-Prince (`dynamics.ode`) against closed forms and scipy (float64)."""
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
from dynamics.ode import solve_saved


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
