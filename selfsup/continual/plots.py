"""Pictures of continual and online runs: R heat maps and learning curves (matplotlib ``Figure`` objects,
no backend chosen: ``selfsup.plotting``).

Public API
----------
``heatmap(ax, R, title, vmin=0, vmax=1)``: R[i, j] as an annotated image (row i: after task i, column j).
``save_heatmaps(mats, path, title="")``: one heat map per matrix in ``mats`` (``{"knn": R, "linear": R}``).
``save_curves(curves, path, title="")``: accuracy against examples seen, one line per name in ``curves``
(``{name: (seen, acc)}``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from selfsup import plotting


def heatmap(ax, R, title: str = "", vmin: float = 0.0, vmax: float = 1.0):
    R = np.asarray(R)
    im = ax.imshow(R, vmin=vmin, vmax=vmax, cmap="viridis")
    for (i, j), v in np.ndenumerate(R):
        dark = (v - vmin) < 0.6 * (vmax - vmin)
        ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", color="w" if dark else "k", fontsize=8)
    ax.set(xlabel="evaluated task j", ylabel="after training task i", title=title,
           xticks=range(R.shape[1]), yticks=range(R.shape[0]))
    return im


def save_heatmaps(mats: dict, path, title: str = "") -> Path:
    fig, axes = plotting.subplots(1, len(mats), figsize=(3.6 * len(mats), 3.4), squeeze=False)
    for ax, (name, R) in zip(axes[0], mats.items()):
        im = heatmap(ax, R, f"{name} accuracy R[i, j]")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def save_curves(curves: dict, path, title: str = "", ylabel: str = "kNN accuracy") -> Path:
    fig, ax = plotting.subplots(figsize=(5, 3.4))
    for name, (seen, acc) in curves.items():
        ax.plot(seen, acc, marker="o", ms=3, label=name)
    ax.set(xlabel="training examples seen", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)
