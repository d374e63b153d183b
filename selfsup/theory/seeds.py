"""The theory check over several seeds: mean +- std of every per-point number, and the weight-decay sweep
against the linear theory's thresholds.

``python -m selfsup.theory.seeds [--names s0,s1,s2] [--out-dir runs/theory_check]`` reads the
``report.json`` of finished theory checks (one per seed, e.g. ``python -m selfsup.theory --seed 1
--name s1``; they must share every setting but the seed), and writes ``<out_dir>/seeds-<names>/table.md``
and ``summary.json``.

Public API
----------
``load(out_dir, names) -> list[dict]`` (refuses reports whose configs differ in anything but seed/name);
``point_rows(reports) -> dict`` (``{tag: {field: [value per seed]}}``); ``sweep_rows(reports) -> dict``
(per method and wd over seeds: ``erank_F``, ``collapsed`` seeds, ``knn_acc``, ``collapsed_fraction`` of F's
dimensions; the last non-collapsed wd and the predicted threshold per seed); ``exponent_rows(out_dir, names)
-> dict`` (``{tag: {"steps": [...], "exponent": [[value per seed] per step]}}``: the p ~ s^a exponent at 1/4,
1/2, 3/4 and all of training, read from each run's ``data.npz``, to show whether it has settled);
``markdown(reports, exponents=None) -> str`` (the predicted thresholds also as ratios to SimSiam's).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from selfsup.compare import mean_std
from selfsup.config import Parser

POINT_FIELDS = (("align_weighted_final", "F-weighted alignment", 1.0),
                ("align_mean_final", "mean alignment", 1.0), ("asym_final", "asymmetry", 1.0),
                ("exponent_final", "exponent p ~ s^a", 1.0),
                ("exponent_r2_final", "R^2 of the fit", 1.0), ("erank_F", "eff. rank of F", 1.0),
                ("surviving_F", "surviving eigenvalues", 1.0), ("knn_acc", "kNN (%)", 100.0),
                ("linear_acc_10pc", "linear 10/class (%)", 100.0),
                ("out_std", "output std (1/sqrt d healthy)", 1.0))
EXPONENT_AT = (0.25, 0.5, 0.75, 1.0)  # fractions of training at which exponent_rows reads the fit
_SEED_ONLY = ("seed", "name", "progress")


def load(out_dir, names) -> list[dict]:
    reports = [json.loads((Path(out_dir) / n / "report.json").read_text()) for n in names]
    base = {k: v for k, v in reports[0]["config"].items() if k not in _SEED_ONLY}
    for n, r in zip(names, reports):
        diff = sorted(k for k, v in r["config"].items() if k not in _SEED_ONLY and base.get(k) != v)
        if diff:
            raise ValueError(f"{Path(out_dir) / n}: differs from {names[0]} in {', '.join(diff)} "
                             "(only the seed may differ)")
    return reports


def point_rows(reports) -> dict:
    tags = list(reports[0]["points"])
    value = lambda r, t, f: float(r["points"][t].get(f, np.nan))
    return {t: {f: [v for r in reports if np.isfinite(v := value(r, t, f))] for f, _, _ in POINT_FIELDS}
            for t in tags}


def sweep_rows(reports) -> dict:
    cfg = reports[0]["config"]
    wds = reports[0]["sweep"]["wds"]
    out = {}
    for m in cfg["methods"]:
        erank = np.array([r["sweep"]["table"][m]["erank_F"] for r in reports])  # (seeds, wds)
        table = lambda f, m=m: np.array([r["sweep"]["table"][m][f] for r in reports], np.float64).T.tolist()
        out[m] = {"wds": wds, "erank_F": erank.T.tolist(), "knn_acc": table("knn_acc"),
                  "collapsed_fraction": (1 - np.array(table("surviving_F")) / cfg["proj_dim"]).tolist(),
                  "collapsed": (erank < cfg["collapse_erank"]).sum(0).tolist(),
                  "last_alive_wd": [r["sweep"]["last_alive_wd"][m] for r in reports],
                  "predicted": [r["headline"]["predicted_threshold"].get(m) for r in reports]}
    return out


def exponent_rows(out_dir, names, fractions=EXPONENT_AT) -> dict:
    """The exponent of the p ~ s^a fit at the record nearest each fraction of the last recorded step, per
    point and seed, from ``<out_dir>/<name>/data.npz``. Empty if a run has no ``data.npz``."""
    paths = [Path(out_dir) / n / "data.npz" for n in names]
    if not all(p.is_file() for p in paths):
        return {}
    runs = []
    for path in paths:
        with np.load(path) as z:
            runs.append({k: z[k] for k in z.files if k.endswith(("__step", "__exponent"))})
    tags = [k[:-len("__step")] for k in runs[0] if k.endswith("__step")]
    out = {}
    for tag in tags:
        step = runs[0][f"{tag}__step"]
        idx = [int(np.argmin(np.abs(step - f * step[-1]))) for f in fractions]
        out[tag] = {"steps": [int(step[i]) for i in idx],
                    "exponent": [[float(r[f"{tag}__exponent"][i]) for r in runs] for i in idx]}
    return out


def markdown(reports, exponents=None) -> str:
    n = len(reports)
    lines = [f"Mean ± std over {n} seeds (sample std).", "",
             "| point | " + " | ".join(name for _, name, _ in POINT_FIELDS) + " |",
             "|" + "---|" * (1 + len(POINT_FIELDS))]
    for tag, row in point_rows(reports).items():
        cells = [mean_std(row[f], scale, 2 if scale == 1.0 else 1) for f, _, scale in POINT_FIELDS]
        lines.append(f"| {tag} | " + " | ".join(cells) + " |")
    sweep = sweep_rows(reports)
    if sweep:
        wds = next(iter(sweep.values()))["wds"]
        sig = [r["sigma2_hat"] for r in reports]
        lines += ["", f"Weight-decay sweep: effective rank of F (collapsed seeds of {n}: erank < "
                  f"{reports[0]['config']['collapse_erank']}); prediction from `collapse_wd` with the "
                  f"measured sigma2 = {mean_std(sig, 1.0, 3)}.", "",
                  "| method | " + " | ".join(f"wd {w:g}" for w in wds)
                  + " | last non-collapsed wd | predicted |",
                  "|" + "---|" * (3 + len(wds))]
        ref = [p for p in sweep.get("simsiam", {}).get("predicted", []) if p is not None]
        for m, s in sweep.items():
            cells = [f"{mean_std(e, 1.0, 2)} ({c}/{n})" for e, c in zip(s["erank_F"], s["collapsed"])]
            alive = ", ".join("-" if a is None else f"{a:g}" for a in s["last_alive_wd"])
            pred = [p for p in s["predicted"] if p is not None]
            ratio = (f" (x{np.mean(pred) / np.mean(ref):.2f} SimSiam's)" if ref and pred and m != "simsiam"
                     else "")
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {alive} | {mean_std(pred, 1.0, 3)}{ratio} |")
        for key, what, scale in (("knn_acc", "kNN accuracy (%)", 100.0),
                                 ("collapsed_fraction", f"fraction of F's {reports[0]['config']['proj_dim']} "
                                  "dimensions collapsed (below rel_tol of the largest)", 1.0)):
            lines += ["", f"Weight-decay sweep: {what}.", "",
                      "| method | " + " | ".join(f"wd {w:g}" for w in wds) + " |",
                      "|" + "---|" * (1 + len(wds))]
            for m, s in sweep.items():
                lines.append(f"| {m} | " + " | ".join(mean_std(v, scale, 1 if scale == 100.0 else 2)
                                                       for v in s[key]) + " |")
    if exponents:
        steps = next(iter(exponents.values()))["steps"]
        lines += ["", "Exponent of the p ~ s^a fit during training (has it settled?), at step:", "",
                  "| point | " + " | ".join(str(st) for st in steps) + " |", "|" + "---|" * (1 + len(steps))]
        for tag, row in exponents.items():
            lines.append(f"| {tag} | " + " | ".join(mean_std([x for x in v if np.isfinite(x)], 1.0, 2)
                                                  for v in row["exponent"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    p = Parser(prog="python -m selfsup.theory.seeds", description=__doc__.split("\n")[0])
    p.add_argument("--names", default="s0,s1,s2", help="comma-separated theory-check runs (one per seed)")
    p.add_argument("--out-dir", default="runs/theory_check", help="their parent folder")
    ns = p.parse_args(argv)
    names = [n for n in ns.names.split(",") if n]
    missing = [n for n in names if not (Path(ns.out_dir) / n / "report.json").is_file()]
    if not names or missing:
        p.error(f"--names={ns.names!r}: no finished theory check (report.json) under {ns.out_dir} for "
                f"{missing or names}")
    try:
        reports = load(ns.out_dir, names)
    except ValueError as e:
        p.error(str(e))
    exponents = exponent_rows(ns.out_dir, names)
    text = markdown(reports, exponents)
    out = Path(ns.out_dir) / f"seeds-{'-'.join(names)}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps({"names": names, "points": point_rows(reports),
                                                  "sweep": sweep_rows(reports),
                                                  "exponents": exponents}, indent=1))
    print(text)
    return text


if __name__ == "__main__":
    main()
