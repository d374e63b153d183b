"""Continual learning: class splits, the accuracy matrix R and its metrics, the CaSSLe distillation term
and its frozen copy, and resume between tasks reproducing the uninterrupted R."""
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfsup import augment, data, methods, nets
from selfsup.continual import distill, metrics, splits
from selfsup.continual import step as cstep
from selfsup.continual.__main__ import main
from selfsup.continual.config import ContinualConfig
from selfsup.continual.continual import run_continual
from selfsup.step import init_state


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


@pytest.fixture(scope="module")
def small(mnist):
    """40 training and 20 test images per class, so both tasks of a 2-task split have 200 images."""
    tr = np.concatenate([np.flatnonzero(mnist.y_train == c)[:40] for c in range(10)])
    te = np.concatenate([np.flatnonzero(mnist.y_test == c)[:20] for c in range(10)])
    return data.Dataset("mnist5k", mnist.x_train[tr], mnist.y_train[tr], mnist.x_test[te], mnist.y_test[te],
                        10)


def _cc(**kw):
    """The config of the step and resume tests: one compiled CaSSLe + residual-momentum step serves both."""
    return ContinualConfig.smoke(**{"method": "byol", "cassle": True, "lam_r": 1.0, "tasks": 2,
                                    "batch_size": 32, "max_images": 0, **kw})


@pytest.mark.parametrize("num_classes,tasks", [(10, 5), (10, 3), (100, 7), (10, 1), (10, 10)])
def test_class_split_is_disjoint_covers_all_classes_and_balanced(num_classes, tasks):
    split = splits.class_split(num_classes, tasks, seed=3)
    assert len(split) == tasks
    for a, b in itertools.combinations(split, 2):
        assert not set(a.tolist()) & set(b.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate(split)), np.arange(num_classes))
    sizes = [len(s) for s in split]
    assert max(sizes) - min(sizes) <= 1
    owner = splits.task_of_class(split, num_classes)
    assert all((owner[c] == t).all() for t, c in enumerate(split))


def test_class_split_depends_only_on_its_seed():
    a, b = splits.class_split(10, 5, seed=0), splits.class_split(10, 5, seed=0)
    assert all((x == y).all() for x, y in zip(a, b))
    assert any((x != y).any() for x, y in zip(a, splits.class_split(10, 5, seed=1)))
    with pytest.raises(ValueError, match="tasks=11"):
        splits.class_split(10, 11)


def test_task_indices_select_exactly_the_samples_of_the_task_classes(mnist):
    split = splits.class_split(10, 5)
    parts = [splits.task_indices(mnist.y_train, c) for c in split]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(mnist.y_train)))
    for c, idx in zip(split, parts):
        assert set(np.unique(mnist.y_train[idx]).tolist()) == set(c.tolist())
        assert len(idx) == 400 * len(c)  # mnist5k: 400 training images per class


def test_metrics_on_a_hand_made_R():
    R = np.array([[0.9, 0.2, 0.1],
                  [0.6, 0.8, 0.3],
                  [0.5, 0.7, 0.9]])
    # by hand: task 0 peaked at 0.9 and ends at 0.5; task 1 peaked at 0.8 and ends at 0.7
    np.testing.assert_allclose(metrics.forgetting_per_task(R), [0.4, 0.1], atol=1e-15)
    assert metrics.forgetting(R) == pytest.approx(0.25, abs=1e-15)
    assert metrics.average_accuracy(R) == pytest.approx(0.7, abs=1e-15)
    assert metrics.backward_transfer(R) == pytest.approx(-0.25, abs=1e-15)
    # the max runs over every earlier row, also before the task was learned: task 1 scored 0.95 at row 0
    R2 = np.array([[0.5, 0.95, 0.1], [0.6, 0.8, 0.3], [0.7, 0.9, 0.9]])
    np.testing.assert_allclose(metrics.forgetting_per_task(R2), [-0.1, 0.05], atol=1e-15)
    assert metrics.forgetting(np.array([[0.7]])) == 0.0
    with pytest.raises(ValueError, match="square"):
        metrics.forgetting(np.ones((2, 3)))


def _views(cfg, images, key):
    info = data.DataInfo("mnist5k", (28, 28, 1), 10, 64, (0.13,), (0.3,))
    k1, k2 = jax.random.split(key)
    spec = cfg.augment_spec()
    return (augment.augment_batch(images, k1, spec, info.mean, info.std),
            augment.augment_batch(images, k2, spec, info.mean, info.std))


