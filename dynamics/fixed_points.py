"""Fixed points, stability and collapse thresholds of any method's per-mode system, from its own sympy field.

The general path of `dynamics.analysis` (which keeps the closed forms of the built-in methods as fast paths):
it works for every method with a per-mode system, registered ones included (`methods.register`).

Why it is a one-variable (or two-variable) problem. Every term is `1/2 E||P x_a - sg(T x_b)||^2` with the
encoder once in the chain and once in the target, so the loss is `s = w^2` times a polynomial in the
predictor scalars x = (p, g) (those trained) and the target ratios. Hence, per trained scalar,
`dx_i/dt = s A_i(x) - eta x_i`, and `ds/dt = s (C(x) - 2 eta)`, with A_i, C polynomials free of s and eta;
at a non-collapsed fixed point (s > 0) every EMA ratio is 1 (`dtau/dt = beta (1 - tau)` once ds/dt = 0, for
beta > 0). So the non-collapsed fixed points with eta > 0 are the solutions of
- no trained predictor: `C = 2 eta` (a constant: none, or a continuum, which is reported, not guessed);
- one (p): the polynomial `C(p) - 2 eta = 0`;
- two (p, g): `C(p, g) = 2 eta` and `g A_p - p A_g = 0` (from `s = eta p / A_p = eta g / A_g`), reduced to
  one polynomial in p by the resultant in g (computed once per method, symbolically);
and `s = eta x_i / A_i`. All roots of the polynomial come from its companion matrix (`np.roots`: no starting
guesses); each real one is certified by a sign change of the polynomial between the midpoints that separate it
from its neighbours and refined by brentq (a root without a sign change is a complex pair, or a double root
when the polynomial vanishes there to round-off), completed (g from the same equations), polished by Newton's
method on the fixed-point equations themselves, and accepted only if the residual of the full field is below
1e-10 (relative) and its Jacobian is non-singular. Stability: eigenvalues of the full Jacobian (EMA ratios
included); an eigenvalue with real part within 1e-9 of zero leaves stability undecided. Measured against the
closed forms (SimSiam, BYOL, PhiNet, X-PhiNet, phinet-eyeg over sigma2 in {0, 0.5, 5}, alpha_p in {0.1, 1,
10}, alpha_g in {0.3, 3}): thresholds agree to 1e-10 relative, 0.2-0.6 s per `collapse_wd` on one core.

Where it cannot certify (eta <= 0 or beta <= 0 with an EMA target: continua of fixed points; a double root;
a candidate that Newton cannot polish; a singular Jacobian; a zero eigenvalue; a polynomial that vanishes
identically) it raises `Uncertified` naming the reason; it never returns a guess.

Public API
- `Uncertified` (ArithmeticError; `DoubleRoot` for a saddle-node to round-off)
- `fixed_points(name, params) -> list[analysis.FixedPoint]` (origin first, then by increasing p)
- `collapse_wd(name, params, *, rtol=1e-10)`, `saddle(name, params)`.
"""
import functools

import numpy as np
import sympy as sp
from scipy.optimize import brentq

from dynamics.methods import get_method
from dynamics.reduced import _P, Params, _derive, state_names

_SCALARS = ("p", "g")
_RATIOS = ("tau", "tau_m")


class Uncertified(ArithmeticError):
    """The general solver could not certify a fixed point (or its stability); the message says why."""


class DoubleRoot(Uncertified):
    """Two fixed points coincide to round-off: a saddle-node, at a threshold."""


def _sym(name):
    return sp.Symbol("s", positive=True) if name == "s" else sp.Symbol(name, real=True)


