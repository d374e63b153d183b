"""Fixed points, Jacobians, stability and collapse thresholds of the reduced per-mode systems.

SimSiam (and BYOL, whose tau is 1 at every non-collapsed fixed point) has closed forms (Tian21):
`p_pm = (tau l +- sqrt(tau^2 l^2 - 4 eta c)) / (2c)`, `s = p^2 / alpha_p`, `c = l + sigma2`, existing for
`eta <= tau^2 l^2 / (4c)`, the collapse threshold (BYOL's tau is a state, 1 at its non-collapsed fixed
points, so its parameter tau is only an initial value). PhiNet / X-PhiNet (fixed points have tau_m = 1): for
eta > 0 and s > 0, ds/dt = 0 and dp/dt = 0 give `s = p^2 / alpha_p`; dg/dt = 0 is linear in g,
`g = alpha_g lam tau l p s / (eta + alpha_g lam c p^2 s)`; what is left is one equation in p,
`h(p) = p (tau l - c p) + lam q (tau l - c q) - eta = 0` with `q = g p`, solved by a sign-change scan and
brentq. Since `q (tau l - c q) <= tau^2 l^2 / (4c)`, PhiNet's threshold is at most (1 + lam) times SimSiam's.
Stability: eigenvalues of `jax.jacfwd` of the sympy-derived field (strict: all real parts < 0).

phinet-eyeg (Wg = I) and simsiam-scaled (loss x (1 + lam)), `k = 1 + lam`: their field is
`k f_simsiam(y; eta / k)` (the same fixed points as SimSiam at weight decay `eta / k`, time run k times
faster), so `p_pm = (tau l +- sqrt(tau^2 l^2 - 4 eta c / k)) / (2c)`, `s = p^2 / alpha_p`, threshold
`k tau^2 l^2 / (4c)` (1/3 at lam = 1, sigma2 = 0.5, l = tau = 1, above trained-g PhiNet's 0.2559), Jacobian
eigenvalues `{-2 eta, -/+ k p sqrt(tau^2 l^2 - 4 eta c / k)}` at p_pm. At small eta the saddle is
`p_- = eta / (k tau l) + O(eta^2)`: k times closer to the origin than SimSiam's, whereas trained-g
PhiNet's saddle is SimSiam's up to a relative `O(eta^2)` (near p_- its `q = g p = O(p^4 / eta)`).

Public API
- `FixedPoint(state: dict, eigenvalues: np.ndarray (complex, sorted by real part), stable: bool)`
- `jacobian(name, y, params)`, `fixed_points(name, params) -> list[FixedPoint]` (origin first)
- `simsiam_fixed_points(params, scale=1) -> (p_minus, p_plus)` or None, `simsiam_eigenvalues(params, p,
  scale=1)` (scale k: the loss x k), `loss_scale(name, params)` (1 + lam for the two scaled methods, else 1)
- `collapse_wd(name, params, *, rtol=1e-10)`: the largest eta with a stable non-collapsed fixed point.
- `saddle(name, params)`: p of the smallest non-collapsed fixed point (the collapse saddle p_-), or None.
- `fixed_points`, `collapse_wd` and `saddle` take `general=True` for the general solver of
  `dynamics.fixed_points` (fixed points from the method's own sympy field, certified, no closed form); a
  registered method (`methods.register`) or an ablation always takes that path.
- `build_parser()`, `resolve(parser, args) -> Params`, `report(method, params) -> dict` (the JSON object
  below), `main(argv=None)`.

Command line: `python -m dynamics.analysis` analyses one mode:

    python -m dynamics.analysis --method simsiam --sigma2 0.5 --tau 1 --alpha-p 1 --wd 0.05 --json

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
import functools
import sys
from typing import NamedTuple

import jax
import numpy as np
from scipy.optimize import brentq, minimize_scalar

from dynamics._cli import Parser, number, print_json
from dynamics.fixed_points import Uncertified
from dynamics.fixed_points import collapse_wd as general_collapse_wd
from dynamics.fixed_points import fixed_points as general_fixed_points
from dynamics.methods import METHODS, get_method, load_method
from dynamics.reduced import Params, has_reduced, reduced_field, state_names

ANALYSED_METHODS = ("simsiam", "byol", "phinet", "xphinet", "phinet-eyeg", "simsiam-scaled")
_SCALED = ("phinet-eyeg", "simsiam-scaled")


class FixedPoint(NamedTuple):
    state: dict
    eigenvalues: np.ndarray
    stable: bool


def _general(name: str, general: bool) -> bool:
    """Whether `name` takes the general path (`dynamics.fixed_points`): asked for, or a method without a
    closed form here (a registered one, or an ablation with a per-mode system)."""
    if name in ANALYSED_METHODS and not general:
        return False
    if not has_reduced(name):
        allowed = [*ANALYSED_METHODS, *(n for n in METHODS if has_reduced(n) and n not in ANALYSED_METHODS)]
        raise ValueError(f"no fixed-point analysis for {name!r}; allowed: {', '.join(allowed)}")
    return True


def _xphinet_off_one(name: str, params: Params) -> bool:
    """X-PhiNet with a fixed target scale tau != 1 on its SimSiam term: its clean term's target is the EMA
    encoder (ratio 1 at the fixed points), not tau, so the one-equation reduction `h(p)` (one tau for both
    terms) does not hold; the general solver does (its fixed points are zeros of the field there, the
    closed form's were not)."""
    return name == "xphinet" and params.tau != 1.0


@functools.cache
def _jac(method):  # keyed on the definition (a method registered again is differentiated again)
    return jax.jit(jax.jacfwd(reduced_field(method.name)))


def jacobian(name: str, y, params: Params) -> np.ndarray:
    """Jacobian of the reduced field of `name` at state y (n_states,), float64."""
    with jax.enable_x64(True):
        y = np.asarray(y, dtype=np.float64)
        return np.asarray(_jac(get_method(name))(y, Params(*map(float, params))))


def _fixed_point(name: str, values: dict, params: Params) -> FixedPoint:
    y = [values[n] for n in state_names(name)]
    eig = np.linalg.eigvals(jacobian(name, y, params))
    eig = eig[np.argsort(eig.real)]
    return FixedPoint({n: float(values[n]) for n in state_names(name)}, eig, bool(np.all(eig.real < 0)))


def loss_scale(name: str, params: Params) -> float:
    """`1 + lam` for phinet-eyeg and simsiam-scaled (SimSiam's field times it at eta / (1 + lam)), else 1."""
    return 1.0 + params.lam if name in _SCALED else 1.0


def simsiam_fixed_points(params: Params, scale: float = 1.0):
    """`(p_minus, p_plus)` of the (p, s) system at fixed tau with the loss times `scale` (k),
    `(tau l -+ sqrt(tau^2 l^2 - 4 eta c / k)) / (2c)`, or None when eta > k tau^2 l^2 / (4c)."""
    tl, c = params.tau * params.lambda_j, params.lambda_j + params.sigma2
    disc = tl**2 - 4 * params.eta * c / scale
    if disc < 0:
        return None
    return (tl - np.sqrt(disc)) / (2 * c), (tl + np.sqrt(disc)) / (2 * c)


def simsiam_eigenvalues(params: Params, p: float, scale: float = 1.0) -> np.ndarray:
    """Closed-form Jacobian eigenvalues at p_pm: `{-2 eta, -/+ k p sqrt(tau^2 l^2 - 4 eta c / k)}` (sorted),
    k = scale (1 for SimSiam)."""
    tl, c = params.tau * params.lambda_j, params.lambda_j + params.sigma2
    root = np.sqrt(tl**2 - 4 * params.eta * c / scale)
    pm, pp = simsiam_fixed_points(params, scale)
    sign = 1.0 if np.isclose(p, pm) else -1.0
    return np.sort([-2 * params.eta, sign * scale * p * root])


def _phinet_q(p, params: Params):
    """q = g p on the fixed-point manifold s = p^2 / alpha_p (see module docstring)."""
    ag_lam_s = params.alpha_g * params.lam * p**2 / params.alpha_p
    c = params.lambda_j + params.sigma2
    g = ag_lam_s * params.tau * params.lambda_j * p / (params.eta + ag_lam_s * c * p**2)
    return g * p, g


def _phinet_h(p, params: Params):
    tl, c = params.tau * params.lambda_j, params.lambda_j + params.sigma2
    q, _ = _phinet_q(p, params)
    return p * (tl - c * p) + params.lam * q * (tl - c * q) - params.eta


def _extremum(params: Params, a: float, b: float, rising: float) -> float:
    """The local maximum (rising = 1) or minimum (rising = -1) of h in [a, b]."""
    res = minimize_scalar(lambda x: -rising * _phinet_h(x, params), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-14})
    return res.x


