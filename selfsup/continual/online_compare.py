"""Online comparison: which method adapts fastest on a one-pass stream, over several seeds.

``python -m selfsup.continual.online_compare [--methods simsiam,byol,phinet,xphinet] [--seeds 0,1,2]
[--stream iid|tasks] [--preset cifar10-cpu --data-dir DIR] [--out-dir runs/online]`` runs ``run_online``
(the defaults of ``python -m selfsup.continual.online``: batch 16, one pass over the 4000 mnist5k training
images; every flag of that command applies to every run) for every method and seed, reusing finished runs
with the same config (the runs of ``python -m selfsup.continual.online`` count), and writes
``online-<stream>.md`` (the table), ``online-<stream>.json`` and ``online-<stream>.png`` (mean +- std
curves) to ``--out-dir``.

"Adapts faster" is measured three ways on the whole test set, each mean +- std over seeds: the accuracy
after the first tenth of the stream (``early``), the mean over the evaluation points after the start
(``area``: the normalised area under the curve), and the end of the pass; for the kNN classifier (k from
the config) and the 10-labels-per-class linear probe; plus the all-label linear probe at the end.

The ``tasks`` stream shifts its class distribution at each task's start; there the table is followed by
how each method meets a shift (``shift_stats``): the new classes' kNN gain over the first evaluation
interval after the shift (how fast it adapts), and the first task's kNN at the end and its drop from the
peak (the memory of classes seen early). With ``--evals`` a multiple of ``--tasks`` the evaluation points
fall on the shifts.

Public API: ``runs(base, methods, seeds) -> {method: [summary per seed]}``, ``curve_stats(summary, key)``,
``shift_stats(summary)``, ``table(results) -> str`` and ``shift_table(results) -> str | None``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from dynamics import jit_cache
from selfsup.compare import mean_std
from selfsup.config import Parser, presets_help, run_cli
from selfsup.continual.compare import int_list
from selfsup.continual.config import parse
from selfsup.continual.online import OnlineConfig

METHODS = ("simsiam", "byol", "phinet", "xphinet")
_CURVES = (("knn_all", "kNN"), ("linear_10pc_all", "linear 10/class"))


def _run(oc: OnlineConfig, dataset) -> dict:
    from selfsup.continual.online import run_online
    run = Path(oc.train.out_dir) / oc.name
    loose = lambda d: {**d, "train": {k: v for k, v in d["train"].items()
                                      if k not in ("out_dir", "progress")}}
    if (run / "summary.json").exists():
        saved = json.loads((run / "config.json").read_text())
        saved = {k: v for k, v in saved.items() if k not in ("git_sha", "split")}
        if loose(saved) == loose(dataclasses.asdict(oc)):
            return json.loads((run / "summary.json").read_text())
    return run_online(oc, dataset=dataset, resume=True)  # interrupted: continued; new: started


def runs(base: OnlineConfig, methods=METHODS, seeds=(0, 1, 2), *, dataset=None) -> dict:
    """``{method: [summary for each seed]}`` (trained, resumed or reused)."""
    from selfsup import data
    cfg = base.train
    dataset = dataset or data.from_config(cfg)
    return {m: [_run(dataclasses.replace(base, train=cfg.replace(method=m, seed=s)), dataset) for s in seeds]
            for m in methods}


def curve_stats(summary: dict, key: str) -> dict:
    """``start`` (before training), ``early`` (at the evaluation point after the start nearest a tenth
    of the stream), ``area`` (mean over the
    points after the start) and ``final`` of one run's curve ``summary[key]``."""
    seen, acc = np.asarray(summary["seen"], float), np.asarray(summary[key], float)
    early = 1 + int(np.argmin(np.abs(seen[1:] - seen[-1] / 10))) if len(seen) > 1 else 0
    return {"start": float(acc[0]), "early": float(acc[early]), "area": float(acc[1:].mean()),
            "final": float(acc[-1])}


def shift_stats(summary: dict) -> dict | None:
    """After each shift of a ``tasks`` stream (``summary["task_starts"]``), from the per-task kNN curve
    ``summary["knn"]`` (points x tasks): ``adapt``, the new task's gain over the first evaluation interval
    after its start (the point at or before the start to the next one), averaged over the shifts; ``memory``,
    the first task's accuracy at the end of the pass; ``forget``, its peak along the stream minus that end.
    None for a stream without shifts (``iid``, one task) or a run written before ``task_starts`` existed."""
    starts = summary.get("task_starts")
    if not starts or len(starts) < 2:
        return None
    seen, knn = np.asarray(summary["seen"], float), np.asarray(summary["knn"], float)
    gains = []
    for t, b in enumerate(starts[1:], start=1):
        i = int(np.flatnonzero(seen <= b)[-1])
        if i + 1 < len(seen):
            gains.append(knn[i + 1, t] - knn[i, t])
    return {"adapt": float(np.mean(gains)) if gains else float("nan"), "memory": float(knn[-1, 0]),
            "forget": float(knn[:, 0].max() - knn[-1, 0])}


