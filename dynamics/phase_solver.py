"""A lean batched ODE solver for phase sweeps: many small independent systems, final state only.

Every row of `y0` (N, d) is its own initial-value problem `dy/dt = field(y, params_i)` on [0, t_max], with
its own step size: Bogacki-Shampine 3(2) (FSAL, three field evaluations per step), error per row
`rms(err / (atol + rtol max(|y|, |y_new|))) <= 1`, step factor `clip(0.9 err^(-1/3), 0.2, 5)`. The rows
advance together in one `lax.while_loop` that stops when every row has reached t_max.

Why not `jax.vmap(reduced.integrate)`: diffrax's adaptive loop, vmapped, carries its whole solver state
through batched selects; for 2-state systems that costs ~50x the field evaluations (measured: 18 s against
0.4 s for a 256 x 256 SimSiam grid, 2 CPU cores). Tests check this solver against `reduced.integrate`.

Public API
- `solve_final(field, y0, params, t_max, *, rtol=1e-6, atol=1e-10, max_steps=200_000)`
  -> `(y (N, d), steps (N,), ok (N,))`; `ok` is False where a row hit max_steps or went non-finite.
"""
from functools import partial

import jax
import jax.numpy as jnp


def _rms(x):
    return jnp.sqrt(jnp.mean(x * x, axis=0))


@partial(jax.jit, static_argnames=("field", "max_steps"))
def solve_final(field, y0, params, t_max, *, rtol=1e-6, atol=1e-10, max_steps=200_000):
    """Integrate N independent systems to t_max (scalar or (N,)); `params` is a pytree whose leaves are
    (N,) (one value per row) or 0-d (shared by all rows: less memory traffic, the loop is memory-bound).
    Returns `(y_final (N, d), accepted steps (N,), ok (N,))`. Works under `jax.sharding` (rows sharded)."""
    per_row = jax.tree_util.tree_map(lambda a: 0 if jnp.ndim(a) else None, params)  # 0-d: shared
    f = jax.vmap(field, in_axes=(1, per_row), out_axes=1)  # state-major (d, N): contiguous rows
    y0 = jnp.asarray(y0).T
    t_max = jnp.broadcast_to(jnp.asarray(t_max, y0.dtype), y0.shape[1:])
    k0 = f(y0, params)
    scale = atol + rtol * jnp.abs(y0)
    d0, d1 = _rms(y0 / scale), _rms(k0 / scale)
    h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0), 1e-6)
    h0 = jnp.minimum(h0, t_max)

    def cond(c):
        t, _, _, _, n, bad = c
        return jnp.any((t < t_max) & (n < max_steps) & ~bad)

    def body(c):
        t, y, k1, h, n, bad = c
        active = (t < t_max) & (n < max_steps) & ~bad
        last = h >= t_max - t
        h = jnp.where(last, t_max - t, h)
        hc = h[None]
        k2 = f(y + 0.5 * hc * k1, params)
        k3 = f(y + 0.75 * hc * k2, params)
        y1 = y + hc * (2 / 9 * k1 + 1 / 3 * k2 + 4 / 9 * k3)
        k4 = f(y1, params)
        err = hc * (-5 / 72 * k1 + 1 / 12 * k2 + 1 / 9 * k3 - 1 / 8 * k4)  # y1 - 2nd-order solution
        e = _rms(err / (atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1))))
        e = jnp.where(jnp.isfinite(e), e, jnp.inf)
        accept = active & (e <= 1.0)
        factor = jnp.clip(0.9 * jnp.where(e > 0, e, 1e-10) ** (-1 / 3), 0.2, 5.0)
        t = jnp.where(accept, jnp.where(last, t_max, t + h), t)
        y = jnp.where(accept[None], y1, y)
        k1 = jnp.where(accept[None], k4, k1)
        h_new = jnp.where(active, h * factor, h)
        bad = bad | (active & (h_new < 1e-12 * jnp.maximum(t_max, 1.0)))
        return t, y, k1, h_new, n + accept, bad

    zeros = jnp.zeros(y0.shape[1:], y0.dtype)
    init = (zeros, y0, k0, h0, jnp.zeros(y0.shape[1:], jnp.int32), ~jnp.all(jnp.isfinite(k0), axis=0))
    t, y, _, _, n, bad = jax.lax.while_loop(cond, body, init)
    return y.T, n, (t >= t_max) & ~bad & jnp.all(jnp.isfinite(y), axis=0)
