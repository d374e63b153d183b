"""One simulation of one method at one level, and its per-mode summary (the engine of `dynamics.simulate`).

Levels: `reduced` (sympy per-mode ODE, one independent system per mode, vmapped), `matrix` (matrix ODE from a
random start), `sgd` (sampled-data SGD from the same start). Matrix-level modes are the eigenvalues `s` of
`W W^T` (descending) with `p`, `g` the Rayleigh quotients of `Wp`, `Wg` on their eigenvectors; a mode is
collapsed when `s < s_tol` (under `loss="cosine"`, sgd level only, which is scale-free: `s < s_tol s_1`,
and no `fixed_point`; with `momentum` one SGD step is `lr / (1 - momentum)` of model time).
Each mode's `fixed_point` is the stable non-collapsed fixed point of its data mode (`dynamics.analysis`),
None past the mode's threshold; at the matrix level they are sorted by `s` like the final eigenvalues
(a mode that starts in the collapse basin can still collapse below threshold).
DirectPred / DirectCopy: the reduced level is their coupled per-mode system in `log s`
(`dynamics.setters`, modes coupled only through `f_max`; `p0`, `g0` unused), and with the default
equivariant setter each mode's `fixed_point` is the decoupled one of `setters.setter_fixed_point`
(SimSiam's p_+, `s = phi^-1(p_+ - e) / c`); the normalised setter has no finite fixed point (every
`s -> 0`), so none is given.

Public API
- `SimConfig` (frozen dataclass: every resolved setting), `simulate_method(cfg, name, progress=None)`
  -> `(arrays: dict of np.ndarray, result: dict)`, `predicted_modes(cfg, name)`.
"""
from dataclasses import asdict, dataclass
from dataclasses import field as dc_field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from dynamics.analysis import ANALYSED_METHODS, fixed_points
from dynamics.fixed_points import Uncertified
from dynamics.matrix_ode import init_state, mode_summary, solve
from dynamics.methods import BUILTIN_METHODS, Hyper, get_method
from dynamics.moments import anisotropic, expected_moments
from dynamics.reduced import Params, has_reduced, integrate, state_names
from dynamics.setters import (
    SETTER_METHODS,
    SetterParams,
    setter_field,
    setter_fixed_point,
    setter_predictor,
)
from dynamics.sgd import run_sgd


def _f(default, help: str, low: float | None = None, strict: bool = False):
    """A field that is also a flag of `python -m dynamics.simulate`: its help and lower bound (`> low` when
    strict) in the metadata, from which the command builds the flag."""
    return dc_field(default=default, metadata={"help": help, "low": low, "strict": strict})


# Reduced level: the initial p, s, g of every mode when --p0 / --s0 / --g0 are not given.
REDUCED_START = {"p0": 0.5, "s0": 0.25, "g0": 0.5}


