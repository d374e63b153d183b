"""Beyond the anchors (docs/theory.md section 5, Halvagal, Laborieux & Zenke 2023): eigenvalues lam_m of W W^T
over time with a closed-form predictor p_m = lam_m^alpha (alpha = 1/2), for the Euclidean loss, IsoLoss
and the cosine loss (`dynamics.halvagal`, flows by autodiff of each loss with stop-gradient). Four modes,
l = 1, 0.5, 0.25, 0.1, sigma2 = 0.5, all from lam = 1e-3. Euclidean: the eigenvalue multiplies its own
rate (d lam/dt = 2 lam^(3/2) (l - c lam^(1/2))), so weak modes are recruited late; IsoLoss equalises the
rates (d lam/dt = 2 lam (l - c lam^(1/2))), same end points (dotted: (l / c)^2), weak modes 10x sooner;
cosine: scale-invariant, so the flow is orthogonal to w and conserves sum_m lam_m (= 4e-3 here): the modes
only redistribute, within t ~ 0.1 (rates scale as 1 / |w|), and never reach the Euclidean fixed points.

Rebuild: `python -m figures.halvagal_eigen_dynamics` (seconds).
"""
import matplotlib.pyplot as plt
import numpy as np

from dynamics.halvagal import LOSSES, eigen_trajectories
from figures._common import run

LS = np.array([1.0, 0.5, 0.25, 0.1])
CS = LS + 0.5
ALPHA = 0.5


def make(small: bool):
    ts = np.geomspace(1e-2, 1e4, 60 if small else 400)
    ts = np.concatenate([[0.0], ts])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0), sharey=True)
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(LS)))
    data = {}
    for ax, loss in zip(axes, LOSSES):
        lam = np.asarray(eigen_trajectories(loss, np.full(len(LS), 1e-3), ts, ALPHA, LS, CS))
        for j in range(len(LS)):
            ax.plot(ts[1:], lam[1:, j], color=colors[j], lw=1.8, label=f"l = {LS[j]:g}")
            ax.axhline((LS[j] / CS[j]) ** (1 / ALPHA), color=colors[j], ls=":", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="t", title=loss, ylim=(5e-4, 2))
        data[loss] = lam
    axes[0].set_ylabel("eigenvalue lam_m of W W^T")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("closed-form predictor p = lam^(1/2): Euclidean vs IsoLoss vs cosine", fontsize=10)
    fig.tight_layout()
    return fig, {"ts": ts, **data}


if __name__ == "__main__":
    run("halvagal_eigen_dynamics", make)
