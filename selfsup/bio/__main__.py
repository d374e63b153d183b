"""CLI: ``python -m selfsup.bio --rule fa --schedule gll --dataset mnist5k`` trains one rule x schedule and
prints its per-layer linear accuracy; ``python -m selfsup.bio --grid`` runs every rule x schedule plus the
random-encoder baseline and writes the table.

Names: ``--rule`` bp | fa | urf | urf-hebb | dtp; ``--schedule`` e2e | gll | rll (``selfsup.bio.rules``,
``selfsup.bio.schedules``). Every ``BioConfig`` field is a flag (``--help``). ``--smoke`` starts from the tiny
preset; ``--resume`` continues a run from its checkpoint, ``--overwrite`` replaces the run in the folder
(without either, a folder that already holds a run is refused: ``selfsup.rundir``). ``--grid`` (with
``--rules``, ``--schedules``, comma-separated; ``--seeds 0,1,2``: the grid of each seed, then a mean +- std
table) keeps finished runs (their ``summary.json`` with the same config) and resumes an interrupted one, so
an interrupted grid loses at most one epoch; it writes ``<out_dir>/grid-<dataset>-s<seed>/``
``results.json`` and ``table.md`` (best-layer linear accuracy, paper's CIFAR numbers beside it); with
``--seeds``, also ``<out_dir>/grid-<dataset>-seeds<0-1-2>/``.
Bad flags, a folder holding another run and a corrupt checkpoint exit with status 2 and one line.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from dynamics import jit_cache
from selfsup import data, rundir
from selfsup.bio import rules, schedules
from selfsup.bio import train as bio_train
from selfsup.bio.config import BioConfig
from selfsup.config import Parser, add_flags, from_args, run_cli

# Tang, Yang & Amit 2022: pretrain CIFAR-100, linear evaluation on CIFAR-10, 6-layer CNN
# (docs/methods.md section 5).
PAPER = {("bp", "e2e"): 71.44, ("dtp", "e2e"): 71.29, ("fa", "e2e"): 61.70, ("layer-wise", "gll"): 72.76,
         ("layer-wise", "rll"): 71.35, ("random", "none"): 61.23}
GRID_RULES = ("bp", "fa", "urf", "dtp")


def _run(config: BioConfig, dataset) -> dict:
    path = Path(config.out_dir) / config.name / "summary.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("config") == dataclasses.asdict(config.replace(progress=True)):
            return old
    _, summary = bio_train.train(config, dataset=dataset, resume=True)
    summary["config"] = dataclasses.asdict(config.replace(progress=True))
    path.write_text(json.dumps(summary, indent=1))
    return summary


def format_table(results: list[dict], random: dict, sched: tuple[str, ...]) -> str:
    """Markdown: best-layer linear accuracy (%, layer) per rule x schedule, the paper's numbers beside."""
    pct = lambda s: f"{100 * s['best_acc']:.1f} (L{s['best_layer']})"
    head = "| rule | " + " | ".join(sched) + " | paper e2e (CIFAR) |"
    lines = [head, "|" + "---|" * (len(sched) + 2)]
    by = {(r["rule"], r["schedule"]): r for r in results}
    for rule in dict.fromkeys(r["rule"] for r in results):
        cells = [pct(by[rule, s]) if (rule, s) in by else "" for s in sched]
        paper = PAPER.get((rule, "e2e"))
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {paper if paper else '-'} |")
    lines.append(f"| random encoder | {pct(random)} |" + " |" * len(sched))
    lines.append("")
    lines.append(f"Paper (CIFAR-100 -> CIFAR-10): GLL {PAPER['layer-wise', 'gll']}, "
                 f"RLL {PAPER['layer-wise', 'rll']}, random encoder {PAPER['random', 'none']}.")
    return "\n".join(lines)


def grid(base: BioConfig, rule_names, sched_names) -> dict:
    dataset = data.from_config(base, seed=0)  # the fixed split
    t0, results = time.perf_counter(), []
    random = bio_train.random_encoder(base, dataset=dataset)
    for rule in rule_names:
        for sched in sched_names:
            results.append(_run(base.replace(rule=rule, schedule=sched, run_name=""), dataset))
            r = results[-1]
            print(f"{rule:9s} {sched:4s} " + " ".join(f"{a:.3f}" for a in r["linear_acc"]), file=sys.stderr)
    out = Path(base.out_dir) / f"grid-{base.dataset}-s{base.seed}"
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(results, random, tuple(sched_names))
    payload = {"results": results, "random_encoder": random, "wall_s": time.perf_counter() - t0,
               "base_config": dataclasses.asdict(base)}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    (out / "table.md").write_text(table + "\n")
    print(table)
    return payload


