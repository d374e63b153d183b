"""What a phase sweep computes: its config, the grid, the systems per grid point, and the analytic prediction.

A sweep varies two of the parameters in `AXES` over a grid and holds the others at the config's values.
Every grid point carries a spectrum of `modes` data eigenvalues: `lambdas` as given (default one mode,
`l = 1`), or the power law `l_j = j^(-exponent)`, j = 1..modes, when `exponent` is set (or swept). For the
reduced methods (simsiam, byol, phinet, xphinet, phinet-eyeg, simsiam-scaled) every (point, mode) is an
independent per-mode ODE of `dynamics.reduced`; for directpred / directcopy every point is one coupled
system of `dynamics.setters` (setter form `setter_form`). Initial state: `p0`, `g0`, `s0` (default
`p0^2 / alpha_p`: the invariant parabola of Tian21, on which SimSiam's basin of attraction is exactly
`p0 > p_-`), EMA ratios `tau` (byol, xphinet: `tau` is their initial ratio; the others: the fixed target
scale).

Analytic prediction (drawn over the numerical diagram): per mode, SimSiam survives iff
`eta < tau^2 l^2 / (4c)` and, on the parabola, `p0 > p_- = (tau l - sqrt(tau^2 l^2 - 4 eta c)) / (2c)`;
phinet-eyeg and simsiam-scaled the same with `eta` replaced by `eta / (1 + lam)` (their field is SimSiam's
at `eta / (1 + lam)`, times `1 + lam`); BYOL iff `eta < l^2 / (4c)` (fixed-point threshold; its basin has no
closed form); PhiNet / X-PhiNet: `analysis.collapse_wd` (fixed-point analysis + bisection) at a few values
of the other axis when one axis is the weight decay; DirectPred / DirectCopy with the equivariant setter:
the decoupled fixed points of `setters.setter_fixed_point` (mode j survives iff
`eta < l_j^2 / (4 c_j)` and `p_+,j > e`; basins not checked); with the normalised setter: none.

Public API
- `AXES`, `PhaseConfig` (frozen dataclass), `axis_values(cfg, axis)`, `grid_points(cfg) -> (X, Y)` (ny, nx)
- `point_values(cfg, X, Y) -> dict` (each parameter: a float or a flat (N,) array; `lambdas` (N, modes))
- `systems(cfg, values) -> (y0 (R, d), params)`: the rows the solver integrates (R = N * modes or N)
- `simsiam_survivors(cfg, values)`, `byol_survivors`, `phinet_thresholds(cfg, other_values)`
- `is_registered(method)`, `axis_applies(axis, method)`: registered methods (`methods.register`) sweep too,
  their axes read from their definitions, their prediction from the general solver (`dynamics.fixed_points`)
"""
from dataclasses import asdict, dataclass

import numpy as np

from dynamics.analysis import collapse_wd
from dynamics.methods import BUILTIN_METHODS, get_method
from dynamics.reduced import Params, has_reduced, state_names
from dynamics.setters import SETTER_METHODS, SetterParams, setter_fixed_point

REDUCED = ("simsiam", "byol", "phinet", "xphinet", "phinet-eyeg", "simsiam-scaled")
PHASE_METHODS = REDUCED + SETTER_METHODS
_PHINETS, _EMA = ("phinet", "xphinet"), ("byol", "xphinet")
SCALED = ("phinet-eyeg", "simsiam-scaled")  # SimSiam's field at eta / (1 + lam), times (1 + lam)
# axis: (default range, log scale by default, methods it applies to, meaning)
AXES = {
    "wd": ((0.0, 0.3), False, PHASE_METHODS, "weight decay eta"),
    "sigma2": ((0.0, 2.0), False, PHASE_METHODS, "augmentation variance (every mode)"),
    "alpha_p": ((0.1, 10.0), True, REDUCED, "predictor learning-rate ratio"),
    "alpha_g": ((0.1, 10.0), True, _PHINETS, "second-predictor learning-rate ratio"),
    "lam": ((0.0, 4.0), False, _PHINETS + SCALED, "PhiNet clean-target weight (loss scale 1 + lam)"),
    "beta": ((0.01, 10.0), True, _EMA, "EMA rate per unit time"),
    "tau": ((0.1, 2.0), False, REDUCED, "target scale (byol, xphinet: initial EMA ratio)"),
    "p0": ((-0.2, 1.0), False, REDUCED, "initial predictor eigenvalue"),
    "s0": ((1e-4, 1.0), True, PHASE_METHODS, "initial encoder eigenvalue s = w^2"),
    "g0": ((-0.5, 1.5), False, _PHINETS, "initial second-predictor eigenvalue"),
    "exponent": ((0.0, 3.0), False, PHASE_METHODS, "spectrum exponent a in l_j = j^-a"),
}


