"""DirectPred and DirectCopy as coupled multi-mode systems (their predictor couples the modes).

With diagonal moments and an eigen-aligned start, W = Q diag(w) and the set predictor share eigenvectors, so
the matrix ODE of `dynamics.matrix_ode` (setter at every instant, SimSiam loss) reduces per mode to
`ds_j/dt = 2 p_j s_j (l_j - c_j p_j) - 2 eta s_j`, `c_j = l_j + sigma2_j`, with the predictor read off the
predictor-input correlation `F = W (X + X') W^T`, eigenvalues `f_j = c_j s_j`:
DirectPred `p_j = sqrt(f_j / max_k f_k) + eps`, DirectCopy `p_j = f_j / max_k f_k + eps`.
The state is `u_j = log s_j`: `du_j/dt = 2 p_j (l_j - c_j p_j) - 2 eta`. Log coordinates matter here because
with the normalised setter the top mode has `p = 1 + eps > l / c`, so under this Euclidean loss every
`s_j -> 0` exponentially (at rate >= 2 eta + 2 (1 + eps) (c_1 (1 + eps) - l_1)) and only the ratios
`s_j / s_max` carry information; their flow `d(u_j - u_k)/dt` does not contain eta at all.

Public API
- `SETTER_METHODS`, `SetterParams(eta, eps, lambdas (n,), sigma2s (n,))`
- `setter_field(name) -> f(u (n,), params) -> du/dt` (pure, jittable, vmappable)
- `relative_survivors(u, s_tol)`: modes with `s_j / max_k s_k >= s_tol`, per row of u (..., n).
"""
import functools
from typing import NamedTuple

import jax.numpy as jnp

SETTER_METHODS = ("directpred", "directcopy")


class SetterParams(NamedTuple):
    """Weight decay, setter eps, data eigenvalues (n,), augmentation variances (n,)."""

    eta: float
    eps: float
    lambdas: jnp.ndarray
    sigma2s: jnp.ndarray


@functools.cache
def setter_field(name: str):
    """`f(u, params) -> du/dt` for `u = log s` (n,) of the eigen-aligned setter method `name`."""
    if name not in SETTER_METHODS:
        raise ValueError(f"no multi-mode setter system for {name!r}; allowed: {', '.join(SETTER_METHODS)}")
    power = 0.5 if name == "directpred" else 1.0

    def field(u, params: SetterParams):
        c = params.lambdas + params.sigma2s
        log_f = u + jnp.log(c)
        p = jnp.exp(power * (log_f - jnp.max(log_f))) + params.eps  # (f_j / f_max)^power + eps
        return 2.0 * p * (params.lambdas - c * p) - 2.0 * params.eta

    return field


def relative_survivors(u, s_tol: float):
    """Number of modes whose share `s_j / max_k s_k` is at least s_tol, for u = log s of shape (..., n)."""
    u = jnp.asarray(u)
    return jnp.sum(u - jnp.max(u, axis=-1, keepdims=True) >= jnp.log(s_tol), axis=-1)
