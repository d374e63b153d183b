"""Methods as data: an expected loss (a sum of terms) plus flags (docs/theory.md section 2).

A term `weight * 1/2 E|| (M_k ... M_1) x_a - sg(T x_b) ||^2` is a `Term(online=(M_k, ..., M_1), target=T,
views=(a, b))`; with the view moments `C[a, b] = E[x_a x_b^T]` (dynamics.moments) its expectation is
`1/2 [tr(A C_aa A^T) - 2 tr(A C_ab T^T) + tr(T C_bb T^T)]`, `A = M_k ... M_1`. A `Method` lists its terms,
which matrices follow gradient flow (`W` at rate 1, `Wp` at `alpha_p`, `Wg` at `alpha_g`), which are EMA
targets (`dWa/dt = beta (W - Wa)`) and whether the predictor `Wp` is set from the predictor-input
correlation instead of trained. The matrix ODE, SGD and the sympy-reduced per-mode systems are all built from
these terms, so adding a method means adding an entry to `METHODS`.

Two entries take PhiNet's threshold gain apart (docs/theory.md section 4): `phinet-eyeg` is PhiNet with the
CA1 predictor fixed to the identity (`Wg = I`, not trained: its clean term is
`lam/2 E||Wp W x1 - sg(W x0)||^2`), and `simsiam-scaled` is SimSiam with its loss times `1 + lam` (two
copies of SimSiam's term, weights 1 and lam). Because `E[x1 x0^T] = E[x1 x2^T] = X`, the two have the same
gradient, hence the same dynamics.

Predictor setters (`Wp` set from `F = E[f f^T] = U diag(f) U^T`, f = W x1), in two forms (`SETTER_FORMS`):
- "equivariant" (default): DirectPred `p_j = sqrt(f_j) + eps sqrt(f_max)`, DirectCopy `Wp = F + eps f_max I`.
  Under `W -> a W` these scale like the trained predictor's fixed points (`p ~ sqrt(s)`, Tian21), so under
  the Euclidean loss of the linear model they keep the modes SimSiam keeps.
- "normalised": DirectPred `p_j = sqrt(f_j / f_max) + eps`, DirectCopy `Wp = F / f_max + eps I` (the
  authors' code, made for the scale-free cosine loss; under the Euclidean loss the top mode gets
  `p = 1 + eps > l / (l + sigma2)` and every mode shrinks).

Public API
- `Term`, `Method`, `Hyper` (hyper-parameters), `METHODS` (registry), `DEFAULT_METHODS` (the six methods)
- `get_method(name)`, `expected_loss(method, mats, C, hp)`, `predictor_input_correlation(W, C)`
- setters: `SETTER_FORMS`, `directpred_predictor(F, eps, form)`, `directcopy_predictor(F, eps, form)`,
  `set_predictor(method, F, hp)` (form `hp.setter_form`)
"""
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

RATES = {"W": None, "Wp": "alpha_p", "Wg": "alpha_g"}  # learning-rate ratio of each trainable matrix
SETTER_FORMS = ("equivariant", "normalised")


class Term(NamedTuple):
    """`weight * 1/2 E||online x_a - sg(target x_b)||^2`; `weight` names a `Hyper` field or is None (1)."""

    online: tuple
    target: str
    views: tuple
    weight: str | None = None
    stop_gradient: bool = True


@dataclass(frozen=True)
class Method:
    """A method: loss terms, trained matrices, EMA targets `(target, source)`, optional predictor setter."""

    name: str
    terms: tuple
    trained: tuple
    ema: tuple = ()
    setter: str | None = None
    summary: str = ""

    @property
    def matrices(self) -> tuple:
        """Every matrix in the state (the set predictor `Wp` of a setter method is not state)."""
        names = list(self.trained) + [t for t, _ in self.ema]
        return tuple(n for n in ("W", "Wp", "Wg", "Wa", "Wm") if n in names)


@dataclass(frozen=True)
class Hyper:
    """Hyper-parameters: weight decay `eta`, rate ratios, PhiNet weight `lam`, EMA rate `beta` (per unit
    time), DirectPred `rho`, `eps`, `freq` (SGD only), `setter_form` (one of `SETTER_FORMS`) and
    `symmetric_wp` (symmetrised predictor field, the setting of Tian21 Thm 3)."""

    eta: float = 0.0
    alpha_p: float = 1.0
    alpha_g: float = 1.0
    lam: float = 1.0
    beta: float = 0.4
    rho: float = 0.3
    eps: float = 0.01
    freq: int = 1
    symmetric_wp: bool = False
    setter_form: str = "equivariant"