@functools.cache
def _system(method):
    """Numeric functions of one method's fixed-point problem (module docstring), built once."""
    names = state_names(method.name)
    exprs = _derive(method)
    xs = [n for n in names if n in _SCALARS]
    x = [_sym(n) for n in xs]
    s, eta = _sym("s"), _P["eta"]
    at_one = {_sym(r): 1 for r in names if r in _RATIOS}
    A = [sp.expand((exprs[n].subs(at_one) + eta * xi) / s) for n, xi in zip(xs, x)]
    C = sp.expand(exprs["s"].subs(at_one) / s + 2 * eta)
    for e in (*A, C):
        if s in e.free_symbols or eta in e.free_symbols:
            raise Uncertified(f"{method.name}: the per-mode field is not of the form s A(x) - eta x; the "
                              "general solver does not apply")
    params = list(_P.values())
    eq1 = C - 2 * eta
    if len(x) == 2:
        eq2 = sp.expand(x[1] * A[0] - x[0] * A[1])
        poly = sp.Poly(sp.resultant(eq1, eq2, x[1]), x[0])
    elif len(x) == 1:
        eq2, poly = None, sp.Poly(eq1, x[0])
    else:
        eq2, poly = None, None
    zero_root = False
    if poly is not None:  # a factor p^k: p = 0 is a root for every parameter, handled exactly, apart
        k = min(m[0] for m, _ in poly.terms())
        zero_root, poly = k > 0, sp.Poly(sp.expand(poly.as_expr() / x[0] ** k), x[0])
    unknowns = x + [s]
    square = [exprs[n].subs(at_one) for n in xs] + [sp.expand(exprs["s"].subs(at_one) / s)]
    full = [_sym(n) for n in names]
    num = lambda e, args: sp.lambdify(args, e, modules="numpy")
    return {
        "xs": xs, "names": names, "zero_root": zero_root,
        "coeffs": None if poly is None else num(poly.all_coeffs(), [params]),
        "const": num(eq1, [params]) if not x else None,
        "g_polys": None if eq2 is None else [num(sp.Poly(e, x[1]).all_coeffs(), [x[0], params])
                                             for e in (eq1, eq2)],
        "A": num(A, [x, params]),
        "square": num(square, [unknowns, params]),
        "square_jac": num(sp.Matrix(square).jacobian(unknowns), [unknowns, params]),
        "field": num([exprs[n] for n in names], [full, params]),
        "jac": num(sp.Matrix([exprs[n] for n in names]).jacobian(full), [full, params]),
    }


def _trimmed(coeffs, what: str) -> np.ndarray:
    c = np.atleast_1d(np.asarray(coeffs, float))
    if not np.all(np.isfinite(c)):
        raise Uncertified(f"{what}: non-finite polynomial coefficients")
    scale = np.max(np.abs(c)) if c.size else 0.0
    if scale == 0.0:
        raise Uncertified(f"{what}: the polynomial vanishes identically (a continuum of fixed points)")
    return c[np.flatnonzero(np.abs(c) > 1e-14 * scale)[0]:]


def _near_real_roots(coeffs, what: str) -> list:
    """Real parts of the roots (companion matrix) within 1e-4 (relative) of the real axis: candidates."""
    c = _trimmed(coeffs, what)
    roots = np.roots(c) if c.size > 1 else np.array([])
    return [complex(r) for r in roots if abs(r.imag) <= 1e-4 * max(1.0, abs(r))]


def _certified_roots(coeffs, what: str) -> list:
    """The real roots of a polynomial, each certified by a sign change and refined by brentq. The candidates
    (near-real roots of the companion matrix) are separated by the midpoints between them; an interval with a
    sign change holds a root. One without is a complex pair (dropped) unless the polynomial is zero there to
    round-off: a double root, which raises `DoubleRoot` (a degenerate, saddle-node fixed point: no guess)."""
    c = _trimmed(coeffs, what)
    cands = sorted(r.real for r in _near_real_roots(c, what))
    if not cands:
        return []
    f = lambda t: np.polyval(c, t)
    noise = lambda t: 64 * np.finfo(float).eps * np.polyval(np.abs(c), abs(t)) * c.size
    edge = [cands[0] - 1e-2 * (1 + abs(cands[0])), cands[-1] + 1e-2 * (1 + abs(cands[-1]))]
    pts = [edge[0], *(0.5 * (a + b) for a, b in zip(cands[:-1], cands[1:])), edge[1]]
    out = []
    for k, x in enumerate(cands):
        lo, hi = pts[k], pts[k + 1]
        f_lo, f_hi = f(lo), f(hi)
        clear = abs(f_lo) > noise(lo) and abs(f_hi) > noise(hi)  # the signs at both ends are resolved
        if clear and np.sign(f_lo) != np.sign(f_hi):
            out.append(brentq(f, lo, hi, xtol=1e-16, rtol=1e-15))
        elif not clear or abs(f(x)) <= noise(x):
            raise DoubleRoot(f"{what}: a double root near p = {x:.12g} (a degenerate, saddle-node fixed "
                             "point: its stability is not decided)")
        # else: the same sign at both ends and a clearly non-zero value between: a complex pair
    return sorted(set(out))


