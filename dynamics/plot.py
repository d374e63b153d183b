"""The figures the command lines write: `modes.png` of `python -m dynamics.simulate` (`plot_modes`: s_j(t) per
method, predicted fixed points dashed) and `phase.png` of `python -m dynamics.phase` (`plot_phase`: the
numerical diagram with the analytic boundary over it).

`draw_phase(ax, cfg, arrays, pred)` draws a phase diagram into an existing axis (the figures and notebooks
reuse it); `plot_phase` makes the file. Colours: surviving-mode count (one mode: collapsed dark,
non-collapsed light); failed points red; dashed lines: the analytic boundary (contours of the predicted
count, or PhiNet's per-mode thresholds from the fixed-point analysis as crosses).

Everything is drawn on `matplotlib.figure.Figure` objects of its own: no backend is selected here (that would
replace a notebook's inline backend), and saving needs none.

Public API
- `plot_modes(cfg: SimConfig, arrays, results, path) -> Figure`
- `draw_phase(ax, cfg: PhaseConfig, arrays, pred=None, *, colorbar=True, boundary_color=...)`,
  `plot_phase(cfg: PhaseConfig, arrays, pred, path) -> Figure`, `LABELS` (axis labels of the phase axes)
"""
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dynamics.phase_grid import axis_applies


def plot_modes(cfg, arrays: dict, results: list, path):
    """One panel per method: every mode's s(t) (log scale), its predicted fixed point dashed; returns the
    `Figure` (also saved to `path`)."""
    n = len(results)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors = colormaps["viridis"](np.linspace(0.0, 0.9, len(results[0]["modes"])))
    for ax, res in zip(axes.flat, results):
        a = arrays[res["method"]]
        for j, mode in enumerate(res["modes"]):
            ax.plot(a["ts"], np.clip(a["s"][:, j], 1e-12, None), color=colors[j], lw=1.3)
            pred = mode.get("fixed_point")
            if pred:
                ax.axhline(pred["s"], color=colors[j], ls="--", lw=0.8)
        ax.axhline(cfg.s_tol, color="red", ls=":", lw=0.8)
        ax.set(yscale="log", ylim=(1e-10, None), xlabel="t = lr x steps",
               title=f"{res['method']}: {res['surviving']}/{len(res['modes'])} survive")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("s (eigenvalues of W W^T)")
    title = f"{cfg.level} level, wd = {cfg.wd:g}; dashed: stable fixed point, dotted: s_tol"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


# ---------------------------------------------------------------------------------- phase.png

LABELS = {"wd": "weight decay eta", "sigma2": "augmentation variance sigma2", "alpha_p": "alpha_p",
          "alpha_g": "alpha_g", "lam": "lam (PhiNet clean-target weight)", "beta": "EMA rate beta",
          "tau": "tau", "p0": "initial p0", "s0": "initial s0", "g0": "initial g0",
          "exponent": "spectrum exponent a (l_j = j^-a)"}


def _cmap(n_modes: int, failed: bool):
    colors = (["#3b3b58", "#f3e6b3"] if n_modes == 1
              else list(colormaps["viridis"](np.linspace(0, 1, n_modes + 1))))
    low = -1 if failed else 0
    colors = (["#d62728"] if failed else []) + colors
    return ListedColormap(colors), BoundaryNorm(np.arange(low - 0.5, n_modes + 1.5), len(colors)), low


def draw_phase(ax, cfg, arrays: dict, pred: dict | None = None, *, colorbar=True, boundary_color="#e45756"):
    """Surviving-mode counts over the grid (failed points as -1), analytic boundary dashed."""
    m = cfg.n_modes
    counts = np.where(arrays["phase"] < 0, -1, arrays["survivors"])
    cmap, norm, low = _cmap(m, bool((arrays["phase"] < 0).any()))
    mesh = ax.pcolormesh(arrays["xs"], arrays["ys"], counts, cmap=cmap, norm=norm, shading="nearest",
                         rasterized=True)
    handles = []
    if pred is not None and "survivors" in pred:
        if np.ptp(pred["survivors"]) > 0:
            ax.contour(arrays["xs"], arrays["ys"], pred["survivors"], levels=np.arange(m) + 0.5,
                       colors=boundary_color, linestyles="--", linewidths=1.4)
        handles.append(Line2D([], [], color=boundary_color, ls="--", label=pred["kind"]))
    elif pred is not None:
        thr = pred["thresholds"]
        for j in range(m):
            xy = (thr[:, j], pred["other"]) if cfg.x == "wd" else (pred["other"], thr[:, j])
            ax.plot(*xy, ls="--", marker="x", color=boundary_color, lw=1.0, ms=5)
        handles.append(Line2D([], [], color=boundary_color, ls="--", marker="x", label=pred["kind"]))
    ax.set(xlabel=LABELS[cfg.x], ylabel=LABELS[cfg.y], xscale="log" if cfg.x_log else "linear",
           yscale="log" if cfg.y_log else "linear", xlim=(arrays["xs"][0], arrays["xs"][-1]),
           ylim=(arrays["ys"][0], arrays["ys"][-1]))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.85)
    if colorbar:
        bar = ax.figure.colorbar(mesh, ax=ax, ticks=np.arange(low, m + 1))
        bar.set_label("surviving modes" if m > 1 else "0: collapsed, 1: non-collapsed")
    return mesh


def plot_phase(cfg, arrays: dict, pred: dict | None, path):
    """Write the phase diagram of one sweep to `path`; returns the `Figure`."""
    fig = Figure(figsize=(6.2, 4.6))
    ax = fig.subplots()
    draw_phase(ax, cfg, arrays, pred)
    fixed = {k: getattr(cfg, k) for k in ("wd", "sigma2", "alpha_p", "lam", "beta", "tau", "p0")
             if k not in (cfg.x, cfg.y) and axis_applies(k, cfg.method)}
    ax.set_title(f"{cfg.method}: {cfg.n_modes} mode(s), t_max = {float(arrays['t_max']):g}\n"
                 + ", ".join(f"{k}={v:g}" for k, v in fixed.items()), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig
