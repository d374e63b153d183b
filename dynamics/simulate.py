"""`python -m dynamics.simulate`: run methods on a spectrum, report which modes survive.

    python -m dynamics.simulate --wd 5e-4            # every method, matrix ODE, default spectrum
    python -m dynamics.simulate --method simsiam --level reduced --p0 0.06,0.05 --s0 0.0036,0.0025 \\
        --sigma2 0.5 --wd 0.05 --t-max 2000 --json
    python -m dynamics.simulate --level sgd --loss cosine --momentum 0.9 --wd 5e-3   # as the CNN trainers

Writes `<method>.npz` (per-mode time series `ts`, `s`, `p`, `g`, ...; final matrices at matrix/sgd level),
`<method>.json`, `summary.json` (resolved config, git SHA, results) and `modes.png` to
`<--out-dir, runs/simulate>/<--run-name or timestamp>/`. The same command again (same simulation settings,
any method list) into the same folder resumes: methods already finished there are reused, the rest computed;
a folder holding another config is refused, naming the fields that differ (exit 2), unless `--overwrite`.
Prints a per-method table, or with `--json` one JSON object: for one method
`{method, level, surviving, modes: [{p0, s0, p, s, collapsed, ...}], config, out_dir}`, for several
`{runs: [...], config, out_dir}`. Spectrum: `--lambdas` (data eigenvalues) with `--sigma2` (one value or
one per mode); `--sigma2` alone means X = I; neither means the default anisotropic spectrum.
`--setter equivariant|normalised` picks DirectPred / DirectCopy's predictor setter (`dynamics.methods`);
at `--level reduced` they run their coupled per-mode system in log s (`dynamics.setters`).
"""
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from dynamics import jit_cache
from dynamics._cli import (
    Parser,
    add_output_flags,
    number,
    number_list,
    print_json,
    run_folder,
    run_main,
    same_lengths,
    writable_folder,
    write_atomic,
)
from dynamics.methods import DEFAULT_METHODS, METHODS, SETTER_FORMS, load_method
from dynamics.moments import DEFAULT_LAMBDAS, DEFAULT_SIGMA2
from dynamics.provenance import provenance
from dynamics.reduced import REDUCED_METHODS, has_reduced
from dynamics.runs import REDUCED_START, SimConfig, simulate_method
from dynamics.setters import SETTER_METHODS
from dynamics.sgd import LOSSES

LEVELS = ("reduced", "matrix", "sgd")
# Matrix-ODE solve time of the default run, slowest first (benchmarks/simulate_speed.py: 1.8 s for xphinet
# down to 0.6 s for simsiam on this CPU); only the order is used, to balance the thread pool.
_SLOWEST_FIRST = ("xphinet", "phinet", "directcopy", "directpred", "byol", "simsiam")
_PER_MODE = REDUCED_METHODS + SETTER_METHODS  # methods with a reduced level
_FLAGGED = tuple(f for f in dataclasses.fields(SimConfig) if "help" in f.metadata)
# flags that apply to some levels only: None (unset) on the command line, SimConfig's default when resolved
_PER_LEVEL = ("seed", "lr", "batch")


