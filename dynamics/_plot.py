"""The `modes.png` figure of `python -m dynamics.simulate`: s_j(t) per method, predictions dashed.

Drawn on a `matplotlib.figure.Figure` of its own: no backend is selected (that would replace a notebook's
inline backend), and saving needs none.
"""
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure


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
