"""The dynamics CLIs never lose or silently replace results, and read every flag as written (issue 22):
simulate resumes its own command, phase refuses to replace a sweep with another config, unwritable
folders and negative numbers are one-line errors, flags are never abbreviated, help texts say what they
mean. In-process (`main(argv)`) on tiny runs, so the whole file costs a few seconds."""
import json
import os

import numpy as np
import pytest

from dynamics import analysis, phase, simulate
from dynamics._cli import Parser, number
from dynamics.methods import METHODS
from dynamics.phase_grid import PHASE_METHODS, PhaseConfig

# the run of test_dynamics_cli's reduced-level test (same compiled program: a compilation-cache hit)
REAL = ["--method", "simsiam", "--level", "reduced", "--p0", "0.06,0.05", "--s0", "0.0036,0.0025", "--sigma2",
        "0.5", "--wd", "0.05", "--t-max", "2000", "--no-plot", "--json"]
SIM = ["--method", "simsiam,phinet,byol", "--level", "reduced", "--sigma2", "0.5", "--wd", "0.05",
       "--no-plot", "--json"]
PHASE = ["--method", "simsiam", "--nx", "4", "--ny", "3", "--t-max", "20", "--no-plot", "--json"]


def _exit_2_one_line(capsys, fn, *needles):
    with pytest.raises(SystemExit) as exc:
        fn()
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and all(n in err for n in needles), err
    return err


def _counting(monkeypatch, fake=True):
    """Record which methods simulate computes; `fake`: instead of integrating, a stand-in result (these
    tests are about which methods run, not their numbers)."""
    calls, real = [], simulate._simulate_x64

    def compute(cfg, name):
        calls.append(name)
        if not fake:
            return real(cfg, name)
        ts = np.linspace(0.0, cfg.t_max, cfg.n_save)
        arrays = {"ts": ts, "s": np.full((cfg.n_save, len(cfg.s0)), len(name) / 10)}
        return arrays, {"method": name, "level": cfg.level, "surviving": len(name), "modes": []}

    monkeypatch.setattr(simulate, "_simulate_x64", compute)
    return calls


def test_simulate_same_command_twice_resumes_and_reuses_every_finished_method(tmp_path, capsys, monkeypatch):
    args = [*REAL, "--out-dir", str(tmp_path), "--run-name", "r"]
    calls = _counting(monkeypatch, fake=False)
    simulate.main(args)
    first = json.loads(capsys.readouterr().out)
    assert calls == ["simsiam"] and [m["collapsed"] for m in first["modes"]] == [False, True]
    calls.clear()
    simulate.main(args)  # was refused as "another config": a saved JSON list compared with a tuple
    assert calls == [] and json.loads(capsys.readouterr().out) == first


def test_simulate_after_an_interruption_computes_only_the_unfinished_methods(tmp_path, capsys, monkeypatch):
    args = [*SIM, "--out-dir", str(tmp_path), "--run-name", "r"]
    calls = _counting(monkeypatch)
    simulate.main(args)
    first = json.loads(capsys.readouterr().out)
    assert sorted(calls) == ["byol", "phinet", "simsiam"]
    run = tmp_path / "r"
    (run / "phinet.json").unlink()  # interrupted after phinet's arrays, before its result (written last)
    (run / "byol.npz").unlink()  # ... and before byol's arrays
    (run / "byol.json").unlink()
    (run / "summary.json").unlink()
    calls.clear()
    simulate.main(args)
    assert sorted(calls) == ["byol", "phinet"] and json.loads(capsys.readouterr().out) == first
    assert (run / "summary.json").exists() and not list(run.glob("*.tmp*"))
    calls.clear()
    simulate.main([*args[:1], "simsiam,byol", *args[2:]])  # a subset of the methods: all reused
    assert calls == [] and [r["method"] for r in json.loads(capsys.readouterr().out)["runs"]] == [
        "simsiam", "byol"]


def test_simulate_refuses_a_folder_with_another_config_naming_the_field(tmp_path, capsys, monkeypatch):
    _counting(monkeypatch)
    simulate.main([*SIM, "--out-dir", str(tmp_path), "--run-name", "r"])
    capsys.readouterr()
    other = [*SIM, "--out-dir", str(tmp_path), "--run-name", "r", "--wd", "0.04"]
    _exit_2_one_line(capsys, lambda: simulate.main(other), "another config", "differs in t_max, wd",
                     "--overwrite")
    calls = _counting(monkeypatch)
    simulate.main([*other, "--overwrite"])  # replaces: every method computed again under the new config
    assert sorted(calls) == ["byol", "phinet", "simsiam"]
    assert json.loads(capsys.readouterr().out)["config"]["sim"]["wd"] == 0.04


@pytest.fixture
def fake_sweep(monkeypatch):
    """A stand-in for the integration (these tests are about the run folder, not the numbers)."""
    from dynamics.phase_grid import axis_values

    def sweep(cfg, checkpoint=None, progress=False):
        shape = (cfg.ny, cfg.nx)
        return {"xs": axis_values(cfg, "x"), "ys": axis_values(cfg, "y"), "survivors": np.ones(shape, int),
                "phase": np.full(shape, 2, np.int8), "final": np.full(shape + (1, 2), cfg.tau),
                "steps": np.zeros(shape + (1,), int), "t_max": np.asarray(20.0)}

    monkeypatch.setattr(phase, "sweep", sweep)


