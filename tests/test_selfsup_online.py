"""Online learning: the stream shows every training image exactly once (i.i.d. or task after task), the
run evaluates at the requested points, and resume from an evaluation point reproduces the curve."""
import dataclasses

import jax
import numpy as np
import pytest

from selfsup import data
from selfsup.continual import splits
from selfsup.continual.online import OnlineConfig, run_online, stream_order
from selfsup.step import init_state


@pytest.fixture(scope="module")
def small():
    d = data.load("mnist5k")
    tr = np.concatenate([np.flatnonzero(d.y_train == c)[:24] for c in range(10)])
    te = np.concatenate([np.flatnonzero(d.y_test == c)[:10] for c in range(10)])
    return data.Dataset("mnist5k", d.x_train[tr], d.y_train[tr], d.x_test[te], d.y_test[te], 10)


@pytest.mark.parametrize("stream", ["iid", "tasks"])
def test_stream_is_a_permutation_and_the_task_stream_visits_tasks_in_order(stream):
    y = np.repeat(np.arange(10), 30)
    split = splits.class_split(10, 5, seed=0)
    order = stream_order(y, stream, jax.random.key(0), split)
    np.testing.assert_array_equal(np.sort(order), np.arange(len(y)))  # each example exactly once
    task = splits.task_of_class(split, 10)[y[order]]
    if stream == "tasks":
        np.testing.assert_array_equal(task, np.repeat(np.arange(5), 60))
        assert not np.array_equal(order[:60], np.sort(order[:60]))  # shuffled within a task
    else:
        assert (np.diff(task) != 0).sum() > 50  # tasks interleaved


def test_online_run_evaluates_at_the_requested_points_and_resume_reproduces_the_curve(tmp_path, small):
    oc = OnlineConfig.smoke(method="xphinet", stream="tasks", evals=3, lam_r=0.5, out_dir=str(tmp_path))
    full = run_online(oc, dataset=small)
    # 240 images in batches of 16: 15 steps, evaluated before training and after steps 5, 10, 15
    assert full["seen"] == [0, 80, 160, 240]
    assert len(full["knn"]) == 4 and all(len(r) == oc.tasks for r in full["knn"])
    assert full["task_starts"] == [0, 48, 96, 144, 192]  # 5 tasks of 2 classes x 24 images, in stream order
    # the point before training: the untrained encoder with BN statistics re-estimated on the training
    # images; with its initial statistics under init_bn_init
    from selfsup.continual.evaluation import evaluate_tasks
    from selfsup.evaluate import reestimate_bn
    st0 = init_state(oc.train, jax.random.key(oc.train.seed), small.info)
    params, stats0 = jax.device_get((st0.params["encoder"], st0.batch_stats["encoder"]))
    split = splits.class_split(small.num_classes, oc.tasks, oc.split_seed)
    score = lambda st: evaluate_tasks(oc.train, small.info, params, st, small, split, probe=False,
                                      few_label=True)["knn_all"]
    assert full["knn_all"][0] == pytest.approx(score(reestimate_bn(oc.train, small.info, params, stats0,
                                                                   small.x_train)))
    assert full["init_bn_init"]["knn_all"] == pytest.approx(score(stats0))

    class Stop(Exception):
        pass

    def stop(row):
        if row["step"] == 5:
            raise Stop
    with pytest.raises(Stop):
        run_online(oc, dataset=small, overwrite=True, on_eval=stop)
    seen = []
    resumed = run_online(oc, dataset=small, resume=True, on_eval=lambda row: seen.append(row["step"]))
    assert seen == [10, 15]
    # bit-identical: the checkpoint holds the whole state; step s uses fold_in(key, s) and a fixed order
    assert resumed["knn_all"] == full["knn_all"]
    assert (tmp_path / oc.name / "curve.png").stat().st_size > 0


def test_the_resident_stream_gives_the_host_batches_and_keys_without_copies(small):
    from selfsup.continual.online import data_batch
    from selfsup.loop import place
    cfg = OnlineConfig.smoke().train
    order = stream_order(small.y_train, "iid", jax.random.key(5), None)
    resident, where = place(small, cfg, None)
    assert where == "device"
    with jax.transfer_guard("disallow"):  # every batch and key is made on the device
        got = [(np.asarray(x), jax.random.key_data(k)) for x, k in resident.stream(order, 3, 6)]
    assert len(got) == 6
    for s, (x, k) in enumerate(got, start=3):
        np.testing.assert_array_equal(x, data_batch(small, order, s, cfg.batch_size))
        np.testing.assert_array_equal(k, jax.random.key_data(jax.random.fold_in(jax.random.key(cfg.seed), s)))


