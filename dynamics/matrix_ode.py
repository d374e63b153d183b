"""The matrix ODE: gradient flow of the expected loss with stop-gradient, weight decay, EMA targets, setters.

The state is a dict of matrices (`W` (n2, n1), `Wp`, `Wg` (n2, n2), EMA targets `Wa`, `Wm` (n2, n1)). For a
trained matrix `dM/dt = -alpha_M dL/dM - eta M` with dL/dM from `jax.grad` of `methods.expected_loss`, in
which the targets carry `jax.lax.stop_gradient` (so the field is not the gradient of any one function); an
EMA target follows `dT/dt = beta (S - T)`. A setter method (DirectPred, DirectCopy) has no `Wp` in its state:
its predictor is set at every instant from `F = W E[x1 x1^T] W^T` (the lr -> 0 limit of the per-step EMA of
F, whose time constant in t = lr * steps is lr / (1 - rho)). With `hp.symmetric_wp` the predictor field is
symmetrised (Tian21's symmetric-predictor setting, Thm 3).

Public API
- `init_state(key, method, n1, n2=None, *, w_scale=1.0, p0=0.5, g0=0.5, tau=1.0)`: random W, Wp = p0 I, ...
- `aligned_state(method, Q, w, p, g=None, tau=1.0, tau_m=1.0)`: W = Q diag(w), Wp = Q diag(p) Q^T, ...
- `full_mats(method, state, C, hp)`: the state plus the set predictor of a setter method.
- `vector_field(method, hp, C)`: `f(t, state, args) -> dstate/dt` (pure, jittable).
- `solve(method, hp, C, state0, ts, *, rtol=1e-10, atol=1e-12)`: Dormand-Prince 5(4) in float64
  (`dynamics.solvers`); dict of trajectories with a leading time axis.
- `mode_summary(method, state, C, hp)`: per-mode `s` (eigenvalues of W W^T, descending), `p`, `g` (Rayleigh
  quotients of Wp, Wg on those eigenvectors).
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.methods import RATES, Hyper, Method, expected_loss, predictor_input_correlation, set_predictor
from dynamics.solvers import solve_saved


def require_x64() -> None:
    """Raise unless float64 is on: the ODE tolerances and the tests' closed-form checks need it."""
    if jnp.asarray(1.0).dtype != jnp.float64:
        raise RuntimeError("dynamics ODE solves need float64: wrap the call in `with jax.enable_x64(True):`")


def init_state(key, method: Method, n1: int, n2: int | None = None, *, w_scale=1.0, p0=0.5, g0=0.5, tau=1.0):
    """Random start: `W_ij ~ N(0, w_scale^2 / n1)`, `Wp = p0 I`, `Wg = g0 I`, EMA targets `tau W`.
    Only the draw runs in JAX; the arithmetic is numpy (the operations XLA ran, so the same bits), because
    each eager JAX op compiles a program of its own on first use (0.5 s of `python -m dynamics.simulate`)."""
    n2 = n1 if n2 is None else n2
    z = np.asarray(jax.random.normal(key, (n2, n1)))
    W = w_scale * z * (1 / np.sqrt(np.asarray(n1, z.dtype)))  # XLA divides by a scalar via its reciprocal
    eye = np.eye(n2, dtype=z.dtype)
    mats = {"W": W, "Wp": p0 * eye, "Wg": g0 * eye, "Wa": tau * W, "Wm": tau * W}
    return {name: jnp.asarray(mats[name]) for name in method.matrices}


def aligned_state(method: Method, Q, w, p, g=None, tau=1.0, tau_m=1.0):
    """Eigen-aligned start for diagonal moments: `W = Q diag(w)`, `Wp = Q diag(p) Q^T`, `Wg = Q diag(g) Q^T`,
    `Wa = tau W`, `Wm = tau_m W`; Q (n, n) orthogonal. Per mode j this is the reduced state
    (p_j, g_j, s_j = w_j^2, tau, tau_m), and the flow keeps it aligned."""
    W = Q * jnp.asarray(w)
    rot = lambda d: (Q * jnp.asarray(d)) @ Q.T
    mats = {"W": W, "Wp": rot(p), "Wg": None if g is None else rot(g), "Wa": tau * W, "Wm": tau_m * W}
    return {name: mats[name] for name in method.matrices}


