"""Fidelity to the reference code (docs/methods.md section 6): one test per point where we once deviated.

a. the trainer's hinge loss has active negatives at init; b. DirectPred's F gets one EMA update per step
from both views; c. X-PhiNet's momentum encoder has a constant beta, BYOL's is cosine-scheduled; d. only the
predictor h keeps a constant learning rate; e. BYOL-family projector (biases, no final BN); f. PhiNet's x0 is
an 8/7 centre zoom; g. CaSSLe's g_d is 2048 wide and on the schedule; h. residual momentum in the trainer;
i. PhiNet's clean view also updates the online encoder's BN running statistics (after the two views');
j. X-PhiNet's clean-view target z0 comes from the momentum encoder.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfsup import augment, data, hinge, methods, nets, optim
from selfsup.config import Config
from selfsup.step import _forward_targets, _loss, _nets, init_state, make_step, residual_term


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


def _info(n=256, shape=(28, 28, 1)):
    return data.DataInfo("mnist5k", shape, 10, n, (0.13,), (0.31,))


def _views(cfg, info, images, key):
    spec = cfg.augment_spec()
    k1, k2 = jax.random.split(key)
    return (augment.augment_batch(images, k1, spec, info.mean, info.std),
            augment.augment_batch(images, k2, spec, info.mean, info.std),
            augment.clean_view(images, info.mean, info.std))


def _one_step_inputs(method):
    """A smoke config of ``method``, its initial state, a batch of 32 random 28 x 28 images, the step key and
    the three views the step makes from them: the inputs of one training step, for checking it by hand."""
    info = _info(64)
    cfg = Config.smoke(method=method, width=4, proj_hidden=16, proj_dim=8, max_images=64, batch_size=32)
    st = init_state(cfg, jax.random.key(0), info)
    images = jax.random.randint(jax.random.key(3), (32, 28, 28, 1), 0, 256).astype(jnp.uint8)
    key = jax.random.key(4)
    return info, cfg, st, images, key, _views(cfg, info, images, key)


def test_a_hinge_negatives_are_inside_the_margin_at_init_and_get_gradient(mnist):
    cfg = Config(method="hinge")
    info = mnist.info
    st = init_state(cfg, jax.random.key(0), info)
    x1, x2, _ = _views(cfg, info, jnp.asarray(mnist.x_train[:256]), jax.random.key(1))
    enc = _nets(cfg).encoder
    z1 = nets.apply(enc, st.params["encoder"], st.batch_stats["encoder"], x1, True)[0][1]
    z2 = nets.apply(enc, st.params["encoder"], st.batch_stats["encoder"], x2, True)[0][1]
    raw = hinge.hinge_loss(z1, z2)[1]
    assert float(raw["neg_active"]) == 0.0 and float(raw["neg_dist"]) > 50  # why the old loss was inert
    _, aux = hinge.hinge_loss(hinge.trainer_embedding(z1), hinge.trainer_embedding(z2))
    assert 0.05 < float(aux["neg_active"]) < 0.95
    emb = hinge.trainer_embedding
    g = jax.grad(lambda b: hinge.hinge_loss(emb(z1), emb(b))[1]["neg"])(z2)
    assert float(jnp.abs(g).max()) > 0
    # the registered trainer loss is this embedding's hinge loss
    loss, _ = methods.METHODS["hinge"].loss({"z1": z1, "z2": z2}, cfg)
    want = hinge.hinge_loss(hinge.trainer_embedding(z1), hinge.trainer_embedding(z2))[0]
    assert float(loss) == pytest.approx(float(want), rel=1e-6)


def test_a_hinge_embedding_puts_orthogonal_vectors_at_the_outer_margin():
    d = 4096  # L1 ~ sqrt(2 D / pi) L2 holds for generic directions in high dimension
    a, b = jax.random.normal(jax.random.key(2), (2, 1, d))
    b = b - (b @ a.T) / (a @ a.T) * a  # exactly orthogonal to a
    ea, eb = hinge.trainer_embedding(a), hinge.trainer_embedding(b)
    assert float(jnp.abs(ea - eb).sum()) == pytest.approx(3.0, rel=0.03)  # T + d


@pytest.mark.parametrize("method", ["directpred", "directcopy", "simsiam"])
def test_b_corr_gets_one_ema_update_per_step_from_both_views(method):
    info, cfg, st, images, key, (x1, x2, x0) = _one_step_inputs(method)
    net, m = _nets(cfg), methods.METHODS[method]
    fixed, _ = _forward_targets(net, st, m, x1, x2, x0)
    _, (_, _, z1, z2) = _loss(st.params, st.batch_stats, net, m, cfg, x1, x2, fixed)
    z = np.concatenate([np.asarray(z1), np.asarray(z2)]).astype(np.float64)
    want = (1 - cfg.dp_rho) * z.T @ z / len(z)
    new, _ = make_step(cfg, info)(jax.tree.map(jnp.copy, st), images, key)
    np.testing.assert_allclose(np.asarray(new.corr), want, atol=2e-5)  # float32, jit vs eager
    assert cfg.dp_rho == Config().dp_rho == 0.3  # the authors' rho


def test_c_xphinet_momentum_is_constant_and_byol_momentum_is_cosine():
    cfg = Config()
    for step in (0, 500, 1000):
        assert float(methods.ema_rate(methods.METHODS["xphinet"], cfg, step, 1000)) == pytest.approx(0.99)
        assert float(methods.ema_rate(methods.METHODS["xphinet"], cfg.replace(mem_beta=0.9), step, 1000)) == \
            pytest.approx(0.9)
    for name in ("byol", "directpred", "directcopy"):
        m = methods.METHODS[name]
        assert float(methods.ema_rate(m, cfg, 0, 1000)) == pytest.approx(cfg.ema_m0)
        assert float(methods.ema_rate(m, cfg, 500, 1000)) == pytest.approx((1 + cfg.ema_m0) / 2)
        assert float(methods.ema_rate(m, cfg, 1000, 1000)) == pytest.approx(1.0)
    # inside the step: the target moves by (1 - 0.99) of the gap on the last step too
    info = _info(64, (8, 8, 1))
    c = Config.smoke(method="xphinet", width=4, proj_hidden=16, proj_dim=8, max_images=64, batch_size=32)
    st = init_state(c, jax.random.key(0), info)
    st = st._replace(step=jnp.asarray(1, jnp.int32), target_params=jax.tree.map(jnp.zeros_like,
                                                                                 st.target_params))
    images = jnp.full((32, 8, 8, 1), 128, jnp.uint8)
    new, metrics = make_step(c, info)(st, images, jax.random.key(1))  # step 1 of 2: cosine would give ~1
    assert float(metrics["ema_m"]) == pytest.approx(0.99)
    a, b = jax.tree.leaves(new.target_params)[0], jax.tree.leaves(new.params["encoder"])[0]
    np.testing.assert_allclose(a, 0.01 * b, rtol=1e-5, atol=1e-8)


def _lr_at_step_70(cfg):
    """The update of a unit gradient at step 70 of 100 (momentum 0, wd 0), per parameter group."""
    tx = optim.make_optimizer(cfg, 100, 10)
    params = {k: {"w": jnp.zeros(3)} for k in ("encoder", "predictor")}
    state = tx.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    for _ in range(70):
        _, state = tx.update(zero, state, params)
    upd, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    return {k: -float(upd[k]["w"][0]) for k in params}, float(optim.lr_schedule(cfg, 100, 10)(70))


@pytest.mark.parametrize("method,constant", [("simsiam", True), ("phinet", True), ("xphinet", True),
                                             ("byol", False)])
def test_d_byols_predictor_follows_the_schedule_and_the_simsiam_familys_stays_at_the_peak(method, constant):
    """solo-learn: BYOL's predictor is scheduled like the rest; SimSiam (and the PhiNets code) keep h at the
    peak lr (fix_pred_lr). The scheduled lr at step 70 of 100 is below a quarter of the peak."""
    lr, sched = _lr_at_step_70(Config(method=method, lr=0.4, warmup_epochs=0, momentum=0.0, wd=0.0))
    assert sched < 0.25 * 0.4 and lr["encoder"] == pytest.approx(sched, rel=1e-5)
    assert lr["predictor"] == pytest.approx(0.4 if constant else sched, rel=1e-5)


@pytest.mark.parametrize("method,hidden", [("byol", 512), ("simsiam", 32), ("phinet", 32)])
def test_d_byols_predictor_expands_and_the_simsiam_familys_is_a_bottleneck(method, hidden):
    """BYOL's predictor MLP has the projector's hidden width (>= d; 4096 for d = 256 in the paper); the
    SimSiam family's is a d / 4 bottleneck (512 for d = 2048)."""
    from selfsup import nets
    cfg = Config(method=method, proj_hidden=512, proj_dim=128)
    pred = nets.build(cfg).predictor
    v = pred.init(jax.random.key(0), jnp.zeros((4, 128)), False)
    assert v["params"]["Dense_0"]["kernel"].shape == (128, hidden)