def _newton(sys, z, params, what):
    """Polish z = (x..., s) on the square fixed-point equations by Newton's method, until the step is at
    round-off (1e-15 relative) or stops shrinking at below 1e-8 relative (cancellation, e.g. tau l - c p
    near zero, limits what float64 resolves); None if it does not converge."""
    z, last = np.asarray(z, float), np.inf
    for _ in range(60):
        J = np.asarray(sys["square_jac"](z, params), float)
        F = np.asarray(sys["square"](z, params), float)
        try:
            dz = np.linalg.solve(J, -F)
        except np.linalg.LinAlgError:
            return None
        z = z + dz
        step = np.max(np.abs(dz) / np.maximum(1.0, np.abs(z)))
        if not np.all(np.isfinite(z)):
            return None
        if step <= 1e-15 or (step <= 1e-8 and step > 0.5 * last):
            return z
        last = step
    return None


def _common_g(sys, p: float, params, what) -> list:
    """Real g with both equations zero at this p: the common roots of the two polynomials in g (an
    equation that holds for every g at this p leaves the other to decide)."""
    polys = [np.asarray(f(p, list(params)), float) for f in sys["g_polys"]]
    size = [np.max(np.abs(c)) for c in polys]
    live = [c for c, m in zip(polys, size) if m > 1e-13 * max(size)]
    if not live:
        raise Uncertified(f"{what}: both equations hold for every g at p = {p:g} (a continuum)")
    roots = [[r.real for r in _near_real_roots(c, what)] for c in live]
    if len(roots) == 1:
        return roots[0]
    return [g for g in roots[0] if any(abs(g - h) <= 1e-5 * max(1.0, abs(g)) for h in roots[1])]


def _candidates(sys, params, what):
    """(x, s) candidates for the non-collapsed fixed points, before polishing."""
    xs, eta = sys["xs"], params.eta
    out = []
    if not xs:
        if sys["const"](list(params)) == 0.0:
            raise Uncertified(f"{what}: ds/dt = 0 for every s (a continuum of fixed points)")
        return out
    roots = _certified_roots(sys["coeffs"](list(params)), what) if sys["coeffs"] is not None else []
    for p in roots + ([0.0] if sys["zero_root"] and 0.0 not in roots else []):
        if len(xs) == 1:
            out.append([p])
            continue
        out += [[p, g] for g in _common_g(sys, p, params, what)]
    full = []
    for x in out:
        A = np.asarray(sys["A"](x, list(params)), float)
        i = int(np.argmax(np.abs(A)))
        if A[i] == 0.0:
            continue
        full.append(x + [eta * x[i] / A[i]])
    return full


def _fixed_point(sys, values: dict, params, what):
    from dynamics.analysis import FixedPoint

    y = np.array([values[n] for n in sys["names"]], float)
    J = np.asarray(sys["jac"](y, list(params)), float)
    eig = np.linalg.eigvals(J)
    eig = eig[np.argsort(eig.real)]
    scale = max(1.0, np.max(np.abs(eig)))
    if np.any(np.abs(eig.real) <= 1e-9 * scale):
        raise Uncertified(f"{what}: an eigenvalue with zero real part at {values} (stability not decided by "
                          "the linearisation)")
    return FixedPoint({n: float(values[n]) for n in sys["names"]}, eig, bool(np.all(eig.real < 0)))


