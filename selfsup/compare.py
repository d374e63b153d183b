"""The method comparison: every method x several seeds with the trainer's defaults, as mean +- std.

``python -m selfsup.compare`` (default: the six methods, seeds 0, 1, 2, mnist5k; ``--preset cifar10-cpu
--data-dir DIR`` for CIFAR-10) trains each run with ``selfsup.train.train`` into
``<out-dir>/<run-name>/<method>-s<seed>/`` (default ``runs/compare/<preset or dataset>/``), skips runs
that already have a ``summary.json`` and resumes an interrupted one from its checkpoint (so an interrupted
comparison resumes where it stopped) and writes ``table.md`` and ``results.json`` beside them. Rows: raw
pixels and the untrained encoder (from the runs' own baselines, same code, same split: ``random_init`` with
BN statistics re-estimated on the training images, ``random_init_bn_init`` with its initial ones), then
each method. Columns: ``linear_acc``, ``linear_acc_10pc``, the mean of
``linear_acc_10pc_draws`` (the few-label probe on 5 label draws: less noisy than one), ``knn_acc_k20``,
``knn_acc_k200``, ``erank``, wall seconds; then ``margins(rows)``: each method's per-seed margin over the
untrained encoder and over pixels. Any trainer flag is accepted and applies to every run.

Public API: ``compare(base, methods, seeds, root) -> dict``, ``table(results) -> str``,
``margins(results) -> str`` and
``mean_std(values)`` (the table cell every comparison uses).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from dynamics import jit_cache
from selfsup.config import PRESETS, Config, Parser, add_flags, from_args, preset, presets_help, run_cli
from selfsup.evaluate import FEW_LABEL_DRAWS
from selfsup.methods import METHODS

SIX = ("simsiam", "byol", "phinet", "xphinet", "directpred", "directcopy")
FIELDS = ("linear_acc", "linear_acc_10pc", "linear_acc_10pc_draws", "knn_acc_k20", "knn_acc_k200")


def compare(base: Config, methods, seeds, root: Path, *, on_run=None) -> dict:
    """Train (or reuse) every (method, seed); returns {row: {field: [values over seeds]}}."""
    from selfsup.train import train
    rows: dict[str, dict[str, list]] = {}
    for method in methods:
        for seed in seeds:
            cfg = base.replace(method=method, seed=seed, out_dir=str(root), run_name=f"{method}-s{seed}")
            path = root / cfg.run_name / "summary.json"
            if path.exists():
                _check_same(cfg, path.parent)
            else:  # a new run, or one interrupted: resumed from its checkpoint (same config required)
                train(cfg, resume=True)
            s = json.loads(path.read_text())
            base_rows = ((f"baseline: {k}", v) for k, v in s.get("baselines", {}).items())
            for row, src in ((method, s), *base_rows):
                if row.startswith("baseline") and method != methods[0]:
                    continue  # the baselines depend on the seed and the network, not on the method
                r = rows.setdefault(row, {})
                for f in (*FIELDS, "erank", "wall_s"):
                    if src.get(f) is not None:  # label draws enter as their mean; None: k > bank
                        r.setdefault(f, []).append(float(np.mean(src[f])))
            if on_run is not None:
                on_run(method, seed, s)
    return rows


def _check_same(cfg: Config, run: Path) -> None:
    """A finished run is reused only if it was trained with the same config (progress aside)."""
    from selfsup import rundir
    saved = json.loads((run / "config.json").read_text())
    want = dataclasses.asdict(cfg)
    diff = rundir.config_diff({k: saved[k] for k in want if k in saved}, want)
    if diff:
        fields = rundir.describe_diff(saved, want, diff)
        raise ValueError(f"{run} was trained with a different config ({fields}): remove it or use another "
                         "--run-name")


def mean_std(v, scale=100.0, digits=1) -> str:
    """A table cell: ``mean ± std`` (sample std, ddof 1) of ``v * scale``, one value alone, "-" for none
    (shared by every comparison table: methods, continual, online, bio, theory seeds)."""
    if not v:
        return "-"
    a = np.asarray(v) * scale
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}" if len(a) > 1 else f"{a[0]:.{digits}f}"


def table(rows: dict) -> str:
    """Markdown table: accuracies in %, mean ± std over seeds (sample std, ddof = 1)."""
    head = (f"| encoder | linear | linear, 10 labels/class | same, mean of {FEW_LABEL_DRAWS} label draws "
            "| kNN k=20 | kNN k=200 | eff. rank | time (s) |")
    lines = [head, "|" + "---|" * 8]
    order = sorted(rows, key=lambda r: (not r.startswith("baseline"), r != "baseline: pixels"))
    for r in order:
        v = rows[r]
        lines.append(f"| {r} | " + " | ".join(mean_std(v.get(f, [])) for f in FIELDS)
                     + f" | {mean_std(v.get('erank', []), 1.0)} | {mean_std(v.get('wall_s', []), 1.0, 0)} |")
    return "\n".join(lines)


MARGIN_FIELDS = (("knn_acc_k200", "kNN k=200"), ("linear_acc", "linear"),
                 ("linear_acc_10pc_draws", f"10 labels/class, mean of {FEW_LABEL_DRAWS} draws"))


def margins(rows: dict) -> str:
    """Markdown table: each method's margin over the untrained encoder (BN statistics re-estimated) and over
    raw pixels, in points: per seed the method's score minus that seed's baseline, then mean ± std over
    the seeds (sample std) and the smallest per-seed margin. Fields a baseline lacks are left out."""
    refs = [(k, n) for k, n in (("baseline: random_init", "untrained"), ("baseline: pixels", "pixels"))
            if k in rows]
    cols = [(ref, name, f, label) for ref, name in refs for f, label in MARGIN_FIELDS if rows[ref].get(f)]
    lines = ["| encoder | " + " | ".join(f"{label} over {name}" for _, name, _, label in cols) + " |",
             "|" + "---|" * (1 + len(cols))]
    for r in (r for r in rows if not r.startswith("baseline")):
        cells = []
        for ref, _, f, _ in cols:
            mine, base = rows[r].get(f, []), rows[ref][f]
            if len(mine) != len(base):
                cells.append("-")  # not the same seeds: no per-seed difference
                continue
            d = np.subtract(mine, base)
            cells.append(f"{mean_std(d.tolist())} (min {100 * d.min():+.1f})")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = Parser(prog="python -m selfsup.compare", description=__doc__.split("\n")[0], epilog=presets_help(),
               formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p, exclude=("method", "seed", "out_dir", "run_name"))  # set per run by the comparison
    p.add_argument("--preset", default="", help=f"start every run from a named recipe, one of "
                   f"{sorted(PRESETS)}")
    p.add_argument("--methods", default=",".join(SIX), help=f"comma-separated methods, of {sorted(METHODS)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--out-dir", default="runs/compare", help="parent folder of comparisons (default: "
                   "runs/compare)")
    p.add_argument("--run-name", default="", help="the comparison's folder under --out-dir, holding one run "
                   "folder per method and seed (default: the preset's name, else the dataset's)")
    ns = p.parse_args(argv)
    jit_cache.enable()

    def run():
        start = preset(ns.preset, progress=False) if ns.preset else Config(progress=False)
        base = from_args(ns, start).validate()
        if ns.preset:
            preset(ns.preset, **dataclasses.asdict(base))  # the dataset given must suit the preset
        methods = tuple(m.strip() for m in ns.methods.split(",") if m.strip())
        try:
            seeds = tuple(int(s) for s in ns.seeds.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"seeds={ns.seeds!r} is invalid: must be comma-separated integers") from None
        if not methods or not seeds:
            raise ValueError(f"methods={ns.methods!r} / seeds={ns.seeds!r} is invalid: both must be "
                             "non-empty")
        for m in methods:
            base.replace(method=m).validate()
        root = Path(ns.out_dir) / (ns.run_name or ns.preset or base.dataset)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot write comparison folder {root} ({e.strerror or e}); allowed: a "
                             "writable --out-dir") from None
        rows = compare(base, methods, seeds, root)
        (root / "results.json").write_text(json.dumps(rows, indent=1))
        text = (table(rows) + "\n\nMargins in points (per seed, method minus the same seed's baseline):\n\n"
                + margins(rows) + "\n")
        (root / "table.md").write_text(text)
        print(text, end="")
        return rows
    return run_cli(p, run)


if __name__ == "__main__":
    main()
