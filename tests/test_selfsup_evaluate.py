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


def test_effective_rank_of_outputs_that_do_not_vary_is_zero_without_a_warning():
    # A point has no direction: 0.0, below the 1.0 of a line, where 0/0 used to give 1.0 and a RuntimeWarning.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ev.effective_rank(np.ones((64, 8))) == 0.0
        assert ev.effective_rank(np.zeros((64, 8))) == 0.0


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


def _untrained(arch="small", width=4):
    import jax

    from selfsup import data
    from selfsup.config import Config
    from selfsup.step import init_state
    d = data.load("digits")
    cfg = Config.smoke(dataset="digits", arch=arch, width=width)
    st = init_state(cfg, jax.random.key(0), d.info)
    return cfg, d, st.params["encoder"], st.batch_stats["encoder"]


def test_reestimated_bn_mean_and_var_of_the_first_layer_equal_its_conv_output_moments():
    """One chunk: BN_0's running mean / variance are the mean / (biased) variance over images and positions
    of the first convolution's output, computed here by an explicit 3x3 'SAME' correlation in numpy."""
    cfg, d, params, stats = _untrained()
    x = d.x_train[:300]
    new = ev.reestimate_bn(cfg, d.info, params, stats, x, batch_size=300)
    v = (x.astype(np.float64) / 255.0 - np.array(d.info.mean)) / np.array(d.info.std)  # (N, 8, 8, 1)
    k = np.asarray(params["backbone"]["Conv_0"]["kernel"], np.float64)  # (3, 3, 1, w)
    p = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = sum(np.einsum("nhwc,cf->nhwf", p[:, i:i + 8, j:j + 8], k[i, j]) for i in range(3) for j in range(3))
    bn0 = new["backbone"]["BatchNorm_0"]
    np.testing.assert_allclose(bn0["mean"], out.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn0["var"], out.var((0, 1, 2)), rtol=1e-4, atol=1e-6)
    old = stats["backbone"]["BatchNorm_0"]
    assert np.all(np.asarray(old["mean"]) == 0) and np.all(np.asarray(old["var"]) == 1)  # input unchanged


def test_reestimated_bn_makes_inference_equal_the_training_mode_pass_on_the_same_images():
    """With one chunk, every BN's running statistics are its input's batch statistics, so the encoder in
    inference mode reproduces the training-mode (batch-statistics) forward pass layer by layer."""
    from selfsup import nets
    cfg, d, params, stats = _untrained(width=6)
    x = d.x_train[:256]
    new = ev.reestimate_bn(cfg, d.info, params, stats, x, batch_size=256)
    enc = nets.build(cfg).encoder
    from selfsup import augment
    view = augment.eval_view(x, d.info.mean, d.info.std)
    (h_train, z_train), _ = nets.apply(enc, params, stats, view, True)
    (h_inf, z_inf), _ = nets.apply(enc, params, new, view, False)
    np.testing.assert_allclose(h_inf, h_train, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(z_inf, z_train, rtol=2e-4, atol=2e-5)
    (h_old, _), _ = nets.apply(enc, params, stats, view, False)
    assert np.abs(np.asarray(h_old) - np.asarray(h_train)).max() > 0.1  # the initial statistics do differ


def test_reestimated_bn_averages_equal_chunks():
    cfg, d, params, stats = _untrained()
    x = d.x_train[:400]
    a = ev.reestimate_bn(cfg, d.info, params, stats, x[:200], batch_size=200)
    b = ev.reestimate_bn(cfg, d.info, params, stats, x[200:], batch_size=200)
    both = ev.reestimate_bn(cfg, d.info, params, stats, x[:450], batch_size=200)  # 50 left over: left out
    for path in (("backbone", "BatchNorm_3"), ("projector", "BatchNorm_0")):
        got, one, two = both, a, b
        for key in path:
            got, one, two = got[key], one[key], two[key]
        np.testing.assert_allclose(got["mean"], (np.asarray(one["mean"]) + two["mean"]) / 2, rtol=1e-5,
                                   atol=1e-6)
