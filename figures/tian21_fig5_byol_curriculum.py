"""Tian21 Fig. 5: BYOL's (p, s, tau) system with eta = 0.04, beta = 0.4 and the target ratio starting at
tau(0) = 0 (the EMA target as a curriculum: tau rises towards 1 while the online weights grow). Trajectories
from a grid of (p0 > 0, s0) on and off the parabola (p0 < 0 with tau(0) = 0 makes the ratio blow up
in finite time: d tau/dt ~ beta + |p| tau^2); end points coloured by outcome (collapsed: s < 1e-6 at
t = 400). c = 1 (sigma2 = 0), alpha_p = 1, so the stable fixed point is p_+ = (1 + sqrt(1 - 4 eta)) / 2.

Rebuild: `python -m figures.tian21_fig5_byol_curriculum` (seconds).
"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynamics.reduced import Params, collapsed, integrate
from figures._common import run

PARAMS = Params(eta=0.04, alpha_p=1.0, beta=0.4, sigma2=0.0, tau=1.0)


def make(small: bool):
    k = 3 if small else 6
    p0, s0 = np.meshgrid(np.linspace(0.05, 1.2, k), np.geomspace(0.02, 1.5, k))
    y0 = jnp.stack([p0.ravel(), s0.ravel(), np.zeros(p0.size)], 1)
    ts = jnp.linspace(0.0, 400.0, 120 if small else 800)
    ys = np.asarray(jax.vmap(lambda y: integrate("byol", y, PARAMS, ts))(y0))  # (runs, T, 3)
    dead = np.asarray(collapsed("byol", ys[:, -1]))
    fig = plt.figure(figsize=(12, 4.6))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    for y, d in zip(ys, dead):
        color = "#e45756" if d else "#4c78a8"
        ax.plot(y[:, 0], y[:, 1], y[:, 2], color=color, lw=0.9)
        ax.scatter(*y[-1], color=color, s=14)
    p_plus = (1 + np.sqrt(1 - 4 * PARAMS.eta)) / 2
    ax.scatter([p_plus], [p_plus**2], [1.0], marker="*", s=160, color="k",
               label="stable p_+, s = p_+^2, tau = 1")
    ax.set(xlabel="p", ylabel="s", zlabel="tau", title="trajectories from tau(0) = 0 (red: collapsed)")
    ax.legend(fontsize=7, loc="upper left")
    ax2 = fig.add_subplot(1, 2, 2)
    for y, d in zip(ys, dead):
        ax2.plot(np.asarray(ts), y[:, 2], color="#e45756" if d else "#4c78a8", lw=0.9)
    ax2.set(xlabel="t", ylabel="tau = Wa / W ratio", title="target ratio tau(t): the EMA as a curriculum")
    fig.suptitle(f"Tian21 Fig. 5: BYOL, eta = {PARAMS.eta}, beta = {PARAMS.beta}, tau(0) = 0; "
                 f"{int((~dead).sum())}/{dead.size} runs reach p_+", fontsize=10)
    fig.tight_layout()
    return fig, {"final": ys[:, -1], "collapsed": dead, "p_plus": p_plus}


if __name__ == "__main__":
    run("tian21_fig5_byol_curriculum", make)
