"""SimSiam vs PhiNet vs X-PhiNet: where each keeps its (single, isotropic) mode, over (weight decay, sigma2)
at lam = 1 and over (weight decay, lam) at sigma2 = 0.5. Shading: how many of the three methods survive;
solid lines: each method's numerical boundary (`dynamics.phase.sweep`, p0 = 0.5 on the parabola, g0 = 0.5,
X-PhiNet beta = 0.4); dashed: SimSiam's closed form eta = 1 / (4 (1 + sigma2)); crosses: PhiNet's
fixed-point thresholds (`analysis.collapse_wd`). SimSiam has no lam, so on the right it is the line 1/6.
Below sigma2 ~ 0.3 PhiNet's numerical boundary falls short of its fixed-point threshold (0.39 vs 0.44 at
sigma2 = 0): there a stable non-collapsed fixed point exists (e.g. p = 0.78, g = 0.60 at eta = 0.42) but the
start (p0, g0) = (0.5, 0.5) lies outside its basin and collapses; starting at (0.8, 0.8) it survives.

Rebuild: `python -m figures.methods_collapse_regions` (about a minute on 2 CPU cores).
"""
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D

from dynamics.phase import prediction, sweep
from dynamics.phase_grid import PhaseConfig
from figures._common import run

COLORS = {"simsiam": "#4c78a8", "phinet": "#e45756", "xphinet": "#54a24b"}
PANELS = (("sigma2", (0.0, 0.5), (0.0, 2.0)), ("lam", (0.0, 0.9), (0.0, 4.0)))


def make(small: bool):
    nx, ny = (24, 16) if small else (160, 120)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6))
    data = {}
    for ax, (y, x_range, y_range) in zip(axes, PANELS):
        methods = ("simsiam", "phinet", "xphinet") if y == "sigma2" else ("phinet", "xphinet")
        grid = dict(x="wd", y=y, x_range=x_range, y_range=y_range, nx=nx, ny=ny)
        res = {m: sweep(PhaseConfig(method=m, **grid)) for m in methods}
        alive = {m: r["survivors"] == 1 for m, r in res.items()}
        xs, ys = res["phinet"]["xs"], res["phinet"]["ys"]
        if y == "lam":  # SimSiam does not see lam: its closed-form threshold at sigma2 = 0.5
            alive["simsiam"] = np.broadcast_to(xs[None, :] < 1 / 6, alive["phinet"].shape)
        count = sum(a.astype(int) for a in alive.values())
        ax.pcolormesh(xs, ys, count, cmap=ListedColormap(["#3b3b58", "#8c6d9f", "#d9b8c4", "#f3e6b3"]),
                      vmin=-0.5, vmax=3.5, shading="nearest", rasterized=True)
        for m, a in alive.items():
            if m in res:
                ax.contour(xs, ys, a.astype(float), levels=[0.5], colors=COLORS[m], linewidths=1.8)
        if y == "sigma2":
            ax.plot(1 / (4 * (1 + ys)), ys, color=COLORS["simsiam"], ls="--", lw=1.2)
        else:
            ax.axvline(1 / 6, color=COLORS["simsiam"], ls="--", lw=1.6)
        pred = prediction(PhaseConfig(method="phinet", **grid), n_markers=8)
        ax.plot(pred["thresholds"][:, 0], pred["other"], "x", color="k", ms=6)
        ax.set(xlabel="weight decay eta", ylabel="augmentation variance sigma2" if y == "sigma2"
               else "lam (PhiNet clean-target weight)", xlim=x_range, ylim=y_range,
               title=f"over (eta, {y}), " + ("lam = 1" if y == "sigma2" else "sigma2 = 0.5"))
        data[y] = {"xs": xs, "ys": ys, **{m: a for m, a in alive.items()}}
    handles = [Line2D([], [], color=c, lw=1.8, label=m) for m, c in COLORS.items()]
    handles += [Line2D([], [], color=COLORS["simsiam"], ls="--", label="SimSiam closed form 1/(4c)"),
                Line2D([], [], color="k", ls="", marker="x", label="PhiNet fixed-point threshold")]
    axes[0].legend(handles=handles, fontsize=7, loc="upper right")
    fig.suptitle("Non-collapse regions (light: all three survive ... dark: none); start p0 = g0 = 0.5, "
                 "s0 = p0^2. Near sigma2 = 0 PhiNet's start leaves the basin before its threshold",
                 fontsize=9)
    fig.tight_layout()
    return fig, data


if __name__ == "__main__":
    run("methods_collapse_regions", make)
