"""Run folders (selfsup.rundir): refusal naming the differing fields, --resume / --overwrite, the lock
(second writer refused, stale lock taken over), truncated checkpoints, recorded versions, flag aliases."""
import dataclasses
import json
import os
import socket
import subprocess
import sys
from importlib import metadata

import jax
import pytest

from selfsup import data, rundir
from selfsup.config import Config
from selfsup.train import main, train


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist5k")


def _argv(tmp_path, *extra):
    return ["--smoke", "--max-images", "64", "--batch-size", "32", "--no-progress",
            "--out-dir", str(tmp_path), "--run-name", "r", *extra]


def _cli(capsys, argv) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of ``python -m selfsup.train argv``, run in this process."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


# ----------------------------------------------------------------------------- pure functions

def test_config_diff_names_nested_fields_and_ignores_what_does_not_change_results():
    saved = {"lr": 0.1, "progress": True, "out_dir": "a", "git_sha": "x", "provenance": {"jax": "1"},
             "train": {"epochs": 2, "progress": True, "wds": [1, 2]}, "gone": 1}
    new = {"lr": 0.2, "progress": False, "out_dir": "b", "train": {"epochs": 3, "progress": False,
                                                                   "wds": (1, 2)}, "added": 0}
    assert rundir.config_diff(saved, new) == ["added", "gone", "lr", "train.epochs"]
    assert rundir.config_diff(saved, new, ignore=rundir.IGNORED | {"lr", "train", "gone", "added"}) == []
    text = rundir.describe_diff(saved, new, ["lr", "train.epochs", "added"])
    assert text == "lr: 0.1 -> 0.2, train.epochs: 2 -> 3, added: '<absent>' -> 0"


def test_policy_refuses_a_held_folder_unless_resume_or_overwrite(tmp_path):
    cfg = {"lr": 0.1, "epochs": 2}
    rundir.check(tmp_path, cfg)  # an empty folder holds no run
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "git_sha": "old"}))
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(rundir.RunFolderError, match="already holds a run with this config"):
        rundir.check(tmp_path, cfg)
    rundir.check(tmp_path, cfg, resume=True)  # same config: continue
    with pytest.raises(rundir.RunFolderError, match=r"different config \(lr: 0.1 -> 0.3\)"):
        rundir.check(tmp_path, {**cfg, "lr": 0.3}, resume=True)
    with pytest.raises(rundir.RunFolderError, match="exclude each other"):
        rundir.check(tmp_path, cfg, resume=True, overwrite=True)
    rundir.check(tmp_path, {**cfg, "lr": 0.3}, overwrite=True)
    assert list(tmp_path.iterdir()) == []  # the old run's files are gone


def test_lock_refuses_a_second_writer_and_is_released_even_when_the_body_raises(tmp_path):
    with rundir.RunLock(tmp_path) as lock:
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(rundir.RunFolderError, match=f"in use by pid {os.getpid()}"):
            rundir.RunLock(tmp_path).acquire()
    assert not (tmp_path / rundir.LOCK_NAME).exists()
    with pytest.raises(KeyError):
        with rundir.open_run(tmp_path, {"a": 1}):
            raise KeyError("boom")
    assert not (tmp_path / rundir.LOCK_NAME).exists()


def test_stale_locks_are_taken_over_and_live_or_foreign_ones_are_not(tmp_path):
    path = tmp_path / rundir.LOCK_NAME
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is now dead on this host
    assert not rundir.pid_alive(child.pid) and rundir.pid_alive(os.getpid())
    path.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))
    with rundir.RunLock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    path.write_text(json.dumps({"pid": child.pid, "host": "another-host.invalid"}))  # pid unknowable there
    with pytest.raises(rundir.RunFolderError, match="another-host.invalid"):
        rundir.RunLock(tmp_path).acquire()
    path.write_text("")  # a writer that died between creating and filling its lock ...
    with pytest.raises(rundir.RunFolderError):  # ... looks held while young
        rundir.RunLock(tmp_path).acquire()
    old = path.stat().st_mtime - rundir.EMPTY_LOCK_S - 5
    os.utime(path, (old, old))
    with rundir.RunLock(tmp_path):  # and stale once older than EMPTY_LOCK_S
        assert json.loads(path.read_text())["pid"] == os.getpid()


# ----------------------------------------------------------------------------- the trainers

