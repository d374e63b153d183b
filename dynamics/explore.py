"""Interactive exploration in Jupyter: a method's per-mode trajectories s_j(t) and a phase plane, redrawn as
sliders move (issue 26 §4).

    from dynamics.explore import explore
    explore("phinet")                      # sliders: wd, sigma2, lam, beta, spectrum exponent; method; plane

`Explorer(method, **values)` is the headless core: `.set(**values)` recomputes and redraws `.fig` (a
matplotlib `Figure`, no pyplot, no backend chosen) and `.data` holds what is drawn (per-mode trajectories and
fixed points), so tests set values in code and read the data back. `explore(...)` wraps it in ipywidgets
(optional: the notebooks extra; the core install does not need it): every slider or dropdown change calls
`.set` and shows the new figure.

Values (`DEFAULTS`): `wd` (eta), `sigma2`, `lam`, `beta`, `alpha_p`, `alpha_g`, `tau`, the spectrum
`l_j = j^-exponent` for j = 1..`modes`, the start `p0`, `g0` (every mode on the parabola `s0 = p0^2 /
alpha_p`; EMA ratios at `tau`), the horizon `t_max` (default `min(20 / wd, 2000)`), the `plane` (two state
names, e.g. ("p", "s")). Any method with a per-mode system works, registered ones included
(`methods.register`).

Speed: a redraw solves the per-mode systems with scipy on the lambdified sympy field (`reduced.trajectory`:
nothing to compile) and takes the fixed points from `analysis.fixed_points` (closed forms; the general
solver for registered methods). Measured on 2 CPU cores shared with a training job, 4 modes, wd stepped
through 0.01-0.12 (`Explorer.last_redraw_s`, computing and drawing, not the browser's rendering): median /
max per redraw SimSiam 0.045 / 0.068 s, BYOL 0.072 / 0.164 s, PhiNet 0.061 / 0.126 s, X-PhiNet 0.097 / 0.247
s; a method's first draw 0.15-0.32 s (sympy's lambdify).
"""
import time

import numpy as np
from matplotlib.figure import Figure

from dynamics.analysis import fixed_points
from dynamics.fixed_points import Uncertified
from dynamics.methods import METHODS
from dynamics.reduced import Params, has_reduced, state_names, trajectory

DEFAULTS = {"wd": 0.05, "sigma2": 0.5, "lam": 1.0, "beta": 0.4, "alpha_p": 1.0, "alpha_g": 1.0, "tau": 1.0,
            "exponent": 1.0, "modes": 4, "p0": 0.5, "g0": 0.5, "t_max": None, "plane": ("p", "s")}


def methods() -> list:
    """Every method `Explorer` takes: those with a per-mode system (built-in and registered)."""
    return [n for n in METHODS if has_reduced(n)]