def is_registered(method: str) -> bool:
    """A method registered at run time (`methods.register`) with a per-mode system: it sweeps like the
    built-in reduced methods, with the general solver's thresholds as the prediction."""
    return method not in BUILTIN_METHODS and has_reduced(method)


def axis_applies(axis: str, method: str) -> bool:
    """Whether parameter `axis` is one of `method`'s: the lists of `AXES` for the built-in methods; for a
    registered one, read from its definition (alpha_p / p0 with a trained Wp, alpha_g / g0 with a trained
    Wg, lam if a term is weighted by it, beta with an EMA target)."""
    if not is_registered(method):
        return method in AXES[axis][2]
    m = get_method(method)
    needs = {"alpha_p": "Wp" in m.trained, "p0": "Wp" in m.trained, "alpha_g": "Wg" in m.trained,
             "g0": "Wg" in m.trained, "lam": any(t.weight == "lam" for t in m.terms), "beta": bool(m.ema)}
    return needs.get(axis, True)


@dataclass(frozen=True)
class PhaseConfig:
    """A sweep: method, two axes with their ranges and sizes, the fixed values, solver settings."""

    method: str = "simsiam"
    x: str = "wd"
    y: str = "sigma2"
    x_range: tuple = (0.0, 0.3)
    y_range: tuple = (0.0, 2.0)
    nx: int = 128
    ny: int = 128
    x_log: bool = False
    y_log: bool = False
    wd: float = 0.05
    sigma2: float = 0.5
    alpha_p: float = 1.0
    alpha_g: float = 1.0
    lam: float = 1.0
    beta: float = 0.4
    tau: float = 1.0
    p0: float = 0.5
    s0: float | None = None
    g0: float = 0.5
    lambdas: tuple = (1.0,)
    exponent: float | None = None
    modes: int = 1
    eps: float = 0.01
    setter_form: str = "equivariant"
    t_max: float | None = None
    s_tol: float = 1e-6
    rtol: float = 1e-6
    atol: float = 1e-10
    chunk: int = 16384

    def asdict(self) -> dict:
        return asdict(self)

    @property
    def n_modes(self) -> int:
        return self.modes if self.power_law else len(self.lambdas)

    @property
    def power_law(self) -> bool:
        return self.exponent is not None or "exponent" in (self.x, self.y)

    @property
    def on_parabola(self) -> bool:
        return self.s0 is None and "s0" not in (self.x, self.y)


def axis_values(cfg: PhaseConfig, axis: str) -> np.ndarray:
    """The grid values along "x" or "y" (linear or geometric spacing)."""
    lo, hi = cfg.x_range if axis == "x" else cfg.y_range
    n, log = (cfg.nx, cfg.x_log) if axis == "x" else (cfg.ny, cfg.y_log)
    return np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)


def grid_points(cfg: PhaseConfig):
    """`(X, Y)`, each (ny, nx): row i is y = ys[i], column j is x = xs[j] (image orientation)."""
    return np.meshgrid(axis_values(cfg, "x"), axis_values(cfg, "y"))


def point_values(cfg: PhaseConfig, X, Y) -> dict:
    """Every parameter at the points (X, Y) (any equal shapes, flattened): swept ones as (N,) arrays,
    fixed ones as floats; `lambdas` always (N, modes); `s0` resolved to `p0^2 / alpha_p` when unset."""
    X, Y = np.ravel(X), np.ravel(Y)
    v = {name: getattr(cfg, name) for name in AXES}
    v[cfg.x], v[cfg.y] = X, Y
    if v["s0"] is None:
        v["s0"] = np.asarray(v["p0"]) ** 2 / np.asarray(v["alpha_p"])
    if cfg.power_law:
        j = np.arange(1, cfg.n_modes + 1)
        v["lambdas"] = j[None, :] ** -np.reshape(np.asarray(v["exponent"], float), (-1, 1))
    else:
        v["lambdas"] = np.asarray(cfg.lambdas, float)[None, :]
    v["lambdas"] = np.broadcast_to(v["lambdas"], (X.size, cfg.n_modes))
    return v


def _rows(value, n_points: int, n_modes: int):
    """A per-point value (array or shared float) as one entry per (point, mode) row, point-major. Fixed
    parameters are rows too, so the compiled solver depends only on the method and the row count, not on
    which two parameters a grid sweeps (the two panels of a figure share one executable per method)."""
    return np.repeat(np.broadcast_to(np.asarray(value, float), (n_points,)), n_modes)


