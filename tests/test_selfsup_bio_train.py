"""selfsup.bio training: which parameters each schedule updates, URF's feedback, the probe, resume, CLI.

Smoke-sized (width 4, batch 32) on scikit-learn's 8x8 digits, so every step compiles and runs fast.
Bit-identity claims use exact equality; URF's B - W is constant up to float32 rounding of
B + (W_new - W_old) (|W| < 1, so atol 1e-6).
"""
import jax
import numpy as np
import pytest

from selfsup import data
from selfsup.bio import train as bio_train
from selfsup.bio.__main__ import main
from selfsup.bio.config import BioConfig


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


def smoke(**kw):
    return BioConfig.smoke(dataset="digits", **kw)


def _host(tree):
    return jax.tree.map(lambda a: np.array(a, copy=True), tree)


def _run_steps(config, dataset, n_steps, total=None):
    """Run n_steps steps; returns host copies of the params before and after every step, and layers."""
    state = bio_train.init_state(config, jax.random.key(config.seed))
    step = bio_train.make_step(config, dataset.info, total or n_steps)
    snaps, layers = [_host(state.params)], []
    for s in range(n_steps):
        images = dataset.x_train[s * config.batch_size:(s + 1) * config.batch_size]
        state, m = step(state, images, jax.random.fold_in(jax.random.key(0), s))
        snaps.append(_host(state.params))
        layers.append(m["layer"])
    return snaps, layers


def _changed(before, after):
    """Per group: set of (part, leaf) whose values changed."""
    out = []
    for gb, ga in zip(before, after):
        flat_b = jax.tree_util.tree_flatten_with_path(gb)[0]
        flat_a = jax.tree.leaves(ga)
        out.append({jax.tree_util.keystr(p) for (p, b), a in zip(flat_b, flat_a) if not np.array_equal(a, b)})
    return out


def test_rll_updates_exactly_one_layer_and_its_head_per_step(digits):
    snaps, layers = _run_steps(smoke(rule="fa", schedule="rll"), digits, 6)
    assert len(set(layers)) >= 2  # the draw really varies
    for s, k in enumerate(layers):
        changed = _changed(snaps[s], snaps[s + 1])
        assert [bool(c) for c in changed] == [l == k for l in range(5)], (s, k, changed)
        assert {"['conv']['w']", "['head']['w']"} <= changed[k]
        assert not any("fb" in name for name in changed[k])  # FA: B stays fixed


def test_gll_trains_layers_in_order_and_leaves_frozen_layers_bit_identical(digits):
    snaps, layers = _run_steps(smoke(rule="bp", schedule="gll"), digits, 10)
    assert layers == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    for s, k in enumerate(layers):
        assert [bool(c) for c in _changed(snaps[s], snaps[s + 1])] == [l == k for l in range(5)]
    for l in range(4):  # a finished layer never moves again
        jax.tree.map(np.testing.assert_array_equal, snaps[2 * l + 2][l], snaps[-1][l])


def test_updated_random_feedback_keeps_feedback_minus_weights_constant(digits):
    snaps, _ = _run_steps(smoke(rule="urf", schedule="e2e"), digits, 3)
    for g0, g1 in zip(snaps[0], snaps[-1]):
        for part in ("conv", "head"):
            assert np.abs(g1[part]["w"] - g0[part]["w"]).max() > 1e-4 or part == "head"
            np.testing.assert_allclose(g1["fb"][part] - g1[part]["w"], g0["fb"][part] - g0[part]["w"],
                                       atol=1e-6, rtol=0)
    assert np.abs(snaps[-1][4]["head"]["w"] - snaps[0][4]["head"]["w"]).max() > 1e-4  # top head learns


def test_hebbian_feedback_learns_while_fixed_feedback_does_not(digits):
    heb, _ = _run_steps(smoke(rule="urf-hebb"), digits, 2)
    assert np.abs(heb[-1][0]["fb"]["conv"] - heb[0][0]["fb"]["conv"]).max() > 1e-5


