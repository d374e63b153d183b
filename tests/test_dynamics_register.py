"""A method defined at run time (issue 26 §1-2): `methods.register` checks it, every function and CLI then
takes it by name, and the general fixed-point solver (`dynamics.fixed_points`, from the method's own sympy
field) reproduces every closed form and a hand-derived threshold of a method not in the package."""
import json
import textwrap

import numpy as np
import pytest

from dynamics import analysis, simulate
from dynamics import fixed_points as general
from dynamics.methods import METHODS, Method, Term, get_method, register
from dynamics.reduced import Params, derive, state_names

ISO = Params(eta=0.05, sigma2=0.5, tau=1.0, alpha_p=1.0)
SIMSIAM = Term(("Wp", "W"), "W", (1, 2))
# SimSiam plus lam x a clean-view self-prediction term 1/2 E||Wp W x0 - sg(W x0)||^2: per mode it is SimSiam
# with tau l -> (1 + lam) tau l and c -> c + lam l, so (by hand) p_pm = (T +- sqrt(T^2 - 4 eta C)) / (2C),
# s = p^2 / alpha_p and the threshold is T^2 / (4C), T = (1 + lam) tau l, C = l + sigma2 + lam l:
# 4 / 10 = 0.4 at lam = 1, sigma2 = 0.5 (SimSiam: 1/6, PhiNet 0.25585, Wg = I: 1/3).
CLEAN = Method("simsiam-clean", (SIMSIAM, Term(("Wp", "W"), "W", (0, 0), weight="lam")), ("W", "Wp"),
               summary="SimSiam + lam x clean-view self-prediction")


@pytest.fixture
def registry():
    """Registered methods are removed again after the test (the registry is module state)."""
    saved = dict(METHODS)
    yield
    METHODS.clear()
    METHODS.update(saved)


def _by_hand(lam, eta, sigma2=0.5, l=1.0, tau=1.0):
    T, C = (1 + lam) * tau * l, l + sigma2 + lam * l
    disc = T**2 - 4 * eta * C
    return T**2 / (4 * C), ((T - np.sqrt(disc)) / (2 * C), (T + np.sqrt(disc)) / (2 * C))


@pytest.mark.parametrize("method, needle", [
    (Method("m1", (Term(("Wq", "W"), "W", (1, 2)),), ("W",)),
     "term 0 (Wq W -> W) refers to unknown matrix 'Wq'"),
    (Method("m2", (SIMSIAM,), ("W", "Wp", "Wg")), "trained matrix 'Wg' is used by no term"),
    (Method("m3", (Term(("Wp", "W"), "Wa", (1, 2)),), ("W", "Wp")), "term 0 (Wp W -> Wa) refers to unknown "
                                                                    "matrix 'Wa'"),
    (Method("m4", (Term(("Wp", "W"), "Wa", (1, 2)),), ("W", "Wp"), (("Wa", None),)),
     "EMA target 'Wa' has no source"),
    (Method("simsiam", (SIMSIAM,), ("W", "Wp")), "clashes with a built-in method"),
    (Method("m5", (Term(("W", "Wp"), "W", (1, 2)),), ("W", "Wp")), "term 0 (W Wp -> W): its online chain"),
    (Method("m6", (Term(("Wp", "W"), "W", (1, 2), weight="gamma"),), ("W", "Wp")), "weight 'gamma'"),
])
def test_bad_definitions_fail_at_registration_naming_the_term_and_the_fault(registry, method, needle):
    with pytest.raises(ValueError) as err:
        register(method)
    assert needle in str(err.value) and f"method {method.name!r}" in str(err.value)
    assert method.name not in METHODS or method.name == "simsiam"


def test_a_registered_method_is_usable_by_name_and_reregistering_is_safe(registry):
    register(CLEAN)
    assert get_method("simsiam-clean") is CLEAN and state_names("simsiam-clean") == ("p", "s")
    assert register(CLEAN) is CLEAN  # the same definition again (a notebook cell run twice): a no-op
    rhs, simsiam = derive("simsiam-clean"), derive("simsiam")
    sym = {x.name: x for e in rhs.values() for x in e.free_symbols}
    lam, lj, tau = sym["lam"], sym["lambda_j"], sym["tau_fixed"]
    # the derivation by hand (module comment): SimSiam's field with tau l -> (1 + lam) tau l, c -> c + lam l
    hand = {k: v.subs(sym["sigma2"], sym["sigma2"] + lam * lj).subs(tau, tau * (1 + lam)) for k, v in
            simsiam.items()}
    assert all((rhs[k] - hand[k]).expand() == 0 for k in rhs)
    other = Method("simsiam-clean", (SIMSIAM,), ("W", "Wp"))
    register(other)  # another definition under the same user name replaces it, derived anew
    assert (derive("simsiam-clean")["p"] - simsiam["p"]).expand() == 0