def _phinet_roots(params: Params, n_grid: int = 2001) -> list:
    """Roots of h on a grid refined at its local extrema (so near-tangent root pairs are not missed)."""
    tl, c = params.tau * params.lambda_j, params.lambda_j + params.sigma2
    bound = 1.01 * abs(tl) * (1 + np.sqrt(1 + abs(params.lam))) / (2 * c)  # h < 0 beyond, see docstring
    grid = np.linspace(-bound, bound, n_grid)
    h = _phinet_h(grid, params)
    slope = np.sign(np.diff(h))
    turns = np.flatnonzero(np.diff(slope) != 0) + 1
    extrema = [_extremum(params, grid[i - 1], grid[i + 1], slope[i - 1]) for i in turns]
    pts = np.unique(np.concatenate([grid, extrema, [0.0]]))
    h = _phinet_h(pts, params)
    roots = []
    for i in np.flatnonzero(np.sign(h[:-1]) * np.sign(h[1:]) < 0):
        roots.append(brentq(_phinet_h, pts[i], pts[i + 1], args=(params,), xtol=1e-15, rtol=1e-14))
    roots += [x for x in pts[h == 0] if x != 0]
    return sorted(roots)


def _origin(name: str, params: Params) -> dict | None:
    values = {n: 0.0 for n in state_names(name)}
    for ratio in ("tau", "tau_m"):  # with W -> 0 the ratio settles where beta (1 - r) + eta r = 0
        if ratio in values:
            if params.beta <= params.eta:
                return None
            values[ratio] = params.beta / (params.beta - params.eta)
    return values


