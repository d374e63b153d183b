"""The theory check end to end: a smoke run on mnist5k writes a report with finite values, DirectPred's
predictor is measured as aligned with F, finished points are reused and an interrupted one resumes to the
same numbers, the recorder averages F over its windows, and bad flags exit with status 2."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from selfsup import data
from selfsup.theory import check as tcm
from selfsup.theory.run import Recorder


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, mnist):
    tc = tcm.TheoryConfig.smoke(out_dir=str(tmp_path_factory.mktemp("theory")))
    return tc, tcm.run_theory_check(tc, dataset=mnist)


def _numbers(x):
    if isinstance(x, dict):
        return [v for val in x.values() for v in _numbers(val)]
    if isinstance(x, list | tuple):
        return [v for val in x for v in _numbers(val)]
    return [x] if isinstance(x, float | int) and not isinstance(x, bool) else []


def test_smoke_run_writes_report_data_and_figures_with_finite_values(smoke):
    tc, report = smoke
    assert set(report["points"]) == {"simsiam-wd0.0005", "phinet-wd0.0005", "directpred-wd0.0005"}
    for name in ("config.json", "report.json", "data.npz", "alignment.png", "eigs.png", "ps.png",
                 "wd_sweep.png", "predictors.png"):
        assert (tc.root / name).is_file(), name
    assert json.loads((tc.root / "report.json").read_text()) == json.loads(json.dumps(report))
    nums = _numbers({k: v for k, v in report.items() if k != "config"})
    assert len(nums) > 50 and np.all(np.isfinite(nums))
    for r in report["points"].values():
        assert -1 <= r["align_mean_final"] <= 1 and 1 <= r["erank_F"] <= tc.proj_dim
        assert 0 <= r["asym_final"] <= 2 + 1e-9 and r["sigma2_hat"] > 0  # ||A - A^T|| <= 2 ||A||
    with np.load(tc.root / "data.npz") as z:
        cos = z["simsiam-wd0.0005__cos"]
        assert cos.shape[1] == tc.proj_dim and np.all(np.isfinite(cos))
        assert z["sweep__wds"].tolist() == [5e-4]


def test_directpred_predictor_is_measured_as_aligned_with_F(smoke):
    # At step 0 the recorder's window holds exactly the F the setter used, so cos(Wp u_j, u_j) = 1 up to
    # float32 eigh in the setter (1e-3).
    tc, report = smoke
    assert report["points"]["directpred-wd0.0005"]["align_mean_first"] == pytest.approx(1.0, abs=1e-3)
    # A randomly initialised trained predictor is not aligned: |mean cos| over 16 modes ~ 1/sqrt(16 * 16).
    assert abs(report["points"]["simsiam-wd0.0005"]["align_mean_first"]) < 0.3


def test_predicted_thresholds_follow_the_closed_form_and_phinet_exceeds_simsiam(smoke):
    _, report = smoke
    pred, s2 = report["headline"]["predicted_threshold"], report["sigma2_hat"]
    assert pred["simsiam"] == pytest.approx(1 / (4 * (1 + s2)), rel=1e-12)  # tau^2 l^2 / (4 (l + s2)), l = 1
    assert simsiam_lt_phinet(pred) and report["headline"]["predicted_order"] == ["simsiam", "phinet"]


def simsiam_lt_phinet(pred):
    return pred["simsiam"] < pred["phinet"] < 2 * pred["simsiam"]  # (1 + lam) bound, lam = 1


def test_finished_points_are_reused_and_an_interrupted_point_resumes_to_the_same_numbers(smoke, mnist):
    tc, report = smoke
    point = tc.root / "points" / "simsiam-wd0.0005"
    before = {p: p.stat().st_mtime_ns for p in (tc.root / "points").glob("*/theory_point.json")}
    with np.load(point / "trajectory.npz") as z:
        traj = {k: z[k] for k in z.files}
    (point / "theory_point.json").unlink()  # as if stopped after the last checkpoint
    again = tcm.run_theory_check(tc, dataset=mnist)
    for p, t in before.items():
        if p.parent != point:
            assert p.stat().st_mtime_ns == t  # not re-run
    r0, r1 = report["points"]["simsiam-wd0.0005"], again["points"]["simsiam-wd0.0005"]
    assert r1["resumed"] and not r0["resumed"]
    for k in ("knn_acc", "erank_F", "align_mean_final", "exponent_final", "sigma2_hat"):
        assert r1[k] == r0[k], k
    with np.load(point / "trajectory.npz") as z:
        for k, v in traj.items():
            np.testing.assert_array_equal(z[k], v)


def _state(corr, wp):
    return SimpleNamespace(corr=corr, params={"predictor": {"Dense_0": {"kernel": wp.T}}})


def test_recorder_averages_F_over_windows_that_restart_each_epoch():
    d, spe = 3, 5
    rec = Recorder(record_every=2, rel_tol=1e-3, spe=spe)
    base = np.diag([3.0, 2.0, 1.0])
    for s in range(2 * spe):
        rec.on_step(s, _state((s + 1) * base, np.eye(d)), {})
    a = rec.arrays()
    # windows: [0] (first step), [1], [2, 3], [4] (epoch end), [5, 6], [7, 8], [9]
    assert a["step"].tolist() == [0, 1, 3, 4, 6, 8, 9]
    assert a["epoch"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(a["s"][:, 0], 3.0 * np.array([1, 2, 3.5, 5, 6.5, 8.5, 10]), rtol=1e-12)
    np.testing.assert_allclose(a["align_mean"], 1.0)
    assert a["cos"].shape == (7, d)


@pytest.mark.parametrize("argv, words", [
    (["--wds", "1e-3,abc"], "comma-separated"),
    (["--methods", "byol"], "methods"),
    (["--record-every", "0"], "record_every"),
    (["--wds", "-1"], "wds"),
])
def test_bad_flags_exit_with_status_2_naming_the_value(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        tcm.main(["--smoke", "--out-dir", str(tmp_path), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("usage:") is False and words in err


def _fake_report(seed, rng, wds=(5e-4, 0.3)):
    methods = ("simsiam", "phinet")
    cfg = {**tcm.TheoryConfig.smoke(seed=seed, name=f"s{seed}", methods=methods, wds=wds).__dict__}
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    table, pts = {}, {}
    for m in methods:
        erank = [float(rng.uniform(2, 6)), float(rng.uniform(1, 1.4))]
        table[m] = {"erank_F": erank, "knn_acc": rng.uniform(0.3, 0.9, 2).tolist(),
                    "surviving_F": rng.integers(1, cfg["proj_dim"], 2).tolist()}
        pts |= {f"{m}-wd{w:g}": {"align_weighted_final": float(rng.uniform()), "erank_F": e, "knn_acc": 0.9}
                for w, e in zip(wds, erank)}
    return {"config": cfg, "sigma2_hat": 0.05, "points": pts,
            "sweep": {"wds": list(wds), "table": table, "last_alive_wd": {m: wds[0] for m in methods}},
            "headline": {"predicted_threshold": {"simsiam": 0.24, "phinet": 0.41}}}


def test_theory_seeds_tables_are_mean_and_std_over_seeds_and_refuse_mixed_configs(tmp_path):
    from selfsup.theory import seeds as theory_seeds
    rng = np.random.default_rng(1)
    reports = [_fake_report(s, rng) for s in range(3)]
    for r in reports:
        (tmp_path / r["config"]["name"]).mkdir()
        (tmp_path / r["config"]["name"] / "report.json").write_text(json.dumps(r))
    loaded = theory_seeds.load(tmp_path, ["s0", "s1", "s2"])
    rows = theory_seeds.point_rows(loaded)
    align = [r["points"]["simsiam-wd0.0005"]["align_weighted_final"] for r in reports]
    assert rows["simsiam-wd0.0005"]["align_weighted_final"] == align
    text = theory_seeds.markdown(loaded)
    line = next(ln for ln in text.splitlines() if ln.startswith("| simsiam-wd0.0005"))
    assert f"{np.mean(align):.2f} ± {np.std(align, ddof=1):.2f}" in line
    sweep = theory_seeds.sweep_rows(loaded)["simsiam"]
    assert sweep["collapsed"] == [0, 3]  # erank < collapse_erank = 1.5 at wd 0.3 for every seed
    surviving = np.array([r["sweep"]["table"]["simsiam"]["surviving_F"] for r in reports])  # (seeds, wds)
    np.testing.assert_allclose(sweep["collapsed_fraction"], (1 - surviving / 16).T)  # smoke: d = 16
    knn = [r["sweep"]["table"]["phinet"]["knn_acc"][1] for r in reports]
    knn_line = [ln for ln in text.splitlines() if ln.startswith("| phinet |")][-2]  # the kNN table's row
    assert knn_line.endswith(f"| {100 * np.mean(knn):.1f} ± {100 * np.std(knn, ddof=1):.1f} |")
    assert f"(x{0.41 / 0.24:.2f} SimSiam's)" in text  # the theory's threshold ratio beside the measurement
    bad = {**reports[2], "config": {**reports[2]["config"], "epochs": 7}}
    (tmp_path / "s2" / "report.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="epochs"):
        theory_seeds.load(tmp_path, ["s0", "s1", "s2"])


def test_theory_seeds_reads_the_exponent_at_quarters_of_training_from_each_runs_data(tmp_path):
    from selfsup.theory import seeds as theory_seeds
    step = np.arange(0, 391, 10)  # 40 records, the last at step 390
    for seed in range(2):
        (tmp_path / f"s{seed}").mkdir()
        exponent = 0.1 * (seed + 1) + step / 1000.0  # a known path per seed
        np.savez(tmp_path / f"s{seed}" / "data.npz", **{"simsiam-wd0.0005__step": step,
                                                       "simsiam-wd0.0005__exponent": exponent,
                                                       "sweep__wds": np.array([5e-4])})
    rows = theory_seeds.exponent_rows(tmp_path, ["s0", "s1"])
    # nearest records to 97.5, 195, 292.5 and 390: steps 100, 190 (190 and 200 are equidistant: argmin takes
    # the first), 290, 390
    assert rows["simsiam-wd0.0005"]["steps"] == [100, 190, 290, 390]
    np.testing.assert_allclose(rows["simsiam-wd0.0005"]["exponent"][-1], [0.1 + 0.39, 0.2 + 0.39])
    reports = [_fake_report(s, np.random.default_rng(s)) for s in range(2)]
    text = theory_seeds.markdown(reports, rows)
    assert "| simsiam-wd0.0005 | 0.25 ± 0.07 | 0.34 ± 0.07 | 0.44 ± 0.07 | 0.54 ± 0.07 |" in text
    assert theory_seeds.exponent_rows(tmp_path, ["s0", "missing"]) == {}


def test_one_flag_generator_parses_tuple_fields_and_the_name_alias(capsys):
    import argparse

    from selfsup.config import add_flags, from_args
    parser = argparse.ArgumentParser()
    add_flags(parser, tcm.TheoryConfig())
    for argv in (["--name", "a"], ["--run-name", "a"]):
        tc = from_args(parser.parse_args([*argv, "--wds", "0.1, 0.2", "--methods", "simsiam,phinet"]),
                       tcm.TheoryConfig())
        assert (tc.name, tc.wds, tc.methods) == ("a", (0.1, 0.2), ("simsiam", "phinet"))
    assert from_args(parser.parse_args([]), tcm.TheoryConfig()) == tcm.TheoryConfig()
    with pytest.raises(SystemExit) as e:
        tcm.main(["--smoke", "--wds", "0.1,x"])
    assert e.value.code == 2 and "comma-separated list of float" in capsys.readouterr().err


def test_python_m_selfsup_theory_refuses_bad_flags_in_one_line():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "selfsup.theory", "--smoke", "--wds", "0.1,x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "comma-separated list of float" in r.stderr.strip().splitlines()[-1]


def test_the_cifar10_preset_points_train_in_the_cifar10_cpu_regime_with_a_linear_predictor(tmp_path):
    from selfsup.config import preset
    tc = tcm.TheoryConfig(**tcm.THEORY_PRESETS["cifar10-cpu"], data_dir=str(tmp_path), out_dir=str(tmp_path))
    cfg = tcm.train_config(tc, "phinet", 0.1)
    recipe = preset("cifar10-cpu")
    for k in ("arch", "crop_min", "flip_p", "jitter", "jitter_p", "gray_p", "knn_k", "eval_images",
              "max_images", "width", "epochs", "warmup_epochs", "proj_hidden"):
        assert getattr(cfg, k) == getattr(recipe, k), k
    assert (cfg.predictor, cfg.proj_dim, cfg.wd, cfg.method) == ("linear", 64, 0.1, "phinet")
    assert cfg.dataset == "cifar10"
    assert tcm.train_config(tcm.TheoryConfig(), "simsiam", 0.1).knn_k == 20  # mnist5k without a preset


def test_an_unknown_preset_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        tcm.main(["--smoke", "--preset", "cifar11"])
    assert e.value.code == 2 and "preset='cifar11' is unknown" in capsys.readouterr().err
