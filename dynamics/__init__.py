"""Linear-network theory of non-contrastive self-supervised learning (docs/theory.md).

Modules (import what you need; nothing heavy runs at import time):

- `dynamics.moments`     data / augmentation second moments, the default anisotropic spectrum, sampling.
- `dynamics.methods`     methods as data: expected losses (terms), trained matrices, EMA targets, setters;
                         `register(Method(...))` makes a new method usable by name everywhere.
- `dynamics.matrix_ode`  matrix vector field by autodiff of the expected loss; float64 solve (`solvers`).
- `dynamics.sgd`         SGD on sampled data (or exact batch moments) in `lax.scan`.
- `dynamics.reduced`     per-mode systems derived with sympy from the same losses; vmappable integrator.
- `dynamics.setters`     DirectPred / DirectCopy as coupled multi-mode systems in log s (the set predictor
                         couples the modes), with their decoupled fixed points.
- `dynamics.analysis`    fixed points, Jacobians, stability, `collapse_wd` (closed forms as fast paths).
- `dynamics.fixed_points` the general solver: fixed points of any method's sympy field, certified.
- `dynamics.solvers`     the two lean ODE solvers: `solve_saved` (Dormand-Prince 5(4) for one pytree, saving
                         at given times: the matrix solve) and `solve_final` (batched Bogacki-Shampine for
                         phase sweeps, final states only).
- `dynamics.phase`, `phase_grid`: collapse phase diagrams (`phase` is also the command line).
- `dynamics.plot`        the figures the command lines write (modes.png, phase.png); `draw_phase` for an axis.
- `dynamics.explore`     `explore(method)` in Jupyter: sliders over trajectories and a phase plane
                         (ipywidgets); `Explorer` is its headless core.
- `dynamics.provenance`  versions, devices and git state written beside every run (both packages).
- `python -m dynamics.analysis`, `python -m dynamics.simulate`, `python -m dynamics.phase`: the command lines.
"""
