"""Per-mode reduced systems, derived with sympy from the methods' own loss terms (docs/theory.md section 3).

For eigen-aligned states every matrix acts on mode j as a scalar: `W -> w`, `Wp -> p`, `Wg -> g`, targets
`sg(W) -> tau w` (tau a fixed parameter, 1 for SimSiam; `tau != 1` is "BYOL at fixed tau"), `Wa -> tau w`
and `Wm -> tau_m w` with tau, tau_m state variables. Each loss term becomes
`1/2 E[(a x_a - t x_b)^2]` with `E[x0^2] = lambda_j`, `E[n_i^2] = sigma2`, all cross moments zero; the
scalar flow (`-alpha dL/dm - eta m`, stop-gradient = differentiate with the target held fixed) is rewritten
for `s = w^2` (`ds/dt = 2 w dw/dt`) and the EMA ratios (`dtau/dt = beta (1 - tau) - tau (dw/dt) / w`), then
lambdified to JAX. For SimSiam this reproduces Tian21: `dp/dt = alpha_p s (tau l - c p) - eta p`,
`ds/dt = 2 p s (tau l - c p) - 2 eta s`, `c = l + sigma2`. For phinet-eyeg (Wg = I) and simsiam-scaled
(loss x (1 + lam)) it gives the same system, SimSiam's with the gradient terms times `1 + lam`.

Public API (all right-hand sides are pure, jittable and vmappable over `Params` and states)
- `Params(eta, alpha_p, alpha_g, lam, beta, lambda_j, sigma2, tau)`: one mode's parameters (NamedTuple).
- `REDUCED_METHODS` (built-in), `has_reduced(name)` (also registered methods); `state_names(name)`:
  e.g. ("p", "s") for simsiam, ("p", "g", "s", "tau_m") for xphinet.
- `derive(name) -> dict[state, sympy expr]` (cached); `reduced_field(name) -> f(y, params)`.
- `integrate(name, y0, params, ts, *, rtol=1e-9, atol=1e-12)`: diffrax Tsit5, (T, n_states); vmappable.
- `trajectory(name, y0, params, ts)`: one solve with scipy on the numpy-lambdified field (no compilation).
- `collapsed(name, y, s_tol=1e-6)`: True where the mode's s has fallen below s_tol (vmappable).
"""
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from dynamics.methods import BUILTIN_METHODS, METHODS, RATES, get_method

REDUCED_METHODS = ("simsiam", "byol", "phinet", "xphinet", "phinet-eyeg", "simsiam-scaled", "simsiam-nosg",
                   "simsiam-nopred")
_SCALAR = {"Wp": "p", "Wg": "g"}
_EMA_STATE = {"Wa": "tau", "Wm": "tau_m"}


class Params(NamedTuple):
    """One mode: weight decay, rate ratios, PhiNet weight, EMA rate, data eigenvalue, noise, target scale."""

    eta: float = 0.0
    alpha_p: float = 1.0
    alpha_g: float = 1.0
    lam: float = 1.0
    beta: float = 0.4
    lambda_j: float = 1.0
    sigma2: float = 0.0
    tau: float = 1.0


_P = {name: sp.Symbol(name, real=True) for name in Params._fields}
_P["tau"] = sp.Symbol("tau_fixed", positive=True)


def state_names(name: str) -> tuple:
    """Ordered state variables of the reduced system of `name`."""
    method = _method(name)
    trained = tuple(_SCALAR[m] for m in ("Wp", "Wg") if m in method.trained)
    return trained + ("s",) + tuple(_EMA_STATE[t] for t, _ in method.ema)


def has_reduced(name: str) -> bool:
    """Whether `name` has a per-mode system here: a built-in of `REDUCED_METHODS`, or any registered method
    without a predictor setter (`methods.register`)."""
    return name in REDUCED_METHODS or (name in METHODS and METHODS[name].setter is None
                                       and name not in BUILTIN_METHODS)


def _method(name: str):
    if not has_reduced(name):
        allowed = [n for n in METHODS if has_reduced(n)]
        raise ValueError(f"no per-mode reduced system for {name!r}; allowed: {', '.join(allowed)}")
    return get_method(name)


def _expectation(expr, x0, n1, n2):
    """E of a quadratic form in x0 ~ (0, lambda_j), n1, n2 ~ (0, sigma2), independent."""
    moment = {(2, 0, 0): _P["lambda_j"], (0, 2, 0): _P["sigma2"], (0, 0, 2): _P["sigma2"]}
    poly = sp.Poly(sp.expand(expr), x0, n1, n2)
    return sum(coeff * moment.get(monom, 0) for monom, coeff in poly.terms())