def build_parser() -> Parser:
    ap = Parser(prog="python -m dynamics.simulate", description=__doc__.split("\n\n")[0])
    add = ap.add_argument
    add("--method", default=None, help=f"comma list of {', '.join(METHODS)}, or module:attribute naming a "
        "dynamics.methods.Method to register (default: the six methods)")
    add("--level", choices=LEVELS, default="matrix")
    add("--wd", type=number(0.0), default=5e-4, help="weight decay eta (5e-4)")
    add("--lambdas", type=number_list(0.0, strict=True), default=None, help="data eigenvalues, comma list")
    add("--sigma2", type=number_list(0.0), default=None, help="augmentation variance(s)")
    add("--t-max", type=number(0.0, strict=True), default=None, help="horizon (default 20 / wd, or 1000)")
    for f in _FLAGGED:  # SimConfig's fields: help, default and bound from the dataclass
        m, per_level = f.metadata, f.name in _PER_LEVEL
        kind = number(m["low"], strict=m["strict"], integer=f.type in (int, "int"))
        add("--" + f.name.replace("_", "-"), type=kind, default=None if per_level else f.default,
            help=f"{m['help']} ({f.default:g})")
    add("--setter", choices=SETTER_FORMS, default=None,
        help="directpred / directcopy setter: equivariant p = sqrt(f) + eps sqrt(f_max) (default) or "
             "normalised p = sqrt(f / f_max) + eps")
    for name, v in REDUCED_START.items():
        add(f"--{name}", type=number_list(0.0 if name == "s0" else None), default=None,
            help=f"reduced level: initial {name[0]} per mode, one value or one per mode ({v:g})")
    add("--dim", type=number(1, integer=True), default=None, help="matrix/sgd level: dimension")
    add("--loss", choices=LOSSES, default=None,
        help="sgd level: euclidean (default) or cosine, D = -cos(p, sg z) per sample as the CNN trainers")
    add("--momentum", type=number(0.0), default=None,
        help="sgd level: heavy-ball momentum mu < 1 (0); model time t = lr * steps / (1 - mu)")
    add_output_flags(ap, "runs/simulate", "a timestamp")
    add("--overwrite", action="store_true",
        help="replace a run with another config in the run folder (default: refuse it, exit 2)")
    add("--json", action="store_true", help="print one JSON object instead of the table")
    add("--no-plot", action="store_true", help="skip modes.png")
    return ap


def _methods(ap: Parser, args) -> tuple:
    names = DEFAULT_METHODS if args.method is None else tuple(args.method.split(","))
    try:  # module:attribute is imported and registered (methods.register)
        names = tuple(load_method(name) for name in names)
    except ValueError as err:
        ap.error(str(err))
    for name in names:
        if args.level == "reduced" and name not in _PER_MODE and not has_reduced(name):
            ap.error(f"--level reduced has no per-mode system for {name!r}; allowed: "
                     f"{', '.join(_PER_MODE)} (use --level matrix)")
    if args.setter is not None and not set(names) & set(SETTER_METHODS):
        ap.error(f"--setter {args.setter} applies only to {', '.join(SETTER_METHODS)}; allowed: drop it, or "
                 "add one of them to --method")
    return names


def _level_options(ap: Parser, args) -> None:
    own = {"reduced": ("p0", "s0", "g0"), "matrix": ("dim", "seed"), "sgd": ("dim", "seed", "lr", "batch")}
    for fields in own.values():
        for field in fields:
            if getattr(args, field) is not None and field not in own[args.level]:
                ap.error(f"--{field.replace('_', '-')} does not apply to --level {args.level}; "
                         f"allowed with --level {', '.join(k for k, v in own.items() if field in v)}")


def _loss_options(ap: Parser, args) -> None:
    """`--loss cosine` and `--momentum` exist only at the sampled-data level (`dynamics.sgd`)."""
    if args.loss == "cosine" and args.level != "sgd":
        ap.error(f"--loss cosine has no form at --level {args.level} (per-sample normalisation needs sampled "
                 "data); allowed: --loss euclidean here, or --level sgd")
    if args.loss == "cosine" and args.batch == 0:
        ap.error("--batch 0 (exact moments) has no cosine form; allowed: --batch >= 1 with --loss cosine")
    if args.momentum is not None and args.level != "sgd":
        ap.error(f"--momentum does not apply to --level {args.level}; allowed with --level sgd")
    if args.momentum is not None and args.momentum >= 1:
        ap.error(f"--momentum {args.momentum:g} is out of range; allowed: 0 <= momentum < 1")


