"""Phase-sweep speed: a 256 x 256 grid of reduced SimSiam runs, vmapped under jit, against a per-point
`scipy.integrate.solve_ivp` loop over the same grid (timed on a random subsample and extrapolated).

    python benchmarks/phase_speed.py [--n 256] [--sample 300] [--diffrax]

Grid: weight decay 0 ... 0.3 x sigma2 0 ... 2, p0 = 0.5 on the parabola, t_max = 2400 (the phase CLI's
default for this grid), both solvers at rtol 1e-6, atol 1e-10 in float64. Prints the times, the ratio and
the classification agreement on the subsample. `--diffrax` also times `jax.vmap(reduced.integrate)` on the
full grid (diffrax's adaptive loop, vmapped; slow, see dynamics/solvers.py).
"""
import argparse
import time

import jax
import numpy as np
from scipy.integrate import solve_ivp

from dynamics.phase import sweep
from dynamics.phase_grid import PhaseConfig, grid_points, point_values, systems
from dynamics.reduced import Params, integrate


def simsiam_rhs(t, y, eta, sigma2):
    """Tian21's per-mode SimSiam field, tau = l = alpha_p = 1 (numpy, for solve_ivp)."""
    p, s = y
    c = 1.0 + sigma2
    return [s * (1.0 - c * p) - eta * p, 2.0 * p * s * (1.0 - c * p) - 2.0 * eta * s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--diffrax", action="store_true")
    args = ap.parse_args()
    jax.config.update("jax_enable_x64", True)
    cfg = PhaseConfig(method="simsiam", x="wd", y="sigma2", nx=args.n, ny=args.n)
    t0 = time.perf_counter()
    res = sweep(cfg)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = sweep(cfg)
    warm = time.perf_counter() - t0
    t_max = float(res["t_max"])
    print(f"vmapped sweep, {args.n}x{args.n} = {args.n**2} points, t_max {t_max:g}: {warm:.2f} s "
          f"(first call incl. compilation {first:.2f} s), devices: {jax.devices()}")

    X, Y = grid_points(cfg)
    idx = np.random.default_rng(0).choice(X.size, args.sample, replace=False)
    t0 = time.perf_counter()
    alive = [solve_ivp(simsiam_rhs, (0.0, t_max), [0.5, 0.25], args=(X.flat[i], Y.flat[i]), method="RK45",
                       rtol=1e-6, atol=1e-10).y[1, -1] >= cfg.s_tol for i in idx]
    loop = (time.perf_counter() - t0) / args.sample * X.size
    agree = np.mean(np.array(alive) == (res["survivors"].ravel()[idx] == 1))
    print(f"solve_ivp loop (RK45), {args.sample} points timed, extrapolated to {X.size}: {loop:.1f} s; "
          f"classification agrees on {100 * agree:.1f}% of the subsample")
    print(f"speed-up (loop / warm vmapped sweep): {loop / warm:.0f}x; incl. compilation: {loop / first:.0f}x")
    if args.diffrax:
        y0, params = systems(cfg, point_values(cfg, X, Y))
        full = Params(*(np.broadcast_to(a, (X.size,)) for a in params))
        run = jax.jit(jax.vmap(lambda y, p: integrate("simsiam", y, p, np.array([0.0, t_max]), rtol=1e-6,
                                                       atol=1e-10)[-1]))
        run(y0, full).block_until_ready()
        t0 = time.perf_counter()
        run(y0, full).block_until_ready()
        took = time.perf_counter() - t0
        print(f"jax.vmap(reduced.integrate) (diffrax Tsit5) on the full grid: {took:.2f} s")


if __name__ == "__main__":
    main()