def test_cli_refuses_another_config_naming_the_fields_and_resume_overwrite_work(tmp_path, capsys):
    assert _cli(capsys, _argv(tmp_path))[0] == 0
    run = tmp_path / "r"
    first = (run / "metrics.jsonl").read_text()
    code, err = _cli(capsys, _argv(tmp_path, "--lr", "0.2", "--width", "4"))
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert str(run) in err[0] and "lr: 1.0 -> 0.2" in err[0] and "width: 8 -> 4" in err[0]
    code, err = _cli(capsys, _argv(tmp_path))  # the same config without --resume: refused too
    assert code == 2 and len(err) == 1 and "--resume" in err[0]
    code, err = _cli(capsys, _argv(tmp_path, "--lr", "0.2", "--resume"))
    assert code == 2 and "lr: 1.0 -> 0.2" in err[0]
    code, err = _cli(capsys, _argv(tmp_path, "--resume", "--overwrite"))
    assert code == 2 and "exclude each other" in err[-1]
    assert (run / "metrics.jsonl").read_text() == first  # nothing the refusals touched
    assert _cli(capsys, _argv(tmp_path, "--resume"))[0] == 0  # finished: no epoch trained again
    assert (run / "metrics.jsonl").read_text() == first
    (run / "stale.txt").write_text("from the old run")
    assert _cli(capsys, _argv(tmp_path, "--overwrite", "--lr", "0.2"))[0] == 0
    assert json.loads((run / "config.json").read_text())["lr"] == 0.2
    assert not (run / "stale.txt").exists() and not (run / rundir.LOCK_NAME).exists()


def test_resume_continues_an_interrupted_run_after_its_last_epoch(tmp_path, mnist):
    cfg = Config.smoke(max_images=64, batch_size=32, epochs=2, out_dir=str(tmp_path))

    class Interrupt(Exception):
        pass

    def stop(epoch, state, record):
        raise Interrupt
    with pytest.raises(Interrupt):
        train(cfg, dataset=mnist, on_epoch=stop)
    assert not (tmp_path / cfg.name / rundir.LOCK_NAME).exists()  # released on the exception
    epochs = []
    _, summary = train(cfg, dataset=mnist, resume=True, on_epoch=lambda e, s, r: epochs.append(e))
    assert epochs == [1] and summary["epochs"] == 2


def test_truncated_checkpoint_on_resume_exits_2_naming_the_file(tmp_path, capsys):
    assert _cli(capsys, _argv(tmp_path))[0] == 0
    ckpt = tmp_path / "r" / "checkpoint.msgpack"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    code, err = _cli(capsys, _argv(tmp_path, "--resume"))
    assert code == 2 and len(err) == 1 and str(ckpt) in err[0] and "Traceback" not in err[0]


def test_a_second_writer_is_refused_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / rundir.LOCK_NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    code, err = _cli(capsys, _argv(tmp_path))
    assert code == 2 and "in use by pid" in err[0]
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_NAME]


def test_config_json_records_versions_devices_and_git_state(tmp_path, mnist):
    cfg = Config.smoke(max_images=64, batch_size=32, out_dir=str(tmp_path))
    train(cfg, dataset=mnist)
    saved = json.loads((tmp_path / cfg.name / "config.json").read_text())
    prov = saved["provenance"]
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy"):
        assert prov["versions"][pkg] == metadata.version(pkg)
    assert prov["device_count"] == len(jax.devices()) and prov["device_kind"] == jax.devices()[0].device_kind
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    assert prov["git_sha"] == saved["git_sha"] == head
    assert isinstance(prov["git_dirty"], bool) if head else prov["git_dirty"] is None
    assert rundir.config_diff(saved, dataclasses.asdict(cfg)) == []  # provenance is not part of the config


def test_continual_online_bio_and_theory_check_refuse_another_config(tmp_path):
    from selfsup.bio import train as bio_train
    from selfsup.bio.config import BioConfig
    from selfsup.continual.config import ContinualConfig
    from selfsup.continual.continual import run_continual
    from selfsup.continual.online import OnlineConfig, run_online
    from selfsup.theory.check import TheoryConfig, run_theory_check

    def plant(folder, config: dict):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config))

    cc = ContinualConfig.smoke(out_dir=str(tmp_path / "c"))
    plant(tmp_path / "c" / cc.name, cc.replace(tasks=3).to_dict())
    with pytest.raises(rundir.RunFolderError, match="tasks: 3 -> 2"):
        run_continual(cc, resume=True)
    oc = OnlineConfig.smoke(out_dir=str(tmp_path / "o"))
    plant(tmp_path / "o" / oc.name, dataclasses.asdict(dataclasses.replace(oc, evals=5)))
    with pytest.raises(rundir.RunFolderError, match="evals: 5 -> 2"):
        run_online(oc)
    bc = BioConfig.smoke(out_dir=str(tmp_path / "b"))
    plant(tmp_path / "b" / bc.name, dataclasses.asdict(bc.replace(lr=0.5)))
    with pytest.raises(rundir.RunFolderError, match="lr: 0.5 -> 0.001"):
        bio_train.train(bc, resume=True)
    tc = TheoryConfig.smoke(out_dir=str(tmp_path / "t"))
    plant(tc.root, dataclasses.asdict(dataclasses.replace(tc, epochs=7, progress=True)))
    with pytest.raises(rundir.RunFolderError, match="epochs: 7 -> 1"):
        run_theory_check(tc)


