"""PhiNet's threshold gain taken apart (one mode, tau = alpha_p = alpha_g = 1; `dynamics.analysis`).

Left: collapse weight decay vs lam at l = 1, sigma2 = 0.5 for SimSiam (1/6), SimSiam with its loss x (1 + lam)
and PhiNet with Wg = I (one line: the same system, threshold (1 + lam) / 6), PhiNet with trained Wg and
X-PhiNet (`collapse_wd`, bisection): trained-g PhiNet gains less than the loss scale alone gives.
Middle: PhiNet's threshold over SimSiam's against r = l / (l + sigma2) (it depends on nothing else), for
lam = 0.5, 1, 2, with the small-r law 1 + lam^2 r^2 (dotted) and the default spectrum's eight modes
(ticks): the gain vanishes for weak modes. Right: the collapse saddle p_- against eta, in units of SimSiam's
small-eta value eta / l:
trained-g PhiNet's is SimSiam's (relative difference lam^2 eta^2 / l^2), the loss x (1 + lam) halves it at
lam = 1 (p_- = eta / ((1 + lam) l)).

Rebuild: `python -m figures.phinet_gain` (about 10 s on 2 CPU cores; prints the table of docs/results.md,
"PhiNet's collapse threshold, taken apart");
`--small` is coarse and fast.
"""
import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dynamics.analysis import collapse_wd, saddle  # noqa: E402
from dynamics.moments import DEFAULT_LAMBDAS, DEFAULT_SIGMA2  # noqa: E402
from dynamics.reduced import Params  # noqa: E402

HERE = Path(__file__).resolve().parent
BASE = Params(sigma2=0.5, lambda_j=1.0, tau=1.0, alpha_p=1.0, alpha_g=1.0)
METHODS = {"simsiam": ("SimSiam", "#4c78a8", "-"),
           "simsiam-scaled": ("SimSiam x (1 + lam)", "#9d755d", "-"),
           "phinet-eyeg": ("PhiNet, Wg = I", "#f58518", ":"),
           "phinet": ("PhiNet (trained Wg)", "#e45756", "-"),
           "xphinet": ("X-PhiNet", "#54a24b", "--")}
TABLE_LAMS = (0.25, 0.5, 1.0, 2.0, 4.0)
TABLE_R = (0.01, 0.05, 0.1, 1 / 3, 2 / 3, 0.9)
TABLE_ETAS = (1e-4, 1e-3, 1e-2, 0.05)


def thresholds(lams, rtol=1e-9) -> dict:
    """Collapse weight decay per method at each lam (l = 1, sigma2 = 0.5)."""
    return {m: np.array([collapse_wd(m, BASE._replace(lam=float(lam)), rtol=rtol) for lam in lams])
            for m in METHODS}


def gain_ratio(rs, lam, rtol=1e-9) -> np.ndarray:
    """PhiNet's threshold over SimSiam's l^2 / (4c) at r = l / c (l = 1, c = 1 / r)."""
    out = []
    for r in rs:
        p = BASE._replace(lam=float(lam), sigma2=1.0 / r - 1.0)
        out.append(collapse_wd("phinet", p, rtol=rtol) / (1.0 / (4.0 / r)))
    return np.array(out)


def saddles(etas, lam=1.0) -> dict:
    """p_- (the smallest positive non-collapsed fixed point) per method at each eta."""
    return {m: np.array([saddle(m, BASE._replace(eta=float(e), lam=lam)) for e in etas]) for m in METHODS}


