"""Tian21 Thm 3: with a symmetric predictor, `d[F, Wp]/dt = -[F, Wp] K - K [F, Wp]`,
`K = c [(alpha_p / 2) F + Wp^2 - (tau / c) Wp] + (3/2) eta I`, so the commutator's Frobenius norm obeys
`||[F, Wp](t)|| <= ||[F, Wp](0)|| exp(-2 int_0^t lambda_min(K) dt')`. The matrix ODE of SimSiam
(`dynamics.matrix_ode`, `symmetric_wp=True`, isotropic X = I, F = W W^T) from a random W and a random
symmetric Wp, against that bound evaluated along the same trajectory.

Rebuild: `python -m figures.commutator_thm3` (seconds).
"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from scipy.integrate import cumulative_trapezoid

from dynamics.matrix_ode import solve
from dynamics.methods import Hyper, get_method
from dynamics.moments import expected_moments, isotropic
from figures._common import run

N, SIGMA2 = 6, 0.5


def commutator_and_bound(t_max=60.0, n_t=600, eta=0.02, alpha_p=1.0, seed=0):
    """`(ts, ||[F, Wp]||, bound)` along one SimSiam matrix-ODE trajectory (float64)."""
    hp = Hyper(eta=eta, alpha_p=alpha_p, symmetric_wp=True)
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    A = jax.random.normal(k2, (N, N)) / np.sqrt(N)
    st0 = {"W": jax.random.normal(k1, (N, N)) / np.sqrt(N), "Wp": 0.5 * jnp.eye(N) + 0.3 * (A + A.T) / 2}
    ts = np.linspace(0.0, t_max, n_t)
    traj = solve(get_method("simsiam"), hp, expected_moments(isotropic(N, SIGMA2)), st0, ts, rtol=1e-11,
                 atol=1e-13)
    W, Wp = np.asarray(traj["W"]), np.asarray(traj["Wp"])
    F = W @ np.swapaxes(W, 1, 2)
    comm = np.linalg.norm(F @ Wp - Wp @ F, axis=(1, 2))
    c = 1 + SIGMA2
    K = c * (alpha_p / 2 * F + Wp @ Wp - Wp / c) + 1.5 * eta * np.eye(N)
    lmin = np.linalg.eigvalsh((K + np.swapaxes(K, 1, 2)) / 2)[:, 0]
    bound = comm[0] * np.exp(-2 * cumulative_trapezoid(lmin, ts, initial=0.0))
    return ts, comm, bound, lmin


def make(small: bool):
    ts, comm, bound, lmin = commutator_and_bound(n_t=100 if small else 600)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.0))
    ax.semilogy(ts, comm, color="#4c78a8", lw=2, label="||[F, Wp]|| (matrix ODE)")
    ax.semilogy(ts, bound, color="#e45756", ls="--", label="Thm 3 bound ||C0|| exp(-2 int lambda_min(K))")
    ax.set(xlabel="t", ylabel="Frobenius norm", title="commutator decays at least as fast as the bound")
    ax.legend(fontsize=8)
    ax2.plot(ts, lmin, color="#54a24b")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set(xlabel="t", ylabel="lambda_min(K)", title="K = c[(alpha_p/2) F + Wp^2 - (tau/c) Wp] + 1.5 eta I")
    fig.suptitle(f"Tian21 Thm 3, SimSiam, symmetric Wp, n = {N}, sigma2 = {SIGMA2}, eta = 0.02", fontsize=10)
    fig.tight_layout()
    return fig, {"ts": ts, "commutator": comm, "bound": bound}


if __name__ == "__main__":
    run("commutator_thm3", make)