def test_general_solver_reproduces_simsiams_p_pm_and_one_sixth(x64):
    fps = analysis.fixed_points("simsiam", ISO, general=True)
    closed = analysis.fixed_points("simsiam", ISO)
    assert [fp.state["p"] for fp in fps] == pytest.approx([0.0, 0.054447, 0.612220], abs=5e-7)  # Tian21
    for a, b in zip(fps, closed):
        assert a.state == pytest.approx(b.state, rel=1e-12, abs=1e-15) and a.stable == b.stable
        assert np.sort(a.eigenvalues.real) == pytest.approx(np.sort(b.eigenvalues.real), abs=1e-12)
    assert analysis.collapse_wd("simsiam", ISO, general=True) == pytest.approx(1 / 6, rel=1e-8)
    assert analysis.saddle("simsiam", ISO, general=True) == pytest.approx(0.054446657821974, rel=1e-12)


@pytest.mark.parametrize("lam, quoted", [(0.5, 0.18818), (1.0, 0.25585), (2.0, 0.41679)])
def test_general_solver_reproduces_phinets_thresholds(lam, quoted):
    params = ISO._replace(lam=lam)
    found = analysis.collapse_wd("phinet", params, general=True)
    assert found == pytest.approx(analysis.collapse_wd("phinet", params), rel=1e-8)  # closed-form path
    assert found == pytest.approx(quoted, abs=5e-6)  # the values quoted in issue 26 (5 digits)


def test_general_solver_reproduces_phinet_eyeg_one_third_and_byol():
    assert analysis.collapse_wd("phinet-eyeg", ISO, general=True) == pytest.approx(1 / 3, rel=1e-8)
    byol = analysis.fixed_points("byol", ISO, general=True)
    assert [fp.state.get("tau") for fp in byol] == pytest.approx([0.4 / 0.35, 1.0, 1.0], rel=1e-12)
    assert [fp.stable for fp in byol] == [True, False, True]


def test_a_method_defined_only_through_the_public_api_matches_its_hand_derivation(registry):
    register(CLEAN)
    for lam in (0.5, 1.0, 2.0):
        params = ISO._replace(lam=lam)
        threshold, (p_minus, p_plus) = _by_hand(lam, ISO.eta)
        assert analysis.collapse_wd("simsiam-clean", params) == pytest.approx(threshold, rel=1e-8)
        origin, minus, plus = analysis.fixed_points("simsiam-clean", params)
        assert (minus.state["p"], plus.state["p"]) == pytest.approx((p_minus, p_plus), rel=1e-12)
        assert plus.state["s"] == pytest.approx(p_plus**2, rel=1e-12)
        assert [origin.stable, minus.stable, plus.stable] == [True, False, True]
    assert analysis.collapse_wd("simsiam-clean", ISO) == pytest.approx(0.4, rel=1e-8)


def test_where_it_cannot_certify_it_says_so_and_returns_no_guess():
    with pytest.raises(general.Uncertified, match="eta <= 0"):
        general.fixed_points("simsiam", ISO._replace(eta=0.0))
    with pytest.raises(general.Uncertified, match="beta <= 0"):
        general.fixed_points("byol", ISO._replace(beta=0.0))
    with pytest.raises(general.Uncertified, match="double root near p = 0.3333"):
        general.fixed_points("simsiam", ISO._replace(eta=1 / 6))  # p_- = p_+: a saddle-node, degenerate
    # no predictor: ds/dt = -2 (sigma2 + eta) s, only the origin (Tian21: collapse)
    assert [fp.state for fp in general.fixed_points("simsiam-nopred", ISO)] == [{"s": 0.0}]


