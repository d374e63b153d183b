"""Second moments of the clean input and its two augmented views (docs/theory.md section 1).

A `Spectrum` holds the diagonal data moment `X = diag(lambdas)` and augmentation covariance
`X' = diag(sigma2s)`; the isotropic case is `X = I`, `X' = sigma2 I`. Losses see the data only through a
`(3, 3, n, n)` array `C[a, b] = E[x_a x_b^T]` over the views `x0` (clean), `x1 = x0 + n1`, `x2 = x0 + n2`:
`C[a, b] = X + X' [a == b != 0]`. The same array built from a sampled batch makes the batch loss exact
(every loss is quadratic), which is how `dynamics.sgd` reuses the expected losses.

Public API
- `Spectrum(lambdas, sigma2s)`, `isotropic(n, sigma2)`, `anisotropic(lambdas, sigma2s)`, `default_spectrum()`
- `expected_moments(spectrum) -> C`, `sample_moments(key, spectrum, batch) -> C`
- `simsiam_thresholds(spectrum, tau=1.0)`: per-mode collapse weight decay `tau^2 l^2 / (4 (l + s2))`.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Default anisotropic spectrum: eight modes of falling signal, equal augmentation noise 0.5. Their SimSiam
# thresholds tau^2 l^2 / (4 (l + s2)) are 0.1667, 0.0625, 0.0208, 0.0042, 0.0011, 4.2e-4, 1.9e-4, 4.9e-5:
# they straddle wd = 5e-4, so the three weakest modes collapse under SimSiam while five survive.
DEFAULT_LAMBDAS = (1.0, 0.5, 0.25, 0.12, 0.06, 0.025, 0.015, 0.01)
DEFAULT_SIGMA2 = 0.5


class Spectrum(NamedTuple):
    """Diagonal second moments: `lambdas` (n,) of `X`, `sigma2s` (n,) of `X'`."""

    lambdas: np.ndarray
    sigma2s: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.lambdas)


def anisotropic(lambdas, sigma2s) -> Spectrum:
    """`X = diag(lambdas)`, `X' = diag(sigma2s)`; a scalar `sigma2s` is broadcast over the modes."""
    lam = np.asarray(lambdas, dtype=float).reshape(-1)
    s2 = np.broadcast_to(np.asarray(sigma2s, dtype=float), lam.shape).copy()
    if lam.size == 0 or np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"lambdas must be finite and > 0, got {lam.tolist()}")
    if np.any(~np.isfinite(s2)) or np.any(s2 < 0):
        raise ValueError(f"sigma2 must be finite and >= 0, got {s2.tolist()}")
    return Spectrum(lam, s2)


def isotropic(n: int, sigma2: float) -> Spectrum:
    """`X = I_n`, `X' = sigma2 I_n` (c = 1 + sigma2 in Tian21)."""
    return anisotropic(np.ones(n), sigma2)


def default_spectrum() -> Spectrum:
    """The spectrum `python -m dynamics.simulate` uses unless told otherwise (see DEFAULT_LAMBDAS)."""
    return anisotropic(DEFAULT_LAMBDAS, DEFAULT_SIGMA2)


def simsiam_thresholds(spectrum: Spectrum, tau: float = 1.0) -> np.ndarray:
    """Per-mode SimSiam collapse weight decay `tau^2 lambda_j^2 / (4 (lambda_j + sigma2_j))`, shape (n,)."""
    lam, s2 = spectrum
    return tau**2 * lam**2 / (4.0 * (lam + s2))


def expected_moments(spectrum: Spectrum) -> jax.Array:
    """`C[a, b] = E[x_a x_b^T] = X + X' [a == b != 0]` for views a, b in (0, 1, 2); shape (3, 3, n, n).
    Built in numpy (exact: diagonals and one addition) unless the spectrum is traced: eager JAX ops would
    each compile a program on first use."""
    xp = jnp if any(isinstance(v, jax.core.Tracer) for v in spectrum) else np
    lam, s2 = (xp.asarray(v) for v in spectrum)
    same_noisy = xp.diag(xp.asarray([0.0, 1.0, 1.0]))
    return jnp.asarray(xp.diag(lam)[None, None] + same_noisy[:, :, None, None] * xp.diag(s2)[None, None])


def sample_moments(key: jax.Array, spectrum: Spectrum, batch: int) -> jax.Array:
    """Batch moments `C[a, b] = (1/B) sum_k x_a^k x_b^k^T` of Gaussian `x0 ~ N(0, X)`, `n_i ~ N(0, X')`."""
    lam, s2 = (jnp.asarray(v) for v in spectrum)
    z = jax.random.normal(key, (3, batch, lam.shape[0]), dtype=lam.dtype)
    x0 = z[0] * jnp.sqrt(lam)
    views = jnp.stack([x0, x0 + z[1] * jnp.sqrt(s2), x0 + z[2] * jnp.sqrt(s2)])
    return jnp.einsum("aki,bkj->abij", views, views) / batch