def make(small: bool):
    n = 6 if small else 41
    lams, rs, etas = np.linspace(0.0, 4.0, n), np.geomspace(0.01, 0.99, n), np.geomspace(1e-4, 0.1, n)
    data = {"lams": lams, "thresholds": thresholds(lams), "rs": rs, "etas": etas, "saddles": saddles(etas)}
    data["ratio"] = {lam: gain_ratio(rs, lam) for lam in (0.5, 1.0, 2.0)}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for m, (label, color, ls) in METHODS.items():
        ax.plot(lams, data["thresholds"][m], color=color, ls=ls, lw=2.2 if m != "phinet-eyeg" else 2.6,
                label=label)
    ax.set(xlabel="lam", ylabel="collapse weight decay", title="threshold vs lam (l = 1, sigma2 = 0.5)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for (lam, ratio), color in zip(data["ratio"].items(), ("#8c6d9f", "#e45756", "#3b3b58")):
        ax.plot(rs, ratio, color=color, lw=2, label=f"PhiNet / SimSiam, lam = {lam:g}")
        ax.plot(rs, 1 + lam**2 * rs**2, color=color, ls=":", lw=1)
        ax.axhline(1 + lam, color=color, ls="--", lw=0.8)
    r_modes = np.asarray(DEFAULT_LAMBDAS) / (np.asarray(DEFAULT_LAMBDAS) + DEFAULT_SIGMA2)
    ax.plot(r_modes, np.full_like(r_modes, 0.97), "|", color="k", ms=12, label="default spectrum's modes")
    ax.set(xscale="log", xlabel="r = l / (l + sigma2)", ylabel="threshold ratio", ylim=(0.9, 3.1),
           title="gain vs r (dashed: 1 + lam, the loss scale; dotted: 1 + lam^2 r^2)")
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[2]
    for m, (label, color, ls) in METHODS.items():
        ax.plot(etas, data["saddles"][m] / etas, color=color, ls=ls, lw=2, label=label)
    ax.set(xscale="log", xlabel="weight decay eta", ylabel="saddle p_- / (eta / l)", ylim=(0.4, 1.25),
           title="collapse saddle p_- at small eta (l = 1, lam = 1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, data


def table() -> str:
    """The docs/results.md table (markdown), computed here."""
    thr = thresholds(TABLE_LAMS)
    lines = ["| lam | " + " | ".join(label for label, _, _ in METHODS.values()) + " |",
             "|---|" + "---|" * len(METHODS)]
    for i, lam in enumerate(TABLE_LAMS):
        lines.append(f"| {lam:g} | " + " | ".join(f"{thr[m][i]:.4f}" for m in METHODS) + " |")
    lines += ["", "| r = l / (l + sigma2) | " + " | ".join(f"{r:.3g}" for r in TABLE_R) + " |",
              "|---|" + "---|" * len(TABLE_R)]
    for lam in (0.5, 1.0, 2.0):
        lines.append(f"| PhiNet / SimSiam, lam = {lam:g} | "
                     + " | ".join(f"{v:.4f}" for v in gain_ratio(TABLE_R, lam)) + " |")
    lam_d = np.asarray(DEFAULT_LAMBDAS)
    r_d = lam_d / (lam_d + DEFAULT_SIGMA2)
    simsiam_d = lam_d**2 / (4 * (lam_d + DEFAULT_SIGMA2))
    lines += ["", "| default-spectrum mode l | " + " | ".join(f"{v:g}" for v in lam_d) + " |",
              "|---|" + "---|" * len(lam_d),
              "| SimSiam threshold | " + " | ".join(f"{v:.3g}" for v in simsiam_d) + " |",
              "| PhiNet / SimSiam, lam = 1 | " + " | ".join(f"{v:.4f}" for v in gain_ratio(r_d, 1.0)) + " |",
              "| PhiNet threshold, lam = 1 | "
              + " | ".join(f"{v:.3g}" for v in gain_ratio(r_d, 1.0) * simsiam_d) + " |",
              "| SimSiam x 2 threshold | " + " | ".join(f"{2 * v:.3g}" for v in simsiam_d) + " |"]
    sad = saddles(TABLE_ETAS)
    lines += ["", "| eta | " + " | ".join(label for label, _, _ in METHODS.values()) + " |",
              "|---|" + "---|" * len(METHODS)]
    for i, eta in enumerate(TABLE_ETAS):
        lines.append(f"| {eta:g} | " + " | ".join(f"{sad[m][i]:.6g}" for m in METHODS) + " |")
    return "\n".join(lines)


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m figures.phinet_gain")
    ap.add_argument("--small", action="store_true", help="coarse and fast (for tests)")
    ap.add_argument("--out", default=str(HERE), help="output folder (default: figures/)")
    args = ap.parse_args(argv)
    with jax.enable_x64(True):
        fig, _ = make(args.small)
        text = None if args.small else table()
    path = Path(args.out) / "phinet_gain.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if text:
        print(text)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