def test_the_clis_take_module_attribute_and_registered_names(registry, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_methods.py").write_text(textwrap.dedent("""
        from dynamics.methods import Method, Term
        CLEAN = Method("simsiam-clean", (Term(("Wp", "W"), "W", (1, 2)),
                                         Term(("Wp", "W"), "W", (0, 0), weight="lam")), ("W", "Wp"))
        NOT_A_METHOD = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    analysis.main(["--method", "my_methods:CLEAN", "--sigma2", "0.5", "--wd", "0.05", "--lam", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "simsiam-clean" and out["collapse_wd"] == pytest.approx(0.4, rel=1e-8)
    assert [fp["stable"] for fp in out["fixed_points"]] == [True, False, True]
    ap = simulate.build_parser()
    args = ap.parse_args(["--method", "simsiam,simsiam-clean", "--level", "reduced"])
    names, _ = simulate.resolve(ap, args)
    assert names == ("simsiam", "simsiam-clean")
    for spec, needle in (("my_methods:NOT_A_METHOD", "expected a dynamics.methods.Method"),
                         ("no_such_module:X", "cannot load method 'no_such_module:X'")):
        with pytest.raises(SystemExit):
            analysis.main(["--method", spec])
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_xphinet_with_a_fixed_target_scale_off_one_gets_true_fixed_points(x64):
    # The one-equation reduction used one tau for both terms; X-PhiNet's clean target is its EMA encoder
    # (ratio 1), so at tau = 0.7 its "fixed points" left the field at 2e-4 and 9e-2. They are now zeros of the
    # sympy field, and the threshold comes from the general solver.
    import jax.numpy as jnp

    from dynamics.reduced import reduced_field

    params = ISO._replace(tau=0.7)
    fps = analysis.fixed_points("xphinet", params)
    for fp in fps:
        y = jnp.array([fp.state[n] for n in state_names("xphinet")])
        assert np.abs(reduced_field("xphinet")(y, params)).max() < 1e-13
    assert [fp.stable for fp in fps] == [True, False, True]
    assert analysis.collapse_wd("xphinet", params) == pytest.approx(_xphinet_threshold_by_hand(0.7), rel=1e-8)


def _xphinet_threshold_by_hand(tau, lam=1.0, sigma2=0.5, l=1.0):
    """By hand, as PhiNet's (test_dynamics_cli.phinet_threshold_by_hand) but with the clean term's target
    ratio 1: `H(p) = p (tau l - c p) + lam q (l - c q)`, `q = g p`, `g = lam l p s / (eta + lam c p^2 s)`,
    `s = p^2` (alpha_p = alpha_g = 1); the threshold is where `max_p H(p; eta)` touches eta."""
    from scipy.optimize import brentq, minimize_scalar

    c = l + sigma2

    def H(p, eta):
        s = p * p
        q = p * lam * l * p * s / (eta + lam * c * p * p * s)
        return p * (tau * l - c * p) + lam * q * (l - c * q)

    def margin(eta):
        grid = np.linspace(1e-6, 2 * max(tau, 1.0) * l / c, 8001)
        k = int(np.argmax(H(grid, eta)))
        best = minimize_scalar(lambda p: -H(p, eta), bounds=(grid[max(k - 1, 0)], grid[min(k + 1, 8000)]),
                               method="bounded", options={"xatol": 1e-13})
        return -best.fun - eta

    return brentq(margin, 1e-4, 2.0, xtol=1e-14)


def test_scipy_trajectory_of_the_sympy_field_keeps_tian21s_exact_integral():
    # s(t) = p(t)^2 / alpha_p + e^{-2 eta t} (s(0) - p(0)^2 / alpha_p) (docs/theory.md section 3); no JAX
    from dynamics.reduced import trajectory

    params, ts = ISO._replace(alpha_p=2.0), np.linspace(0.0, 300.0, 101)
    y = trajectory("simsiam", [0.3, 0.2], params, ts)
    exact = y[:, 0] ** 2 / 2.0 + np.exp(-2 * params.eta * ts) * (0.2 - 0.3**2 / 2.0)
    assert np.abs(y[:, 1] - exact).max() < 1e-9 and y[-1, 0] == pytest.approx(0.612220, abs=1e-5)


def test_analysis_cli_says_when_it_cannot_certify(registry, capsys):
    register(CLEAN)
    with pytest.raises(SystemExit) as exc:
        analysis.main(["--method", "simsiam-clean", "--wd", "0", "--json"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and len(err.strip().splitlines()) == 1 and "cannot certify" in err
    assert "eta <= 0" in err


def test_registered_variants_with_an_ema_target_or_a_deep_predictor_match_their_hand_derivations(registry):
    # PhiNet with both targets from an EMA encoder: the ratio is 1 at every non-collapsed fixed point, so its
    # fixed points and threshold are PhiNet's (0.25585 at lam = 1, issue 26).
    register(Method("byol-phinet", (Term(("Wp", "W"), "Wa", (1, 2)),
                                    Term(("Wg", "Wp", "W"), "Wa", (1, 0), weight="lam")),
                    ("W", "Wp", "Wg"), (("Wa", "W"),)))
    assert state_names("byol-phinet") == ("p", "g", "s", "tau")
    assert analysis.collapse_wd("byol-phinet", ISO) == pytest.approx(0.25585, abs=5e-6)
    ema, phinet = analysis.fixed_points("byol-phinet", ISO), analysis.fixed_points("phinet", ISO)
    for a, b in zip(ema[1:], phinet[1:]):
        expected = (b.state["p"], b.state["g"], 1.0)
        assert (a.state["p"], a.state["g"], a.state["tau"]) == pytest.approx(expected, rel=1e-10)
    # Two predictors in one chain, 1/2 E||Wg Wp W x1 - sg(W x2)||^2: by hand q = g p obeys SimSiam's
    # equation q (l - c q) = eta and the balance law gives g^2 / alpha_g = p^2 / alpha_p, so the fixed
    # points are p = g = +-sqrt(q_pm) (alpha_p = alpha_g = 1), s = q_pm, and the threshold is SimSiam's 1/6.
    register(Method("deep-pred", (Term(("Wg", "Wp", "W"), "W", (1, 2)),), ("W", "Wp", "Wg")))
    _, (q_minus, q_plus) = _by_hand(0.0, ISO.eta)
    fps = analysis.fixed_points("deep-pred", ISO)[1:]
    root = np.sqrt([q_plus, q_minus, q_minus, q_plus])
    assert [fp.state["p"] for fp in fps] == pytest.approx(root * [-1, -1, 1, 1], rel=1e-10)
    assert [fp.state["g"] for fp in fps] == pytest.approx([fp.state["p"] for fp in fps], rel=1e-10)
    assert [fp.stable for fp in fps] == [True, False, False, True]
    assert analysis.collapse_wd("deep-pred", ISO) == pytest.approx(1 / 6, rel=1e-8)