def test_d_only_the_predictor_keeps_a_constant_learning_rate():
    cfg = Config(lr=0.4, batch_size=256, warmup_epochs=0, momentum=0.0, wd=0.0)
    total, spe = 100, 10
    tx = optim.make_optimizer(cfg, total, spe)
    params = {k: {"w": jnp.zeros(3)} for k in ("encoder", "predictor", "ca1", "distill")}
    state = tx.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    for _ in range(70):
        _, state = tx.update(zero, state, params)
    upd, _ = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    sched = optim.lr_schedule(cfg, total, spe)
    assert float(sched(70)) < 0.25 * 0.4
    assert float(upd["predictor"]["w"][0]) == pytest.approx(-0.4, rel=1e-6)  # the peak, constant
    for k in ("encoder", "ca1", "distill"):  # PhiNet's g and CaSSLe's g_d follow the schedule
        assert float(upd[k]["w"][0]) == pytest.approx(-float(sched(70)), rel=1e-5)


@pytest.mark.parametrize("method,affine", [("phinet", True), ("xphinet", True), ("simsiam", False)])
def test_e_phinet_projector_ends_in_an_affine_bn_and_simsiams_in_a_plain_one(method, affine):
    """The PhiNets code (models/phinet.py, phinet_mom.py): the projector's last layer is Linear then
    BatchNorm1d with its default affine=True; SimSiam's code uses affine=False."""
    enc = nets.build(Config(method=method, proj_hidden=16, proj_dim=8, width=4)).encoder
    v = enc.init(jax.random.key(0), jnp.zeros((4, 8, 8, 1)), False)
    final = v["params"]["projector"].get("BatchNorm_1", {})
    assert ("scale" in final and "bias" in final) == affine
    assert "BatchNorm_1" in v["batch_stats"]["projector"]  # a final BN in both


