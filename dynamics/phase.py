"""`python -m dynamics.phase`: collapse phase diagrams over any two parameters, for any method.

    python -m dynamics.phase --method simsiam --x wd --y sigma2          # 128 x 128 in a few seconds
    python -m dynamics.phase --method phinet --x wd --y lam --json
    python -m dynamics.phase --method byol --x wd --y exponent --modes 8 --x-scale log --x-range 1e-5,0.3

Every grid point is integrated to `t_max` (all points at once: `jax.vmap` under one `jax.jit`, rows sharded
over a 1-D device mesh when there are several devices, chunks with a tqdm bar) and classified by its
surviving-mode count: 2 non-collapsed (all modes), 1 partially collapsed, 0 completely collapsed (-1: the
solver failed there). A mode collapses when `s < s_tol` at `t_max` (`reduced.collapsed`; directpred /
directcopy with the default equivariant setter too); with `--setter normalised`, whose Euclidean flow
shrinks every mode (see `dynamics.setters`), when `s_j / max_k s_k < s_tol`.
Writes `phase.npz` (axis values, surviving counts, phases, final states), `summary.json` (resolved config,
git SHA, counts, agreement with the analytic prediction) and `phase.png` (numerical diagram, analytic
boundary dashed) to `runs/phase/<--name or method_x_y>/` (or `--out`); an interrupted sweep resumes from
`partial.npz` there. The default folder name adds every fixed setting that differs from its default
(`phinet_wd_sigma2_lam2`); a folder holding a sweep with another config is refused (exit 2, naming the
fields that differ) unless `--overwrite` is given. `--json` prints the summary. Axes and their defaults:
`dynamics.phase_grid.AXES`.

Flags: `--method`, `--x` / `--y` (axis names of `phase_grid.AXES`), `--x-range lo,hi` / `--y-range`,
`--nx` / `--ny` (128), `--x-scale` / `--y-scale` (lin or log; default per axis), the fixed values of every
parameter not swept (`--wd 0.05 --sigma2 0.5 --alpha-p 1 --alpha-g 1 --lam 1 --beta 0.4 --tau 1 --p0 0.5
--s0 p0^2/alpha_p --g0 0.5`), the spectrum (`--lambdas` list, or `--exponent a --modes n` for
`l_j = j^-a`; an `exponent` axis implies `--modes 8` unless given), the solver (`--t-max`, `--s-tol 1e-6`,
`--rtol 1e-6`, `--atol 1e-10`, `--chunk 16384`, `--eps 0.01` and `--setter equivariant|normalised` for the
setters) and outputs (`--out-dir` runs/phase, `--run-name`; old spellings `--name`, `--out` kept for one
release; `--overwrite` to replace a sweep with another config, `--json`, `--no-plot`).

Public API
- `sweep(cfg, *, checkpoint=None, progress=False) -> dict` (arrays), `prediction(cfg) -> dict | None`,
  `summarize(cfg, arrays, pred) -> dict`, `default_t_max(cfg, values)`, `main(argv=None)`.
- `run(cfg, out, *, overwrite=False, ...) -> dict` (summary; `ConfigMismatch` for a folder with another
  config), `default_run_name(cfg)`.
- `build_parser()`, `resolve(parser, args) -> PhaseConfig` (the arguments validated: one-line errors, exit
  status 2).
"""
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
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
    writable_folder,
    write_atomic,
)
from dynamics.matrix_ode import require_x64
from dynamics.methods import SETTER_FORMS, load_method
from dynamics.phase_grid import (
    AXES,
    PHASE_METHODS,
    SCALED,
    PhaseConfig,
    axis_applies,
    axis_values,
    byol_survivors,
    grid_points,
    is_registered,
    phinet_thresholds,
    point_values,
    setter_survivors,
    simsiam_survivors,
    systems,
)
from dynamics.provenance import provenance
from dynamics.reduced import reduced_field, state_names
from dynamics.setters import SETTER_METHODS, setter_field, surviving_modes
from dynamics.solvers import solve_final


def default_t_max(cfg: PhaseConfig, values: dict) -> float:
    """`200 / (smallest SimSiam threshold l^2 / (4c) on the grid)`, clipped to [1e3, 1e5]: long enough for
    a mode one grid cell past its threshold to pass the bottleneck and decay (s ~ exp(-2 eta t)) below
    s_tol; PhiNet's thresholds are higher, so the same horizon serves every method."""
    lam = values["lambdas"]
    thr = lam**2 / (4 * (lam + np.reshape(np.asarray(values["sigma2"], float), (-1, 1))))
    return float(np.clip(200.0 / max(thr.min(), 1e-12), 1e3, 1e5))