def test_train_resumes_bit_identically_after_an_interruption(digits, tmp_path, monkeypatch):
    cfg = smoke(rule="dtp", schedule="e2e", epochs=2, max_images=128, out_dir=str(tmp_path / "a"))
    state_a, sum_a = bio_train.train(cfg, dataset=digits)
    assert {p.name for p in (tmp_path / "a" / cfg.name).iterdir()} >= {"config.json", "metrics.jsonl",
                                                                         "checkpoint.msgpack", "summary.json"}
    cfg_b = cfg.replace(out_dir=str(tmp_path / "b"))
    real = bio_train.train_epoch

    def interrupted(state, step_fn, dataset, config, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(state, step_fn, dataset, config, epoch, *args)

    monkeypatch.setattr(bio_train, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bio_train.train(cfg_b, dataset=digits)
    monkeypatch.setattr(bio_train, "train_epoch", real)
    state_b, sum_b = bio_train.train(cfg_b, dataset=digits, resume=True)
    jax.tree.map(np.testing.assert_array_equal, _host(state_a.params), _host(state_b.params))
    assert sum_a["linear_acc"] == sum_b["linear_acc"] and len(sum_a["linear_acc"]) == 5


def test_device_resident_images_train_exactly_as_host_streaming(digits, tmp_path, monkeypatch):
    """The images go on the device once (``selfsup.loop.place``); RLL draws its layer from the step key on
    the host, so equal parameters also mean the device-side keys equal the host's."""
    cfg = smoke(rule="fa", schedule="rll", epochs=2, max_images=128, out_dir=str(tmp_path / "device"))
    state_d, sum_d = bio_train.train(cfg, dataset=digits)
    monkeypatch.setattr(bio_train, "place", lambda *a: (None, "host"))
    state_h, sum_h = bio_train.train(cfg.replace(out_dir=str(tmp_path / "host")), dataset=digits)
    assert (sum_d["data_placement"], sum_h["data_placement"]) == ("device", "host")
    jax.tree.map(np.testing.assert_array_equal, _host(state_d.params), _host(state_h.params))
    assert sum_d["linear_acc"] == sum_h["linear_acc"]


@pytest.mark.parametrize("argv, text", [(["--rule", "sgd"], "--rule"), (["--neg-k", "-1"], "neg_k=-1"),
                                        (["--grid", "--rules", "bp,xx"], "--rules")])
def test_cli_rejects_bad_flags_with_status_2_and_one_line(argv, text, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and text in err[-1] and "Traceback" not in "".join(err)


def test_grid_seeds_table_is_mean_and_std_over_seeds_and_reports_active_negatives(tmp_path):
    import json

    from selfsup.bio.__main__ import seeds_table
    grids = []
    for seed, (a, b) in enumerate([(0.80, 0.90), (0.84, 0.94)]):
        run = tmp_path / f"r{seed}"
        run.mkdir()
        (run / "metrics.jsonl").write_text(json.dumps({"neg_active": 0.3 + seed / 10}) + "\n"
                                           + json.dumps({"neg_active": 0.1}) + "\n")
        res = {"rule": "fa", "schedule": "e2e", "linear_acc": [b, a], "best_acc": b, "run_dir": str(run)}
        grids.append({"results": [res], "random_encoder": {"linear_acc": [0.7, 0.75], "best_acc": 0.75}})
    text = seeds_table(grids, ("e2e",))
    fa = next(ln for ln in text.splitlines() if ln.startswith("| fa"))
    best, top = 100 * np.array([0.90, 0.94]), 100 * np.array([0.80, 0.84])
    assert f"{best.mean():.1f} ± {best.std(ddof=1):.1f} | {top.mean():.1f} ± {top.std(ddof=1):.1f}" in fa
    assert "first logged steps 30-40%, last 10-10%" in text