class Explorer:
    """Headless core of `explore` (module docstring): `.set(**values)`, `.fig`, `.data`."""

    def __init__(self, method: str = "simsiam", **values):
        self.method, self.values = method, dict(DEFAULTS)
        self.fig = Figure(figsize=(10, 4), layout="constrained")
        self.ax_time, self.ax_plane = self.fig.subplots(1, 2)
        self.data, self.last_redraw_s = {}, float("nan")
        self.set(method=method, **values)

    def set(self, **values) -> "Explorer":
        """Change method and / or values, recompute and redraw; ValueError naming a bad key or value."""
        method = values.pop("method", self.method)
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown value(s) {', '.join(unknown)}; allowed: method, {', '.join(DEFAULTS)}")
        if method not in methods():
            raise ValueError(f"no per-mode system for {method!r}; allowed: {', '.join(methods())}")
        start = time.perf_counter()
        self.method = method
        self.values.update(values)
        self._compute()
        self._draw()
        self.last_redraw_s = time.perf_counter() - start
        return self

    def params(self, lambda_j: float) -> Params:
        v = self.values
        tau = 1.0 if any(n in ("tau", "tau_m") for n in state_names(self.method)) else v["tau"]
        return Params(eta=v["wd"], alpha_p=v["alpha_p"], alpha_g=v["alpha_g"], lam=v["lam"], beta=v["beta"],
                      lambda_j=lambda_j, sigma2=v["sigma2"], tau=tau)

    def _compute(self) -> None:
        v, names = self.values, state_names(self.method)
        lambdas = np.arange(1, int(v["modes"]) + 1, dtype=float) ** -float(v["exponent"])
        t_max = v["t_max"] or (min(20.0 / v["wd"], 2000.0) if v["wd"] > 0 else 200.0)
        ts = np.linspace(0.0, t_max, 241)
        start = {"p": v["p0"], "g": v["g0"], "s": v["p0"] ** 2 / v["alpha_p"], "tau": v["tau"],
                 "tau_m": v["tau"]}
        y0 = [start[n] for n in names]
        trajectories, fps = [], []
        for lam_j in lambdas:
            params = self.params(float(lam_j))
            trajectories.append(trajectory(self.method, y0, params, ts))
            try:
                fps.append(fixed_points(self.method, params))
            except Uncertified:
                fps.append([])  # none certified at these values: none drawn
        self.data = {"method": self.method, "names": names, "ts": ts, "lambdas": lambdas,
                     "trajectories": trajectories, "fixed_points": fps}

    def _plane(self) -> tuple:
        names = self.data["names"]
        x, y = self.values["plane"]
        if x in names and y in names:
            return x, y
        return (names[0], "s") if names[0] != "s" else ("s", names[-1])

    def _draw(self) -> None:
        d, (ax, bx) = self.data, (self.ax_time, self.ax_plane)
        ax.clear()
        bx.clear()
        k_s = d["names"].index("s")
        xn, yn = self._plane()
        kx, ky = d["names"].index(xn), d["names"].index(yn)
        for j, (traj, fps) in enumerate(zip(d["trajectories"], d["fixed_points"])):
            line, = ax.semilogy(d["ts"], np.maximum(traj[:, k_s], 1e-300), label=f"l = {d['lambdas'][j]:.3g}")
            for fp in fps:
                if fp.stable and fp.state["s"] > 0:
                    ax.axhline(fp.state["s"], ls="--", lw=0.8, c=line.get_color())
            bx.plot(traj[:, kx], traj[:, ky], c=line.get_color(), lw=1)
            for fp in fps:
                bx.plot(fp.state[xn], fp.state[yn], "o", c=line.get_color(),
                        mfc=None if fp.stable else "white")
        v = self.values
        top = max(float(np.max(t[:, k_s])) for t in d["trajectories"])
        ax.set_ylim(1e-8, 3 * max(top, 1e-7))
        ax.set(xlabel="t", ylabel="s_j = w_j^2", title=f"{d['method']}: wd {v['wd']:.3g}, sigma2 "
               f"{v['sigma2']:.3g}, lam {v['lam']:.3g}, beta {v['beta']:.3g}, l_j = j^-{v['exponent']:.3g}")
        ax.legend(fontsize=7)
        bx.set(xlabel=xn, ylabel=yn, title="trajectories; fixed points (filled: stable)")
        ax.title.set_fontsize(9)
        bx.title.set_fontsize(9)


def explore(method: str = "simsiam", **values):
    """Sliders (wd, sigma2, lam, beta, spectrum exponent), a method and a plane selector over an `Explorer`;
    returns the widget box (its `.explorer` is the core). Needs ipywidgets (the notebooks extra)."""
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError as err:
        raise ImportError("dynamics.explore needs ipywidgets: pip install -e '.[notebooks]' (or pip install "
                          "ipywidgets)") from err
    ex = Explorer(method, **values)
    v = ex.values
    sliders = {
        "wd": w.FloatLogSlider(value=max(v["wd"], 1e-4), base=10, min=-4, max=0, description="wd"),
        "sigma2": w.FloatSlider(value=v["sigma2"], min=0.0, max=2.0, step=0.02, description="sigma2"),
        "lam": w.FloatSlider(value=v["lam"], min=0.0, max=4.0, step=0.05, description="lam"),
        "beta": w.FloatLogSlider(value=v["beta"], base=10, min=-2, max=1, description="beta (EMA)"),
        "exponent": w.FloatSlider(value=v["exponent"], min=0.0, max=3.0, step=0.05, description="spectrum a"),
    }
    chooser = w.Dropdown(options=methods(), value=method, description="method")
    plane = w.Dropdown(options=["p,s", "g,s", "p,g", "s,tau", "s,tau_m"], value=",".join(v["plane"]),
                       description="plane")
    out = w.Output()

    def redraw(change=None):
        ex.set(method=chooser.value, plane=tuple(plane.value.split(",")),
               **{k: s.value for k, s in sliders.items()})
        with out:
            out.clear_output(wait=True)
            display(ex.fig)

    for widget in (*sliders.values(), chooser, plane):
        widget.observe(redraw, names="value")
    with out:
        display(ex.fig)
    box = w.VBox([w.HBox([chooser, plane]), w.HBox(list(sliders.values())[:3]),
                  w.HBox(list(sliders.values())[3:]), out])
    box.explorer = ex
    return box
