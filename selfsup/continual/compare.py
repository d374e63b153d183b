"""Comparison: methods x {fine-tuning, CaSSLe} (and residual momentum) in class-incremental continual
learning, over several seeds, as a mean +- std table.

``python -m selfsup.continual.compare [--methods simsiam,byol,phinet,xphinet] [--residual byol,xphinet]
[--lam-r 1] [--cassle-methods simsiam,byol] [--seeds 0,1,2] [--preset cifar10-cpu --data-dir DIR]
[--tasks 5] [--epochs 20] [--out-dir runs/continual-compare] [--smoke]`` runs ``run_continual`` for every
seed and method fine-tuned, and with CaSSLe (``--cassle-methods``: only those; default every method), and
for every ``--residual`` method with residual momentum ``--lam-r`` (no CaSSLe). Every
other flag of ``python -m selfsup.continual`` (trainer and continual options, ``--preset``) applies to
every run. Finished runs with the same config are reused and interrupted ones resumed,
so the runs of ``python -m selfsup.continual`` with the same flags count. Writes ``compare.json`` (every
run's summary), ``table.md`` (average accuracy, forgetting and backward transfer of the kNN, linear and
10-labels-per-class probes, mean +- std over seeds, time; then each variant's paired difference from the
fine-tuned run of the same method and seed) and ``R.png`` (every configuration's 10-labels-per-class probe
R, averaged over seeds) to ``--out-dir``.

Public API: ``compare(base, methods, *, seeds=None, residual=(), lam_r=1.0, cassle=None, dataset=None) ->
list[dict]`` (one summary per run, with its ``seed``), ``group(summaries) -> dict`` (``{(method, cassle,
lam_r): [runs]}`` in order), ``table(summaries) -> str`` and ``paired(summaries) -> str | None``
(Markdown).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dynamics import jit_cache
from selfsup.compare import mean_std
from selfsup.config import Parser, presets_help, run_cli
from selfsup.continual.config import ContinualConfig, parse

METHODS = ("simsiam", "byol", "phinet", "xphinet")
RESIDUAL = ("byol", "xphinet")


def _run(cc: ContinualConfig, dataset):
    from selfsup.continual.continual import run_continual
    run = Path(cc.train.out_dir) / cc.name
    summary = run / "summary.json"
    if summary.exists():  # the same run, wherever its folder was moved (out_dir and progress aside)
        loose = lambda d: {k: v for k, v in d.items() if k not in ("out_dir", "progress", "git_sha", "split")}
        saved = json.loads((run / "config.json").read_text())
        if loose(saved["train"]) == loose(cc.to_dict()["train"]) and \
                loose({**saved, "train": 0}) == loose({**cc.to_dict(), "train": 0}):
            return {**json.loads(summary.read_text()), "seed": cc.train.seed}
    out = run_continual(cc, dataset=dataset, resume=True)  # interrupted: continued; new: started
    return {**out, "seed": cc.train.seed}


def configurations(base: ContinualConfig, methods=METHODS, *, seeds=None, residual=(), lam_r: float = 1.0,
                   cassle=None):
    """The ``ContinualConfig`` of every run, seed by seed: each method fine-tuned, and with CaSSLe if it is
    in ``cassle`` (default: every method), then each ``residual`` method with ``train.lam_r = lam_r``."""
    cfg = base.train
    cassle = methods if cassle is None else cassle
    out = []
    for seed in (cfg.seed,) if seeds is None else seeds:
        t = cfg.replace(seed=seed, lam_r=0.0)
        out += [base.replace(train=t.replace(method=m), cassle=c) for m in methods for c in (False, True)
                if not c or m in cassle]
        out += [base.replace(train=t.replace(method=m, lam_r=lam_r), cassle=False) for m in residual]
    return out


def compare(base: ContinualConfig, methods=METHODS, *, seeds=None, residual=(), lam_r: float = 1.0,
            cassle=None, dataset=None) -> list[dict]:
    """Summaries of every run of ``configurations(...)`` (trained, resumed or reused), each with ``seed``."""
    from selfsup import data
    cfg = base.train
    dataset = dataset or data.from_config(cfg)
    return [_run(cc, dataset) for cc in configurations(base, methods, seeds=seeds, residual=residual,
                                                       lam_r=lam_r, cassle=cassle)]


def group(summaries: list[dict]) -> dict:
    """``{(method, cassle, lam_r): [summaries over seeds]}``, in first-seen order."""
    out: dict = {}
    for s in summaries:
        out.setdefault((s["method"], bool(s["cassle"]), float(s.get("lam_r", 0.0))), []).append(s)
    return out


def _label(key) -> tuple[str, str]:
    method, cassle, lam_r = key
    return method + (f" + RM (lam_r {lam_r:g})" if lam_r else ""), "yes" if cassle else "no"


_PROBES = (("knn", "kNN"), ("linear", "linear"), ("linear_10pc", "linear 10/class"))


def table(summaries: list[dict]) -> str:
    """Markdown table: method | CaSSLe | seeds | per probe (kNN, linear, linear with 10 labels per class):
    average accuracy and forgetting (%) | per probe: backward transfer (%) | time.

    Forgetting (the max of each task's column before the last row, minus the last row) is biased upward by
    evaluation noise and by a representation that still fluctuates; backward transfer (the last row minus
    the diagonal: what each task lost after its own training ended) has no max in it, so a forgetting that
    backward transfer does not mirror is fluctuation, not loss.

    Each cell is mean +- std (ddof 1) over the seeds of that configuration. The first row is the untrained
    encoder: ``R_init`` (before any training, BN statistics re-estimated on the training images: the same
    for every method of one seed) averaged over tasks,
    then over the seeds' first runs. The time is the sum over tasks of training + evaluation (kept across
    resumes; compilation included), per run."""
    probes = [(k, name) for k, name in _PROBES if summaries and k in summaries[0]]
    head = ("| method | CaSSLe | seeds | " + " | ".join(f"{n} avg acc | {n} forgetting" for _, n in probes)
            + " | " + " | ".join(f"{n} BWT" for _, n in probes))
    rows = [head + " | time (s) |", "|" + "---|" * (4 + 3 * len(probes))]
    inits = {}
    for s in summaries:
        if s.get("R_init"):
            inits.setdefault(s.get("seed"), s["R_init"])
    if inits:  # the untrained encoder: the floor every method should rise above
        cells = [(mean_std([float(np.mean(r[k])) for r in inits.values()])
                  if all(k in r for r in inits.values()) else "-") + " | -" for k, _ in probes]
        rows.append(f"| random init (BN re-estimated) | - | {len(inits)} | " + " | ".join(cells)
                    + " | -" * len(probes) + " | - |")
    for key, runs in group(summaries).items():
        name, cassle = _label(key)
        cells = [mean_std([r[k]["average_accuracy"] for r in runs]) + " | "
                 + mean_std([r[k]["forgetting"] for r in runs]) for k, _ in probes]
        cells += [mean_std([r[k]["backward_transfer"] for r in runs]) for k, _ in probes]
        rows.append(f"| {name} | {cassle} | {len(runs)} | " + " | ".join(cells)
                    + f" | {mean_std([sum(r['task_seconds']) for r in runs], 1, 0)} |")
    return "\n".join(rows)


def paired(summaries: list[dict]) -> str | None:
    """Markdown table of paired differences (percentage points): each variant (CaSSLe, residual momentum) of
    a method minus the same method fine-tuned at the same seed, per probe, for average accuracy and
    forgetting; each cell lists the per-seed differences and their mean. Paired by seed, the differences
    cancel what the seeds share (the untrained encoder, the data order of the first task), so a sign kept at
    every seed is the thing to look for. None when no variant has a fine-tuned partner."""
    probes = [(k, name) for k, name in _PROBES if summaries and k in summaries[0]]
    groups = group(summaries)
    rows = []
    for key, runs in groups.items():
        base = {r.get("seed"): r for r in groups.get((key[0], False, 0.0), [])}
        if key == (key[0], False, 0.0) or not base:
            continue
        pairs = [(r, base[r.get("seed")]) for r in runs if r.get("seed") in base]
        if not pairs:
            continue
        cells = []
        for k, _ in probes:
            for stat in ("average_accuracy", "forgetting"):
                d = [100 * (r[k][stat] - b[k][stat]) for r, b in pairs]
                cells.append(" / ".join(f"{x:+.1f}" for x in d) + f" (mean {np.mean(d):+.1f})")
        name = _label(key)[0]
        rows.append(f"| {name}{' + CaSSLe' if key[1] else ''} | {len(pairs)} | " + " | ".join(cells) + " |")
    if not rows:
        return None
    head = "| variant - fine-tuned, same seed | seeds | " + " | ".join(
        f"{n} avg acc | {n} forgetting" for _, n in probes) + " |"
    return "\n".join([head, "|" + "---|" * (2 + 2 * len(probes))] + rows)


def _figure(summaries, path):
    """Mean few-label-probe (else linear, else kNN) R per configuration: a column per method, a row per
    variant (fine-tuning, CaSSLe, residual momentum)."""
    from matplotlib.figure import Figure

    from selfsup.continual import plots
    key = next(k for k in ("linear_10pc", "linear", "knn") if k in summaries[0])
    groups = group(summaries)
    cols = list(dict.fromkeys(k[0] for k in groups))
    variants = list(dict.fromkeys((k[1], k[2]) for k in groups))  # (cassle, lam_r) in first-seen order
    mean = {k: np.mean([r[key]["R"] for r in runs], 0) for k, runs in groups.items()}
    lo = np.floor(20 * min(m.min() for m in mean.values())) / 20  # one colour scale for all panels
    fig = Figure(figsize=(2.6 * len(cols), 2.7 * len(variants)))
    axes = fig.subplots(len(variants), len(cols), squeeze=False)
    im = None
    for (i, v), (j, m) in ((iv, jm) for iv in enumerate(variants) for jm in enumerate(cols)):
        ax = axes[i, j]
        if (m, *v) not in mean:
            ax.axis("off")
            continue
        name = _label((m, *v))[0] + (" + CaSSLe" if v[0] else "")
        im = plots.heatmap(ax, mean[m, *v], f"{name} ({len(groups[m, *v])} seeds)", vmin=lo, vmax=1.0)
        ax.set(xlabel="", ylabel="")
        ax.title.set_fontsize(8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7)
    fig.suptitle(f"{key} accuracy R[i, j], mean over seeds (row: after task i, column: task j)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def main(argv=None) -> list[dict]:
    parser = Parser(prog="python -m selfsup.continual.compare", description=__doc__.split("\n")[0],
                    epilog=presets_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--residual", default=",".join(RESIDUAL),
                        help="methods also run with residual momentum (comma-separated; '' for none)")
    parser.add_argument("--lam-r", type=float, default=1.0, help="residual-momentum weight of those runs")
    parser.add_argument("--cassle-methods", default=None,
                        help="methods also run with CaSSLe (comma-separated; default: every --methods; "
                             "'' for none): fewer settings, more seeds")
    parser.add_argument("--seeds", "--seed", type=int_list, default=(0, 1, 2),
                        help="comma-separated training seeds (--seed N: one seed)")
    ns, base = parse(parser, argv, ContinualConfig, exclude=("method", "seed", "run_name", "lam_r", "cassle"),
                     train_defaults={"out_dir": "runs/continual-compare"})
    jit_cache.enable()
    base = base.replace(train=base.train.replace(lam_r=0.0))

    def run():
        if not ns.seeds:
            raise ValueError(f"seeds={ns.seeds!r} is invalid: give at least one seed")
        methods = tuple(m for m in ns.methods.split(",") if m)
        residual = tuple(m for m in ns.residual.split(",") if m)
        cassle = None if ns.cassle_methods is None else tuple(m for m in ns.cassle_methods.split(",") if m)
        if cassle and set(cassle) - set(methods):
            raise ValueError(f"cassle-methods={ns.cassle_methods!r} is invalid: each must also be in "
                             f"--methods ({','.join(methods)})")
        for cc in configurations(base, methods, seeds=ns.seeds, residual=residual, lam_r=ns.lam_r,
                                 cassle=cassle):
            cc.validate()
        return compare(base, methods, seeds=ns.seeds, residual=residual, lam_r=ns.lam_r, cassle=cassle)
    summaries = run_cli(parser, run)
    out = Path(base.train.out_dir)
    (out / "compare.json").write_text(json.dumps(summaries, indent=1))
    text = table(summaries) + ("\n\n" + pairs if (pairs := paired(summaries)) else "")
    (out / "table.md").write_text(text + "\n")
    _figure(summaries, out / "R.png")
    print(text, file=sys.stdout)
    return summaries


if __name__ == "__main__":
    main()
