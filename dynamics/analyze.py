"""`python -m dynamics.analyze`: fixed points, stability and the collapse threshold of one mode.

    python -m dynamics.analyze --method simsiam --sigma2 0.5 --tau 1 --alpha-p 1 --wd 0.05 --json

prints one JSON object: `collapse_wd` (number), `fixed_points` (list of objects with the state variables
`p`, `s` (`g` for phinet / xphinet, `tau` / `tau_m` for EMA methods), `eigenvalues` (real parts of the
Jacobian's eigenvalues, ascending) and `stable` (bool)), and `method`, `params` (the resolved parameters).
Without `--json` a short table. `--lam` applies to phinet / xphinet / phinet-eyeg (Wg = I) / simsiam-scaled
(loss x (1 + lam)), `--alpha-g` to phinet / xphinet, `--beta` to byol / xphinet, `--tau` (a fixed target
scale) to every method but byol, whose tau is a state variable. `--method` also takes any registered method
with a per-mode system, or `module:attribute` (a `dynamics.methods.Method`, imported and registered): those
go through the general solver of `dynamics.fixed_points` (every parameter flag applies), which exits 1 with
one line where it cannot certify a fixed point.
"""
import sys

import numpy as np

from dynamics._cli import Parser, number, print_json
from dynamics.analysis import ANALYSED_METHODS, collapse_wd, fixed_points
from dynamics.fixed_points import Uncertified
from dynamics.methods import METHODS, load_method
from dynamics.reduced import Params, has_reduced

_SCALED = ("phinet-eyeg", "simsiam-scaled")
_ONLY_FOR = {"lam": ("phinet", "xphinet") + _SCALED, "alpha_g": ("phinet", "xphinet"),
             "beta": ("byol", "xphinet"), "tau": ("simsiam", "phinet", "xphinet") + _SCALED}


def build_parser() -> Parser:
    ap = Parser(prog="python -m dynamics.analyze", description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", required=True,
                    help=f"one of {', '.join(ANALYSED_METHODS)} (closed forms), another method with a "
                         "per-mode system, or module:attribute naming a dynamics.methods.Method to register "
                         "(general solver: dynamics.fixed_points)")
    ap.add_argument("--sigma2", type=number(0.0), default=0.5, help="augmentation variance of the mode (0.5)")
    ap.add_argument("--lambda-j", type=number(0.0, strict=True), default=1.0, help="data eigenvalue (1)")
    ap.add_argument("--wd", type=number(0.0), default=0.0, help="weight decay eta (0)")
    ap.add_argument("--alpha-p", type=number(0.0, strict=True), default=1.0, help="predictor rate ratio (1)")
    ap.add_argument("--tau", type=number(0.0, strict=True), default=None, help="fixed target scale (1)")
    ap.add_argument("--lam", type=number(0.0), default=None, help="PhiNet clean-target weight (1)")
    ap.add_argument("--alpha-g", type=number(0.0, strict=True), default=None, help="Wg rate ratio (1)")
    ap.add_argument("--beta", type=number(0.0), default=None, help="EMA rate per unit time (0.4)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    return ap


def _method(ap: Parser, spec: str) -> str:
    """The method's name (`module:attribute` imported and registered); a parser error otherwise."""
    try:
        name = load_method(spec)
    except ValueError as err:
        ap.error(str(err))
    if not has_reduced(name):
        allowed = [n for n in METHODS if has_reduced(n)]
        ap.error(f"--method {name} has no per-mode system to analyse; allowed: {', '.join(allowed)}")
    return name


def resolve(ap: Parser, args) -> Params:
    """Params from the arguments (and `args.method` resolved to a registered name); an error for an option
    the method does not take."""
    args.method = _method(ap, args.method)
    for field, methods in _ONLY_FOR.items():
        if args.method not in ANALYSED_METHODS:
            continue  # a registered method takes every parameter (its terms say which matter)
        if getattr(args, field) is not None and args.method not in methods:
            flag = "--" + field.replace("_", "-")
            ap.error(f"{flag} does not apply to --method {args.method}; allowed for: {', '.join(methods)}")
    defaults = Params()
    pick = lambda field: defaults._asdict()[field] if getattr(args, field) is None else getattr(args, field)
    return Params(eta=args.wd, alpha_p=args.alpha_p, alpha_g=pick("alpha_g"), lam=pick("lam"),
                  beta=pick("beta"), lambda_j=args.lambda_j, sigma2=args.sigma2, tau=pick("tau"))


def report(method: str, params: Params) -> dict:
    """The JSON-ready analysis of one mode."""
    fps = [{**fp.state, "eigenvalues": np.sort(fp.eigenvalues.real).tolist(), "stable": fp.stable}
           for fp in fixed_points(method, params)]
    return {"method": method, "params": params._asdict(), "collapse_wd": collapse_wd(method, params),
            "fixed_points": fps}


def main(argv=None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    params = resolve(ap, args)
    try:
        out = report(args.method, params)
    except Uncertified as err:
        sys.stderr.write(f"{ap.prog}: cannot certify: {err}\n")
        raise SystemExit(1) from None
    if args.json:
        print_json(out)
        return
    print(f"{out['method']}: collapse_wd = {out['collapse_wd']:.6g}   ({out['params']})")
    for fp in out["fixed_points"]:
        state = "  ".join(f"{k}={v:.6g}" for k, v in fp.items() if k not in ("eigenvalues", "stable"))
        eig = ", ".join(f"{e:.4g}" for e in fp["eigenvalues"])
        print(f"  {state:<52} eig.real [{eig}]  {'stable' if fp['stable'] else 'unstable'}")


if __name__ == "__main__":
    main()