def _spectrum(ap: Parser, args) -> tuple:
    """(lambdas, sigma2s) as tuples of equal length."""
    lists = {"--lambdas": args.lambdas, "--sigma2": args.sigma2}
    if args.level == "reduced":
        lists.update({"--p0": args.p0, "--s0": args.s0, "--g0": args.g0})
    n = same_lengths(ap, lists)
    if args.lambdas is None and args.sigma2 is None:
        lambdas, sigma2 = list(DEFAULT_LAMBDAS), [DEFAULT_SIGMA2]
        if n not in (1, len(lambdas)):
            ap.error(f"per-mode lists have {n} entries but the default spectrum has {len(lambdas)} modes; "
                     "allowed: give --lambdas or --sigma2")
    else:
        dim = args.dim if args.level != "reduced" and args.dim is not None else 8
        lambdas = args.lambdas or [1.0] * (n if n > 1 or args.level == "reduced" else dim)
        sigma2 = args.sigma2 or [DEFAULT_SIGMA2]
    n = len(lambdas)
    if args.level != "reduced" and args.dim is not None and args.dim != n:
        ap.error(f"--dim {args.dim} does not match the {n} modes of the spectrum; allowed: --dim {n}")
    return tuple(lambdas), tuple(sigma2 * n if len(sigma2) == 1 else sigma2)


def resolve(ap: Parser, args) -> tuple:
    """(method names, SimConfig) from the arguments, or a one-line parser error."""
    _level_options(ap, args)
    _loss_options(ap, args)
    names = _methods(ap, args)
    lambdas, sigma2s = _spectrum(ap, args)
    n = len(lambdas)
    if args.tau != 1.0 and args.level != "reduced" and any(not METHODS[m].ema for m in names):
        ap.error(f"--tau {args.tau:g} at --level {args.level} applies only to byol, xphinet (initial EMA "
                 "ratio); allowed: --tau 1 here, or --level reduced")
    if args.rho > 1:
        ap.error(f"--rho {args.rho:g} is out of range; allowed: 0 <= rho <= 1")
    per_mode = lambda v, d: tuple(v * n if len(v) == 1 else v) if v is not None else (d,) * n
    t_max = args.t_max if args.t_max is not None else (20.0 / args.wd if args.wd > 0 else 1000.0)
    given = {f.name: getattr(args, f.name) for f in _FLAGGED if getattr(args, f.name) is not None}
    given.update({k: getattr(args, k) for k in ("loss", "momentum") if getattr(args, k) is not None})
    if args.setter is not None:
        given["setter_form"] = args.setter
    start = {k: per_mode(getattr(args, k), v) for k, v in REDUCED_START.items()}
    return names, SimConfig(level=args.level, lambdas=lambdas, sigma2s=sigma2s, wd=args.wd, t_max=t_max,
                            **start, **given)


def _out_dir(ap: Parser, args, config: dict) -> Path:
    """The run folder, created and writable; a folder holding a run with another simulation config is
    refused. The comparison is between the JSON forms (a saved list against a tuple would never be equal,
    and the same command could not resume its own folder)."""
    out = writable_folder(ap, run_folder(args, time.strftime("%Y%m%d-%H%M%S")))
    saved = out / "config.json"
    if saved.exists():
        try:
            earlier = json.loads(saved.read_text())["sim"]
        except (ValueError, KeyError, TypeError):
            ap.error(f"output folder {out} holds an unreadable config.json; allowed: a new --run-name or "
                     "--out-dir")
        ours = json.loads(json.dumps(config["sim"]))
        differ = sorted(k for k in set(earlier) | set(ours) if earlier.get(k) != ours.get(k))
        if differ and not args.overwrite:
            ap.error(f"output folder {out} holds a run with another config (differs in {', '.join(differ)}); "
                     "allowed: the same settings (to resume), --overwrite, a new --run-name or --out-dir")
        if differ:  # --overwrite: the earlier run's results go, so none is reused under the new config
            for name in config["methods"] + [js.stem for js in out.glob("*.json") if js.stem != "config"]:
                for stale in (out / f"{name}.npz", out / f"{name}.json"):
                    stale.unlink(missing_ok=True)
            for stale in ("summary.json", "modes.png"):
                (out / stale).unlink(missing_ok=True)
    write_atomic(saved, json.dumps(config, indent=1))
    return out


def _simulate_x64(cfg: SimConfig, name: str):
    with jax.enable_x64(True):  # thread-local: each worker enters it
        return simulate_method(cfg, name)


