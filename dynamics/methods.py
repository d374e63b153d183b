"""Methods as data: an expected loss (a sum of terms) plus flags (docs/theory.md section 2).

A term `weight * 1/2 E|| (M_k ... M_1) x_a - sg(T x_b) ||^2` is a `Term(online=(M_k, ..., M_1), target=T,
views=(a, b))`; with the view moments `C[a, b] = E[x_a x_b^T]` (dynamics.moments) its expectation is
`1/2 [tr(A C_aa A^T) - 2 tr(A C_ab T^T) + tr(T C_bb T^T)]`, `A = M_k ... M_1`. A `Method` lists its terms,
which matrices follow gradient flow (`W` at rate 1, `Wp` at `alpha_p`, `Wg` at `alpha_g`), which are EMA
targets (`dWa/dt = beta (W - Wa)`) and whether the predictor `Wp` is set from the predictor-input
correlation instead of trained. The matrix ODE, SGD and the sympy-reduced per-mode systems are all built from
these terms, so adding a method means registering it: `register(Method(...))` (checked at registration: every
term refers to a matrix of the method, every trained matrix is used, every EMA target has a source), after
which every function and CLI takes it by name (the CLIs also take `--method module:attribute`).

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
- `get_method(name)`, `register(method)`, `check_method(method)`, `load_method("name" or "module:attr")`,
  `BUILTIN_METHODS`; `expected_loss(method, mats, C, hp)`, `predictor_input_correlation(W, C)`
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
BUILTIN_METHODS = tuple(METHODS)
_ENCODERS = ("W", "Wa", "Wm")  # n2 x n1: the encoder and its EMA copies, the only possible targets
_PREDICTORS = ("Wp", "Wg")  # n2 x n2: applied after the encoder


def get_method(name: str) -> Method:
    """The registered method `name`; a clear error listing the allowed names otherwise."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHODS)}")
    return METHODS[name]


def _term_problems(k: int, term: Term, state: set) -> list:
    """What is wrong with term k of a method whose matrices are `state`."""
    where, problems = f"term {k} ({' '.join(term.online)} -> {term.target})", []
    for m in (*term.online, term.target):
        if m not in state:
            problems.append(f"{where} refers to unknown matrix {m!r}; allowed: the method's matrices "
                            f"{', '.join(sorted(state))}")
    if not term.online or term.online[-1] != "W" or any(m not in _PREDICTORS for m in term.online[:-1]):
        problems.append(f"{where}: its online chain must be predictors ({', '.join(_PREDICTORS)}) applied to "
                        f"the encoder, ending in 'W'; got {term.online!r}")
    if term.target not in _ENCODERS:
        problems.append(f"{where}: its target must be an encoder ({', '.join(_ENCODERS)}); "
                        f"got {term.target!r}")
    if len(term.views) != 2 or any(v not in (0, 1, 2) for v in term.views):
        problems.append(f"{where}: views must be two of 0 (clean), 1, 2 (augmented); got {term.views!r}")
    if term.weight is not None and term.weight not in Hyper.__dataclass_fields__:
        problems.append(f"{where}: weight {term.weight!r} is not a hyper-parameter; allowed: None or one of "
                        f"{', '.join(Hyper.__dataclass_fields__)}")
    return problems


def check_method(method: Method) -> None:
    """Raise ValueError naming every term (or matrix) of `method` that is wrong: a term referring to an
    unknown matrix, a trained matrix no term uses, an EMA target without a source (or with an untrained
    one), a chain that is not predictors on the encoder, a target that is not an encoder."""
    if not isinstance(method, Method):
        raise ValueError(f"expected a dynamics.methods.Method, got {type(method).__name__}")
    problems = []
    for m in method.trained:
        if m not in RATES:
            problems.append(f"trained matrix {m!r} is unknown; allowed: {', '.join(RATES)}")
    if "W" not in method.trained:
        problems.append("the encoder 'W' must be trained")
    sources = {}
    for entry in method.ema:
        target, source = (tuple(entry) + (None, None))[:2]
        if target not in ("Wa", "Wm"):
            problems.append(f"EMA target {target!r} is unknown; allowed: Wa, Wm")
        if source is None or source not in method.trained:
            problems.append(f"EMA target {target!r} has no source (got {source!r}); allowed: a trained "
                            "matrix, ('Wa', 'W')")
        sources[target] = source
    if method.setter is not None and method.setter not in _SETTERS:
        problems.append(f"setter {method.setter!r} is unknown; allowed: {', '.join(_SETTERS)}")
    state = set(method.trained) | set(sources) | ({"Wp"} if method.setter else set())
    if not method.terms:
        problems.append("no loss terms")
    for k, term in enumerate(method.terms):
        if not isinstance(term, Term):
            problems.append(f"term {k} is a {type(term).__name__}, not a dynamics.methods.Term")
            continue
        problems += _term_problems(k, term, state)
    used = {m for t in method.terms if isinstance(t, Term) for m in (*t.online, t.target)}
    for m in method.trained:
        if m not in used:
            problems.append(f"trained matrix {m!r} is used by no term; allowed: drop it from trained, or use "
                            "it in a term")
    for t in sources:
        if t not in used:
            problems.append(f"EMA target {t!r} is used by no term")
    if problems:
        raise ValueError(f"method {method.name!r}: " + "; ".join(problems))


def register(method: Method) -> Method:
    """Make `method` usable by name everywhere (matrix ODE, SGD, per-mode system, fixed points and
    thresholds, the CLIs). Its definition is checked first (`check_method`); a built-in name is refused;
    registering a user method again with the same definition is a no-op, with another definition replaces
    it (and drops what was compiled for the old one)."""
    check_method(method)
    if method.name in BUILTIN_METHODS:
        raise ValueError(f"method {method.name!r}: the name clashes with a built-in method; allowed: any "
                         f"name but {', '.join(BUILTIN_METHODS)}")
    if not method.name or ":" in method.name or "," in method.name:
        raise ValueError(f"method name {method.name!r} is empty or holds ':' or ','; allowed: a plain name")
    old = METHODS.get(method.name)
    METHODS[method.name] = method
    if old is not None and old != method:
        jax.clear_caches()  # jitted functions keyed on the name alone would reuse the old definition
    return method


def load_method(spec: str) -> str:
    """The name of a method given as a registered name or as `module:attribute` (the module is imported
    and the attribute, a `Method`, registered); ValueError with a one-line reason otherwise."""
    if ":" not in spec:
        get_method(spec)
        return spec
    import importlib

    module, _, attribute = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load method {spec!r}: {err}; allowed: module:attribute naming a "
                         "dynamics.methods.Method") from None
    return register(obj).name


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