def full_mats(method: Method, state: dict, C: jax.Array, hp: Hyper) -> dict:
    """The matrices the loss sees: the state, plus `Wp` set from F for a setter method."""
    if method.setter is None:
        return state
    return {**state, "Wp": set_predictor(method, predictor_input_correlation(state["W"], C), hp)}


def gradient_step_field(method: Method, hp: Hyper, mats: dict, C: jax.Array, state: dict, loss=None) -> dict:
    """`-alpha_M dL/dM - eta M` for trained M, `beta (S - T)` for EMA targets T (shared with dynamics.sgd).
    `L` is `expected_loss(method, mats, C, hp)`, or `loss(mats)` when given (dynamics.sgd's cosine loss)."""
    loss = (lambda m: expected_loss(method, m, C, hp)) if loss is None else loss
    grads = jax.grad(loss)(mats)
    sources = dict(method.ema)
    out = {}
    for name, M in state.items():
        if name in sources:
            out[name] = hp.beta * (state[sources[name]] - M)
            continue
        G = grads[name] if RATES[name] is None else getattr(hp, RATES[name]) * grads[name]
        if name == "Wp" and hp.symmetric_wp:
            G = 0.5 * (G + G.T)
        out[name] = -G - hp.eta * M
    return out


def vector_field(method: Method, hp: Hyper, C: jax.Array):
    """`f(t, state, args)`: the matrix ODE (docs/theory.md section 2) for view moments C (3, 3, n1, n1)."""

    def field(t, state, args=None):
        return gradient_step_field(method, hp, full_mats(method, state, C, hp), C, state)

    return field


@partial(jax.jit, static_argnames=("method", "hp"))
def _solve(method, hp, C, state0, ts, rtol, atol, max_steps):
    return solve_saved(vector_field(method, hp, C), state0, ts, rtol=rtol, atol=atol, max_steps=max_steps)


def solve(method: Method, hp: Hyper, C, state0: dict, ts, *, rtol=1e-10, atol=1e-12, max_steps=1_000_000):
    """Integrate the matrix ODE from `state0` at `ts[0]`, saving at `ts` (T,); float64 only
    (`dynamics.solvers.solve_saved`: Dormand-Prince 5(4)). Returns a dict of (T, ...) trajectories (a setter
    method's `Wp` is recomputed by `full_mats`); raises RuntimeError naming the time reached if the state
    went non-finite or `max_steps` ran out first."""
    require_x64()
    state0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), state0)
    ts = jnp.asarray(ts, jnp.float64)
    ys, reached, steps = _solve(method, hp, jnp.asarray(C), state0, ts, rtol, atol, max_steps)
    reached = int(reached)
    if reached < ts.shape[0]:
        raise RuntimeError(f"{method.name}: the matrix ODE stopped after {int(steps)} steps (max_steps="
                           f"{max_steps}) at save time {reached - 1} (t = {float(ts[reached - 1]):g}) of "
                           f"{ts.shape[0]}: the state went non-finite or max_steps ran out")
    return ys


def mode_summary(method: Method, state: dict, C: jax.Array, hp: Hyper) -> dict:
    """Per-mode summary of one state: `s` eigenvalues of W W^T (descending), `p`, `g` Rayleigh quotients."""
    mats = full_mats(method, state, C, hp)
    s, U = jnp.linalg.eigh(mats["W"] @ mats["W"].T)
    s, U = s[::-1], U[:, ::-1]
    out = {"s": s, "p": jnp.einsum("ij,ik,kj->j", U, mats["Wp"], U)} if "Wp" in mats else {"s": s}
    if "Wg" in mats:
        out["g"] = jnp.einsum("ij,ik,kj->j", U, mats["Wg"], U)
    return out