@dataclass(frozen=True)
class SimConfig:
    """Resolved settings of a simulate run (saved beside its results). The fields made with `_f` are the
    command's flags of the same name (help, default and bound from here)."""

    level: str
    lambdas: tuple
    sigma2s: tuple
    wd: float
    t_max: float
    n_save: int = _f(201, "saved time points", 2)
    alpha_p: float = _f(1.0, "predictor learning-rate ratio alpha_p", 0.0, True)
    alpha_g: float = _f(1.0, "PhiNet / X-PhiNet: learning-rate ratio alpha_g of Wg", 0.0, True)
    lam: float = _f(1.0, "PhiNet / X-PhiNet: weight lambda of the clean-view target", 0.0)
    beta: float = _f(0.4, "EMA rate of the momentum encoder per unit time (byol, xphinet)", 0.0)
    tau: float = _f(1.0, "fixed target scale (reduced level); for byol, xphinet the initial EMA ratio", 0.0,
                    True)
    eps: float = _f(0.01, "directpred / directcopy: setter eps", 0.0)
    rho: float = _f(0.3, "directpred / directcopy: EMA rate of F per SGD step, at most 1", 0.0)
    s_tol: float = _f(1e-6, "a mode is collapsed when s < s_tol", 0.0, True)
    p0: tuple = ()
    s0: tuple = ()
    g0: tuple = ()
    seed: int = _f(0, "matrix / sgd level: seed of the random start", 0)
    w_scale: float = 1.0
    lr: float = _f(0.01, "sgd level: learning rate", 0.0, True)
    batch: int = _f(256, "sgd level: batch, 0 = exact moments", 0)
    loss: str = "euclidean"
    momentum: float = 0.0
    setter_form: str = "equivariant"

    def hyper(self) -> Hyper:
        return Hyper(eta=self.wd, alpha_p=self.alpha_p, alpha_g=self.alpha_g, lam=self.lam, beta=self.beta,
                     rho=self.rho, eps=self.eps, setter_form=self.setter_form)

    def setter_params(self) -> SetterParams:
        lam, s2 = np.asarray(self.lambdas, float), np.asarray(self.sigma2s, float)
        return SetterParams(self.wd, self.eps, lam, s2)

    def params(self, name: str) -> list:
        """Per-mode reduced parameters; tau is the fixed target scale except for methods with an EMA target
        (byol, xphinet), where it is the initial EMA ratio."""
        tau = 1.0 if get_method(name).ema else self.tau  # byol, xphinet, registered EMA methods
        return [Params(self.wd, self.alpha_p, self.alpha_g, self.lam, self.beta, lj, s2, tau)
                for lj, s2 in zip(self.lambdas, self.sigma2s)]

    def asdict(self) -> dict:
        return asdict(self)


def predicted_modes(cfg: SimConfig, name: str) -> list | None:
    """Per data mode, the stable non-collapsed fixed point (dict) or None (collapse); None for methods
    without a fixed-point analysis (the ablations; DirectPred / DirectCopy with the normalised setter) and
    where the general solver of a registered method cannot certify one."""
    if name in SETTER_METHODS:
        if cfg.setter_form != "equivariant":
            return None
        fp = setter_fixed_point(name, cfg.setter_params(), cfg.setter_form)
        return [{"p": float(p), "s": float(s)} if alive else None
                for p, s, alive in zip(fp["p"], fp["s"], fp["surviving"])]
    registered = name not in BUILTIN_METHODS and has_reduced(name)  # the general solver's fixed points
    if name not in ANALYSED_METHODS and not registered:
        return None
    out = []
    for params in cfg.params(name):
        try:
            stable = [fp.state for fp in fixed_points(name, params) if fp.stable and fp.state["s"] > 0]
        except Uncertified:
            return None  # no certified prediction: none is given
        out.append(stable[-1] if stable else None)
    return out


def _reduced_setter(cfg: SimConfig, name: str, ts) -> dict:
    """The coupled per-mode system of a setter method in u = log s (diffrax Tsit5, float64)."""
    import diffrax

    field, params = setter_field(name, cfg.setter_form), cfg.setter_params()
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, u, args: field(u, params)), diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
        y0=jnp.log(jnp.asarray(cfg.s0, jnp.float64)), saveat=diffrax.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-12), max_steps=1_000_000)
    u = sol.ys  # (T, modes)
    p = jax.vmap(lambda v: setter_predictor(name, cfg.setter_form, v, params))(u)
    return {"s": np.exp(np.asarray(u)), "p": np.asarray(p)}


def _reduced(cfg: SimConfig, name: str, ts) -> dict:
    if name in SETTER_METHODS:
        return _reduced_setter(cfg, name, ts)
    ratio = (cfg.tau,) * len(cfg.s0)
    init = {"p": cfg.p0, "s": cfg.s0, "g": cfg.g0, "tau": ratio, "tau_m": ratio}
    names = state_names(name)
    y0 = jnp.array([[init[n][j] for n in names] for j in range(len(cfg.s0))])
    params = Params(*(jnp.array(v) for v in zip(*cfg.params(name))))
    ys = jax.vmap(lambda y, p: integrate(name, y, p, ts))(y0, params)  # (modes, T, n_states)
    return {n: np.asarray(ys[:, :, k]).T for k, n in enumerate(names)}  # each (T, modes)