def test_e_byol_family_projector_has_biases_and_no_final_bn():
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 1))
    for name, byol in (("byol", True), ("directpred", True), ("directcopy", True), ("simsiam", False),
                       ("phinet", False)):
        cfg = Config(method=name, width=4, proj_hidden=32, proj_dim=16)
        enc = nets.build(cfg).encoder
        v = enc.init(jax.random.key(1), x, False)
        proj = v["params"]["projector"]
        denses = sorted(k for k in proj if k.startswith("Dense"))
        assert all(("bias" in proj[k]) == byol for k in denses), name
        n_bn = len(v["batch_stats"]["projector"])
        assert n_bn == (1 if byol else 2), name  # hidden BN only vs hidden + final BN
        (_, z), _ = nets.apply(enc, v["params"], v["batch_stats"], x, True)
        standardised = np.allclose(np.asarray(z).mean(0), 0, atol=1e-4)
        assert standardised != byol, name


@pytest.mark.parametrize("size,channels", [(32, 3), (28, 1)])
def test_f_phinet_clean_view_is_pils_bicubic_resize_and_centre_crop(size, channels):
    """The PhiNets code's x0: PIL ``Resize(int(size * 8 / 7), BICUBIC)`` then ``CenterCrop(size)`` (32 -> 36
    -> 32, 28 -> 32 -> 28). PIL rounds to uint8 after each of its two passes, so single pixels of a noise
    image differ by up to ~16 levels; the mean difference is 0.35-0.39 levels (the former bilinear 8/7 zoom:
    11 levels)."""
    from PIL import Image
    big = int(size * 8 / 7)
    lo = (big - size) // 2
    for seed in range(2):
        img = np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)
        pil_in = Image.fromarray(img[..., 0] if channels == 1 else img)
        want = np.asarray(pil_in.resize((big, big), Image.Resampling.BICUBIC), np.float64)
        want = want[lo:lo + size, lo:lo + size].reshape(size, size, channels)
        got = 255 * np.asarray(augment.clean_view(jnp.asarray(img)[None], (0.0,) * channels,
                                                  (1.0,) * channels))[0]
        diff = np.abs(got - want)
        assert diff.mean() < 0.6 and np.percentile(diff, 99) < 4.0, (diff.mean(), np.percentile(diff, 99))
    src = jnp.asarray(img)[None]
    ev = augment.eval_view(src, (0.0,) * channels, (1.0,) * channels)
    np.testing.assert_allclose(255 * np.asarray(ev)[0], img, atol=1e-4)  # evaluation keeps the plain image