SLOTS = 1024  # rows integrated at once inside a chunk (solve_final: a finished row's slot takes the next)


def _sharding():
    devices = jax.devices()
    return None if len(devices) == 1 else NamedSharding(Mesh(np.array(devices), ("grid",)),
                                                        PartitionSpec("grid"))


def _solve_rows(cfg: PhaseConfig, y0, params, t_max, checkpoint, progress):
    """Final states of all rows, in chunks of `cfg.chunk` (padded to a multiple of the device count)."""
    field = (setter_field(cfg.method, cfg.setter_form) if cfg.method in SETTER_METHODS
             else reduced_field(cfg.method))
    n_rows, sharding = y0.shape[0], _sharding()
    n_dev = 1 if sharding is None else len(jax.devices())
    chunk = -(-min(cfg.chunk, n_rows) // n_dev) * n_dev
    n_chunks = -(-n_rows // chunk)
    state = {"final": np.full(y0.shape, np.nan), "steps": np.zeros(n_rows, np.int64),
             "ok": np.zeros(n_rows, bool), "done": np.zeros(n_chunks, bool)}
    if checkpoint is not None and checkpoint.exists():
        with np.load(checkpoint) as saved:
            if saved["final"].shape == y0.shape and saved["done"].shape == (n_chunks,):
                state = {k: saved[k].copy() for k in state}
    put = (lambda a: a) if sharding is None else (lambda a: jax.device_put(a, sharding))
    bar = tqdm(total=n_chunks, initial=int(state["done"].sum()), desc=f"{cfg.method} sweep", unit="chunk",
               disable=not progress or n_chunks == 1, file=sys.stderr)
    for k in np.flatnonzero(~state["done"]):
        rows = np.minimum(np.arange(k * chunk, (k + 1) * chunk), n_rows - 1)  # pad with the last row
        take = lambda a, rows=rows: put(np.asarray(a)[rows]) if np.ndim(a) else a
        y, steps, ok = solve_final(field, take(y0), jax.tree_util.tree_map(take, params), t_max,
                                   rtol=cfg.rtol, atol=cfg.atol, settle=cfg.method not in SETTER_METHODS,
                                   slots=min(SLOTS, chunk))
        keep = slice(k * chunk, min((k + 1) * chunk, n_rows))
        n = keep.stop - keep.start
        for key, a in (("final", y), ("steps", steps), ("ok", ok)):
            state[key][keep] = np.asarray(a)[:n]
        state["done"][k] = True
        if checkpoint is not None:
            tmp = checkpoint.with_suffix(".tmp.npz")
            np.savez(tmp, **state)
            os.replace(tmp, checkpoint)
        bar.update(1)
    bar.close()
    return state


def sweep(cfg: PhaseConfig, *, checkpoint: Path | None = None, progress: bool = False) -> dict:
    """Integrate every grid point (float64 required) and classify it. Returns arrays: `xs` (nx,), `ys`
    (ny,), `survivors` (ny, nx) surviving-mode counts, `phase` (ny, nx) 2 / 1 / 0 (non- / partially /
    completely collapsed; -1 where the solver failed), `final` (ny, nx, modes, n_states) final states
    (setters: (ny, nx, modes) final log s), `steps` (ny, nx, modes) solver steps, `t_max`."""
    require_x64()
    X, Y = grid_points(cfg)
    values = point_values(cfg, X, Y)
    y0, params = systems(cfg, values)
    t_max = cfg.t_max if cfg.t_max is not None else default_t_max(cfg, values)
    st = _solve_rows(cfg, y0, params, t_max, checkpoint, progress)
    m, shape = cfg.n_modes, X.shape
    if cfg.method in SETTER_METHODS:
        final = st["final"].reshape(*shape, m)
        survivors = np.asarray(surviving_modes(final, cfg.s_tol, cfg.setter_form))
        steps, ok = np.repeat(st["steps"].reshape(shape)[..., None], m, -1), st["ok"].reshape(shape)
    else:
        final = st["final"].reshape(*shape, m, -1)
        survivors = (final[..., state_names(cfg.method).index("s")] >= cfg.s_tol).sum(-1)
        steps, ok = st["steps"].reshape(*shape, m), st["ok"].reshape(*shape, m).all(-1)
    phase = np.where(survivors == m, 2, np.where(survivors == 0, 0, 1))
    return {"xs": axis_values(cfg, "x"), "ys": axis_values(cfg, "y"), "survivors": survivors,
            "phase": np.where(ok, phase, -1).astype(np.int8), "final": final, "steps": steps,
            "t_max": np.asarray(t_max)}


def prediction(cfg: PhaseConfig, *, n_markers: int = 12) -> dict | None:
    """The analytic prediction: simsiam (closed form) and byol (fixed-point threshold) give `survivors`
    (ny, nx); phinet / xphinet with a wd axis give per-mode `thresholds` (k, modes) at `other` (k,) values
    of the other axis (grid indices `index`; `analysis.collapse_wd`) and the predicted counts along wd
    there, `rows` (k, n_wd); so does a registered method (the general solver); None otherwise."""
    if cfg.method in ("simsiam", "byol") + SCALED:
        X, Y = grid_points(cfg)
        closed = byol_survivors if cfg.method == "byol" else simsiam_survivors
        count = closed(cfg, point_values(cfg, X, Y))
        scale = "(1 + lam) " if cfg.method in SCALED else ""
        parabola = ", p0 > p_-" if cfg.on_parabola else ""
        kind = ("fixed points: eta < l^2/(4c)" if cfg.method == "byol"
                else f"closed form: eta < {scale}tau^2 l^2/(4c){parabola}")
        return {"kind": kind, "survivors": count.reshape(X.shape)}
    if cfg.method in SETTER_METHODS and cfg.setter_form == "equivariant":
        X, Y = grid_points(cfg)
        count = setter_survivors(cfg, point_values(cfg, X, Y))
        return {"kind": "decoupled fixed points: eta < l^2/(4c), p_+ > eps P/(1 + eps) (basins not checked)",
                "survivors": count.reshape(X.shape)}
    if (cfg.method in ("phinet", "xphinet") or is_registered(cfg.method)) and "wd" in (cfg.x, cfg.y):
        other = axis_values(cfg, "y" if cfg.x == "wd" else "x")
        idx = np.unique(np.linspace(0, len(other) - 1, min(n_markers, len(other))).astype(int))
        thr = phinet_thresholds(cfg, other[idx])
        wd = axis_values(cfg, "x" if cfg.x == "wd" else "y")
        kind = "general fixed-point solver (collapse_wd)" if is_registered(cfg.method) else \
            "fixed-point analysis (collapse_wd)"
        return {"kind": kind, "other": other[idx], "index": idx,
                "thresholds": thr, "rows": (wd[None, :, None] < thr[:, None, :]).sum(-1)}
    return None


def summarize(cfg: PhaseConfig, arrays: dict, pred: dict | None) -> dict:
    """JSON-ready summary: counts per phase, and where the prediction gives a count per point, the
    fraction of points that agree and the largest distance (in grid cells) of a disagreeing point from
    the predicted boundary (PhiNet: on the analysed rows only)."""
    phase = arrays["phase"]
    counts = {name: int((phase == k).sum()) for name, k in
              (("non_collapsed", 2), ("partial", 1), ("collapsed", 0), ("failed", -1))}
    out = {"method": cfg.method, "x": cfg.x, "y": cfg.y, "grid": list(phase.shape), "modes": cfg.n_modes,
           "t_max": float(arrays["t_max"]), "counts": counts, "prediction": None}
    if pred is not None:
        out["prediction"] = {"kind": pred["kind"]}
        if "survivors" in pred:
            out["prediction"].update(_agreement(arrays["survivors"], pred["survivors"]))
        else:  # compare along the wd axis at the analysed values of the other axis
            surv = arrays["survivors"]
            rows = surv[pred["index"], :] if cfg.x == "wd" else surv[:, pred["index"]].T
            out["prediction"].update(_agreement(rows, pred["rows"]))
            out["prediction"]["other"] = pred["other"].tolist()
            out["prediction"]["thresholds"] = pred["thresholds"].tolist()
    return out


def _agreement(numeric, predicted) -> dict:
    """Fraction of agreeing points; Chebyshev distance (cells) of the worst disagreement from a cell next
    to a change of the predicted count."""
    edge = np.zeros(predicted.shape, bool)
    d0, d1 = np.diff(predicted, axis=0) != 0, np.diff(predicted, axis=1) != 0
    edge[:-1] |= d0
    edge[1:] |= d0
    edge[:, :-1] |= d1
    edge[:, 1:] |= d1
    bad, edges = np.argwhere(numeric != predicted), np.argwhere(edge)
    if len(bad) == 0:
        dist = 0
    elif len(edges) == 0:
        dist = -1  # disagreements but no predicted boundary
    else:
        dist = int(np.abs(bad[:, None, :] - edges[None, :, :]).max(-1).min(1).max())
    return {"agreement": float((numeric == predicted).mean()), "max_cells_from_boundary": dist}


class ConfigMismatch(ValueError):
    """The run folder holds a sweep with another config (`run` without `overwrite`)."""


def _differing(saved: dict, ours: dict) -> list:
    return sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))


