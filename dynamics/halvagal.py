"""Closed-form-predictor eigenvalue dynamics (Halvagal, Laborieux & Zenke, NeurIPS 2023; THEORY.md section 5).

Eigen-aligned linear encoder `W = U diag(w)` on diagonal data (`l_m` signal, `c_m = l_m + sigma2_m`), the
predictor set in closed form from the eigenvalues `lam_m = w_m^2` of `W W^T`: `p_m = lam_m^alpha` (held
fixed by stop-gradient, as is the target branch). The flow `dw/dt = -dL/dw_online - eta w` comes from
`jax.grad` of each loss written per mode, and `d lam/dt = 2 w dw/dt`:
- euclidean: `L = 1/2 E||Wp z1 - sg(z2)||^2` -> `d lam_m/dt = 2 lam_m^(1+alpha) (l_m - c_m lam_m^alpha)`:
  the eigenvalue itself multiplies the rate, so weak modes are recruited slowly.
- isoloss: `L = 1/2 E||z1 - sg(z1 - Wp z1 + z2)||^2` (our reading of IsoLoss: the same residual without the
  `Wp^T` factor in the gradient) -> `d lam_m/dt = 2 lam_m (l_m - c_m lam_m^alpha)`: equal rates.
- cosine: `L = -E[z2^T Wp z1] / sqrt(E||Wp z1||^2 E||z2||^2)` (expectations inside the normalisation: the
  high-dimensional concentration approximation). Scale-invariant, so the modes equalise their `p_m`
  through the shared normalisation instead of each settling at `p = l / c`.

Public API
- `LOSSES`, `eigen_field(loss, alpha, ls, cs, eta=0.0) -> f(lam) -> d lam/dt` (jittable),
  `euclidean_closed_form(lam, alpha, ls, cs, eta)`, `eigen_trajectories(loss, lam0, ts, alpha, ls, cs, eta)`.
"""
import diffrax
import jax
import jax.numpy as jnp

LOSSES = ("euclidean", "isoloss", "cosine")
sg = jax.lax.stop_gradient


def _loss(name, w, w_t, p, ls, cs):
    """Expected loss per the module docstring; w online, w_t target (held), p predictor (held)."""
    if name == "euclidean":
        return 0.5 * jnp.sum(p**2 * cs * w**2 - 2 * p * ls * w * w_t + cs * w_t**2)
    if name == "isoloss":
        target = sg(cs * w - p * cs * w + ls * w_t)  # E[x1 * (z1 - Wp z1 + z2)] per mode, held fixed
        return jnp.sum(0.5 * cs * w**2 - w * target)
    return -jnp.sum(p * ls * w * w_t) / jnp.sqrt(jnp.sum(p**2 * cs * w**2) * jnp.sum(cs * w_t**2))


def eigen_field(loss: str, alpha: float, ls, cs, eta: float = 0.0):
    """`f(lam) -> d lam/dt` for the eigenvalues lam (n,) of W W^T under `loss` (one of LOSSES)."""
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    ls, cs = jnp.asarray(ls), jnp.asarray(cs)

    def field(lam):
        w = jnp.sqrt(lam)
        grad = jax.grad(_loss, argnums=1)(loss, w, sg(w), sg(lam**alpha), ls, cs)
        return 2 * w * (-grad - eta * w)

    return field


def euclidean_closed_form(lam, alpha, ls, cs, eta=0.0):
    """`2 lam^(1+alpha) (l - c lam^alpha) - 2 eta lam` (the autodiff field must equal this)."""
    return 2 * lam ** (1 + alpha) * (ls - cs * lam**alpha) - 2 * eta * lam


def eigen_trajectories(loss: str, lam0, ts, alpha: float, ls, cs, eta: float = 0.0):
    """Eigenvalues (T, n) at times ts from lam0 (n,) (diffrax Tsit5, rtol 1e-8; float64 advised)."""
    field = eigen_field(loss, alpha, ls, cs, eta)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, a: field(y)), diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
        y0=jnp.asarray(lam0), saveat=diffrax.SaveAt(ts=jnp.asarray(ts)), max_steps=1_000_000,
        stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-12))
    return sol.ys