_SIMSIAM = (Term(("Wp", "W"), "W", (1, 2)),)
_CLEAN = Term(("Wg", "Wp", "W"), "W", (1, 0), weight="lam")
_SCALED = _SIMSIAM + (_SIMSIAM[0]._replace(weight="lam"),)  # SimSiam's loss x (1 + lam)
METHODS = {
    m.name: m
    for m in (
        Method("simsiam", _SIMSIAM, ("W", "Wp"), summary="predictor, stop-gradient on the online encoder"),
        Method("byol", (Term(("Wp", "W"), "Wa", (1, 2)),), ("W", "Wp"), (("Wa", "W"),),
               summary="target Wa an EMA of W"),
        Method("phinet", _SIMSIAM + (_CLEAN,), ("W", "Wp", "Wg"),
               summary="SimSiam + lam * second predictor Wg predicting sg(W x0) of the clean input"),
        Method("xphinet", _SIMSIAM + (_CLEAN._replace(target="Wm"),), ("W", "Wp", "Wg"), (("Wm", "W"),),
               summary="PhiNet with the clean target from an EMA encoder Wm"),
        Method("directpred", _SIMSIAM, ("W",), setter="directpred",
               summary="Wp = U diag(sqrt(f_j) + eps sqrt(f_max)) U^T from F = E[f f^T] (normalised: "
                       "sqrt(f_j / f_max) + eps)"),
        Method("directcopy", _SIMSIAM, ("W",), setter="directcopy",
               summary="Wp = F + eps f_max I (normalised: F / f_max + eps I)"),
        Method("phinet-eyeg", _SIMSIAM + (_CLEAN._replace(online=("Wp", "W")),), ("W", "Wp"),
               summary="PhiNet with the CA1 predictor fixed to Wg = I (not trained)"),
        Method("simsiam-scaled", _SCALED, ("W", "Wp"),
               summary="SimSiam with its loss x (1 + lam): PhiNet's loss scale, no second predictor"),
        Method("simsiam-nosg", (Term(("Wp", "W"), "W", (1, 2), stop_gradient=False),), ("W", "Wp"),
               summary="ablation: SimSiam without stop-gradient (collapses)"),
        Method("simsiam-nopred", (Term(("W",), "W", (1, 2)),), ("W",),
               summary="ablation: SimSiam without predictor (collapses: dW/dt = -(X' + eta I) W)"),
    )
}
DEFAULT_METHODS = ("simsiam", "byol", "phinet", "xphinet", "directpred", "directcopy")


def get_method(name: str) -> Method:
    """The registered method `name`; a clear error listing the allowed names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name]


def _chain(mats: dict, names: tuple) -> jax.Array:
    out = mats[names[-1]]
    for name in reversed(names[:-1]):
        out = mats[name] @ out
    return out


def _quad(A, C, B):
    """`tr(A C B^T)`."""
    return jnp.sum((A @ C) * B)


def term_loss(term: Term, mats: dict, C: jax.Array) -> jax.Array:
    """`1/2 E||A x_a - T x_b||^2` from the view moments C (with the term's stop-gradient on T)."""
    a, b = term.views
    A = _chain(mats, term.online)
    T = jax.lax.stop_gradient(mats[term.target]) if term.stop_gradient else mats[term.target]
    return 0.5 * (_quad(A, C[a, a], A) - 2.0 * _quad(A, C[a, b], T) + _quad(T, C[b, b], T))


def expected_loss(method: Method, mats: dict, C: jax.Array, hp: Hyper) -> jax.Array:
    """The method's loss `sum_k weight_k * term_k`; exact expectation for expected moments, batch loss for
    batch moments."""
    weight = lambda t: 1.0 if t.weight is None else getattr(hp, t.weight)
    return sum(weight(t) * term_loss(t, mats, C) for t in method.terms)


def predictor_input_correlation(W: jax.Array, C: jax.Array) -> jax.Array:
    """`F = E[f f^T] = W E[x1 x1^T] W^T`, f = W x1 the predictor input; shape (n2, n2)."""
    return W @ C[1, 1] @ W.T


def check_setter_form(form: str) -> None:
    """A clear error unless `form` is one of `SETTER_FORMS`."""
    if form not in SETTER_FORMS:
        raise ValueError(f"unknown setter form {form!r}; allowed: {', '.join(SETTER_FORMS)}")


def directpred_predictor(F: jax.Array, eps: float, form: str = "equivariant") -> jax.Array:
    """DirectPred, `F = U diag(f) U^T` (n, n): `Wp = U diag(p) U^T` with `p_j = sqrt(f_j^+) + eps sqrt(f_max)`
    ("equivariant") or `p_j = sqrt(f_j^+ / f_max) + eps` ("normalised"), `f^+ = max(f, 0)`."""
    check_setter_form(form)
    f, U = jnp.linalg.eigh(F)
    fmax = jnp.maximum(jnp.max(f), 0.0)
    if form == "equivariant":
        p = jnp.sqrt(jnp.maximum(f, 0.0)) + eps * jnp.sqrt(fmax)
    else:
        ratio = jnp.where(fmax > 0, jnp.maximum(f, 0.0) / jnp.where(fmax > 0, fmax, 1.0), 0.0)
        p = jnp.sqrt(ratio) + eps
    return (U * p) @ U.T


def directcopy_predictor(F: jax.Array, eps: float, form: str = "equivariant") -> jax.Array:
    """DirectCopy: `Wp = F + eps f_max I` ("equivariant") or `Wp = F / f_max + eps I` ("normalised"),
    `f_max = lambda_max(F)`."""
    check_setter_form(form)
    lmax = jnp.linalg.eigvalsh(F)[-1]
    eye = jnp.eye(F.shape[0], dtype=F.dtype)
    if form == "equivariant":
        return F + eps * jnp.maximum(lmax, 0.0) * eye
    return F / jnp.where(lmax > 0, lmax, 1.0) + eps * eye


_SETTERS = {"directpred": directpred_predictor, "directcopy": directcopy_predictor}


def set_predictor(method: Method, F: jax.Array, hp: Hyper) -> jax.Array:
    """The predictor a setter method uses for correlation F, in form `hp.setter_form` (no gradient flows
    through the setter)."""
    return jax.lax.stop_gradient(_SETTERS[method.setter](F, hp.eps, hp.setter_form))
