"""SGD on sampled data, Euclidean or cosine loss: the level below the matrix ODE (docs/theory.md section 2).

One step at learning rate `lr` draws a batch (Gaussian `x0 ~ N(0, X)`, noise `n_i ~ N(0, X')`) and moves
every trained matrix by `-lr (alpha_M dL/dM + wd M)`, every EMA target by `dt beta (S - T)`, so that model
time `t = lr * steps` and `eta = wd` match the ODE. Two losses (`LOSSES`):
- `euclidean` (default): the method's terms `1/2 E||A x_a - sg(T x_b)||^2` on the batch's view moments,
  with which the expected loss IS the batch loss. `batch=None` uses the exact expected moments at every
  step (deterministic discrete gradient descent: the Euler scheme of the ODE, error O(lr)).
- `cosine`: each term `weight * 1/2 ||A x_a - sg(T x_b)||^2` becomes `weight * D`, `D = -(1/B) sum_k
  cos(A x_a^k, sg(T x_b^k))`, normalised per sample as the CNN trainers' `neg_cos` (note: the CNN PhiNet
  keeps an MSE on its clean-view term; here every term is cosine). It needs sampled views (no `batch=None`:
  the expectation of a cosine has no moment form). Each term is invariant to the scale of every matrix in
  it, so the gradient is orthogonal to each matrix, and coupled weight decay only shrinks norms: with
  `W_k = (1 - lr wd)^k V_k` the directions `V_k` follow the wd = 0 run at the rising rate
  `lr (1 - lr wd)^-(2k+1)` (exact for methods without EMA targets or setter; tested). The matrix ODE has
  no cosine form.
With `momentum` mu (heavy ball, as torch SGD: `v <- mu v + dM/dt`, `M <- M + lr v`, weight decay inside
`v`) one step advances model time by `dt = lr / (1 - mu)` (the steady-state step), so
`t = lr * steps / (1 - mu)`; EMA targets move by `dt beta (S - T)` without momentum. The buffers `v_<M>`
start at zero and travel in the state. A setter method keeps `F_hat <- rho F_hat + (1 - rho) F_batch` every
step (`F_batch = W C11_batch W^T`, unnormalised, for either loss) and sets `Wp` from it every `hp.freq` steps.
Step k uses the key `fold_in(key, k)`: runs are deterministic and the same at any `record_every`, and the
two losses see the same batches.

Public API
- `LOSSES`; `sample_views(key, spectrum, batch) -> (3, B, n)` views `x0, x1, x2` (their moments are
  `moments.sample_moments` with the same key); `cosine_loss(method, mats, views, hp)`.
- `sgd_state(method, state0, C, hp, momentum=0.0)`: add `F_hat`, the set `Wp` (setter methods) and zero
  momentum buffers `v_<M>` (momentum > 0).
- `sgd_step(method, hp, spectrum, lr, batch, loss="euclidean", momentum=0.0)(state, key, k) -> state`.
- `run_sgd(method, hp, spectrum, state0, key, *, lr, n_steps, batch=None, record_every=1, start_step=0,
  loss="euclidean", momentum=0.0)` -> `(ts (R+1,), trajectory dict of (R+1, ...))`,
  R = n_steps // record_every, `ts = lr / (1 - momentum) * step`; jitted `lax.scan`. To continue a run in
  chunks pass the last recorded state (it carries `F_hat` and the buffers) and `start_step`.
"""
from functools import partial

import jax
import jax.numpy as jnp

from dynamics.matrix_ode import gradient_step_field
from dynamics.methods import Hyper, Method, predictor_input_correlation, set_predictor
from dynamics.moments import Spectrum, expected_moments, sample_moments

LOSSES = ("euclidean", "cosine")


def sample_views(key: jax.Array, spectrum: Spectrum, batch: int) -> jax.Array:
    """Views `(x0, x1, x2)` of one batch, shape (3, B, n): `x0 = sqrt(X) z0`, `x_i = x0 + sqrt(X') z_i`,
    drawn exactly as `sample_moments` draws them (same key, same batch)."""
    lam, s2 = (jnp.asarray(v) for v in spectrum)
    z = jax.random.normal(key, (3, batch, lam.shape[0]), dtype=lam.dtype)
    x0 = z[0] * jnp.sqrt(lam)
    return jnp.stack([x0, x0 + z[1] * jnp.sqrt(s2), x0 + z[2] * jnp.sqrt(s2)])


def _cos(u, v, tiny=1e-30):
    """Per-row cosine of (B, n) arrays; finite (0) for a zero row."""
    return jnp.sum(u * v, -1) * jax.lax.rsqrt(jnp.maximum(jnp.sum(u * u, -1) * jnp.sum(v * v, -1), tiny))


def cosine_loss(method: Method, mats: dict, views: jax.Array, hp: Hyper) -> jax.Array:
    """`sum_terms weight * (-(1/B) sum_k cos(A x_a^k, sg(T x_b^k)))`, `A = M_k ... M_1` the term's online
    chain, views (3, B, n1) from `sample_views`."""
    total = 0.0
    for term in method.terms:
        a, b = term.views
        online = views[a]
        for name in reversed(term.online):  # x -> M_1 x -> M_2 M_1 x ...: rows are samples
            online = online @ mats[name].T
        T = jax.lax.stop_gradient(mats[term.target]) if term.stop_gradient else mats[term.target]
        weight = 1.0 if term.weight is None else getattr(hp, term.weight)
        total = total - weight * jnp.mean(_cos(online, views[b] @ T.T))
    return total


