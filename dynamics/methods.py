"""Methods as data: an expected loss (a sum of terms) plus flags (THEORY.md section 2).

A term `weight * 1/2 E|| (M_k ... M_1) x_a - sg(T x_b) ||^2` is a `Term(online=(M_k, ..., M_1), target=T,
views=(a, b))`; with the view moments `C[a, b] = E[x_a x_b^T]` (dynamics.moments) its expectation is
`1/2 [tr(A C_aa A^T) - 2 tr(A C_ab T^T) + tr(T C_bb T^T)]`, `A = M_k ... M_1`. A `Method` lists its terms,
which matrices follow gradient flow (`W` at rate 1, `Wp` at `alpha_p`, `Wg` at `alpha_g`), which are EMA
targets (`dWa/dt = beta (W - Wa)`) and whether the predictor `Wp` is set from the predictor-input
correlation instead of trained. The matrix ODE, SGD and the sympy-reduced per-mode systems are all built from
these terms, so adding a method means adding an entry to `METHODS`.

Public API
- `Term`, `Method`, `Hyper` (hyper-parameters), `METHODS` (registry), `DEFAULT_METHODS` (the six methods)
- `get_method(name)`, `expected_loss(method, mats, C, hp)`, `predictor_input_correlation(W, C)`
- setters: `directpred_predictor(F, eps)`, `directcopy_predictor(F, eps)`, `set_predictor(method, F, hp)`
"""
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

RATES = {"W": None, "Wp": "alpha_p", "Wg": "alpha_g"}  # learning-rate ratio of each trainable matrix


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
    time), DirectPred `rho`, `eps`, `freq` (SGD only), and `symmetric_wp` (symmetrised predictor field,
    the setting of Tian21 Thm 3)."""

    eta: float = 0.0
    alpha_p: float = 1.0
    alpha_g: float = 1.0
    lam: float = 1.0
    beta: float = 0.4
    rho: float = 0.3
    eps: float = 0.01
    freq: int = 1
    symmetric_wp: bool = False


_SIMSIAM = (Term(("Wp", "W"), "W", (1, 2)),)
_CLEAN = Term(("Wg", "Wp", "W"), "W", (1, 0), weight="lam")
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
               summary="Wp = U diag(sqrt(s_j / s_max) + eps) U^T from F = E[f f^T]"),
        Method("directcopy", _SIMSIAM, ("W",), setter="directcopy",
               summary="Wp = F / lambda_max(F) + eps I"),
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


def directpred_predictor(F: jax.Array, eps: float) -> jax.Array:
    """DirectPred: `Wp = U diag(sqrt(max(s_j, 0) / max_k s_k) + eps) U^T`, `F = U diag(s) U^T`."""
    s, U = jnp.linalg.eigh(F)
    smax = jnp.max(s)
    ratio = jnp.where(smax > 0, jnp.maximum(s, 0.0) / jnp.where(smax > 0, smax, 1.0), 0.0)
    return (U * (jnp.sqrt(ratio) + eps)) @ U.T


def directcopy_predictor(F: jax.Array, eps: float) -> jax.Array:
    """DirectCopy: `Wp = F / lambda_max(F) + eps I`."""
    lmax = jnp.linalg.eigvalsh(F)[-1]
    return F / jnp.where(lmax > 0, lmax, 1.0) + eps * jnp.eye(F.shape[0], dtype=F.dtype)


_SETTERS = {"directpred": directpred_predictor, "directcopy": directcopy_predictor}


def set_predictor(method: Method, F: jax.Array, hp: Hyper) -> jax.Array:
    """The predictor a setter method uses for correlation F (no gradient flows through the setter)."""
    return jax.lax.stop_gradient(_SETTERS[method.setter](F, hp.eps))
