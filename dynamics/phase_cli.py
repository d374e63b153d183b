"""Arguments of `python -m dynamics.phase` and their validation (one-line errors, exit status 2).

Flags: `--method`, `--x` / `--y` (axis names of `phase_grid.AXES`), `--x-range lo,hi` / `--y-range`,
`--nx` / `--ny` (128), `--x-scale` / `--y-scale` (lin or log; default per axis), the fixed values of every
parameter not swept (`--wd 0.05 --sigma2 0.5 --alpha-p 1 --alpha-g 1 --lam 1 --beta 0.4 --tau 1 --p0 0.5
--s0 p0^2/alpha_p --g0 0.5`), the spectrum (`--lambdas` list, or `--exponent a --modes n` for
`l_j = j^-a`; an `exponent` axis implies `--modes 8` unless given), the solver (`--t-max`, `--s-tol 1e-6`,
`--rtol 1e-6`, `--atol 1e-10`, `--chunk 16384`, `--eps 0.01` and `--setter equivariant|normalised` for the
setters) and outputs (`--out-dir` runs/phase, `--run-name`; old spellings `--name`, `--out` kept for one
release; `--overwrite` to replace a sweep with another config, `--json`, `--no-plot`).
"""
from dynamics._cli import Parser, add_output_flags, number, number_list
from dynamics.methods import SETTER_FORMS, load_method
from dynamics.phase_grid import AXES, PHASE_METHODS, PhaseConfig, axis_applies, is_registered

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
