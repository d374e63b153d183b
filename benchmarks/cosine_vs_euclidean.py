"""Cosine against Euclidean loss at the sampled-data level: surviving modes, eigen-structure, Wp-F alignment.

    python benchmarks/cosine_vs_euclidean.py [--wd 5e-4,5e-3,5e-2] [--method simsiam,...] [--lr 0.01]
        [--batch 256] [--momentum 0] [--t-factor 20] [--json PATH]

Every method of `dynamics.simulate` at `--level sgd` on the default 8-mode spectrum, the same random start
and the same batches for both losses (`dynamics.runs.simulate_method`, the engine of the CLI), horizon
`t_max = t_factor / wd`. Per run, on the final state `W = U S V^T`: the eigenvalues `s_j = S_j^2` of
`W W^T` (descending); mode j survives when `s_j >= s_tol s_1` (`s_tol` = 1e-6: the CLI's relative criterion
for the scale-free cosine loss; for the Euclidean loss the survivors' `s` is O(0.01..1) and the collapsed
ones ~1e-17, so it is the CLI's absolute criterion too). Each survivor's data mode is the input axis `m` its
right singular vector `v_j` carries most (purity `v_j[m]^2`), its predictor gain `p_j = u_j^T Wp u_j`,
printed as `p_j c_m / l_m` relative to the top mode's (1 everywhere: the modes equalise `p c / l`, as
`dynamics.halvagal`'s cosine fixed point). Alignment of `Wp` with `F = W (X + X') W^T`: the smallest
`cos(Wp u, u)` over F's top k eigenvectors (k survivors) and `||[F, Wp]||_F / (||F||_F ||Wp||_F)`. Prints
one markdown table (the README's).
"""
import argparse
import json
import time

import jax
import numpy as np

from dynamics.methods import DEFAULT_METHODS
from dynamics.moments import DEFAULT_LAMBDAS, DEFAULT_SIGMA2
from dynamics.runs import SimConfig, simulate_method


def final_structure(arrays: dict, lambdas, sigma2s, s_tol: float) -> dict:
    """Surviving modes, their data modes, predictor gains and the Wp-F alignment of a run's final state."""
    W, Wp = arrays["final_W"], arrays["final_Wp"]
    U, S, Vt = np.linalg.svd(W)
    s = S**2  # eigenvalues of W W^T, descending
    k = int(np.sum(s >= s_tol * s[0]))
    data_mode = np.argmax(np.abs(Vt[:k]), axis=1)  # the input axis each surviving mode carries
    purity = Vt[np.arange(k), data_mode] ** 2
    gain = np.einsum("ik,ij,jk->k", U[:, :k], Wp, U[:, :k])
    F = W @ np.diag(np.asarray(lambdas) + np.asarray(sigma2s)) @ W.T
    f, Uf = np.linalg.eigh(F)
    top = Uf[:, ::-1][:, :k]
    WpU = Wp @ top
    cos = np.sum(top * WpU, 0) / np.maximum(np.linalg.norm(WpU, axis=0), 1e-300)
    comm = np.linalg.norm(F @ Wp - Wp @ F) / (np.linalg.norm(F) * np.linalg.norm(Wp))
    return {"surviving": k, "data_modes": data_mode.tolist(), "purity_min": float(purity.min()),
            "s_rel": (s / s[0]).tolist(), "p": gain.tolist(), "align_min_cos": float(cos.min()),
            "commutator": float(comm), "s_max": float(s[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wd", default="5e-4,5e-3,5e-2")
    ap.add_argument("--method", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--t-factor", type=float, default=20.0)
    ap.add_argument("--json", default=None, help="also write every row here")
    args = ap.parse_args()
    rows = []
    print("| method | wd | loss | surviving: data modes (purity) | s_j / s_1 | p_j c_m / l_m, rel. to mode 0 "
          "| min cos(Wp u, u) | comm. |")
    print("|---|---|---|---|---|---|---|---|")
    lambdas, sigma2s = DEFAULT_LAMBDAS, (DEFAULT_SIGMA2,) * len(DEFAULT_LAMBDAS)
    ratio = np.asarray(lambdas) / (np.asarray(lambdas) + np.asarray(sigma2s))  # l / c
    for wd in (float(w) for w in args.wd.split(",")):
        for name in args.method.split(","):
            for loss in ("euclidean", "cosine"):
                cfg = SimConfig(level="sgd", lambdas=lambdas, sigma2s=sigma2s, wd=wd,
                                t_max=args.t_factor / wd,
                                n_save=11, p0=(0.5,) * 8, s0=(0.25,) * 8, g0=(0.5,) * 8, lr=args.lr,
                                batch=args.batch, loss=loss, momentum=args.momentum)
                start = time.perf_counter()
                with jax.enable_x64(True):
                    arrays, _ = simulate_method(cfg, name)
                row = {"method": name, "wd": wd, "loss": loss, "wall_s": time.perf_counter() - start,
                       **final_structure(arrays, lambdas, sigma2s, cfg.s_tol)}
                rows.append(row)
                k, modes = row["surviving"], row["data_modes"]
                srel = ", ".join(f"{v:.2g}" for v in row["s_rel"][:k])
                pcl = [row["p"][j] / ratio[m] for j, m in enumerate(modes)]
                pcl = ", ".join(f"{v / pcl[0]:.2f}" for v in pcl)
                print(f"| {name} | {wd:g} | {loss} | {k}: {modes} ({row['purity_min']:.2f}) | {srel} "
                      f"| {pcl} | "
                      f"{row['align_min_cos']:.3f} | {row['commutator']:.1e} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"argv": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
