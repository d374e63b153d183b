"""Figures of the theory check, from the report and arrays ``run_theory_check`` returns (matplotlib
``Figure`` objects, no backend chosen: ``selfsup.plotting``).

``alignment(report, arrays, path)``: F-weighted (solid) and mean (dotted) alignment over surviving modes and
asymmetry against step, one line per run at the base weight decay, plus the per-eigenvector alignment of
the first of them.
``eigs(report, arrays, path)``: eigenvalue trajectories of F and of sym(Wp) (top 8) for the first base run.
``ps_scatter(report, arrays, path)``: p_j against s_j (log-log) at the end of each base run with its fit and
the theory's slope 1/2. ``wd_sweep(report, arrays, path)``: erank / surviving eigenvalues of F, output std and
kNN accuracy against weight decay, the linear theory's thresholds as dashed lines.
``predictors(report, arrays, path)``: kNN of DirectPred / DirectCopy / trained linear predictor.
``write_all(root, report, arrays)``: all five into ``root`` (alignment.png, eigs.png, ps.png, wd_sweep.png,
predictors.png).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from selfsup import plotting
from selfsup.theory.measure import weighted_alignment


def _base(report) -> list[str]:
    wd = report["config"]["base_wd"]
    return [t for t, r in report["points"].items() if r["wd"] == wd]


def alignment(report, arrays, path) -> None:
    fig, ax = plotting.subplots(1, 3, figsize=(13, 3.6))
    for i, t in enumerate(_base(report)):
        a = arrays[t]
        ax[0].plot(a["step"], weighted_alignment(a["cos"], a["s"]), color=f"C{i}", label=t)
        ax[0].plot(a["step"], a["align_mean"], color=f"C{i}", ls=":", lw=0.8)
        ax[1].plot(a["step"], a["asym"], label=t)
    first = _base(report)[0]
    cos, k = arrays[first]["cos"], min(8, arrays[first]["cos"].shape[1])
    for j in range(k):
        ax[2].plot(arrays[first]["step"], cos[:, j], color=plotting.cmap("viridis")(j / k),
                   label=f"u_{j + 1}")
    ax[0].set(xlabel="step", ylabel="cos(Wp u_j, u_j): s-weighted (dotted: mean)", title="alignment",
              ylim=(-0.1, 1.05))
    ax[1].set(xlabel="step", ylabel="||Wp - Wp^T|| / ||Wp||", title="asymmetry")
    ax[2].set(xlabel="step", ylabel="cos(Wp u_j, u_j)", title=f"{first}: top eigenvectors of F")
    ax[0].legend(fontsize=7)
    ax[2].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def eigs(report, arrays, path) -> None:
    first = _base(report)[0]
    a = arrays[first]
    fig, ax = plotting.subplots(1, 2, figsize=(10, 3.6))
    k = min(8, a["s"].shape[1])
    for j in range(k):
        c = plotting.cmap("viridis")(j / k)
        ax[0].semilogy(a["step"], np.clip(a["s"][:, j], 1e-8, None), color=c)
        ax[1].plot(a["step"], a["wp_sym"][:, j], color=c)
    ax[0].set(xlabel="step", ylabel="s_j (eigenvalues of F)", title=f"{first}: F")
    ax[1].set(xlabel="step", ylabel="eigenvalues of (Wp + Wp^T)/2", title=f"{first}: predictor")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def ps_scatter(report, arrays, path) -> None:
    base = _base(report)
    fig, axes = plotting.subplots(1, len(base), figsize=(3.4 * len(base), 3.3), squeeze=False)
    tol = report["config"]["rel_tol"]
    for ax, t in zip(axes[0], base):
        s, p = arrays[t]["s"][-1], arrays[t]["p"][-1]
        keep = (p > 0) & (s >= tol * s.max())
        ax.loglog(s[keep], p[keep], ".", ms=4)
        k = report["points"][t]["exponent_final"]
        if np.isfinite(k) and keep.sum() >= 2:
            x = np.geomspace(s[keep].min(), s[keep].max(), 20)
            y0 = np.exp(np.mean(np.log(p[keep]) - k * np.log(s[keep])))
            ax.loglog(x, y0 * x**k, "-", label=f"fit: {k:.2f}")
            ax.loglog(x, y0 * x.max() ** (k - 0.5) * x**0.5, "--", color="gray", label="slope 1/2")
        ax.set(xlabel="s_j", ylabel="p_j = u_j^T Wp u_j", title=t)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def wd_sweep(report, arrays, path) -> None:
    sw, pred = report["sweep"], report["headline"]["predicted_threshold"]
    fields = (("erank_F", "effective rank of F"), ("surviving_F", "surviving eigenvalues of F"),
              ("out_std", "output std (z / ||z||)"), ("knn_acc", "kNN accuracy"))
    fig, ax = plotting.subplots(1, 4, figsize=(15, 3.6))
    for i, (m, tab) in enumerate(sw["table"].items()):
        for a, (k, label) in zip(ax, fields):
            a.semilogx(sw["wds"], tab[k], "o-", color=f"C{i}", label=m)
            a.set(xlabel="weight decay", ylabel=label)
        if m in pred:
            for a in ax:
                a.axvline(pred[m], color=f"C{i}", ls="--", lw=0.8)
    ax[0].axhline(report["config"]["collapse_erank"], color="k", lw=0.5)
    ax[0].legend(fontsize=7, title=f"dashed: linear theory (sigma2={report['sigma2_hat']:.2f})",
                 title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def predictors(report, arrays, path) -> None:
    base = _base(report)
    fig, ax = plotting.subplots(figsize=(1.2 * len(base) + 2, 3.3))
    knn = [report["points"][t]["knn_acc"] for t in base]
    ax.bar(range(len(base)), knn, color=[f"C{i}" for i in range(len(base))])
    ax.set_xticks(range(len(base)), base, rotation=30, fontsize=7)
    ax.set(ylabel="kNN accuracy", title=f"linear predictors at wd {report['config']['base_wd']:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_all(root, report, arrays) -> None:
    root = Path(root)
    figs = (("alignment", alignment), ("eigs", eigs), ("ps", ps_scatter), ("predictors", predictors))
    for name, fn in figs:
        fn(report, arrays, root / f"{name}.png")
    if report["sweep"]["table"]:
        wd_sweep(report, arrays, root / "wd_sweep.png")
