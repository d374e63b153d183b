"""Linear-network theory of non-contrastive self-supervised learning (docs/theory.md).

Modules (import what you need; nothing heavy runs at import time):

- `dynamics.moments`     data / augmentation second moments, the default anisotropic spectrum, sampling.
- `dynamics.methods`     methods as data: expected losses (terms), trained matrices, EMA targets, setters.
- `dynamics.matrix_ode`  matrix vector field by autodiff of the expected loss; diffrax float64 solve.
- `dynamics.sgd`         SGD on sampled data (or exact batch moments) in `lax.scan`.
- `dynamics.reduced`     per-mode systems derived with sympy from the same losses; vmappable integrator.
- `dynamics.analysis`    fixed points, Jacobians, stability, `collapse_wd`.
- `python -m dynamics.analyze`, `python -m dynamics.simulate`: the command-line entry points.
"""