# ----------------------------------------------------------------------------- flag spellings

def test_output_flag_aliases_parse_to_the_same_values_in_dynamics_and_selfsup(tmp_path, monkeypatch, capsys):
    from dynamics import phase
    from dynamics import simulate as sim
    from dynamics._cli import run_folder
    from selfsup.theory import check as tcm
    for build, default in ((sim.build_parser, "runs/simulate"), (phase.build_parser, "runs/phase")):
        ap = build()
        new, old = ap.parse_args(["--run-name", "x"]), ap.parse_args(["--name", "x"])
        assert vars(new) == vars(old) and new.name == "x" and new.out_dir == default
        via_out = ap.parse_args(["--out", str(tmp_path / "p" / "x")])
        split = ap.parse_args(["--out-dir", str(tmp_path / "p"), "--run-name", "x"])
        assert run_folder(via_out, "d") == run_folder(split, "d") == tmp_path / "p" / "x"
        assert run_folder(ap.parse_args([]), "d").as_posix() == f"{default}/d"
    seen = []
    monkeypatch.setattr(tcm, "run_theory_check", lambda tc, **kw: seen.append(tc) or {"headline": {}})
    for flag in ("--run-name", "--name"):
        tcm.main(["--smoke", "--out-dir", str(tmp_path), flag, "s1"])
    assert seen[0] == seen[1] and seen[0].name == "s1"
    assert "alias, kept for one release" in " ".join(sim.build_parser().format_help().split())


def test_a_field_added_later_does_not_orphan_runs_recorded_without_it():
    new = {"lr": 0.1, "dtype": "float32", "train": {"dtype": "float32", "epochs": 3}}
    old = {"lr": 0.1, "train": {"epochs": 3}}  # written before `dtype` existed
    assert rundir.config_diff(old, new) == []
    assert rundir.config_diff(old, {**new, "dtype": "bfloat16"}) == ["dtype"]  # not the recorded default
    assert rundir.config_diff({**old, "dtype": "bfloat16"}, new) == ["dtype"]


def test_resume_of_a_folder_without_a_run_is_refused_and_resume_if_present_starts_it(tmp_path, capsys):
    code, err = _cli(capsys, _argv(tmp_path, "--run-name", "typo", "--resume"))
    assert code == 2 and len(err) == 1 and str(tmp_path / "typo") in err[0] and "holds no run" in err[0]
    assert not (tmp_path / "typo" / "config.json").exists()
    assert _cli(capsys, _argv(tmp_path, "--resume-if-present"))[0] == 0  # nothing there: started
    first = (tmp_path / "r" / "metrics.jsonl").read_text()
    assert _cli(capsys, _argv(tmp_path, "--resume-if-present"))[0] == 0  # there and finished: continued
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == first
    code, err = _cli(capsys, _argv(tmp_path, "--resume", "--resume-if-present"))
    assert code == 2 and "exclude each other" in err[0]


def test_unwritable_out_dir_is_one_line_naming_the_folder(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    code, err = _cli(capsys, _argv(tmp_path / "a_file"))
    assert code == 2 and len(err) == 1 and str(tmp_path / "a_file" / "r") in err[0], err


@pytest.mark.parametrize("argv,named", [
    (["--epoch", "2"], "--epoch"),  # an abbreviation of --epochs: refused, not guessed
    (["--knn-k", "100000"], "knn_k=100000"),  # larger than the memory bank: refused, not clamped
    (["--data-dir", "/somewhere"], "data_dir='/somewhere'"),  # mnist5k reads no folder: refused, not ignored
    (["--lr", "-1"], "lr=-1.0"),  # a negative number reaches the validator
])
def test_flags_that_would_be_guessed_clamped_or_ignored_are_refused(tmp_path, capsys, argv, named):
    code, err = _cli(capsys, _argv(tmp_path, *argv))
    assert code == 2 and len(err) == 1 and named in err[0], err


def test_smoke_runs_write_under_their_own_folder():
    from selfsup.bio.config import BioConfig
    from selfsup.continual.config import ContinualConfig
    from selfsup.continual.online import OnlineConfig
    from selfsup.theory.check import TheoryConfig
    folders = [Config.smoke().out_dir, BioConfig.smoke().out_dir, ContinualConfig.smoke().train.out_dir,
               OnlineConfig.smoke().train.out_dir, TheoryConfig.smoke().out_dir]
    assert all(f.startswith("runs/smoke/") for f in folders) and len(set(folders)) == len(folders)
    assert Config().out_dir != Config.smoke().out_dir