def test_g_cassle_predictor_is_2048_wide_and_scheduled():
    from selfsup.continual import distill
    from selfsup.continual import step as cstep
    from selfsup.continual.config import ContinualConfig
    cc = ContinualConfig()
    assert cc.distill_hidden == 2048
    gp, _ = distill.init_distill(cc.train, jax.random.key(0), cc.distill_hidden)
    assert gp["Dense_0"]["kernel"].shape == (cc.train.proj_dim, 2048)
    cfg = cc.train.replace(momentum=0.0, wd=0.0, warmup_epochs=0, epochs=4, method="directpred")
    info = _info(cfg.batch_size * 5)
    tx = cstep.make_optimizer(cfg, info, True)
    params = {k: {"w": jnp.zeros(2)} for k in ("encoder", "predictor", "distill")}
    st = tx.init(params)
    for _ in range(15):
        _, st = tx.update(jax.tree.map(jnp.zeros_like, params), st, params)
    upd, _ = tx.update(jax.tree.map(jnp.ones_like, params), st, params)
    sched = optim.lr_schedule(cfg, 20, 5)
    assert float(upd["distill"]["w"][0]) == pytest.approx(-float(sched(15)), rel=1e-5)
    assert float(upd["predictor"]["w"][0]) == 0.0  # DirectPred's own predictor is set, not trained