@pytest.mark.parametrize("method", ["simsiam", "byol"])
def test_distillation_term_is_zero_for_identical_networks_and_identity_predictor(mnist, method):
    cfg = ContinualConfig.smoke(method=method).train
    st, other = init_state(cfg, jax.random.key(0)), init_state(cfg, jax.random.key(5))
    x1, x2 = _views(cfg, jnp.asarray(mnist.x_train[:32]), jax.random.key(1))
    enc = nets.build(cfg).encoder

    @jax.jit
    def terms(st, frozen_same, frozen_other):
        z1, z2 = (nets.apply(enc, st.params["encoder"], st.batch_stats["encoder"], x, True)[0][1]
                  for x in (x1, x2))
        same = distill.frozen_projections(cfg, frozen_same, x1, x2)
        diff = distill.frozen_projections(cfg, frozen_other, x1, x2)
        ident = lambda z: z
        return [distill.cassle_term(ident, z1, z2, *prev, distill.similarity(methods.METHODS[m]))
                for prev in (same, diff) for m in (method, "simsiam")]
    same, _, diff, diff_simsiam = map(float, terms(st, distill.freeze(st), distill.freeze(other)))
    assert abs(same) < 2e-6  # float32: 2 - 2 cos of identical 32-d vectors is a few ulps of 2
    assert diff > 0.05  # a different frozen network is penalised, so the first check can fail
    assert diff == pytest.approx(diff_simsiam, rel=1e-6)  # one loss for every method (cassle code)
    z1, z2 = (nets.apply(enc, st.params["encoder"], st.batch_stats["encoder"], x, True)[0][1]
              for x in (x1, x2))
    prev = distill.frozen_projections(cfg, distill.freeze(other), x1, x2)
    cos = lambda a, b: (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    want = 0.5 * sum(np.mean(2 - 2 * cos(np.asarray(z), np.asarray(p))) for z, p in zip((z1, z2), prev))
    assert diff == pytest.approx(want, rel=1e-4)  # 2 - 2 cos, computed here in numpy


def test_frozen_copy_gets_no_gradient_and_never_changes_while_the_encoder_and_gd_learn(small):
    cc = _cc()
    cfg, info = cc.train, small.info._replace(n_train=200)  # a task's info in the resume test
    st = init_state(cfg, jax.random.key(0), info)
    gp, gs = distill.init_distill(cfg, jax.random.key(1), cc.distill_hidden)
    st = st._replace(params={**st.params, "distill": gp}, batch_stats={**st.batch_stats, "distill": gs})
    st = cstep.fresh_task_state(st, cfg, info)
    frozen = distill.freeze(st)
    ext = distill.cassle(cfg, lam_d=1.0, hidden=cc.distill_hidden)
    x1, x2 = _views(cfg, jnp.asarray(small.x_train[:32]), jax.random.key(2))
    net = nets.build(cfg, ca1=False)

    @jax.jit
    def loss(params, frozen_params):
        o = ext.targets(net, st, {"frozen": {**frozen, "params": frozen_params}}, x1, x2)
        enc = nets.build(cfg).encoder
        z = [nets.apply(enc, params["encoder"], st.batch_stats["encoder"], x, True)[0][1] for x in (x1, x2)]
        return ext.loss(params, st.batch_stats, {**o, "z1": z[0], "z2": z[1]})[0]
    g_params, g_frozen = jax.jit(jax.grad(loss, argnums=(0, 1)))(st.params, frozen["params"])
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_frozen))
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_params["distill"])) > 0
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(g_params["encoder"])) > 0

    before = jax.device_get(frozen)
    step = cstep.make_step(cfg, info, lam_d=1.0, distill_hidden=cc.distill_hidden)  # cfg.lam_r = 1
    gd0, enc0 = jax.device_get((st.params["distill"], st.params["encoder"]))
    for i in range(3):
        batch = jnp.asarray(small.x_train[32 * i:32 * i + 32])
        st, m = step(st, {"frozen": frozen}, batch, jax.random.key(i))
    assert {"distill", "residual"} <= set(m)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(jax.device_get(frozen))):
        np.testing.assert_array_equal(a, b)
    for old, new in ((gd0, st.params["distill"]), (enc0, st.params["encoder"])):
        assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)))


class _Stop(Exception):
    pass