def _run_all(names, cfg: SimConfig, out: Path, quiet: bool, plot: bool = False) -> tuple:
    """Every method not finished in an earlier, interrupted run with this config, in a pool of threads:
    tracing is Python, but XLA's compilation and each method's integration (a single-threaded while loop
    on small matrices) run outside the GIL, so one thread per core overlaps them (benchmarks/simulate_speed.py
    measures it). Each method's results are written as soon as it finishes. Slow methods go first, so the
    two workers finish together (longest-processing-time order; `_SLOWEST_FIRST`); `plot` prefetches
    matplotlib."""
    arrays, results = {}, {}
    todo = []
    for name in names:
        npz, js = out / f"{name}.npz", out / f"{name}.json"
        try:  # finished: both files complete (each written atomically, the .json last)
            arrays[name], results[name] = dict(np.load(npz)), json.loads(js.read_text())
        except (OSError, ValueError):
            todo.append(name)
    workers = max(1, min(len(todo), os.cpu_count() or 1))
    todo.sort(key=lambda n: _SLOWEST_FIRST.index(n) if n in _SLOWEST_FIRST else len(_SLOWEST_FIRST))
    with ThreadPoolExecutor(workers) as pool:
        jobs = {pool.submit(_simulate_x64, cfg, name): name for name in todo}
        if plot:  # import matplotlib while the workers compile and integrate (they release the GIL)
            import dynamics.plot  # noqa: F401
        for job in tqdm(as_completed(jobs), total=len(jobs), desc="methods", disable=quiet or None,
                        file=sys.stderr):
            name = jobs[job]
            arrays[name], results[name] = job.result()
            tmp = out / f"{name}.tmp.npz"  # the .json, written last, marks the method finished
            np.savez(tmp, **arrays[name])
            os.replace(tmp, out / f"{name}.npz")
            write_atomic(out / f"{name}.json", json.dumps(results[name], indent=1))
    return {n: arrays[n] for n in names}, [results[n] for n in names]


def print_table(cfg: SimConfig, results: list) -> None:
    loss = "" if cfg.level != "sgd" else f", loss {cfg.loss}, momentum {cfg.momentum:g}"
    print(f"level {cfg.level}{loss}, wd {cfg.wd:g}, t_max {cfg.t_max:g}, lambdas {list(cfg.lambdas)}, "
          f"sigma2 {list(cfg.sigma2s)}")
    for res in results:
        print(f"\n{res['method']}: {res['surviving']}/{len(res['modes'])} modes surviving")
        print(f"  {'mode':>4} {'s final':>11} {'s*':>11} {'p final':>9} {'p*':>9}  collapsed")
        for j, m in enumerate(res["modes"]):
            pred = m.get("fixed_point", "n/a")
            sp, pp = (("n/a", "n/a") if pred == "n/a" else ("0", "0") if pred is None
                      else (f"{pred['s']:.4e}", f"{pred['p']:.4f}"))
            p = f"{m['p']:.4f}" if "p" in m else "-"
            print(f"  {j:>4} {m['s']:>11.4e} {sp:>11} {p:>9} {pp:>9}  {m['collapsed']}")


def main(argv=None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    jit_cache.enable()
    names, cfg = resolve(ap, args)
    prov = provenance()
    config = {"sim": cfg.asdict(), "methods": list(names), "git_sha": prov["git_sha"], "provenance": prov,
              "argv": sys.argv[1:]}
    out = _out_dir(ap, args, config)
    start = time.perf_counter()
    arrays, results = _run_all(names, cfg, out, args.json, plot=not args.no_plot)
    summary = {"config": config, "out_dir": str(out), "wall_s": time.perf_counter() - start, "runs": results}
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    if not args.no_plot:
        from dynamics.plot import plot_modes

        plot_modes(cfg, arrays, results, out / "modes.png")
    if args.json:
        print_json({**results[0], "config": config, "out_dir": str(out)} if len(results) == 1
                   else {"runs": results, "config": config, "out_dir": str(out)})
    else:
        print_table(cfg, results)
        print(f"\nwrote {out}/ (summary.json, <method>.npz{'' if args.no_plot else ', modes.png'})")


if __name__ == "__main__":
    run_main(main)