def shift_table(results: dict) -> str | None:
    """Markdown for a stream that shifts (``shift_stats``; None otherwise): one row per method, mean +- std
    over seeds, in kNN points on the classes concerned."""
    stats = {m: [shift_stats(s) for s in rs] for m, rs in results.items()}
    if any(x is None for st in stats.values() for x in st):
        return None
    lines = ["| method | seeds | new task's kNN gain in the interval after a shift "
             "| first task's kNN at the end | first task's kNN, peak minus end |", "|---|---|---|---|---|"]
    for m, st in stats.items():
        lines.append(f"| {m} | {len(st)} | " + " | ".join(mean_std([x[f] for x in st])
                                                        for f in ("adapt", "memory", "forget")) + " |")
    return "\n".join(lines)


def table(results: dict) -> str:
    """Markdown: one row per method (plus the untrained encoder, the curves' first point: BN
    statistics re-estimated on the training images)."""
    keys = [(k, n) for k, n in _CURVES if all(k in s for r in results.values() for s in r)]
    head = "| method | seeds | " + " | ".join(f"{n} early | {n} area | {n} end" for _, n in keys)
    lines = [head + " | linear end |", "|" + "---|" * (3 + 3 * len(keys))]
    first = next(iter(results.values()))
    init = [mean_std([curve_stats(s, k)["start"] for s in first]) + " | - | -" for k, _ in keys]
    lines.append(f"| untrained encoder (BN re-estimated) | {len(first)} | " + " | ".join(init) + " | - |")
    for m, rs in results.items():
        cells = []
        for k, _ in keys:
            st = [curve_stats(s, k) for s in rs]
            cells.append(" | ".join(mean_std([x[f] for x in st]) for f in ("early", "area", "final")))
        lin = mean_std([s["final"]["linear_all"] for s in rs if "linear_all" in s.get("final", {})])
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(cells) + f" | {lin} |")
    return "\n".join(lines)


def figure(results: dict, path, title: str = "") -> Path:
    """Mean +- std (over seeds) of each curve against examples seen, one panel per classifier."""
    from matplotlib.figure import Figure
    keys = [(k, n) for k, n in _CURVES if all(k in s for r in results.values() for s in r)]
    fig = Figure(figsize=(4.6 * len(keys), 3.4))
    for ax, (k, name) in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys):
        for m, rs in results.items():
            seen = np.asarray(rs[0]["seen"])
            acc = np.asarray([s[k] for s in rs]) * 100
            ax.plot(seen, acc.mean(0), marker="o", ms=3, label=f"{m} ({len(rs)} seeds)")
            if len(rs) > 1:
                sd = acc.std(0, ddof=1)
                ax.fill_between(seen, acc.mean(0) - sd, acc.mean(0) + sd, alpha=0.15)
        ax.set(xlabel="training examples seen", ylabel=f"{name} accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return Path(path)


def main(argv=None) -> dict:
    p = Parser(prog="python -m selfsup.continual.online_compare", description=__doc__.split("\n")[0],
               epilog=presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    p.add_argument("--seeds", type=int_list, default=(0, 1, 2), help="comma-separated training seeds")
    ns, base = parse(p, argv, OnlineConfig, exclude=("method", "seed", "run_name"))
    jit_cache.enable()
    methods = tuple(m for m in ns.methods.split(",") if m)

    def check():
        if not ns.seeds or not methods:
            raise ValueError(f"seeds={ns.seeds!r}, methods={methods!r}: give at least one of each")
        for m in methods:
            dataclasses.replace(base, train=base.train.replace(method=m)).validate()
    run_cli(p, check)
    results = run_cli(p, lambda: runs(base, methods, ns.seeds))
    out = Path(base.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = base.stream
    (out / f"online-{stream}.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    shifts = shift_table(results)
    if shifts:
        text += "\n\nAfter each shift of the class distribution (kNN on the classes concerned):\n\n" + shifts
    (out / f"online-{stream}.md").write_text(text + "\n")
    figure(results, out / f"online-{stream}.png",
           title=f"online, {stream} stream, batch {base.train.batch_size}, one pass ({base.train.dataset})")
    print(text)
    return results


if __name__ == "__main__":
    main()
