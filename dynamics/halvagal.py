"""Closed-form-predictor eigenvalue dynamics (Halvagal, Laborieux & Zenke, NeurIPS 2023; docs/theory.md
section 5).

Eigen-aligned linear encoder `W = U diag(w)` on diagonal data (`l_m` signal, `c_m = l_m + sigma2_m`), the
predictor set in closed form from the eigenvalues `lam_m = w_m^2` of `W W^T`: `p_m = lam_m^alpha` (held
fixed by stop-gradient, as is the target branch). The flow `dw/dt = -dL/dw_online - eta w` comes from
`jax.grad` of each loss written per mode, and `d lam/dt = 2 w dw/dt`:
- euclidean: `L = 1/2 E||Wp z1 - sg(z2)||^2` -> `d lam_m/dt = 2 lam_m^(1+alpha) (l_m - c_m lam_m^alpha)`:
  the eigenvalue itself multiplies the rate, so weak modes are recruited slowly.
- isoloss: `L = 1/2 E||z1 - sg(z1 - Wp z1 + z2)||^2` (our reading of IsoLoss: the same residual without the
  `Wp^T` factor in the gradient) -> `d lam_m/dt = 2 lam_m (l_m - c_m lam_m^alpha)`: equal rates.
- cosine-sample: `L = -E[cos(Wp z1, sg z2)]`, normalised per sample as the CNN trainers and `dynamics.sgd`'s
  `--loss cosine`. Per mode `u_m = p_m w_m x1_m`, `v_m = w_m x2_m` are jointly Gaussian (variances
  `a_m^2 c_m`, `b_m^2 c_m`, covariance `a_m b_m l_m`, a = p w online, b = w target); with
  `1/|u| = pi^-1/2 int_0^inf s^-1/2 e^(-s|u|^2) ds` the expectation is exact:
  `E[cos] = (1/pi) int int (s t)^-1/2 prod_k D_k^-1/2 sum_m S12_m / D_m ds dt`,
  `D_k = (1 + 2 s S11_k)(1 + 2 t S22_k) - 4 s t S12_k^2` (the Gaussian integrals of each 2 x 2 block),
  evaluated by the trapezoid rule in `log s`, `log t` (`expected_cosine`; agrees with Monte Carlo, see the
  tests). Scale-invariant, so the flow is orthogonal to w and conserves `sum(lam)` at eta = 0.
  Costlier: ~2 ms per field evaluation, and near its fixed point the explicit solver needs ~35 steps per
  unit time (t = 100 takes ~35 s on 2 CPU cores).
- cosine: `L = -E[z2^T Wp z1] / sqrt(E||Wp z1||^2 E||z2||^2)` (expectations inside the normalisation:
  the high-dimensional concentration approximation of `cosine-sample`, cheap). Its fixed point (eta = 0)
  equalises `p_m c_m / l_m` over the surviving modes (d L / d w_m = 0 gives `p_m c_m / l_m = E||Wp z1||^2 /
  E[z2^T Wp z1]`, the same for every m), not `p_m`. Validity, measured against `cosine-sample`: the largest
  per-mode error of `d lam/dt`, relative to the largest rate, is about `2 / n_eff` (n_eff the participation
  ratio of the mode variances: 0.60, 0.27, 0.13, 0.06, 0.03 at n_eff = 4, 8, 16, 32, 64), so it is a
  guide only above ~20 comparable modes; with four modes it is off by up to 90 %, and with one dominant
  mode it makes the weak modes' rates ~25x too slow. The end points differ too: four modes l = 1, 0.5,
  0.25, 0.1, sigma2 = 0.5, alpha = 1/2, from lam = 1e-3, at t = 100: `cosine` ends 15 % above, 3 %, 22 %
  and 40 % below `cosine-sample` (whose end point does not equalise `p c / l`: 0.065 ... 0.089).

Public API
- `LOSSES`, `eigen_field(loss, alpha, ls, cs, eta=0.0) -> f(lam) -> d lam/dt` (jittable),
  `euclidean_closed_form(lam, alpha, ls, cs, eta)`, `eigen_trajectories(loss, lam0, ts, alpha, ls, cs, eta)`,
  `expected_cosine(a, b, ls, cs)`: `E[cos(a x1, b x2)]` for per-mode scales a, b (n,).
"""
import diffrax
import jax
import jax.numpy as jnp

LOSSES = ("euclidean", "isoloss", "cosine", "cosine-sample")
_LOG_GRID = (-40.0, 40.0, 0.5)  # trapezoid nodes in log s, log t: 161 x 161 (error ~1e-9)
sg = jax.lax.stop_gradient


def _loss(name, w, w_t, p, ls, cs):
    """Expected loss per the module docstring; w online, w_t target (held), p predictor (held)."""
    if name == "euclidean":
        return 0.5 * jnp.sum(p**2 * cs * w**2 - 2 * p * ls * w * w_t + cs * w_t**2)
    if name == "isoloss":
        target = sg(cs * w - p * cs * w + ls * w_t)  # E[x1 * (z1 - Wp z1 + z2)] per mode, held fixed
        return jnp.sum(0.5 * cs * w**2 - w * target)
    if name == "cosine-sample":
        return -expected_cosine(p * w, w_t, ls, cs)
    return -jnp.sum(p * ls * w * w_t) / jnp.sqrt(jnp.sum(p**2 * cs * w**2) * jnp.sum(cs * w_t**2))


def expected_cosine(a, b, ls, cs):
    """`E[cos(u, v)]`, `u_m = a_m x1_m`, `v_m = b_m x2_m` (per mode `Var x_i = c_m`, `Cov(x1, x2) = l_m`,
    independent Gaussian modes); exact up to the quadrature (module docstring), differentiable in a, b."""
    a = a / jnp.sqrt(jnp.sum(a**2 * cs))  # cos is scale-free: put E|u|^2 = E|v|^2 = 1 in the grid's middle
    b = b / jnp.sqrt(jnp.sum(b**2 * cs))
    s11, s22, s12 = a**2 * cs, b**2 * cs, a * b * ls
    lo, hi, h = _LOG_GRID
    x = jnp.arange(lo, hi + h / 2, h, dtype=s11.dtype)
    s, t = jnp.exp(x)[:, None, None], jnp.exp(x)[None, :, None]
    D = (1 + 2 * s * s11) * (1 + 2 * t * s22) - 4 * s * t * s12**2  # (X, X, n)
    integrand = jnp.exp(-0.5 * jnp.sum(jnp.log(D), -1)) * jnp.sum(s12 / D, -1)
    jacobian = jnp.exp(0.5 * (x[:, None] + x[None, :]))  # (s t)^-1/2 ds dt = e^((x + y) / 2) dx dy
    return jnp.sum(jacobian * integrand) * h * h / jnp.pi


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
