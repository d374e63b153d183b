"""Theory-check measurements on synthetic cases with known answers: alignment, asymmetry, effective rank,
the p-s exponent fit. Pure numpy in float64; tolerances are float64 round-off (1e-12) unless stated."""
import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

from selfsup import evaluate as ev
from selfsup.theory import measure as tm


def _orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _spectrum(d, seed=0):
    """F = U diag(s) U^T with distinct eigenvalues s spread over four decades (descending)."""
    s = np.logspace(0, -4, d)
    U = _orthogonal(d, seed)
    return (U * s) @ U.T, s, U


def test_predictor_commuting_with_F_has_alignment_one_and_its_own_eigenvalues_as_p():
    F, s, U = _spectrum(16)
    p = np.linspace(2.0, 0.1, 16)
    Wp = (U * p) @ U.T
    assert np.allclose(Wp @ F, F @ Wp, atol=1e-12)
    np.testing.assert_allclose(tm.alignment(Wp, F), 1.0, atol=1e-12)
    np.testing.assert_allclose(tm.rayleigh(Wp, tm.eig_desc(F)[1]), p, atol=1e-12)
    np.testing.assert_allclose(tm.eig_desc(F)[0], s, rtol=1e-10)
    assert tm.asymmetry(Wp) == pytest.approx(0.0, abs=1e-12)


def test_negative_mode_of_a_commuting_predictor_reports_cosine_minus_one():
    F, _, U = _spectrum(6)
    p = np.array([1.0, 0.5, -0.3, 0.2, 0.1, 0.05])
    np.testing.assert_allclose(tm.alignment((U * p) @ U.T, F), np.sign(p), atol=1e-12)


@pytest.mark.parametrize("theta", [0.0, 0.3, 1.0, np.pi / 2, 2.5])
def test_predictor_rotated_in_the_top_mode_plane_reports_cos_theta_there_and_one_elsewhere(theta):
    d = 8
    F, _, U = _spectrum(d, seed=1)
    p = np.linspace(1.0, 0.2, d)
    # Q rotates by theta in the plane (u_1, u_2): Q u_1 = cos u_1 + sin u_2, Q u_2 = -sin u_1 + cos u_2.
    A = np.outer(U[:, 1], U[:, 0]) - np.outer(U[:, 0], U[:, 1])
    Wp = expm(theta * A) @ ((U * p) @ U.T)
    want = np.ones(d)
    want[:2] = np.cos(theta)
    np.testing.assert_allclose(tm.alignment(Wp, F), want, atol=1e-12)


@pytest.mark.parametrize("theta", [0.2, 1.0, np.pi / 2])
def test_asymmetry_of_a_plane_rotation_is_2_sin_theta(theta):
    # R = [[c, -s], [s, c]]: ||R - R^T||_F = 2 sqrt(2) |sin|, ||R||_F = sqrt(2).
    c, s = np.cos(theta), np.sin(theta)
    assert tm.asymmetry(np.array([[c, -s], [s, c]])) == pytest.approx(2 * abs(s), abs=1e-12)


def test_asymmetry_of_a_large_gaussian_matrix_is_near_sqrt2():
    # E||W - W^T||^2 / E||W||^2 = 2 (d - 1) / d; at d = 400 the ratio of norms concentrates within ~1%.
    W = np.random.default_rng(0).normal(size=(400, 400))
    assert tm.asymmetry(W) == pytest.approx(np.sqrt(2 * 399 / 400), rel=0.01)


def test_symmetric_part_eigenvalues_ignore_the_antisymmetric_part():
    F, _, U = _spectrum(5)
    p = np.array([3.0, 2.0, 1.0, 0.5, 0.1])
    antisym = np.triu(np.random.default_rng(2).normal(size=(5, 5)), 1)
    np.testing.assert_allclose(tm.sym_eigs((U * p) @ U.T + antisym - antisym.T), p, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_rank_k_correlation_has_effective_rank_k_and_k_survivors(k):
    d = 20
    U = _orthogonal(d, k)
    s = np.r_[np.ones(k), np.zeros(d - k)] * 2.5
    F = (U * s) @ U.T
    s_hat, _ = tm.eig_desc(F)
    assert tm.spectral_erank(s_hat) == pytest.approx(k, rel=1e-10)
    assert tm.surviving(s_hat, 1e-6) == k


def test_effective_rank_of_eigenvalues_matches_evaluate_effective_rank_on_samples():
    # Independent implementation: evaluate.effective_rank computes the covariance of samples itself.
    z = np.random.default_rng(3).normal(size=(500, 12)) * np.linspace(2, 0.1, 12)
    s = np.linalg.eigvalsh(np.cov(z, rowvar=False))
    assert tm.spectral_erank(s) == pytest.approx(ev.effective_rank(z), rel=1e-10)


def test_a_zero_spectrum_has_effective_rank_zero_and_counts_as_collapsed():
    # F = 0 (features collapsed to zero): 0.0, so erank_F < collapse_erank flags it, where NaN compared False.
    assert tm.spectral_erank(np.zeros(8)) == 0.0 == ev.effective_rank(np.zeros((10, 8)))
    assert tm.spectral_erank(np.zeros(8)) < 1.5


@pytest.mark.parametrize("k", [0.5, 1.0, 0.25])
def test_exponent_fit_recovers_a_known_power_law_exactly(k):
    s = np.logspace(0, -3, 30)
    fit = tm.fit_exponent(0.7 * s**k, s)
    assert fit.exponent == pytest.approx(k, abs=1e-12)
    assert fit.log_coef == pytest.approx(np.log(0.7), abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.n == 30


def test_exponent_fit_with_noise_matches_scipy_linregress_and_drops_small_or_negative_modes():
    rng = np.random.default_rng(4)
    s = np.logspace(0, -5, 40)
    p = s**0.5 * np.exp(0.1 * rng.normal(size=40))
    p[3] = -0.2  # a negative mode cannot be on a log-log plot
    fit = tm.fit_exponent(p, s, rel_tol=1e-4)
    keep = (p > 0) & (s >= 1e-4)
    ref = stats.linregress(np.log(s[keep]), np.log(p[keep]))
    assert fit.n == keep.sum() == 31
    assert fit.exponent == pytest.approx(ref.slope, abs=1e-10)
    assert fit.r2 == pytest.approx(ref.rvalue**2, abs=1e-10)
    assert abs(fit.exponent - 0.5) < 0.05  # noise sd 0.1 over 4 decades: slope error sd ~ 0.004


def test_directpred_rule_without_eps_has_exponent_one_half_and_alignment_one():
    F, s, U = _spectrum(12, seed=5)
    Wp = (U * np.sqrt(s / s.max())) @ U.T
    snap = tm.snapshot(F, Wp)
    assert snap["exponent"] == pytest.approx(0.5, abs=1e-10)
    assert snap["align_mean"] == pytest.approx(1.0, abs=1e-12)


def test_bad_shapes_are_rejected_with_the_shape_in_the_message():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        tm.alignment(np.ones((3, 4)), np.eye(3))
    with pytest.raises(ValueError, match="same length"):
        tm.fit_exponent(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="rel_tol"):
        tm.fit_exponent(np.ones(3), np.ones(3), rel_tol=0)


def test_weighted_alignment_weights_each_mode_by_its_eigenvalue_and_ignores_negative_ones():
    cos = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    s = np.array([[3.0, 1.0, -2.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(tm.weighted_alignment(cos, s), [0.75, 0.5], atol=1e-15)
