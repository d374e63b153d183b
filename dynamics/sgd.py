"""SGD on sampled data: the discrete level below the matrix ODE (THEORY.md section 2).

One step at learning rate `lr` draws a batch (Gaussian `x0 ~ N(0, X)`, noise `n_i ~ N(0, X')`), forms its
view moments (with which the method's expected loss IS the batch loss) and moves every trained matrix by
`-lr (alpha_M dL/dM + wd M)`, every EMA target by `lr beta (S - T)` (momentum `1 - lr beta`), so that
`t = lr * steps` and `eta = wd` match the ODE. `batch=None` uses the exact expected moments at every step
(deterministic discrete gradient descent: the Euler scheme of the ODE, error O(lr)). A setter method keeps
`F_hat <- rho F_hat + (1 - rho) F_batch` every step and sets `Wp` from it every `hp.freq` steps. Step k uses
the key `fold_in(key, k)`: runs are deterministic and the same at any `record_every`.

Public API
- `sgd_state(method, state0, C, hp)`: add `F_hat` and the set `Wp` for setter methods.
- `sgd_step(method, hp, spectrum, lr, batch)(state, key, k) -> state`: one pure step.
- `run_sgd(method, hp, spectrum, state0, key, *, lr, n_steps, batch=None, record_every=1, start_step=0)`
  -> `(ts (R+1,), trajectory dict of (R+1, ...))`, R = n_steps // record_every; jitted `lax.scan`. To
  continue a run in chunks pass the last recorded state (it carries `F_hat`) and `start_step`.
"""
from functools import partial

import jax
import jax.numpy as jnp

from dynamics.matrix_ode import gradient_step_field
from dynamics.methods import Hyper, Method, predictor_input_correlation, set_predictor
from dynamics.moments import Spectrum, expected_moments, sample_moments


def sgd_state(method: Method, state0: dict, C: jax.Array, hp: Hyper) -> dict:
    """The SGD state: `state0`, plus `F_hat` (started at the expected F) and `Wp` for a setter method."""
    if method.setter is None:
        return dict(state0)
    F = predictor_input_correlation(state0["W"], C)
    return {**state0, "F_hat": F, "Wp": set_predictor(method, F, hp)}


def sgd_step(method: Method, hp: Hyper, spectrum: Spectrum, lr: float, batch: int | None):
    """`step(state, key, k) -> state`: one SGD step on a fresh batch (or the expected moments)."""
    C_exact = expected_moments(spectrum)

    def step(state, key, k):
        C = C_exact if batch is None else sample_moments(jax.random.fold_in(key, k), spectrum, batch)
        core = {n: state[n] for n in method.matrices}
        mats = core if method.setter is None else {**core, "Wp": state["Wp"]}
        d = gradient_step_field(method, hp, mats, C, core)
        new = {n: v + lr * d[n] for n, v in core.items()}
        if method.setter is not None:
            F_hat = hp.rho * state["F_hat"] + (1 - hp.rho) * predictor_input_correlation(state["W"], C)
            Wp = jnp.where(k % hp.freq == 0, set_predictor(method, F_hat, hp), state["Wp"])
            new.update(F_hat=F_hat, Wp=Wp)
        return new

    return step


_STATIC = ("method", "hp", "spectrum_key", "lr", "n_records", "record_every", "batch")


@partial(jax.jit, static_argnames=_STATIC)
def _run(method, hp, spectrum_key, state, key, start, lr, n_records, record_every, batch):
    step = sgd_step(method, hp, Spectrum(*map(jnp.asarray, spectrum_key)), lr, batch)

    def block(state, r):
        def inner(state, i):
            return step(state, key, start + r * record_every + i), None

        state, _ = jax.lax.scan(inner, state, jnp.arange(record_every))
        return state, state

    _, traj = jax.lax.scan(block, state, jnp.arange(n_records))
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), state, traj)


def run_sgd(method: Method, hp: Hyper, spectrum: Spectrum, state0: dict, key, *, lr: float, n_steps: int,
            batch: int | None = None, record_every: int = 1, start_step: int = 0):
    """Run `n_steps` SGD steps from `state0`; returns `(ts, trajectory)` recorded every `record_every` steps
    (times `t = lr * step`, the first entry the start; step k draws its batch from `fold_in(key, k)`)."""
    if lr <= 0 or n_steps < 1 or record_every < 1 or n_steps % record_every:
        raise ValueError(f"need lr > 0, n_steps >= 1 divisible by record_every >= 1; got lr={lr}, "
                         f"n_steps={n_steps}, record_every={record_every}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (exact moments), got {batch}")
    state = state0 if "F_hat" in state0 else sgd_state(method, state0, expected_moments(spectrum), hp)
    key_spec = tuple(tuple(float(v) for v in arr) for arr in spectrum)
    n_records = n_steps // record_every
    traj = _run(method, hp, key_spec, state, key, start_step, float(lr), n_records, record_every, batch)
    ts = lr * (start_step + record_every * jnp.arange(n_steps // record_every + 1))
    return ts, traj