def _matrix(cfg: SimConfig, name: str, ts, progress) -> dict:
    method, hp = get_method(name), cfg.hyper()
    spectrum = anisotropic(cfg.lambdas, cfg.sigma2s)
    C = expected_moments(spectrum)
    st0 = init_state(jax.random.PRNGKey(cfg.seed), method, spectrum.dim, w_scale=cfg.w_scale, p0=cfg.p0[0],
                     g0=cfg.g0[0], tau=cfg.tau)
    if cfg.level == "matrix":
        traj = solve(method, hp, C, st0, ts, rtol=1e-9, atol=1e-12)
    else:
        traj = _sgd(cfg, method, hp, spectrum, st0, len(ts) - 1, progress)
    states = {k: v for k, v in traj.items() if k in method.matrices}  # already (T, ...) trajectories
    modes = _mode_summaries(method, hp, C, states)
    final = {k: np.asarray(v[-1]) for k, v in traj.items()}
    return {**{k: np.asarray(v) for k, v in modes.items()}, **{f"final_{k}": v for k, v in final.items()}}


@partial(jax.jit, static_argnames=("method", "hp"))
def _mode_summaries(method, hp, C, states):
    """`mode_summary` at every saved time, as one compiled program (eager vmapped ops dispatch one by one)."""
    return jax.vmap(lambda st: mode_summary(method, st, C, hp))(states)


def _steps_per_record(cfg, n_records) -> int:
    """SGD steps between records: one step is `lr / (1 - momentum)` of model time."""
    return max(1, int(round(cfg.t_max * (1 - cfg.momentum) / cfg.lr / n_records)))


def _sgd(cfg, method, hp, spectrum, st0, n_records, progress):
    steps_per_record = _steps_per_record(cfg, n_records)
    key, state, chunks = jax.random.PRNGKey(cfg.seed + 1), dict(st0), []
    for r in range(0, n_records, 10):
        n = min(10, n_records - r)
        _, traj = run_sgd(method, hp, spectrum, state, key, lr=cfg.lr, n_steps=n * steps_per_record,
                          batch=cfg.batch or None, record_every=steps_per_record,
                          start_step=r * steps_per_record, loss=cfg.loss, momentum=cfg.momentum)
        chunks.append(traj if r == 0 else {k: v[1:] for k, v in traj.items()})
        state = {k: v[-1] for k, v in traj.items()}
        if progress is not None:
            progress(n)
    return {k: jnp.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def simulate_method(cfg: SimConfig, name: str, progress=None):
    """Run one method; returns `(arrays, result)`: time series per mode (T, modes) and the JSON summary."""
    ts = np.linspace(0.0, cfg.t_max, cfg.n_save)
    arrays = _reduced(cfg, name, ts) if cfg.level == "reduced" else _matrix(cfg, name, ts, progress)
    if cfg.level == "sgd":
        ts = cfg.lr / (1 - cfg.momentum) * _steps_per_record(cfg, cfg.n_save - 1) * np.arange(cfg.n_save)
    arrays["ts"] = ts
    pred = predicted_modes(cfg, name) if cfg.loss == "euclidean" else None  # the analysis is Euclidean
    if pred is not None and cfg.level != "reduced":  # match sorted predictions to sorted eigenvalues
        pred = sorted(pred, key=lambda fp: 0.0 if fp is None else -fp["s"])
    keys = [k for k in ("p", "g", "s") if k in arrays]
    modes = []
    for j in range(arrays["s"].shape[1]):
        mode = {f"{k}0": float(arrays[k][0, j]) for k in keys}
        mode.update({k: float(arrays[k][-1, j]) for k in keys})
        scale = 1.0 if cfg.loss == "euclidean" else arrays["s"][-1, 0]  # cosine: scale-free, s_j / s_1
        mode["collapsed"] = bool(arrays["s"][-1, j] < cfg.s_tol * scale)
        if pred is not None:
            mode["fixed_point"] = None if pred[j] is None else {k: pred[j][k] for k in keys}
        modes.append(mode)
    result = {"method": name, "level": cfg.level, "surviving": sum(not m["collapsed"] for m in modes),
              "modes": modes}
    return arrays, result