def fixed_points(name: str, params: Params, *, general: bool = False) -> list:
    """All fixed points of the reduced system (origin first, then non-collapsed by increasing p); the closed
    forms for the built-in methods, the general solver (`dynamics.fixed_points`) for the others or with
    `general=True`."""
    if _general(name, general) or _xphinet_off_one(name, params):
        return general_fixed_points(name, params)
    out = []
    origin = _origin(name, params)
    if origin is not None:
        out.append(_fixed_point(name, origin, params))
    if name in ("simsiam", "byol") + _SCALED:
        roots = simsiam_fixed_points(params._replace(tau=1.0) if name == "byol" else params,
                                     loss_scale(name, params)) or ()
        roots = sorted(set(r for r in roots if r != 0))
        extra = lambda p: {"tau": 1.0} if name == "byol" else {}
        values = [{"p": p, "s": p**2 / params.alpha_p, **extra(p)} for p in roots]
    else:
        values = [{"p": p, "g": _phinet_q(p, params)[1], "s": p**2 / params.alpha_p, "tau_m": 1.0}
                  for p in _phinet_roots(params)]
    return out + [_fixed_point(name, v, params) for v in values]


def _survives(name: str, params: Params) -> bool:
    return any(fp.stable and fp.state["s"] > 0 for fp in fixed_points(name, params))


def collapse_wd(name: str, params: Params, *, rtol: float = 1e-10, general: bool = False) -> float:
    """Largest weight decay eta with a stable non-collapsed fixed point (params.eta is ignored).
    simsiam: `tau^2 l^2 / (4c)`; byol: `l^2 / (4c)` (tau = 1 at its fixed points; BYOL with the target ratio
    frozen at T is SimSiam's system with tau = T); phinet-eyeg, simsiam-scaled: `(1 + lam) tau^2 l^2 / (4c)`;
    phinet / xphinet: bisection on eta in (0, (1 + lam) tau^2 l^2 / (4c)]. Other methods, or `general=True`:
    `dynamics.fixed_points.collapse_wd` (a scan and bisection over the general solver)."""
    if _general(name, general) or _xphinet_off_one(name, params):
        return general_collapse_wd(name, params, rtol=rtol)
    tau = 1.0 if name == "byol" else params.tau
    simsiam = tau**2 * params.lambda_j**2 / (4 * (params.lambda_j + params.sigma2))
    if name in ("simsiam", "byol") + _SCALED:
        return float(loss_scale(name, params) * simsiam)
    lo, hi = 0.0, (1 + params.lam) * simsiam * (1 + 1e-12)
    if not _survives(name, params._replace(eta=simsiam * 1e-6)):
        return 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _survives(name, params._replace(eta=mid)) else (lo, mid)
    return float(lo)


def saddle(name: str, params: Params, *, general: bool = False):
    """The collapse saddle: p of the smallest-p non-collapsed fixed point with p > 0 (unstable; its stable
    manifold bounds the collapse basin), or None past the threshold."""
    fps = [fp for fp in fixed_points(name, params, general=general)
           if fp.state["s"] > 0 and fp.state.get("p", 0.0) > 0]
    return fps[0].state["p"] if fps else None


# ---------------------------------------------------------------------------- the command line

_ONLY_FOR = {"lam": ("phinet", "xphinet") + _SCALED, "alpha_g": ("phinet", "xphinet"),
             "beta": ("byol", "xphinet"), "tau": ("simsiam", "phinet", "xphinet") + _SCALED}


def build_parser() -> Parser:
    prog = "python -m dynamics.analysis"
    ap = Parser(prog=prog, description=f"`{prog}`: fixed points, stability and the collapse threshold of one "
                                       "mode.")
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