def test_resume_between_tasks_reproduces_the_uninterrupted_R_bit_identically(tmp_path, small):
    cc = _cc(out_dir=str(tmp_path))  # the same run folder for all three runs
    full = run_continual(cc, dataset=small)
    R = np.array(full["knn"]["R"])
    assert R.shape == (2, 2)
    assert full["knn"]["average_accuracy"] == pytest.approx(R[-1].mean())
    assert full["knn"]["forgetting"] == pytest.approx(metrics.forgetting(R))
    assert (tmp_path / cc.name / "R.png").stat().st_size > 0
    # R_init: the untrained encoder of key(seed) with BN statistics re-estimated on the training images
    from selfsup.continual.evaluation import evaluate_tasks
    from selfsup.evaluate import reestimate_bn
    st0 = init_state(cc.train, jax.random.key(cc.train.seed), small.info)
    params, stats0 = jax.device_get((st0.params["encoder"], st0.batch_stats["encoder"]))
    split = [np.array(t) for t in full["split"]]
    stats = reestimate_bn(cc.train, small.info, params, stats0, small.x_train)
    for key, st in (("R_init", stats), ("R_init_bn_init", stats0)):
        want = evaluate_tasks(cc.train, small.info, params, st, small, split, probe=cc.train.linear_probe)
        assert set(full[key]) == set(want), key
        for k, v in want.items():
            assert full[key][k] == pytest.approx(v), (key, k)

    def stop_after_first(t, row):
        if t == 0:
            raise _Stop
    with pytest.raises(_Stop):
        run_continual(cc, dataset=small, overwrite=True, on_task=stop_after_first)
    done = []
    resumed = run_continual(cc, dataset=small, resume=True, on_task=lambda t, row: done.append(t))
    assert done == [1]  # the finished task is kept, not retrained
    # bit-identical: every task restarts from checkpointed arrays, with keys that depend only on (seed, task,
    # step), and the evaluation is deterministic
    assert resumed["knn"]["R"] == full["knn"]["R"]
    assert resumed["R_init"] == full["R_init"]
    steps = [json.loads(ln) for ln in (tmp_path / cc.name / "metrics.jsonl").read_text().splitlines()]
    assert sorted({r["task"] for r in steps}) == [0, 1]


def test_tasks_train_from_device_resident_images_with_the_same_result_as_host_streaming(tmp_path, small,
                                                                                         monkeypatch):
    """Each task's images go on the device once (``selfsup.loop.place``); the batches and keys are those of
    the host-streaming path, so the accuracy matrix is bit-identical to a run forced onto the host."""
    from selfsup.continual import continual
    placed, real_place = [], continual.place

    def recording_place(*args):
        resident, where = real_place(*args)
        placed.append(where)
        return resident, where
    monkeypatch.setattr(continual, "place", recording_place)
    device = run_continual(_cc(out_dir=str(tmp_path / "device")), dataset=small)
    assert placed == ["device", "device"]  # one placement per task
    monkeypatch.setattr(continual, "place", lambda *a: (None, "host"))
    host = run_continual(_cc(out_dir=str(tmp_path / "host")), dataset=small)
    assert device["final_all"] == host["final_all"] and device["knn"]["R"] == host["knn"]["R"]