def test_online_run_from_resident_images_equals_host_streaming(tmp_path, small, monkeypatch):
    from selfsup.continual import online
    oc = OnlineConfig.smoke(method="simsiam", evals=2, out_dir=str(tmp_path / "device"))
    device = run_online(oc, dataset=small)
    monkeypatch.setattr(online, "place", lambda *a: (None, "host"))
    host = run_online(dataclasses.replace(oc, train=oc.train.replace(out_dir=str(tmp_path / "host"))),
                      dataset=small)
    assert (device["data_placement"], host["data_placement"]) == ("device", "host")
    assert device["knn_all"] == host["knn_all"] and device["linear_10pc_all"] == host["linear_10pc_all"]
    assert device["final"] == host["final"]


def test_online_rejects_more_than_one_pass():
    with pytest.raises(ValueError, match="epochs=2"):
        OnlineConfig.smoke(epochs=2).validate()


def test_online_compare_curve_stats_and_table_on_hand_made_curves():
    from selfsup.continual import online_compare as oc_
    seen = [0, 400, 800, 1200, 4000]
    s = {"seen": seen, "knn_all": [0.5, 0.6, 0.7, 0.8, 0.9], "linear_10pc_all": [0.4, 0.5, 0.5, 0.6, 0.7],
         "final": {"linear_all": 0.95}}
    st = oc_.curve_stats(s, "knn_all")
    # early: the point after the start nearest a tenth of the stream (400 of 4000); area: mean after start
    assert st == pytest.approx({"start": 0.5, "early": 0.6, "area": 0.75, "final": 0.9})
    t = {**s, "knn_all": [0.5, 0.7, 0.8, 0.8, 0.8], "final": {"linear_all": 0.97}}
    lines = oc_.table({"simsiam": [s, t]}).splitlines()
    row = [c.strip() for c in lines[-1].strip("|").split("|")]
    early = 100 * np.array([0.6, 0.7])
    assert row[:3] == ["simsiam", "2", f"{early.mean():.1f} ± {early.std(ddof=1):.1f}"]
    assert row[-1] == f"{96.0:.1f} ± {100 * np.std([0.95, 0.97], ddof=1):.1f}"
    assert lines[2].startswith("| untrained encoder (BN re-estimated) | 2 | 50.0 ± 0.0")


def test_online_compare_shift_stats_on_a_hand_made_task_stream():
    from selfsup.continual import online_compare as oc_
    # 3 tasks of 400 images; evaluated every 200: the shifts at 400 and 800 fall on evaluation points
    knn = [[0.30, 0.20, 0.10], [0.50, 0.22, 0.12], [0.60, 0.25, 0.15], [0.55, 0.45, 0.16],
           [0.52, 0.50, 0.18], [0.50, 0.52, 0.40], [0.48, 0.53, 0.46]]
    s = {"seen": [0, 200, 400, 600, 800, 1000, 1200], "knn": knn, "task_starts": [0, 400, 800]}
    st = oc_.shift_stats(s)
    # task 1 starts at 400 (point 2): 0.45 - 0.25; task 2 at 800 (point 4): 0.40 - 0.18
    assert st["adapt"] == pytest.approx(((0.45 - 0.25) + (0.40 - 0.18)) / 2)
    assert st["memory"] == pytest.approx(0.48) and st["forget"] == pytest.approx(0.60 - 0.48)
    # a shift between evaluation points is measured from the last point before it
    assert oc_.shift_stats({**s, "task_starts": [0, 300, 800]})["adapt"] == pytest.approx(
        ((0.25 - 0.22) + (0.40 - 0.18)) / 2)
    assert oc_.shift_stats({**s, "task_starts": None}) is None  # the iid stream has no shift
    lines = oc_.shift_table({"phinet": [s, s]}).splitlines()
    assert lines[-1].startswith(f"| phinet | 2 | {100 * st['adapt']:.1f} ± 0.0 | 48.0 ± 0.0 | 12.0 ± 0.0")
    assert oc_.shift_table({"phinet": [{**s, "task_starts": None}]}) is None


def test_python_m_selfsup_continual_online_answers_help():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "selfsup.continual.online", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-300:]
    assert r.stdout.startswith("usage: python -m selfsup.continual.online"), r.stdout[:200]
