"""Tian21 Fig. 4: on the invariant parabola s = p^2 / alpha_p, SimSiam's predictor flow is the cubic
`dp/dt = p (p (tau - c p) - eta)`, shown in the three regimes: eta = 0 (roots 0, tau / c), 0 < eta <
tau^2 / (4c) (roots 0, p_-, p_+: p_- is the edge of the collapse basin) and eta > tau^2 / (4c) (only 0).
Dots: roots from `dynamics.analysis.fixed_points`; the curve is the sympy-derived field itself.

Rebuild: `python -m figures.tian21_fig4_dpdt_parabola` (seconds).
"""
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynamics.analysis import fixed_points
from dynamics.reduced import Params, reduced_field
from figures._common import run

SIGMA2 = 0.5  # c = 1.5, threshold tau^2 / (4c) = 1/6
REGIMES = ((0.0, "eta = 0"), (0.05, "eta = 0.05 < 1/6"), (0.25, "eta = 0.25 > 1/6"))


def make(small: bool):
    p = np.linspace(-0.2, 0.85, 60 if small else 400)
    field = jax.vmap(reduced_field("simsiam"), in_axes=(0, None))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = {}
    for (eta, label), color in zip(REGIMES, ("#4c78a8", "#f58518", "#e45756")):
        params = Params(eta=eta, alpha_p=1.0, sigma2=SIGMA2, tau=1.0)
        dp = np.asarray(field(jnp.stack([p, p**2], 1), params))[:, 0]  # s = p^2 / alpha_p
        ax.plot(p, dp, color=color, lw=1.8, label=label)
        roots = [fp for fp in fixed_points("simsiam", params)]
        for fp in roots:
            ax.plot(fp.state["p"], 0.0, "o", ms=7, mec="k", color=color if fp.stable else "white")
        data[eta] = {"p": p, "dpdt": dp, "roots": [fp.state["p"] for fp in roots]}
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set(xlabel="p on the parabola s = p^2", ylabel="dp/dt",
           title=f"Tian21 Fig. 4: dp/dt = p (p (1 - c p) - eta), c = {1 + SIGMA2:g}")
    ax.plot([], [], "o", color="grey", mec="k", label="stable root")
    ax.plot([], [], "o", color="white", mec="k", label="unstable / marginal root")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, data


if __name__ == "__main__":
    run("tian21_fig4_dpdt_parabola", make)