@pytest.mark.parametrize("argv,msg", [
    (["--tasks", "11"], "tasks=11"),
    (["--method", "simsiam", "--lam-r", "1"], "no momentum encoder"),
    (["--lam-d", "-1"], "lam_d=-1"),
])
def test_cli_rejects_bad_flags_with_status_2_and_one_line(tmp_path, capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        main(["--smoke", "--out-dir", str(tmp_path), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert msg in err[-1] and "Traceback" not in "".join(err)


def test_trainer_step_with_a_zero_extension_matches_the_plain_step_bit_for_bit(small):
    from selfsup.step import make_step
    cfg = ContinualConfig.smoke(method="simsiam", batch_size=32, max_images=0).train
    info = small.info._replace(n_train=200)
    zero = distill.Extension(lambda *a: {}, lambda params, stats, o: (0.0, {}, stats))
    ours, theirs = cstep.build_step(cfg, info, zero), make_step(cfg, info)
    a = cstep.fresh_task_state(init_state(cfg, jax.random.key(0), info), cfg, info)
    b = cstep.fresh_task_state(init_state(cfg, jax.random.key(0), info), cfg, info)
    for i in range(2):
        batch = jnp.asarray(small.x_train[32 * i:32 * i + 32])
        a, ma = ours(a, {}, batch, jax.random.key(i))
        b, mb = theirs(b, batch, jax.random.key(i))
    assert float(ma["loss"]) == float(mb["loss"])
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def _fake_summary(method, cassle, lam_r, seed, rng):
    """A summary as ``run_continual`` writes it, with random R matrices (for the aggregation tests)."""
    mats = {k: rng.uniform(0.5, 1.0, (3, 3)) for k in ("knn", "linear", "linear_10pc")}
    init = {k: rng.uniform(0.3, 0.6, 3).tolist() for k in mats}
    return {"method": method, "cassle": cassle, "lam_r": lam_r, "seed": seed, "R_init": init,
            "task_seconds": rng.uniform(1, 2, 3).tolist(),
            **{k: metrics.summarize(R) for k, R in mats.items()}}


def test_compare_configurations_cover_every_seed_method_cassle_and_residual_run():
    from selfsup.continual import compare
    todo = compare.configurations(ContinualConfig(), ("simsiam", "byol"), seeds=(3, 4), residual=("byol",),
                                  lam_r=0.5)
    got = [(c.train.seed, c.train.method, c.cassle, c.train.lam_r) for c in todo]
    want = [(s, m, c, 0.0) for s in (3, 4) for m in ("simsiam", "byol") for c in (False, True)]
    want = want[:4] + [(3, "byol", False, 0.5)] + want[4:] + [(4, "byol", False, 0.5)]
    assert got == want
    assert len({c.name for c in todo}) == len(todo)  # no two runs share a folder


def test_compare_cassle_methods_limit_the_cassle_runs_to_those_methods():
    from selfsup.continual import compare
    todo = compare.configurations(ContinualConfig(), ("simsiam", "byol", "xphinet"), seeds=(0, 1),
                                  cassle=("byol",))
    got = [(c.train.seed, c.train.method, c.cassle) for c in todo]
    assert got == [(s, m, c) for s in (0, 1) for m, c in (("simsiam", False), ("byol", False), ("byol", True),
                                                         ("xphinet", False))]
    assert len(compare.configurations(ContinualConfig(), ("simsiam",), seeds=(0,), cassle=())) == 1


def test_compare_cli_refuses_a_cassle_method_that_is_not_compared(capsys):
    from selfsup.continual import compare
    with pytest.raises(SystemExit) as e:
        compare.main(["--methods", "simsiam", "--cassle-methods", "byol", "--seeds", "0", "--smoke",
                      "--out-dir", "/nonexistent/never-written"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cassle-methods='byol'" in err[0] and "simsiam" in err[0], err


def test_compare_paired_differences_are_per_seed_variant_minus_fine_tuned():
    from selfsup.continual import compare
    rng = np.random.default_rng(1)
    runs = [_fake_summary(m, c, r, s, rng) for s in (0, 1, 2)
            for m, c, r in (("simsiam", False, 0.0), ("simsiam", True, 0.0), ("byol", False, 0.0),
                            ("byol", False, 1.0))]
    runs.append(_fake_summary("xphinet", True, 0.0, 0, rng))  # no fine-tuned partner: no row
    lines = compare.paired(runs).splitlines()
    assert len(lines) == 2 + 2
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:2] == ["simsiam + CaSSLe", "3"]
    d = [100 * (runs[4 * s + 1]["linear"]["forgetting"] - runs[4 * s]["linear"]["forgetting"])
         for s in range(3)]
    assert cells[5] == " / ".join(f"{x:+.1f}" for x in d) + f" (mean {np.mean(d):+.1f})"
    assert [c.strip() for c in lines[3].strip("|").split("|")][:2] == ["byol + RM (lam_r 1)", "3"]
    assert compare.paired(runs[:1]) is None


def test_compare_table_is_the_mean_and_sample_std_over_seeds():
    from selfsup.continual import compare
    rng = np.random.default_rng(0)
    runs = [_fake_summary(m, c, r, s, rng) for s in (0, 1, 2)
            for m, c, r in (("simsiam", False, 0.0), ("byol", True, 0.0), ("byol", False, 1.0))]
    groups = compare.group(runs)
    assert list(groups) == [("simsiam", False, 0.0), ("byol", True, 0.0), ("byol", False, 1.0)]
    lines = compare.table(runs).splitlines()
    assert len(lines) == 2 + 1 + 3
    cells = lambda line: [c.strip() for c in line.strip("|").split("|")]
    byol_rm = cells(lines[-1])
    assert byol_rm[:3] == ["byol + RM (lam_r 1)", "no", "3"]
    vals = 100 * np.array([r["linear_10pc"]["average_accuracy"] for r in groups["byol", False, 1.0]])
    assert byol_rm[7] == f"{vals.mean():.1f} ± {vals.std(ddof=1):.1f}"
    forg = 100 * np.array([metrics.forgetting(r["knn"]["R"]) for r in groups["byol", False, 1.0]])
    assert byol_rm[4] == f"{forg.mean():.1f} ± {forg.std(ddof=1):.1f}"
    bwt = 100 * np.array([np.mean([R[-1][j] - R[j][j] for j in range(2)])
                          for R in (r["linear"]["R"] for r in groups["byol", False, 1.0])])  # T = 3 tasks
    assert byol_rm[10] == f"{bwt.mean():.1f} ± {bwt.std(ddof=1):.1f}"
    assert len(byol_rm) == 3 + 3 * 3 + 1 and len(cells(lines[2])) == len(byol_rm)
    # the untrained encoder: per seed, the mean over tasks of R_init of that seed's first run
    init = 100 * np.array([np.mean(runs[3 * s]["R_init"]["knn"]) for s in range(3)])
    assert cells(lines[2])[:4] == ["random init (BN re-estimated)", "-", "3",
                                   f"{init.mean():.1f} ± {init.std(ddof=1):.1f}"]


def test_evaluate_tasks_few_label_probe_uses_ten_labels_per_class(small):
    from selfsup import evaluate as ev
    from selfsup import probe
    from selfsup.continual.evaluation import evaluate_tasks
    cfg = _cc().train
    info = small.info
    state = init_state(cfg, jax.random.key(0), info)
    params, stats = jax.device_get((state.params["encoder"], state.batch_stats["encoder"]))
    split = splits.class_split(10, 2, 0)
    out = evaluate_tasks(cfg, info, params, stats, small, split, probe=False, few_label=True)
    assert set(out) == {"knn", "knn_all", "linear_10pc", "linear_10pc_all"}
    # independently: the probe fitted on exactly 10 images of each class, scored per task by hand
    htr, _ = ev.embed(cfg, info, params, stats, small.x_train)
    hte, _ = ev.embed(cfg, info, params, stats, small.x_test)
    few = ev.few_label_indices(small.y_train, 10, seed=0)
    assert np.bincount(small.y_train[few]).tolist() == [10] * 10
    pred = probe.predict(htr[few], small.y_train[few], hte, num_classes=10)
    for j, classes in enumerate(split):
        mask = np.isin(small.y_test, classes)
        assert out["linear_10pc"][j] == pytest.approx(float((pred[mask] == small.y_test[mask]).mean()))
    assert out["linear_10pc_all"] == pytest.approx(float((pred == small.y_test).mean()))


def test_a_preset_sets_the_trainer_recipe_and_keeps_the_experiments_own_settings():
    from selfsup.config import Parser, preset
    from selfsup.continual.config import ContinualConfig, parse
    from selfsup.continual.online import OnlineConfig
    recipe = preset("cifar10-cpu")
    _, cc = parse(Parser(prog="c"), ["--preset", "cifar10-cpu", "--data-dir", "D"], ContinualConfig)
    for k in ("arch", "width", "crop_min", "jitter", "gray_p", "max_images", "eval_images", "knn_k",
              "epochs"):
        assert getattr(cc.train, k) == getattr(recipe, k), k
    assert (cc.train.eval_every, cc.train.baselines, cc.train.out_dir) == (0, False, "runs/continual")
    _, oc = parse(Parser(prog="o"), ["--preset", "cifar10-cpu", "--data-dir", "D"], OnlineConfig)
    assert (oc.train.arch, oc.train.crop_min) == ("strided", recipe.crop_min)
    own = OnlineConfig().train  # the stream's batch, single pass and lr, which the recipe would change
    assert (own.batch_size, own.epochs) != (recipe.batch_size, recipe.epochs)
    assert (oc.train.batch_size, oc.train.epochs, oc.train.lr) == (own.batch_size, own.epochs, own.lr)
    _, cc = parse(Parser(prog="c"), ["--preset", "cifar10-cpu", "--width", "8", "--tasks", "2"],
                  ContinualConfig)
    assert (cc.train.width, cc.tasks, cc.train.arch) == (8, 2, "strided")  # flags override the preset
