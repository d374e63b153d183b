"""The project's two lean ODE solvers: `solve_saved` (one pytree state, saved at given times: the matrix ODE's
engine) and `solve_final` (many small independent systems, final states only: the phase sweeps' engine).

Both are adaptive explicit Runge-Kutta loops in one `lax.while_loop`, written here rather than taken from
diffrax (which `dynamics.reduced` still uses) for the tracing, compilation and per-step costs measured below;
`tests/test_dynamics_solvers.py` checks both against diffrax, closed forms and scipy.

## `solve_saved`: Dormand-Prince 5(4), one pytree, saved at given times

Dormand-Prince 5(4) (FSAL: six new field evaluations per step), error `rms(err / (atol + rtol max(|y|,
|y_new|)))` over every component, PI step control (Hairer's `0.9 e^(-0.7/5) e_prev^(0.4/5)`, clipped to
[0.2, 10]; a rejected step shrinks by `max(0.2, 0.9 e^(-1/5))`), steps clipped to land exactly on each save
time (no interpolation). The six stages run as a `lax.fori_loop` over the Butcher tableau with one field
call inside, so the field is compiled twice (initial slope, stage) rather than seven times.

Why not diffrax: for the default `python -m dynamics.simulate` its Tsit5 + PIDController + SaveAt(ts)
spends ~0.4 s tracing and ~1.1 s compiling per method, and its per-step overhead doubles the run time of the
stiffest methods (measured by benchmarks/simulate_speed.py); this loop traces in ~0.05 s and compiles in
~0.6 s.

## `solve_final`: batched Bogacki-Shampine 3(2), final states only

Every row of `y0` (N, d) is its own initial-value problem `dy/dt = field(y, params_i)` on [0, t_max], with
its own step size: Bogacki-Shampine 3(2) (FSAL, three field evaluations per step), error per row
`rms(err / (atol + rtol max(|y|, |y_new|))) <= 1`, step factor `clip(0.9 err^(-1/3), 0.2, 5)`.

The rows are integrated in `slots` working slots that advance together in one `lax.while_loop` (one
compilation per chunk size). Every `segment` steps:
- *settled rows stop* (`settle=True`). Near a stable fixed point an explicit method's step is capped by
  stability (h |lambda| < 2.5), so a row that has long converged would keep stepping to t_max (on the
  default SimSiam grid most rows are at their fixed point by t ~ 30 of t_max = 2400). Newton's method on
  the field from the row's state gives y*; if y is within the error tolerance of y* (the quadratic remainder
  `J^-1 (f(y) - J (y - y*))` below tolerance), f(y*) = 0 to tolerance over the remaining time, and the
  linearisation contracts over it (`M = expm(J(y*) (t_max - t))`, `||M||_F <= 1/2`: every eigenvalue of J
  decays, and fast enough), the row's final state is `y* + M (y - y*)`, exact to second order in a deviation
  already below the tolerance. Collapsed rows (y* = 0) settle the same way; a row near a saddle or in a
  bottleneck (an eigenvalue of J near zero or positive) keeps stepping. The remainder test presumes a smooth
  field: the setter fields of DirectPred / DirectCopy take a max over modes (a Newton step can land across
  the kink), so their sweeps pass `settle=False`.
- *finished slots are refilled* with the next rows waiting (`slots < N`): a row that settles or reaches
  t_max writes its final state out and its slot starts the next row. The loop's work is then the sum of the
  rows' steps rather than (number of rows) x (the slowest row's steps), and no array changes size, so
  nothing compiles again.

Why not `jax.vmap(reduced.integrate)`: diffrax's adaptive loop, vmapped, carries its whole solver state
through batched selects, and every row runs to t_max (`benchmarks/phase_speed.py --diffrax`, 256 x 256
SimSiam grid, 2 CPU cores: 6.1 s against 0.36 s).

## Public API

- `solve_saved(field, y0, ts, *, rtol, atol, max_steps) -> (ys, reached, steps)`: `field(t, y, args)` (the
  diffrax convention, `t` and `args` unused by autonomous fields) on a pytree `y0`; `ys` has a leading
  time axis (T, ...); `reached` is how many of the T save times were reached (T unless the loop ran out of
  `max_steps` or the state went non-finite); `steps` counts attempted steps. Jittable; float64 expected.
- `solve_final(field, y0, params, t_max, *, rtol=1e-6, atol=1e-10, max_steps=200_000, settle=False,
  slots=None, segment=64)` -> `(y (N, d), steps (N,), ok (N,))`; `ok` is False where a row hit max_steps or
  went non-finite; `steps` counts accepted steps (up to settling). `slots=None`: one slot per row.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

_A = np.zeros((7, 7))  # stage j uses row j; row 6 is the 5th-order solution (FSAL: stage 7 = f(y_new))
for _j, _row in enumerate(((1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
                           (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
                           (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
                           (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))):
    _A[_j + 1, :len(_row)] = _row
_E = np.array((71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40))  # 5th - 4th


def solve_saved(field, y0, ts, *, rtol, atol, max_steps):
    """Integrate `dy/dt = field(t, y, None)` from `y0` at `ts[0]`, saving at every time of `ts` (module
    docstring). Returns `(ys, reached, steps)`."""
    flat0, unravel = ravel_pytree(y0)
    f = lambda y: ravel_pytree(field(0.0, unravel(y), None))[0]
    A, E = jnp.asarray(_A, flat0.dtype), jnp.asarray(_E, flat0.dtype)
    ts = jnp.asarray(ts, flat0.dtype)
    n_save, dim = ts.shape[0], flat0.shape[0]
    k0 = f(flat0)
    scale = atol + rtol * jnp.abs(flat0)
    d0, d1 = jnp.sqrt(jnp.mean((flat0 / scale) ** 2)), jnp.sqrt(jnp.mean((k0 / scale) ** 2))
    h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0), 1e-6)
    ys = jnp.zeros((n_save, dim), flat0.dtype).at[0].set(flat0)

    def cond(c):
        _, _, _, h, _, i, n, _ = c
        return (i < n_save) & (n < max_steps) & jnp.isfinite(h) & (h > 0)

    def body(c):
        t, y, k1, h, e_prev, i, n, ys = c
        target = ts[i]
        hit = h >= target - t
        h = jnp.where(hit, target - t, h)
        K = jnp.zeros((7, dim), y.dtype).at[0].set(k1)
        K = jax.lax.fori_loop(1, 7, lambda j, K: K.at[j].set(f(y + h * (A[j] @ K))), K)
        y1 = y + h * (A[6] @ K)
        e = jnp.sqrt(jnp.mean((h * (E @ K) / (atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1)))) ** 2))
        e = jnp.where(jnp.all(jnp.isfinite(y1)) & jnp.isfinite(e), e, jnp.inf)
        ok = e <= 1.0
        safe = jnp.maximum(e, 1e-10)
        grow = jnp.clip(0.9 * safe ** (-0.7 / 5) * e_prev ** (0.4 / 5), 0.2, 10.0)
        shrink = jnp.clip(0.9 * safe ** (-1 / 5), 0.2, 1.0)
        save = ok & hit
        ys = jax.lax.cond(save, lambda a: a.at[i].set(y1), lambda a: a, ys)
        return (jnp.where(ok, jnp.where(hit, target, t + h), t), jnp.where(ok, y1, y),
                jnp.where(ok, K[6], k1), jnp.where(ok, h * grow, h * shrink), jnp.where(ok, safe, e_prev),
                i + save, n + 1, ys)

    init = (ts[0], flat0, k0, jnp.where(jnp.all(jnp.isfinite(k0)), h0, jnp.nan),
            jnp.asarray(1.0, flat0.dtype), jnp.int32(1), jnp.int32(0), ys)
    _, _, _, _, _, reached, steps, ys = jax.lax.while_loop(cond, body, init)
    return jax.vmap(unravel)(ys), reached, steps


# ----------------------------------------------------------- solve_final: batched Bogacki-Shampine 3(2)

def _rms(x):
    return jnp.sqrt(jnp.mean(x * x, axis=0))


def _linsolve(a, b):
    """x = a^-1 b for one small (d x d) matrix: Gaussian elimination unrolled over the static d, without
    pivoting (batched LAPACK calls cost more than the arithmetic at this size). A zero pivot gives a
    non-finite x, which the callers treat as "not settled"; `b` may be (d,) or (d, m)."""
    d = a.shape[0]
    a, b = [a[i] for i in range(d)], [b[i] for i in range(d)]
    for i in range(d):
        inv = 1.0 / a[i][i]
        a[i], b[i] = a[i] * inv, b[i] * inv
        for j in range(d):
            if j != i:
                a[j], b[j] = a[j] - a[j][i] * a[i], b[j] - a[j][i] * b[i]
    return jnp.stack(b)


def _expm(a):
    """exp(a) of one small square matrix by scaling and squaring of the Cayley (Pade 1,1) map: with
    ||a / 2^k|| <= 2^-16 its relative error is about ||a|| 2^-32 / 12 (truncation) plus ||a|| 2^16 eps
    (rounding), together ~3e-11 ||a||: far below the tolerances it serves here. A-stable: a matrix whose
    eigenvalues decay maps to one that shrinks. Cheaper to compile than `jax.scipy.linalg.expm` (Pade 13
    with branches)."""
    norm = jnp.max(jnp.sum(jnp.abs(a), axis=0))
    k = jnp.maximum(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300))), 0.0) + 16.0
    k = jnp.where(jnp.isfinite(k), k, 0.0).astype(jnp.int32)
    b = a * jnp.exp2(-k.astype(a.dtype)) / 2
    eye = jnp.eye(a.shape[0], dtype=a.dtype)
    r = _linsolve(eye - b, eye + b)
    return jax.lax.fori_loop(0, k, lambda _, m: m @ m, r)


def _settled_end(field, y, p, tau, rtol, atol, newton=4):
    """`(ok, y_end)` for one row (module docstring): ok where the row sits at a contracting fixed point to
    tolerance, y_end its state after the remaining time `tau`."""
    jac = jax.jacfwd(field)

    def step(x, _):
        dx = _linsolve(jac(x, p), -field(x, p))
        return x + jnp.where(jnp.all(jnp.isfinite(dx)), dx, 0.0), None

    star = jax.lax.scan(step, y, None, length=newton)[0]
    scale = atol + rtol * jnp.abs(star)
    J = jac(star, p)
    M = _expm(J * tau)
    gap = y - star
    nonlinear = _linsolve(J, field(y, p) - J @ gap)  # J^-1 (f(y) - J (y - y*)) = O(|y - y*|^2)
    near = jnp.sqrt(jnp.mean((nonlinear / scale) ** 2)) <= 1.0
    still = jnp.sqrt(jnp.mean((field(star, p) * tau / scale) ** 2)) <= 1.0
    shrinks = jnp.sqrt(jnp.sum(M * M)) <= 0.5
    ok = near & still & shrinks & jnp.all(jnp.isfinite(M)) & jnp.all(jnp.isfinite(star))
    return ok, star + M @ gap


@partial(jax.jit, static_argnames=("field", "max_steps", "settle", "slots", "segment"))
def solve_final(field, y0, params, t_max, *, rtol=1e-6, atol=1e-10, max_steps=200_000, settle=False,
                slots=None, segment=64):
    """Integrate N independent systems to t_max (scalar or (N,)); `params` is a pytree whose leaves are
    (N,) (one value per row) or 0-d (shared by all rows: less memory traffic, the loop is memory-bound).
    Returns `(y_final (N, d), accepted steps (N,), ok (N,))` (module docstring: settling, slots). Works
    under `jax.sharding` (rows sharded)."""
    y0 = jnp.asarray(y0)
    n_rows, dim = y0.shape
    width = n_rows if slots is None else max(1, min(int(slots), n_rows))
    per_row = jax.tree_util.tree_map(lambda a: 0 if jnp.ndim(a) else None, params)  # 0-d: shared
    f = jax.vmap(field, in_axes=(1, per_row), out_axes=1)  # state-major (d, W): contiguous slots
    rows_y0 = y0.T  # (d, N)
    rows_t = jnp.broadcast_to(jnp.asarray(t_max, y0.dtype), (n_rows,))

    def load(rows):
        """Slot state of rows `rows` (W,) at t = 0."""
        y = rows_y0[:, rows]
        p = jax.tree_util.tree_map(lambda a: a[rows] if jnp.ndim(a) else a, params)
        tm = rows_t[rows]
        k0 = f(y, p)
        scale = atol + rtol * jnp.abs(y)
        d0, d1 = _rms(y / scale), _rms(k0 / scale)
        h0 = jnp.where((d0 > 1e-5) & (d1 > 1e-5), 0.01 * d0 / jnp.where(d1 > 0, d1, 1.0), 1e-6)
        zeros = jnp.zeros(rows.shape, y0.dtype)
        return (zeros, y, k0, jnp.minimum(h0, tm), jnp.zeros(rows.shape, jnp.int32),
                ~jnp.all(jnp.isfinite(k0), axis=0), p, tm)

    def running(slot, live):
        t, _, _, _, n, bad, _, tm = slot
        return live & (t < tm) & (n < max_steps) & ~bad

    def advance(slot, live):
        t, y, k1, h, n, bad, p, tm = slot
        active = running(slot, live)
        last = h >= tm - t
        h = jnp.where(last, tm - t, h)
        hc = h[None]
        k2 = f(y + 0.5 * hc * k1, p)
        k3 = f(y + 0.75 * hc * k2, p)
        y1 = y + hc * (2 / 9 * k1 + 1 / 3 * k2 + 4 / 9 * k3)
        k4 = f(y1, p)
        err = hc * (-5 / 72 * k1 + 1 / 12 * k2 + 1 / 9 * k3 - 1 / 8 * k4)  # y1 - 2nd-order solution
        e = _rms(err / (atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y1))))
        e = jnp.where(jnp.isfinite(e), e, jnp.inf)
        accept = active & (e <= 1.0)
        factor = jnp.clip(0.9 * jnp.where(e > 0, e, 1e-10) ** (-1 / 3), 0.2, 5.0)
        t = jnp.where(accept, jnp.where(last, tm, t + h), t)
        y = jnp.where(accept[None], y1, y)
        k1 = jnp.where(accept[None], k4, k1)
        h_new = jnp.where(active, h * factor, h)
        bad = bad | (active & (h_new < 1e-12 * jnp.maximum(tm, 1.0)))
        return t, y, k1, h_new, n + accept, bad, p, tm

    def turnover(c):
        """Settle, write out the finished slots, fill the free ones with the next rows."""
        t, y, k1, h, n, bad, p, tm = c["slot"]
        if settle:
            ok, y_end = jax.vmap(lambda yy, pp, tau: _settled_end(field, yy, pp, tau, rtol, atol),
                                 in_axes=(1, per_row, 0), out_axes=(0, 1))(y, p, tm - t)
            ok = ok & running(c["slot"], c["live"])
            t, y = jnp.where(ok, tm, t), jnp.where(ok[None], y_end, y)
        c = {**c, "slot": (t, y, k1, h, n, bad, p, tm)}
        done = c["live"] & ~running(c["slot"], c["live"])
        at = jnp.where(done, c["rows"], n_rows)  # n_rows: out of bounds, dropped
        good = (t >= tm) & ~bad & jnp.all(jnp.isfinite(y), axis=0)
        out = (c["out_y"].at[:, at].set(y, mode="drop"), c["out_n"].at[at].set(n, mode="drop"),
               c["out_ok"].at[at].set(good, mode="drop"))
        free = ~c["live"] | done
        new = c["next"] + jnp.cumsum(free, dtype=jnp.int32) - 1
        take = free & (new < n_rows)
        fresh = load(jnp.where(take, new, 0))

        def pick(a, b, slot_axis):  # the fresh row where a slot was taken
            if not jnp.ndim(a):
                return a  # a parameter shared by all rows
            shape = [1] * jnp.ndim(a)
            shape[slot_axis] = -1
            return jnp.where(take.reshape(shape), b, a)
        *state, p_old, tm_old = c["slot"]
        slot = (*(pick(a, b, -1) for a, b in zip(state, fresh[:6])),  # (W,), (d, W): slots last
                jax.tree_util.tree_map(lambda a, b: pick(a, b, 0), p_old, fresh[6]),  # rows first
                pick(tm_old, fresh[7], -1))
        return {**c, "slot": slot, "rows": jnp.where(take, new, c["rows"]),
                "live": take | (c["live"] & ~done),
                "next": jnp.minimum(c["next"] + jnp.sum(free, dtype=jnp.int32), n_rows),
                "out_y": out[0], "out_n": out[1], "out_ok": out[2]}

    def body(c):  # fill the free slots, then `segment` steps that carry only the slots
        c = turnover(c)
        live = c["live"]
        return {**c, "slot": jax.lax.fori_loop(0, segment, lambda _, slot: advance(slot, live), c["slot"])}

    zero = jnp.zeros(width, y0.dtype)
    empty = jax.tree_util.tree_map(lambda a: jnp.zeros((width,) + jnp.shape(a)[1:], jnp.asarray(a).dtype)
                                   if jnp.ndim(a) else a, params)  # per-row leaves: rows first
    slot = (zero, jnp.zeros((dim, width), y0.dtype), jnp.zeros((dim, width), y0.dtype), zero,
            jnp.zeros(width, jnp.int32), jnp.zeros(width, bool), empty, zero)
    init = {"slot": slot, "rows": jnp.zeros(width, jnp.int32), "live": jnp.zeros(width, bool),
            "next": jnp.int32(0), "out_y": jnp.full((dim, n_rows), jnp.nan, y0.dtype),
            "out_n": jnp.zeros(n_rows, jnp.int32), "out_ok": jnp.zeros(n_rows, bool)}
    c = jax.lax.while_loop(lambda c: jnp.any(c["live"]) | (c["next"] < n_rows), body, init)
    return c["out_y"].T, c["out_n"], c["out_ok"]