def systems(cfg: PhaseConfig, values: dict):
    """`(y0 (R, d), params)`: reduced methods, one row per (point, mode) with a `Params` of (R,) leaves
    (0-d `tau` for the EMA methods, whose tau is a state); setter methods, one row per point with
    `SetterParams` (rows (N,), spectra (N, modes))."""
    n, m = values["lambdas"].shape
    if cfg.method in SETTER_METHODS:
        full = lambda a: np.broadcast_to(np.reshape(a, (-1, 1)) if np.ndim(a) else a, (n, m)).copy()
        u0 = np.log(full(values["s0"]))
        return u0, SetterParams(_rows(values["wd"], n, 1), np.asarray(cfg.eps), values["lambdas"].copy(),
                                full(values["sigma2"]))
    ema = cfg.method in _EMA or (is_registered(cfg.method) and bool(get_method(cfg.method).ema))
    r = lambda k: _rows(values[k], n, m)
    params = Params(eta=r("wd"), alpha_p=r("alpha_p"), alpha_g=r("alpha_g"), lam=r("lam"), beta=r("beta"),
                    lambda_j=values["lambdas"].reshape(-1), sigma2=r("sigma2"),
                    tau=np.asarray(1.0) if ema else r("tau"))
    init = {"p": r("p0"), "g": r("g0"), "s": r("s0"), "tau": r("tau"), "tau_m": r("tau")}
    y0 = np.stack([np.broadcast_to(init[k], (n * m,)) for k in state_names(cfg.method)], axis=1)
    return y0, params


def simsiam_survivors(cfg: PhaseConfig, values: dict) -> np.ndarray:
    """Closed-form surviving-mode count per point (N,): `eta < tau^2 l^2 / (4c)` and, on the parabola,
    `p0 > p_-` (phinet-eyeg, simsiam-scaled: at `eta / (1 + lam)`)."""
    lam = values["lambdas"]
    col = lambda k: np.reshape(np.asarray(values[k], float), (-1, 1))
    tl, c, eta = col("tau") * lam, lam + col("sigma2"), col("wd")
    if cfg.method in SCALED:
        eta = eta / (1 + col("lam"))
    disc = tl**2 - 4 * eta * c
    alive = disc > 0
    if cfg.on_parabola:
        p_minus = (tl - np.sqrt(np.maximum(disc, 0.0))) / (2 * c)
        alive &= col("p0") > p_minus
    return alive.sum(axis=1)


def setter_survivors(cfg: PhaseConfig, values: dict) -> np.ndarray:
    """Equivariant DirectPred / DirectCopy: surviving modes per point (N,) at the decoupled fixed point
    (`setters.setter_fixed_point`; basins not checked)."""
    n = values["lambdas"].shape[0]
    at = lambda k, i: float(np.ravel(values[k])[i]) if np.ndim(values[k]) else float(values[k])
    return np.array([setter_fixed_point(cfg.method, SetterParams(
        at("wd", i), cfg.eps, values["lambdas"][i], np.full(values["lambdas"].shape[1], at("sigma2", i))),
        cfg.setter_form)["surviving"].sum() for i in range(n)])


def byol_survivors(cfg: PhaseConfig, values: dict) -> np.ndarray:
    """Fixed-point surviving-mode count per point (N,): `eta < l^2 / (4c)` (tau = 1 at the fixed points)."""
    lam = values["lambdas"]
    col = lambda k: np.reshape(np.asarray(values[k], float), (-1, 1))
    return (4 * col("wd") * (lam + col("sigma2")) < lam**2).sum(axis=1)


def phinet_thresholds(cfg: PhaseConfig, other: np.ndarray, *, rtol: float = 1e-6) -> np.ndarray:
    """PhiNet / X-PhiNet (or a registered method: the general solver) collapse weight decay per mode
    (len(other), modes) at values `other` of the non-wd axis (fixed-point analysis, `analysis.collapse_wd`);
    wd must be one of the axes."""
    X, Y = (np.zeros_like(other), other) if cfg.x == "wd" else (other, np.zeros_like(other))
    v = point_values(cfg, X, Y)
    at = lambda k, i: float(np.ravel(v[k])[i]) if np.ndim(v[k]) else float(v[k])
    out = np.empty(v["lambdas"].shape)
    for i in range(len(other)):
        for j, lam_j in enumerate(v["lambdas"][i]):
            ema = cfg.method == "xphinet" or (is_registered(cfg.method) and get_method(cfg.method).ema)
            tau = 1.0 if ema else at("tau", i)
            params = Params(0.0, at("alpha_p", i), at("alpha_g", i), at("lam", i), at("beta", i),
                            float(lam_j), at("sigma2", i), tau)
            out[i, j] = collapse_wd(cfg.method, params, rtol=rtol)
    return out