def _neg_active(run_dir: str) -> tuple[float, float]:
    """The fraction of negatives inside the hinge margin in a run's first and last logged steps."""
    recs = [json.loads(ln) for ln in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if ln]
    vals = [r["neg_active"] for r in recs if "neg_active" in r]
    return (float(vals[0]), float(vals[-1])) if vals else (float("nan"), float("nan"))


def seeds_table(grids: list[dict], sched: tuple[str, ...]) -> str:
    """Markdown over seeds: best-layer and top-layer linear accuracy (%), mean +- std (ddof 1), per rule x
    schedule; the random encoder; the fraction of negatives inside the margin at the start / end."""
    from selfsup.compare import mean_std
    by: dict = {}
    for g in grids:
        for r in g["results"]:
            by.setdefault((r["rule"], r["schedule"]), []).append(r)
    top = lambda rs: mean_std([r["linear_acc"][-1] for r in rs])
    head = "| rule | " + " | ".join(f"{s} best | {s} L5" for s in sched) + " |"
    lines = [f"{len(grids)} seeds; cells: mean ± std of the best layer's / top layer's linear accuracy (%)",
             "", head, "|" + "---|" * (1 + 2 * len(sched))]
    for rule in dict.fromkeys(k[0] for k in by):
        cells = [f"{mean_std([r['best_acc'] for r in by[rule, s]])} | {top(by[rule, s])}" if (rule, s) in by
                 else " | " for s in sched]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    rand = [g["random_encoder"] for g in grids]
    lines.append(f"| random encoder | {mean_std([r['best_acc'] for r in rand])} | {top(rand)} |"
                 + " |" * (2 * len(sched) - 2))
    act = [_neg_active(r["run_dir"]) for rs in by.values() for r in rs if r.get("run_dir")]
    if act:
        a = np.array(act)
        lines += ["", "Negatives inside the hinge margin (T + d): first logged steps "
                  f"{100 * np.nanmin(a[:, 0]):.0f}-{100 * np.nanmax(a[:, 0]):.0f}%, "
                  f"last {100 * np.nanmin(a[:, 1]):.0f}-"
                  f"{100 * np.nanmax(a[:, 1]):.0f}% (over all runs)."]
    return "\n".join(lines)


def grid_seeds(base: BioConfig, rule_names, sched_names, seeds) -> dict:
    """``grid`` for every seed (finished runs reused), then ``seeds_table`` in
    ``<out_dir>/grid-<dataset>-seeds<s0-s1-...>/{table.md,results.json}``."""
    grids = [grid(base.replace(seed=s), rule_names, sched_names) for s in seeds]
    out = Path(base.out_dir) / f"grid-{base.dataset}-seeds{'-'.join(map(str, seeds))}"
    out.mkdir(parents=True, exist_ok=True)
    text = seeds_table(grids, tuple(sched_names))
    (out / "results.json").write_text(json.dumps(grids, indent=1))
    (out / "table.md").write_text(text + "\n")
    print(text)
    return {"grids": grids, "table": text}


def _names(parser, text: str, allowed, flag: str) -> tuple[str, ...]:
    names = tuple(t for t in text.split(",") if t)
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        parser.error(f"{flag}={text!r}: each name must be one of {tuple(allowed)}")
    return names


def main(argv=None):
    parser = Parser(prog="python -m selfsup.bio", description=__doc__.split("\n")[0])
    add_flags(parser, BioConfig())
    parser.add_argument("--smoke", action="store_true", help="start from the tiny BioConfig.smoke() preset")
    rundir.add_cli_flags(parser)
    parser.add_argument("--grid", action="store_true", help="every rule x schedule + random encoder")
    parser.add_argument("--rules", default=",".join(GRID_RULES), help="grid rules, comma-separated")
    parser.add_argument("--schedules", default=",".join(schedules.SCHEDULES), help="grid schedules")
    parser.add_argument("--seeds", default="", help="grid per comma-separated seed + mean ± std table")
    ns = parser.parse_args(argv)
    jit_cache.enable()
    preset = BioConfig.smoke() if ns.smoke else BioConfig()
    config = run_cli(parser, lambda: from_args(ns, preset).validate())
    if ns.grid:
        names = (_names(parser, ns.rules, rules.RULES, "--rules"),
                 _names(parser, ns.schedules, schedules.SCHEDULES, "--schedules"))
        if ns.seeds:
            try:
                seeds = tuple(int(x) for x in ns.seeds.split(",") if x.strip())
            except ValueError:
                parser.error(f"--seeds={ns.seeds!r}: must be comma-separated integers")
            return run_cli(parser, lambda: grid_seeds(config, *names, seeds))
        return run_cli(parser, lambda: grid(config, *names))
    resume = run_cli(parser, lambda: rundir.cli_resume(ns, Path(config.out_dir) / config.name))
    _, summary = run_cli(parser, lambda: bio_train.train(config, resume=resume, overwrite=ns.overwrite))
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}))
    return summary


if __name__ == "__main__":
    main()
