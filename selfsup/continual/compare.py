"""Comparison: methods x {fine-tuning, CaSSLe} in class-incremental continual learning, as a table.

``python -m selfsup.continual.compare [--methods simsiam,byol,phinet,xphinet] [--dataset mnist5k] [--tasks 5]
[--epochs 10] [--seed 0] [--out-dir runs/continual-compare] [--smoke]`` runs ``run_continual`` for every
method without and with CaSSLe (other options: the defaults of ``python -m selfsup.continual``), reusing
finished runs and resuming interrupted ones, then writes ``compare.json``, ``table.md`` (average accuracy and
forgetting, kNN and linear probe, time) and ``R.png`` (all linear-probe matrices) to ``--out-dir``.

Public API: ``compare(base, methods, *, dataset=None) -> list[dict]`` (one summary per run, in order) and
``table(summaries) -> str`` (Markdown).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from selfsup.continual.config import ContinualConfig

METHODS = ("simsiam", "byol", "phinet", "xphinet")


def _run(cc: ContinualConfig, dataset):
    from selfsup.continual.continual import run_continual
    run = Path(cc.train.out_dir) / cc.name
    summary = run / "summary.json"
    if summary.exists():  # the same run, wherever its folder was moved (out_dir and progress aside)
        loose = lambda d: {k: v for k, v in d.items() if k not in ("out_dir", "progress", "git_sha", "split")}
        saved = json.loads((run / "config.json").read_text())
        if loose(saved["train"]) == loose(cc.to_dict()["train"]) and \
                loose({**saved, "train": 0}) == loose({**cc.to_dict(), "train": 0}):
            return json.loads(summary.read_text())
    return run_continual(cc, dataset=dataset, resume=(run / "checkpoint.msgpack").exists())


def compare(base: ContinualConfig, methods=METHODS, *, dataset=None) -> list[dict]:
    """Summaries of ``base`` with each method, without and then with CaSSLe."""
    from selfsup import data
    cfg = base.train
    dataset = dataset or data.load(cfg.dataset, cfg.data_dir or None, seed=cfg.data_seed)
    return [_run(base.replace(train=cfg.replace(method=m), cassle=c), dataset)
            for m in methods for c in (False, True)]


def table(summaries: list[dict]) -> str:
    """Markdown table: method | CaSSLe | kNN / linear average accuracy and forgetting (%) | time.

    The first row is the untrained encoder (``R_init`` of the first run; all runs share the seed).
    The time is the sum over tasks of training + evaluation (kept across resumes; compilation included)."""
    rows = ["| method | CaSSLe | kNN avg acc | kNN forgetting | linear avg acc | linear forgetting "
            "| time (s) |", "|---|---|---|---|---|---|---|"]
    pct = lambda s, k, m: f"{100 * s[k][m]:.1f}" if k in s else "-"
    init = summaries[0]["R_init"] if summaries else None
    if init:  # the untrained encoder: the floor every method should rise above
        acc = {k: f"{100 * sum(init[k]) / len(init[k]):.1f}" if k in init else "-" for k in ("knn", "linear")}
        rows.append(f"| random init | - | {acc['knn']} | - | {acc['linear']} | - | - |")
    for s in summaries:
        rows.append(f"| {s['method']} | {'yes' if s['cassle'] else 'no'} | "
                    f"{pct(s, 'knn', 'average_accuracy')} | {pct(s, 'knn', 'forgetting')} | "
                    f"{pct(s, 'linear', 'average_accuracy')} | {pct(s, 'linear', 'forgetting')} | "
                    f"{sum(s['task_seconds']):.0f} |")
    return "\n".join(rows)


def _figure(summaries, path):
    import numpy as np

    from selfsup.continual import plots
    plt = plots._plt()
    key = "linear" if "linear" in summaries[0] else "knn"
    n = len(summaries)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(2.6 * ((n + 1) // 2), 5.4), squeeze=False)
    lo = np.floor(20 * min(np.min(s[key]["R"]) for s in summaries)) / 20  # one colour scale for all panels
    for ax, s in zip(axes.T.ravel(), summaries):
        im = plots.heatmap(ax, np.array(s[key]["R"]), f"{s['method']}{' + CaSSLe' if s['cassle'] else ''}",
                           vmin=lo, vmax=1.0)
        ax.set(xlabel="", ylabel="")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7)
    fig.suptitle(f"{key} accuracy R[i, j] (row: after task i, column: task j)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m selfsup.continual.compare",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=ContinualConfig().train.epochs, help="epochs per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="runs/continual-compare")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (ContinualConfig.smoke())")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    ns = parser.parse_args(argv)
    base = ContinualConfig.smoke() if ns.smoke else ContinualConfig()
    try:
        base = base.replace(tasks=ns.tasks, train=base.train.replace(
            dataset=ns.dataset, epochs=ns.epochs, seed=ns.seed, out_dir=ns.out_dir, progress=ns.progress))
        methods = tuple(m for m in ns.methods.split(",") if m)
        for m in methods:
            base.replace(train=base.train.replace(method=m)).validate()
        summaries = compare(base, methods)
    except ValueError as e:
        parser.error(str(e))
    out = Path(ns.out_dir)
    (out / "compare.json").write_text(json.dumps(summaries, indent=1))
    (out / "table.md").write_text(table(summaries) + "\n")
    _figure(summaries, out / "R.png")
    print(table(summaries), file=sys.stdout)
    return summaries


if __name__ == "__main__":
    main()