def fixed_points(name: str, params: Params) -> list:
    """Every fixed point of the per-mode system of `name`: the origin (when it exists), then the
    non-collapsed ones (s > 0) by increasing p, each certified (module docstring); `analysis.FixedPoint`s."""
    method = get_method(name)
    sys = _system(method)
    params = Params(*map(float, params))
    what = f"{name} at {params}"
    if params.eta <= 0:
        raise Uncertified(f"{what}: eta <= 0 leaves continua of fixed points (s free); allowed: eta > 0")
    has_ratio = any(n in _RATIOS for n in sys["names"])
    if has_ratio and params.beta <= 0:
        raise Uncertified(f"{what}: beta <= 0 leaves the EMA ratio free; allowed: beta > 0")
    from dynamics.analysis import _origin

    out = []
    origin = _origin(name, params)
    if origin is not None:
        out.append(_fixed_point(sys, origin, params, what))
    found = []
    for z0 in _candidates(sys, params, what):
        z = _newton(sys, z0, params, what)
        if z is None and len(sys["xs"]) == 1:  # a certified simple root that Newton cannot polish
            raise Uncertified(f"{what}: Newton's method does not converge from p = {z0[0]:.12g}")
        if z is None or z[-1] <= 0:
            continue  # (two predictors: g from a near-real, complex pair) or s <= 0: not non-collapsed
        values = {**dict(zip(sys["xs"], z[:-1])), "s": z[-1], **{r: 1.0 for r in _RATIOS}}
        y = np.array([values[n] for n in sys["names"]])
        resid = np.abs(np.asarray(sys["field"](y, list(params)), float))
        if np.max(resid) > 1e-10 * max(1.0, np.max(np.abs(y))):
            continue  # a near-real root of the eliminant that is not a fixed point (complex, or spurious)
        if np.linalg.cond(np.asarray(sys["square_jac"](z, list(params)), float)) > 1e13:
            raise Uncertified(f"{what}: singular Jacobian at {values} (a degenerate fixed point)")
        if not any(np.allclose(z, f, rtol=1e-9, atol=1e-12) for f in found):
            found.append(z)
    found.sort(key=lambda z: z[0] if sys["xs"] else z[-1])
    for z in found:
        values = {**dict(zip(sys["xs"], z[:-1])), "s": z[-1], **{r: 1.0 for r in _RATIOS}}
        out.append(_fixed_point(sys, values, params, what))
    return out


def _survives(name: str, params: Params):
    """Whether a stable non-collapsed fixed point exists; None at a saddle-node (two fixed points equal to
    round-off: the weight decay is a threshold to that precision)."""
    try:
        return any(fp.stable and fp.state["s"] > 0 for fp in fixed_points(name, params))
    except DoubleRoot:
        return None


def collapse_wd(name: str, params: Params, *, rtol: float = 1e-10, n_scan: int = 96) -> float:
    """Largest weight decay with a stable non-collapsed fixed point (params.eta is ignored): a scan of
    `n_scan` log-spaced values over [1e-6, 64] x SimSiam's `tau^2 l^2 / (4c)` (widened upward while the
    top one survives) finds the largest surviving value; bisection to `rtol` between it and the next, which
    stops early at a saddle-node resolved only to round-off (about 1e-10 relative for PhiNet). 0 when
    none survives. A surviving window narrower than the scan spacing (~16%) can be missed."""
    l, c = params.lambda_j, params.lambda_j + params.sigma2
    ref = params.tau**2 * l**2 / (4 * c) if l > 0 else 1.0
    grid = list(ref * np.geomspace(1e-6, 64.0, n_scan))
    alive = [_survives(name, params._replace(eta=float(e))) is not False for e in grid]
    while alive[-1]:
        if grid[-1] > 1e8 * ref:
            raise Uncertified(f"{name}: a stable non-collapsed fixed point at every weight decay up to "
                              f"{grid[-1]:g}; no threshold found")
        grid.append(2 * grid[-1])
        alive.append(_survives(name, params._replace(eta=float(grid[-1]))) is not False)
    if not any(alive):
        return 0.0
    k = max(i for i, a in enumerate(alive) if a)
    lo, hi = float(grid[k]), float(grid[k + 1])
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        alive_mid = _survives(name, params._replace(eta=mid))
        if alive_mid is None:
            return mid
        lo, hi = (mid, hi) if alive_mid else (lo, mid)
    return lo


def saddle(name: str, params: Params):
    """p of the smallest-p non-collapsed fixed point with p > 0 (the collapse saddle), or None."""
    fps = [fp for fp in fixed_points(name, params) if fp.state["s"] > 0 and fp.state.get("p", 0.0) > 0]
    return fps[0].state["p"] if fps else None