def _scalar_loss(method, sym, targets):
    x0, n1, n2 = sp.symbols("x0 n1 n2", real=True)
    views = {0: x0, 1: x0 + n1, 2: x0 + n2}
    loss = 0
    for term in method.terms:
        online = sp.Mul(*(sym[m] for m in term.online))
        target = targets[term.target] if term.stop_gradient else sym[term.target]
        weight = 1 if term.weight is None else _P[term.weight]
        a, b = term.views
        residual = online * views[a] - target * views[b]
        loss += weight * sp.Rational(1, 2) * _expectation(residual**2, x0, n1, n2)
    return loss


def derive(name: str) -> dict:
    """Symbolic per-mode right-hand sides `{state: d state/dt}` of method `name` (sympy expressions)."""
    return _derive(_method(name))


@functools.cache  # keyed on the definition, so a method registered again under its name is derived again
def _derive(method) -> dict:
    w, s = sp.Symbol("w", positive=True), sp.Symbol("s", positive=True)
    sym = {"W": w, **{m: sp.Symbol(v, real=True) for m, v in _SCALAR.items()}}
    ratio = {t: sp.Symbol(_EMA_STATE[t], real=True) for t, _ in method.ema}
    held = {"W": sp.Symbol("w_sg", positive=True), **{t: sp.Symbol(t + "_sg", real=True) for t in ratio}}
    loss = _scalar_loss(method, sym, held)
    to_state = {held["W"]: _P["tau"] * w, **{held[t]: ratio[t] * w for t in ratio}}
    flow = {}
    for m in method.trained:
        rate = 1 if RATES[m] is None else _P[RATES[m]]
        flow[m] = (-rate * sp.diff(loss, sym[m]) - _P["eta"] * sym[m]).subs(to_state)
    rhs = {_SCALAR[m]: flow[m] for m in ("Wp", "Wg") if m in flow}
    rhs["s"] = sp.expand(2 * w * flow["W"])
    for t, _ in method.ema:
        rhs[_EMA_STATE[t]] = _P["beta"] * (1 - ratio[t]) - ratio[t] * sp.expand(flow["W"] / w)
    return {k: sp.expand(sp.expand(v).subs(w, sp.sqrt(s))) for k, v in rhs.items()}


def reduced_field(name: str):
    """`f(y, params) -> dy/dt` for y (n_states,) in `state_names(name)` order and a `Params`."""
    return _field(_method(name))


@functools.cache
def _field(method):
    names = state_names(method.name)
    exprs = _derive(method)
    args = [sp.Symbol("s", positive=True) if n == "s" else sp.Symbol(n, real=True) for n in names]
    fn = sp.lambdify([args, list(_P.values())], [exprs[n] for n in names], modules="jax")

    def field(y, params):
        y = jnp.asarray(y)
        out = fn([y[i] for i in range(len(names))], list(params))
        return jnp.stack([jnp.broadcast_to(jnp.asarray(o, y.dtype), ()) for o in out])

    return field


@functools.partial(jax.jit, static_argnames=("name", "rtol", "atol", "max_steps"))
def integrate(name: str, y0, params: Params, ts, *, rtol=1e-9, atol=1e-12, max_steps=200_000):
    """Solve the reduced ODE from y0 at ts[0], saving at ts (T,); returns (T, n_states). Vmappable over
    y0, params and ts (use float64: `jax.enable_x64(True)`)."""
    import diffrax  # here, not at the top: dynamics.simulate and the phase sweeps never need it

    field = reduced_field(name)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: field(y, args)), diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
        y0=jnp.asarray(y0), args=params, saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps)
    return sol.ys


@functools.cache
def _numpy_field(method):
    names = state_names(method.name)
    args = [sp.Symbol("s", positive=True) if n == "s" else sp.Symbol(n, real=True) for n in names]
    return sp.lambdify([args, list(_P.values())], [_derive(method)[n] for n in names], modules="numpy")


def trajectory(name: str, y0, params: Params, ts, *, rtol=1e-10, atol=1e-12):
    """The reduced ODE from y0 (n_states,) at ts[0], saved at ts (T,), with scipy (DOP853) on the sympy
    field lambdified to numpy: no compilation, so a first call takes milliseconds (interactive use; many
    points at once: `integrate` under `jax.vmap`). Returns (T, n_states); raises RuntimeError if the solve
    fails."""
    from scipy.integrate import solve_ivp

    fn, values = _numpy_field(_method(name)), [float(v) for v in params]
    ts = np.asarray(ts, float)
    sol = solve_ivp(lambda t, y: fn(y, values), (ts[0], ts[-1]), np.asarray(y0, float), method="DOP853",
                    t_eval=ts, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"{name}: the reduced ODE solve failed: {sol.message}")
    return sol.y.T


def collapsed(name: str, y, s_tol: float = 1e-6):
    """True where the mode collapsed: `s < s_tol` in a final state y (..., n_states)."""
    return jnp.asarray(y)[..., state_names(name).index("s")] < s_tol
