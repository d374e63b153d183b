"""Surviving modes against weight decay on the default anisotropic spectrum (8 modes, l = 1 ... 0.01,
sigma2 = 0.5) for SimSiam, BYOL, PhiNet (lam = 1) and DirectPred (eps = 0.01, the authors' normalised
setter `p_j = sqrt(f_j / f_max) + eps`; the linear model's default equivariant setter keeps SimSiam's
staircase, see `figures.simulate_default`). Reduced per-mode systems
for the first three (`dynamics.phase.sweep`, t_max 1e5, collapsed: s < 1e-6); DirectPred, whose setter
couples the modes through the top eigenvalue, with the multi-mode system `dynamics.setters` (exact
on eigen-aligned states, tested against the matrix ODE), counting modes with s_j / s_max >= 1e-6: under
this Euclidean loss its absolute scale always decays and eta drops out of the ratios, so its count is flat.
Dashed: SimSiam's closed-form staircase, the number of modes with l^2 / (4 (l + sigma2)) > eta.

Rebuild: `python -m figures.surviving_modes_wd` (about a minute on 2 CPU cores).
"""
import matplotlib.pyplot as plt
import numpy as np

from dynamics.moments import DEFAULT_LAMBDAS, DEFAULT_SIGMA2, default_spectrum, simsiam_thresholds
from dynamics.phase import sweep
from dynamics.phase_grid import PhaseConfig
from figures._common import run

METHODS = {"simsiam": "#4c78a8", "byol": "#f58518", "phinet": "#e45756", "directpred": "#54a24b"}


def make(small: bool):
    n, lo, t_max = (12, 5e-3, 5e3) if small else (90, 1e-5, 1e5)  # collapse takes t ~ 12 / (2 eta)
    common = dict(x="wd", y="sigma2", x_range=(lo, 0.3), x_log=True, nx=n, y_range=(DEFAULT_SIGMA2, 1.0),
                  ny=1, lambdas=DEFAULT_LAMBDAS, t_max=t_max)
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    data = {}
    for k, (m, color) in enumerate(METHODS.items()):
        form = {"setter_form": "normalised"} if m == "directpred" else {}
        res = sweep(PhaseConfig(method=m, **common, **form))
        wd, count = res["xs"], res["survivors"][0]
        ax.step(wd, count + 0.06 * (k - 1.5), where="mid", color=color, lw=1.8,
                label=m + (" (normalised setter, s_j / s_max)" if m == "directpred" else ""))
        data[m] = count
    wd = np.geomspace(lo, 0.3, 400)
    thr = simsiam_thresholds(default_spectrum())
    ax.step(wd, (wd[:, None] < thr[None, :]).sum(1), where="post", color="k", ls="--", lw=1,
            label="SimSiam closed form")
    ax.set(xscale="log", xlabel="weight decay eta", ylabel="surviving modes (of 8)", ylim=(-0.4, 8.4),
           title="default spectrum l = 1 ... 0.01, sigma2 = 0.5 (curves offset slightly)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    data["wd"] = res["xs"]
    return fig, data


if __name__ == "__main__":
    run("surviving_modes_wd", make)
