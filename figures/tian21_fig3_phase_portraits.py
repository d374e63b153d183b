"""Tian21 Fig. 3: (p, s) phase portraits of SimSiam's per-mode system at tau = 1, alpha_p = 1, sigma2 = 0
(c = 1), for eta = 0 (two lines of fixed points), 0.01 (three fixed points on the parabola s = p^2: origin
and p_+ stable, p_- a saddle) and 1 (> tau^2 / (4c) = 1/4: only the collapsed origin).

Rebuild: `python -m figures.tian21_fig3_phase_portraits` (seconds).
"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynamics.analysis import fixed_points
from dynamics.reduced import Params, reduced_field
from figures._common import run

ETAS = (0.0, 0.01, 1.0)


def make(small: bool):
    n = 15 if small else 40
    p, s = np.meshgrid(np.linspace(-0.6, 1.6, n), np.linspace(0.0, 1.6, n))
    field = jax.jit(jax.vmap(reduced_field("simsiam"), in_axes=(0, None)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.1), sharey=True)
    data = {}
    for ax, eta in zip(axes, ETAS):
        params = Params(eta=eta, alpha_p=1.0, sigma2=0.0, tau=1.0)
        d = np.asarray(field(jnp.stack([p.ravel(), s.ravel()], 1), params)).reshape(n, n, 2)
        speed = np.hypot(d[..., 0], d[..., 1])
        ax.streamplot(p, s, d[..., 0], d[..., 1], color=np.log10(speed + 1e-9), cmap="Greys", density=1.1,
                      linewidth=0.8, arrowsize=0.8)
        pp = np.linspace(-0.6, 1.26, 200)
        ax.plot(pp, pp**2, color="#4c78a8", lw=1.5, label="invariant parabola s = p^2 / alpha_p")
        if eta == 0:  # lines of fixed points: s = 0 (any p) and p = tau / c (any s)
            ax.axhline(0.0, color="#54a24b", lw=3, alpha=0.6, label="fixed-point lines")
            ax.axvline(1.0, color="#54a24b", lw=3, alpha=0.6)
        fps = fixed_points("simsiam", params)
        for fp in fps:
            color = "#bab0ac" if eta == 0 else "#54a24b" if fp.stable else "#e45756"  # eta = 0: marginal
            ax.plot(fp.state["p"], fp.state["s"], "o", ms=9, mec="k", color=color)
        data[eta] = [(fp.state["p"], fp.state["s"], fp.stable) for fp in fps]
        ax.set(xlim=(-0.6, 1.6), ylim=(0.0, 1.6), xlabel="p (predictor eigenvalue)",
               title=f"eta = {eta:g}" + ("  (> 1/4: collapse only)" if eta > 0.25 else ""))
    axes[0].plot([], [], "o", color="#54a24b", mec="k", label="stable fixed point")
    axes[0].plot([], [], "o", color="#e45756", mec="k", label="saddle / unstable")
    axes[0].plot([], [], "o", color="#bab0ac", mec="k", label="marginal (zero eigenvalue)")
    axes[0].set_ylabel("s (encoder eigenvalue w^2)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle("Tian21 Fig. 3: SimSiam (p, s) flow, tau = 1, alpha_p = 1, c = 1", fontsize=10)
    fig.tight_layout()
    return fig, data


if __name__ == "__main__":
    run("tian21_fig3_phase_portraits", make)