def run(cfg: PhaseConfig, out: Path, *, overwrite=False, progress=True, plot=True, argv=()) -> dict:
    """Sweep into folder `out` (reusing a finished or partial sweep with the same config), write the
    npz / JSON / PNG outputs and return the summary. A folder holding a sweep with another config raises
    `ConfigMismatch` naming the differing fields, unless `overwrite` (then its results are replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    config = {"phase": cfg.asdict(), "git_sha": prov["git_sha"], "provenance": prov, "argv": list(argv)}
    saved = out / "config.json"
    resolved = json.loads(json.dumps(config))["phase"]  # tuples as lists, as read back
    earlier, results = _saved_config(saved), ("phase.npz", "partial.npz", "summary.json", "phase.png")
    if earlier is None:  # results without a readable config: of unknown settings
        differ = ["config.json missing or unreadable"] if any((out / f).exists() for f in results) else []
    else:
        differ = _differing(earlier, resolved)
    if differ and not overwrite:
        raise ConfigMismatch(f"output folder {out} holds a sweep with another config (differs in "
                             f"{', '.join(differ)}); allowed: the same settings (to resume), --overwrite, or "
                             "a new --run-name / --out-dir")
    for stale in results if differ else ():
        (out / stale).unlink(missing_ok=True)
    write_atomic(saved, json.dumps(config, indent=1))
    start = time.perf_counter()
    if (out / "phase.npz").exists():
        arrays = dict(np.load(out / "phase.npz"))
    else:
        with jax.enable_x64(True):
            arrays = sweep(cfg, checkpoint=out / "partial.npz", progress=progress)
        tmp = out / "phase.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, out / "phase.npz")
        (out / "partial.npz").unlink(missing_ok=True)
    pred = prediction(cfg)
    summary = {**summarize(cfg, arrays, pred), "config": config, "out_dir": str(out),
               "wall_s": time.perf_counter() - start}
    if plot:
        from dynamics.plot import plot_phase

        plot_phase(cfg, arrays, pred, out / "phase.png")
        summary["png"] = str(out / "phase.png")
    write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _saved_config(path: Path) -> dict | None:
    """The `phase` config saved in `path`, or None when there is none (or it cannot be read)."""
    try:
        return json.loads(path.read_text())["phase"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_run_name(cfg: PhaseConfig) -> str:
    """`<method>_<x>_<y>`, then every fixed setting that differs from `PhaseConfig`'s default, e.g.
    `phinet_wd_sigma2_lam2` (so sweeps at other fixed values land in folders of their own)."""
    defaults, parts = PhaseConfig(), [cfg.method, cfg.x, cfg.y]
    for name in NAMED_FIELDS:
        value = getattr(cfg, name)
        if name in (cfg.x, cfg.y) or value == getattr(defaults, name):
            continue
        text = "-".join(f"{v:g}" for v in value) if isinstance(value, tuple) else (
            value if isinstance(value, str) else f"{value:g}")
        parts.append(f"{name}{text}")
    return "_".join(parts)


NAMED_FIELDS = ("wd", "sigma2", "alpha_p", "alpha_g", "lam", "beta", "tau", "p0", "s0", "g0", "lambdas",
                "exponent", "modes", "eps", "setter_form")


# ---------------------------------------------------------------------------- the command line

# lower bound (value, strict) of each parameter; None: any real number
_LOW = {"wd": (0.0, False), "sigma2": (0.0, False), "alpha_p": (0.0, True), "alpha_g": (0.0, True),
        "lam": (0.0, False), "beta": (0.0, False), "tau": (0.0, False), "p0": None, "s0": (0.0, False),
        "g0": None, "exponent": None}
_OPTIONAL = ("alpha_p", "alpha_g", "lam", "beta", "p0", "g0")  # axes a registered method may lack
# what a parameter whose PhaseConfig default is None means
_UNSET_DEFAULT = {"s0": "p0^2/alpha_p, on the invariant parabola", "exponent": "none: the --lambdas spectrum"}


def build_parser() -> Parser:
    ap = Parser(prog="python -m dynamics.phase", description="Collapse phase diagram over two parameters.")
    add = ap.add_argument
    add("--method", default="simsiam", help=f"one of {', '.join(PHASE_METHODS)}, or module:attribute naming "
        "a dynamics.methods.Method to register (default: simsiam)")
    add("--x", default="wd", help=f"x axis: one of {', '.join(AXES)} (wd)")
    add("--y", default="sigma2", help="y axis (sigma2)")
    for a in ("x", "y"):
        add(f"--{a}-range", type=number_list(), default=None, help=f"{a} axis lo,hi (default per axis)")
        add(f"--n{a}", type=number(2, integer=True), default=128, help=f"grid points along {a} (128)")
        add(f"--{a}-scale", choices=("lin", "log"), default=None, help="spacing (default per axis)")
    defaults = PhaseConfig()
    for name, low in _LOW.items():
        lo, strict = low if low else (None, False)
        shown = _UNSET_DEFAULT.get(name, getattr(defaults, name))
        add("--" + name.replace("_", "-"), type=number(lo, strict=strict), default=None,
            help=f"{AXES[name][3]}: its fixed value when not an axis (default: {shown})")
    add("--lambdas", type=number_list(0.0, strict=True), default=None, help="data eigenvalues (1)")
    add("--modes", type=number(1, integer=True), default=None, help="modes of the power-law spectrum (8)")
    add("--eps", type=number(0.0), default=None, help="directpred / directcopy setter eps (0.01)")
    add("--setter", choices=SETTER_FORMS, default=None,
        help="directpred / directcopy setter form (equivariant: p = sqrt(f) + eps sqrt(f_max))")
    add("--t-max", type=number(0.0, strict=True), default=None,
        help="horizon (default: 200 / the smallest SimSiam threshold l^2/(4c) on the grid, clipped to "
             "[1e3, 1e5])")
    add("--s-tol", type=number(0.0, strict=True), default=1e-6, help="collapse: s below this (1e-6)")
    add("--rtol", type=number(0.0, strict=True), default=1e-6, help="solver relative tolerance (1e-6)")
    add("--atol", type=number(0.0, strict=True), default=1e-10, help="solver absolute tolerance (1e-10)")
    add("--chunk", type=number(1, integer=True), default=16384, help="rows per jitted call (16384)")
    add_output_flags(ap, "runs/phase", "method_x_y, then each fixed setting that differs from its default, "
                     "e.g. phinet_wd_sigma2_lam2")
    add("--overwrite", action="store_true",
        help="replace a sweep with another config in the run folder (default: refuse it, exit 2)")
    add("--json", action="store_true", help="print the summary as one JSON object")
    add("--no-plot", action="store_true", help="skip phase.png")
    return ap


def _axis(ap: Parser, args, a: str) -> dict:
    name = getattr(args, a)
    if name not in AXES:
        ap.error(f"--{a} {name!r} is not an axis; allowed: {', '.join(AXES)}")
    default_range, log, methods, _ = AXES[name]
    if not axis_applies(name, args.method):
        ap.error(f"--{a} {name} does not apply to --method {args.method}; allowed for: {', '.join(methods)}"
                 f"{' (and registered methods that have it)' if name in _OPTIONAL else ''}")
    lo_hi = getattr(args, f"{a}_range") or list(default_range)
    scale = getattr(args, f"{a}_scale") or ("log" if log else "lin")
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        ap.error(f"--{a}-range {','.join(map(str, lo_hi))} is not lo,hi with lo < hi; allowed: two numbers")
    low = _LOW[name]
    if low and (lo_hi[0] < low[0] or (low[1] and lo_hi[0] == low[0])):
        ap.error(f"--{a}-range starts at {lo_hi[0]:g}, out of range for {name}; allowed: "
                 f"{name} {'>' if low[1] else '>='} {low[0]:g}")
    if scale == "log" and lo_hi[0] <= 0:
        ap.error(f"--{a}-scale log needs a positive range, got {lo_hi[0]:g}; allowed: lo > 0 (or lin)")
    return {a: name, f"{a}_range": tuple(lo_hi), f"{a}_log": scale == "log", f"n{a}": getattr(args, f"n{a}")}


def resolve(ap: Parser, args) -> PhaseConfig:
    """The PhaseConfig of the arguments, or a one-line parser error."""
    try:  # module:attribute is imported and registered (methods.register)
        args.method = load_method(args.method)
    except ValueError as err:
        ap.error(str(err))
    if args.method not in PHASE_METHODS and not is_registered(args.method):
        ap.error(f"--method {args.method} has no per-mode system to sweep; allowed: "
                 f"{', '.join(PHASE_METHODS)}, or a registered method without a predictor setter")
    kw = {"method": args.method, **_axis(ap, args, "x"), **_axis(ap, args, "y")}
    if args.x == args.y:
        ap.error(f"--x and --y are both {args.x}; allowed: two different axes")
    for name in _LOW:
        value = getattr(args, name)
        if value is None:
            continue
        if name in (args.x, args.y):
            ap.error(f"--{name.replace('_', '-')} is swept here; allowed: its --x-range / --y-range")
        if not axis_applies(name, args.method):
            ap.error(f"--{name.replace('_', '-')} does not apply to --method {args.method}; "
                     f"allowed for: {', '.join(AXES[name][2])}")
        kw[name] = value
    power_law = args.exponent is not None or "exponent" in (args.x, args.y)
    if args.lambdas is not None and power_law:
        ap.error("--lambdas and a power-law spectrum (--exponent or an exponent axis) exclude each other; "
                 "allowed: one of them")
    if args.modes is not None and not power_law:
        ap.error("--modes applies to the power-law spectrum only; allowed with --exponent or an exponent "
                 "axis")
    if args.lambdas is not None:
        kw["lambdas"] = tuple(args.lambdas)
    if power_law:
        kw["modes"] = args.modes or 8
    if args.eps is not None:
        if args.method not in ("directpred", "directcopy"):
            ap.error(f"--eps does not apply to --method {args.method}; allowed for: directpred, directcopy")
        kw["eps"] = args.eps
    if args.setter is not None:
        if args.method not in ("directpred", "directcopy"):
            ap.error(f"--setter does not apply to --method {args.method}; allowed for: directpred, "
                     "directcopy")
        kw["setter_form"] = args.setter
    if args.method in ("directpred", "directcopy") and args.s0 == 0:
        ap.error("--s0 0 leaves nothing to evolve for a setter method (log s); allowed: s0 > 0")
    return PhaseConfig(**kw, t_max=args.t_max, s_tol=args.s_tol, rtol=args.rtol, atol=args.atol,
                       chunk=args.chunk)


def main(argv=None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    jit_cache.enable()
    cfg = resolve(ap, args)
    out = writable_folder(ap, run_folder(args, default_run_name(cfg)))
    try:
        summary = run(cfg, out, overwrite=args.overwrite, progress=not args.json, plot=not args.no_plot,
                      argv=sys.argv[1:] if argv is None else argv)
    except ConfigMismatch as err:
        ap.error(str(err))
    if args.json:
        print_json(summary)
        return
    c = summary["counts"]
    print(f"{cfg.method}: {cfg.ny} x {cfg.nx} grid over ({cfg.x}, {cfg.y}), {cfg.n_modes} mode(s), "
          f"t_max {summary['t_max']:g}: {c['non_collapsed']} non-collapsed, {c['partial']} partial, "
          f"{c['collapsed']} collapsed, {c['failed']} failed; {summary['wall_s']:.1f} s")
    if summary["prediction"] and "agreement" in summary["prediction"]:
        p = summary["prediction"]
        print(f"{p['kind']}: agrees at {100 * p['agreement']:.2f}% of points, disagreements at most "
              f"{p['max_cells_from_boundary']} cell(s) from the predicted boundary")
    print(f"wrote {out}/ (phase.npz, summary.json{'' if args.no_plot else ', phase.png'})")


if __name__ == "__main__":
    run_main(main)
