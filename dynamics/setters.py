"""DirectPred and DirectCopy as coupled multi-mode systems (their predictor couples the modes), with the
fixed points of the per-mode reduced level where the modes decouple.

With diagonal moments and an eigen-aligned start, W = Q diag(w) and the set predictor share eigenvectors, so
the matrix ODE of `dynamics.matrix_ode` (setter at every instant, SimSiam loss) reduces per mode to
`ds_j/dt = 2 p_j s_j (l_j - c_j p_j) - 2 eta s_j`, `c_j = l_j + sigma2_j`, with the predictor read off the
predictor-input correlation `F = W (X + X') W^T`, eigenvalues `f_j = c_j s_j`, `phi(f) = f^k`
(k = 1/2 DirectPred, k = 1 DirectCopy):
- "equivariant" (default): `p_j = phi(f_j) + eps phi(f_max)`;
- "normalised" (the authors' code): `p_j = phi(f_j / f_max) + eps`.
The state is `u_j = log s_j`: `du_j/dt = 2 p_j (l_j - c_j p_j) - 2 eta`; the modes couple only through
`f_max`.

Where they decouple (eps = 0, or the top mode given). Equivariant: every mode sees the constant offset
`e = eps phi(f_max)`; with `q_j = phi(f_j)` the flow is `dq_j/dt = 2k q_j [p_j (l_j - c_j p_j) - eta]`,
`p_j = q_j + e` (the top mode: `p_1 = (1 + eps) q_1`). Its non-collapsed fixed points solve SimSiam's
`p (l - c p) = eta`: `p_j = p_pm,j = (l_j +- sqrt(l_j^2 - 4 eta c_j)) / (2 c_j)` (Tian21's roots), so the
collapse threshold is SimSiam's `l_j^2 / (4 c_j)` for any eps; with `P = max_j p_+,j` (the top mode's)
`e = eps P / (1 + eps)` and `f_j = phi^-1(p_+,j - e)`, `s_j = f_j / c_j`, a mode surviving iff
`p_+,j > e`. At eps = 0 in p-coordinates this is `dp/dt = 2k p (p (l - c p) - eta)`: SimSiam's cubic on its
invariant parabola (Tian21 Fig. 4), DirectPred's at the same speed, DirectCopy's twice as fast. The
Jacobian is triangular (the top mode does not see the others), with diagonal `2k q_j (l_j - 2 c_j p_j)`
(times 1 + eps for the top mode) at a surviving mode (negative at p_+) and
`2 [e (l_j - c_j e) - eta]` (log coordinates) at a collapsed one: collapse is unstable where
`p_-,j < e < p_+,j`.
Normalised: `f_max` itself decays, `d log f_max / dt = -2 (K + eta)`, `K = (1 + eps) (c_1 (1 + eps) - l_1)`
> 0 whenever `l_1 / c_1 < 1 + eps`, so every `s_j -> 0`; the shares `r_j = f_j / f_max` follow
`d log r_j / dt = 2 [p_j (l_j - c_j p_j) + K]` (no eta) and settle at `p_j = (l_j + sqrt(l_j^2 + 4 c_j K)) /
(2 c_j)` (SimSiam's p_+ at the negative weight decay -K), `r_j = phi^-1(p_j - eps)`.

Public API
- `SETTER_METHODS`, `SETTER_FORMS`, `SetterParams(eta, eps, lambdas (n,), sigma2s (n,))`
- `setter_field(name, form="equivariant") -> f(u (n,), params) -> du/dt` (pure, jittable, vmappable)
- `setter_predictor(name, form, u, params) -> p (n,)`: the set predictor's eigenvalues.
- `setter_fixed_point(name, params, form="equivariant") -> dict`: per-mode `p`, `s` (equivariant) or
  `p`, `share` (normalised), `surviving` (bool per mode), `top`, `threshold` (per mode, equivariant).
- `surviving_modes(u, s_tol, form)`: modes with `s_j >= s_tol` (equivariant) or `s_j / s_max >= s_tol`
  (normalised), per row of u (..., n); `relative_survivors(u, s_tol)` is the latter.
"""
import functools
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from dynamics.methods import SETTER_FORMS, check_setter_form

SETTER_METHODS = ("directpred", "directcopy")
_POWER = {"directpred": 0.5, "directcopy": 1.0}


class SetterParams(NamedTuple):
    """Weight decay, setter eps, data eigenvalues (n,), augmentation variances (n,)."""

    eta: float
    eps: float
    lambdas: jnp.ndarray
    sigma2s: jnp.ndarray