def sgd_state(method: Method, state0: dict, C: jax.Array, hp: Hyper, momentum: float = 0.0) -> dict:
    """The SGD state: `state0`, plus `F_hat` (started at the expected F) and `Wp` for a setter method, plus
    zero buffers `v_<M>` for the trained matrices when momentum > 0 (entries already there are kept)."""
    state = dict(state0)
    if method.setter is not None and "F_hat" not in state:
        F = predictor_input_correlation(state["W"], C)
        state.update(F_hat=F, Wp=set_predictor(method, F, hp))
    if momentum > 0:
        for name in method.trained:
            state.setdefault(f"v_{name}", jnp.zeros_like(state[name]))
    return state


def _check_options(loss: str, batch: int | None, momentum: float) -> None:
    """ValueError naming the bad value: an unknown loss, the cosine loss without sampled views, momentum
    outside [0, 1)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if loss == "cosine" and batch is None:
        raise ValueError("the cosine loss needs sampled views; allowed: batch >= 1 (not None)")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum {momentum} is out of range; allowed: 0 <= momentum < 1")


def sgd_step(method: Method, hp: Hyper, spectrum: Spectrum, lr: float, batch: int | None,
             loss: str = "euclidean", momentum: float = 0.0):
    """`step(state, key, k) -> state`: one SGD step on a fresh batch (or the expected moments)."""
    _check_options(loss, batch, momentum)
    C_exact = expected_moments(spectrum)
    dt = lr / (1.0 - momentum)
    ema = dict(method.ema)

    def step(state, key, k):
        if batch is None:
            C, views = C_exact, None
        elif loss == "cosine":
            views = sample_views(jax.random.fold_in(key, k), spectrum, batch)
            C = jnp.einsum("aki,bkj->abij", views, views) / batch
        else:
            C, views = sample_moments(jax.random.fold_in(key, k), spectrum, batch), None
        core = {n: state[n] for n in method.matrices}
        mats = core if method.setter is None else {**core, "Wp": state["Wp"]}
        fn = None if loss == "euclidean" else (lambda m: cosine_loss(method, m, views, hp))
        d = gradient_step_field(method, hp, mats, C, core, loss=fn)
        new = {}
        for n, v in core.items():
            if n in ema or momentum == 0:
                new[n] = v + (dt if n in ema else lr) * d[n]
            else:
                new[f"v_{n}"] = momentum * state[f"v_{n}"] + d[n]
                new[n] = v + lr * new[f"v_{n}"]
        if method.setter is not None:
            F_hat = hp.rho * state["F_hat"] + (1 - hp.rho) * predictor_input_correlation(state["W"], C)
            Wp = jnp.where(k % hp.freq == 0, set_predictor(method, F_hat, hp), state["Wp"])
            new.update(F_hat=F_hat, Wp=Wp)
        return new

    return step


_STATIC = ("method", "hp", "spectrum_key", "lr", "n_records", "record_every", "batch", "loss", "momentum")


@partial(jax.jit, static_argnames=_STATIC)
def _run(method, hp, spectrum_key, state, key, start, lr, n_records, record_every, batch, loss, momentum):
    step = sgd_step(method, hp, Spectrum(*map(jnp.asarray, spectrum_key)), lr, batch, loss, momentum)

    def block(state, r):
        def inner(state, i):
            return step(state, key, start + r * record_every + i), None

        state, _ = jax.lax.scan(inner, state, jnp.arange(record_every))
        return state, state

    _, traj = jax.lax.scan(block, state, jnp.arange(n_records))
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), state, traj)


def run_sgd(method: Method, hp: Hyper, spectrum: Spectrum, state0: dict, key, *, lr: float, n_steps: int,
            batch: int | None = None, record_every: int = 1, start_step: int = 0, loss: str = "euclidean",
            momentum: float = 0.0):
    """Run `n_steps` SGD steps from `state0`; returns `(ts, trajectory)` recorded every `record_every` steps
    (model times `t = lr * step / (1 - momentum)`, the first entry the start; step k draws its batch from
    `fold_in(key, k)`)."""
    if lr <= 0 or n_steps < 1 or record_every < 1 or n_steps % record_every:
        raise ValueError(f"need lr > 0, n_steps >= 1 divisible by record_every >= 1; got lr={lr}, "
                         f"n_steps={n_steps}, record_every={record_every}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (exact moments), got {batch}")
    _check_options(loss, batch, momentum)
    state = sgd_state(method, state0, expected_moments(spectrum), hp, momentum)
    key_spec = tuple(tuple(float(v) for v in arr) for arr in spectrum)
    n_records = n_steps // record_every
    traj = _run(method, hp, key_spec, state, key, start_step, float(lr), n_records, record_every, batch, loss,
                float(momentum))
    ts = lr / (1.0 - momentum) * (start_step + record_every * jnp.arange(n_records + 1))
    return ts, traj