@pytest.mark.parametrize("method", ["byol", "xphinet"])
def test_h_residual_momentum_term_matches_a_hand_computation(method):
    info = _info(64, (8, 8, 1))
    cfg = Config.smoke(method=method, width=4, proj_hidden=16, proj_dim=8, max_images=64, batch_size=32,
                       lam_r=0.7)
    st = init_state(cfg, jax.random.key(0), info)
    # a momentum encoder that differs from the online one
    st = st._replace(target_params=jax.tree.map(lambda p: p * 1.3 + 0.01, st.target_params))
    images = jax.random.randint(jax.random.key(1), (32, 8, 8, 1), 0, 256).astype(jnp.uint8)
    x1, x2, x0 = _views(cfg, info, images, jax.random.key(2))
    net, m = _nets(cfg), methods.METHODS[method]
    fixed, _ = _forward_targets(net, st, m, x1, x2, x0, cfg.lam_r)
    with_r, (aux, _, z1, z2) = _loss(st.params, st.batch_stats, net, m, cfg, x1, x2, fixed)
    without, _ = _loss(st.params, st.batch_stats, net, m, cfg.replace(lam_r=0.0), x1, x2, fixed)
    f_xi = lambda x: np.asarray(nets.apply(net.encoder, st.target_params, st.target_stats, x, True)[0][1])
    cos = lambda a, b: (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    d = 0.5 * (-cos(z1, f_xi(x1)).mean() - cos(z2, f_xi(x2)).mean())  # D(f(x), sg f_xi(x)), D = -cos
    assert float(with_r - without) == pytest.approx(0.7 * (1 + d), rel=1e-4)
    assert float(aux["residual"]) == pytest.approx(1 + d, rel=1e-4)
    assert float(residual_term(z1, z2, f_xi(x1), f_xi(x2))) == pytest.approx(1 + d, rel=1e-5)


def test_h_residual_momentum_is_a_trainer_flag_and_refused_without_a_momentum_encoder(capsys):
    from selfsup import train
    with pytest.raises(SystemExit) as e:
        train.main(["--method", "simsiam", "--lam-r", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "lam_r" in err[-1] and "byol" in err[-1]
    with pytest.raises(SystemExit) as e:
        train.main(["--method", "byol", "--lam-r", "-1"])
    assert e.value.code == 2


@pytest.mark.parametrize("method,views", [("phinet", 3), ("simsiam", 2), ("xphinet", 2)])
def test_i_phinet_clean_view_updates_the_running_statistics_after_both_views(method, views):
    # The authors' PhiNet forward is f(x1), f(x2), f(x0) in train mode: the encoder's BN running statistics
    # (what evaluation normalises with) take three updates per step, the clean images' last. X-PhiNet's x0
    # goes through the momentum encoder and SimSiam has no x0: two updates.
    info, cfg, st, images, key, (x1, x2, x0) = _one_step_inputs(method)
    net = _nets(cfg)
    stats = st.batch_stats["encoder"]
    for x in (x1, x2, x0)[:views]:
        _, stats = nets.apply(net.encoder, st.params["encoder"], stats, x, True)
    new, _ = make_step(cfg, info)(jax.tree.map(jnp.copy, st), images, key)
    got, want = jax.tree.leaves(new.batch_stats["encoder"]), jax.tree.leaves(stats)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)
    if method == "phinet":  # z0 uses the batch's statistics: the same whatever the running ones
        z0 = lambda s: np.asarray(nets.apply(net.encoder, st.params["encoder"], s, x0, True)[0][1])
        np.testing.assert_array_equal(z0(st.batch_stats["encoder"]), z0(stats))


def test_j_xphinet_clean_view_target_comes_from_the_momentum_encoder():
    # X-PhiNet's z0 = f_m(x0): the momentum (EMA) encoder's projection of the clean view, not the online
    # encoder's (that is PhiNet). With the momentum encoder's weights set apart from the online ones, the
    # step's z0 equals the momentum encoder's forward, differs from the online encoder's, and the loss moves
    # when only the momentum encoder's weights move.
    info, cfg, st, images, key, (x1, x2, x0) = _one_step_inputs("xphinet")
    net = _nets(cfg)
    other = init_state(cfg, jax.random.key(1), info)
    st = st._replace(target_params=other.params["encoder"])
    fixed, _ = _forward_targets(net, st, methods.METHODS["xphinet"], x1, x2, x0)
    momentum = nets.apply(net.encoder, other.params["encoder"], st.target_stats, x0, True)[0][1]
    online = nets.apply(net.encoder, st.params["encoder"], st.batch_stats["encoder"], x0, True)[0][1]
    np.testing.assert_allclose(np.asarray(fixed["z0"]), np.asarray(momentum), rtol=1e-6, atol=1e-6)
    assert np.abs(np.asarray(fixed["z0"]) - np.asarray(online)).max() > 1e-2
    method = methods.METHODS["xphinet"]
    loss = lambda s: float(_loss(s.params, s.batch_stats, net, method, cfg, x1, x2,
                                 _forward_targets(net, s, method, x1, x2, x0)[0], None, x0)[0])
    assert abs(loss(st) - loss(st._replace(target_params=init_state(cfg, jax.random.key(2), info).params[
        "encoder"]))) > 1e-4