def _check(name: str, form: str) -> float:
    if name not in SETTER_METHODS:
        raise ValueError(f"no multi-mode setter system for {name!r}; allowed: {', '.join(SETTER_METHODS)}")
    check_setter_form(form)
    return _POWER[name]


def setter_predictor(name: str, form: str, u, params: SetterParams):
    """Eigenvalues p (n,) of the set predictor at `u = log s` (n,) (see the module docstring)."""
    k = _check(name, form)
    log_f = u + jnp.log(params.lambdas + params.sigma2s)
    top = jnp.max(log_f, axis=-1, keepdims=True)
    if form == "equivariant":
        return jnp.exp(k * log_f) + params.eps * jnp.exp(k * top)
    return jnp.exp(k * (log_f - top)) + params.eps  # (f_j / f_max)^k + eps


@functools.cache
def setter_field(name: str, form: str = "equivariant"):
    """`f(u, params) -> du/dt` for `u = log s` (n,) of the eigen-aligned setter method `name`."""
    _check(name, form)

    def field(u, params: SetterParams):
        c = params.lambdas + params.sigma2s
        p = setter_predictor(name, form, u, params)
        return 2.0 * p * (params.lambdas - c * p) - 2.0 * params.eta

    return field


def setter_fixed_point(name: str, params: SetterParams, form: str = "equivariant") -> dict:
    """The decoupled fixed point of the per-mode reduced level (module docstring), every surviving mode on
    its upper branch. Equivariant: `p` (n,) SimSiam's p_+ (NaN past the mode's threshold `l^2 / (4c)`),
    `s` (n,) (0 where the mode collapses), `offset` e, `threshold` (n,), `surviving`, `top` (index);
    normalised: `p`, `share` r_j = s_j c_j / (s_top c_top), `decay` (rate of log f_max), `surviving`
    (shares > 0), `top` (the consistent top mode: every share <= 1)."""
    k = _check(name, form)
    lam, s2 = np.asarray(params.lambdas, float), np.asarray(params.sigma2s, float)
    c, eta, eps = lam + s2, float(params.eta), float(params.eps)
    inv = lambda q: np.maximum(q, 0.0) ** (1.0 / k)  # phi^-1
    if form == "equivariant":
        disc = lam**2 - 4 * eta * c
        p_plus = np.where(disc >= 0, (lam + np.sqrt(np.maximum(disc, 0.0))) / (2 * c), np.nan)
        if np.all(np.isnan(p_plus)):
            return {"p": p_plus, "s": np.zeros_like(lam), "offset": 0.0, "threshold": lam**2 / (4 * c),
                    "surviving": np.zeros(lam.shape, bool), "top": None}
        top = int(np.nanargmax(p_plus))
        e = eps * p_plus[top] / (1 + eps)
        alive = np.nan_to_num(p_plus, nan=-np.inf) > e
        s = np.where(alive, inv(np.nan_to_num(p_plus) - e) / c, 0.0)
        return {"p": p_plus, "s": s, "offset": e, "threshold": lam**2 / (4 * c), "surviving": alive,
                "top": top}
    for top in np.argsort(-lam / c):  # try the likeliest top modes first
        K = (1 + eps) * (c[top] * (1 + eps) - lam[top])
        p = (lam + np.sqrt(np.maximum(lam**2 + 4 * c * K, 0.0))) / (2 * c)
        share = inv(p - eps)
        if np.all(share <= 1 + 1e-12):
            return {"p": p, "share": share, "decay": -2 * (K + eta), "surviving": share > 0, "top": int(top)}
    raise ValueError("no consistent top mode for the normalised setter")  # not reached for K > 0 spectra


def relative_survivors(u, s_tol: float):
    """Number of modes whose share `s_j / max_k s_k` is at least s_tol, for u = log s of shape (..., n)."""
    u = jnp.asarray(u)
    return jnp.sum(u - jnp.max(u, axis=-1, keepdims=True) >= jnp.log(s_tol), axis=-1)


def surviving_modes(u, s_tol: float, form: str = "equivariant"):
    """Surviving-mode count per row of u = log s (..., n): `s_j >= s_tol` for the equivariant form (its
    modes settle at finite s), `s_j / s_max >= s_tol` for the normalised one (every s_j -> 0)."""
    check_setter_form(form)
    if form == "normalised":
        return relative_survivors(u, s_tol)
    return jnp.sum(jnp.asarray(u) >= jnp.log(s_tol), axis=-1)


__all__ = ["SETTER_METHODS", "SETTER_FORMS", "SetterParams", "setter_field", "setter_predictor",
           "setter_fixed_point", "surviving_modes", "relative_survivors"]
