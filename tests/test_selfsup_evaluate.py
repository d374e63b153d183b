"""kNN monitor against scikit-learn, collapse metrics against closed forms, linear probe on separable data."""
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from selfsup import evaluate as ev


def test_knn_matches_sklearn_weighted_cosine_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    ytr, yte = rng.integers(0, 4, 300), rng.integers(0, 4, 120)
    xtr = centres[ytr] + 1.5 * rng.normal(size=(300, 16))
    xte = centres[yte] + 1.5 * rng.normal(size=(120, 16))
    t = 0.1
    ref = KNeighborsClassifier(n_neighbors=50, metric="cosine", weights=lambda d: np.exp((1 - d) / t))
    want = ref.fit(xtr, ytr).score(xte, yte)
    got = ev.knn_accuracy(xtr, ytr, xte, yte, k=50, t=t, num_classes=4, chunk=64)
    assert got == pytest.approx(want, abs=1 / 120)  # at most one float32 near-tie may flip
    assert 0.4 < got < 1.0


def test_effective_rank_closed_forms():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    lam = np.array([4.0, 2, 1, 1, 0.5, 0, 0, 0])
    z = rng.normal(size=(20000, 8)) * np.sqrt(lam) @ basis.T
    q = lam[lam > 0] / lam.sum()
    assert ev.effective_rank(z) == pytest.approx(np.exp(-(q * np.log(q)).sum()), rel=0.03)  # sampling error
    line = np.outer(rng.normal(size=500), rng.normal(size=8))
    assert ev.effective_rank(line) == pytest.approx(1.0, abs=1e-6)


def test_output_std_is_one_over_sqrt_d_when_spread_and_zero_when_collapsed():
    rng = np.random.default_rng(2)
    d = 256
    assert ev.output_std(rng.normal(size=(4000, d))) == pytest.approx(1 / np.sqrt(d), rel=0.02)
    collapsed = np.tile(rng.normal(size=(1, d)), (100, 1)) * rng.uniform(1, 2, size=(100, 1))
    assert ev.output_std(collapsed) == pytest.approx(0.0, abs=1e-6)


def test_linear_probe_separates_linearly_separable_classes():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + 2 * (x[:, 2] > 0)
    x[:, :3] += 0.3 * np.sign(x[:, :3])  # margin
    assert ev.linear_probe(x[:300], y[:300], x[300:], y[300:]) == 1.0


@pytest.mark.parametrize("n_train,dim", [(300, 20), (100, 400)])  # many samples / few labels, wide features
def test_the_packages_one_linear_probe_solves_sklearns_logistic_objective(n_train, dim):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from selfsup import probe
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, dim)) * (0.3 if dim > 100 else 1.0)
    y = rng.integers(0, 4, n_train + 400)
    x = (centers[y] + 1.5 * rng.normal(size=(len(y), dim))).astype(np.float32)
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, tol=1e-8))
    want = ref.fit(x[:n_train], y[:n_train]).predict(x[n_train:])
    got = probe.predict(x[:n_train], y[:n_train], x[n_train:], num_classes=4)
    assert 0.4 < (want == y[n_train:]).mean() < 1.0
    assert (got == want).mean() >= 0.98  # same objective; solver tolerance may flip a few near-ties
    assert ev.linear_probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:]) == pytest.approx(
        (got == y[n_train:]).mean())


def test_few_label_indices_are_balanced_fixed_and_seeded():
    y = np.repeat(np.arange(10), 40)[np.random.default_rng(0).permutation(400)]
    idx = ev.few_label_indices(y, 10)
    assert len(idx) == 100 and np.all(np.bincount(y[idx]) == 10) and len(set(idx)) == 100
    np.testing.assert_array_equal(idx, ev.few_label_indices(y, 10))
    assert not np.array_equal(idx, ev.few_label_indices(y, 10, seed=1))