def test_phase_refuses_to_replace_a_sweep_with_another_config_unless_overwrite(tmp_path, capsys, fake_sweep):
    args = [*PHASE, "--out-dir", str(tmp_path), "--run-name", "sweep"]
    phase.main([*args, "--tau", "0.9"])
    first = json.loads(capsys.readouterr().out)
    _exit_2_one_line(capsys, lambda: phase.main([*args, "--tau", "0.8"]), "another config", "differs in tau",
                     "--overwrite")
    saved = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert saved["config"]["phase"]["tau"] == 0.9 and saved["counts"] == first["counts"]  # kept intact
    assert np.all(np.load(tmp_path / "sweep" / "phase.npz")["final"] == 0.9)
    phase.main([*args, "--tau", "0.8", "--overwrite"])
    assert json.loads(capsys.readouterr().out)["config"]["phase"]["tau"] == 0.8
    phase.main([*args, "--tau", "0.8"])  # the same command again: reused, not refused
    assert json.loads(capsys.readouterr().out)["config"]["phase"]["tau"] == 0.8


def test_phase_default_folder_names_the_fixed_settings_that_differ_from_the_defaults(tmp_path, capsys,
                                                                                     fake_sweep):
    assert phase.default_run_name(PhaseConfig()) == "simsiam_wd_sigma2"
    cfg = PhaseConfig(method="phinet", lam=2.0, lambdas=(1.0, 0.5), x="wd", y="lam")
    assert phase.default_run_name(cfg) == "phinet_wd_lam_lambdas1-0.5"  # the swept lam is not named
    for tau in ("0.9", "0.8"):  # before: both went to simsiam_wd_sigma2, the second replacing the first
        phase.main([*PHASE, "--out-dir", str(tmp_path), "--tau", tau])
    capsys.readouterr()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["simsiam_wd_sigma2_tau0.8", "simsiam_wd_sigma2_tau0.9"]


def _a_file(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    return str(tmp_path / "file")


@pytest.mark.parametrize("cli, args", [(simulate, SIM), (phase, PHASE)])
def test_an_output_folder_under_a_regular_file_is_one_line_naming_it(tmp_path, capsys, cli, args):
    _exit_2_one_line(capsys, lambda: cli.main([*args, "--out-dir", _a_file(tmp_path), "--run-name", "x"]),
                     f"{tmp_path / 'file' / 'x'} cannot be written", "allowed")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("cli, args", [(simulate, SIM), (phase, PHASE)])
def test_a_read_only_output_folder_is_one_line_naming_it(tmp_path, capsys, cli, args):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _exit_2_one_line(capsys, lambda: cli.main([*args, "--out-dir", str(tmp_path), "--run-name", "ro"]),
                         f"{folder} cannot be written")
    finally:
        folder.chmod(0o700)


def test_flags_are_never_abbreviated():
    parser = Parser(prog="p")
    parser.add_argument("--wds", type=number(0.0))
    assert parser.allow_abbrev is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--wd", "1"])  # argparse's default reads this as --wds 1
    for build in (simulate.build_parser, phase.build_parser, analysis.build_parser):
        assert build().allow_abbrev is False


@pytest.mark.parametrize("build, args, needle", [
    (simulate.build_parser, ["--wd", "-1e-3"], "'-1e-3' is out of range; allowed: a number >= 0"),
    (simulate.build_parser, ["--lam", "-.5"], "'-.5' is out of range"),
    (simulate.build_parser, ["--level", "reduced", "--s0", "-1e-2,0.1"], "'-1e-2' is out of range"),
    (simulate.build_parser, ["--t-max", "-inf"], "'-inf' is out of range"),
    (simulate.build_parser, ["--momentum", "-1E-1"], "'-1E-1' is out of range"),
    (phase.build_parser, ["--wd", "-1e-3"], "'-1e-3' is out of range"),
    (phase.build_parser, ["--s-tol", "-1e-6"], "'-1e-6' is out of range"),
    (phase.build_parser, ["--nx", "-1e3"], "'-1e3' is not an integer"),
    (analysis.build_parser, ["--method", "simsiam", "--wd", "-1e-3"], "'-1e-3' is out of range"),
    (analysis.build_parser, ["--method", "simsiam", "--sigma2", "-2.5e-1"], "'-2.5e-1' is out of range"),
])
def test_negative_numbers_reach_the_validator_which_names_the_allowed_range(build, args, needle, capsys):
    # before: "expected one argument" (argparse read "-1e-3" as a flag)
    _exit_2_one_line(capsys, lambda: build().parse_args(args), needle, "allowed")


def test_negative_values_are_accepted_where_allowed():
    args = phase.build_parser().parse_args(["--x-range", "-0.2,1", "--p0", "-1e-1"])
    assert args.x_range == [-0.2, 1.0] and args.p0 == -0.1
    assert simulate.build_parser().parse_args(["--p0", "-5e-2,0.1"]).p0 == [-0.05, 0.1]


@pytest.mark.parametrize("build, methods", [(simulate.build_parser, METHODS),
                                            (phase.build_parser, PHASE_METHODS),
                                            (analysis.build_parser, ("simsiam", "phinet", "phinet-eyeg"))])
def test_help_lists_the_methods_and_never_shows_an_empty_or_copied_default(build, methods):
    text = " ".join(build().format_help().split())
    method_help = text[text.index("--method", text.index("options:")):]
    assert all(m in method_help[:400] for m in methods), method_help[:400]
    assert "(default: )" not in text and "()" not in text
    if build is phase.build_parser:
        options = text[text.index("options:"):]
        exponent = options[options.index("--exponent EXPONENT"):options.index("--lambdas LAMBDAS")]
        assert "p0^2" not in exponent and "default: none" in exponent
