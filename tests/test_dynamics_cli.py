"""The command-line contract of README.md, in subprocesses: JSON fields, numbers, and one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest


def _run(module, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_analysis_cli_json_contract_with_tian21_numbers():
    proc = _run("dynamics.analysis", "--method", "simsiam", "--sigma2", "0.5", "--tau", "1", "--alpha-p", "1",
                "--wd", "0.05", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["collapse_wd"] == pytest.approx(1 / 6, rel=1e-12)
    fps = out["fixed_points"]
    assert [fp["p"] for fp in fps] == pytest.approx([0.0, 0.054447, 0.612220], abs=5e-7)
    assert [fp["stable"] for fp in fps] == [True, False, True]
    for fp in fps:
        assert set(fp) == {"p", "s", "eigenvalues", "stable"}
        assert fp["eigenvalues"] == sorted(fp["eigenvalues"])
    # at p_+: {-p_+ sqrt(tau^2 - 4 eta c), -2 eta} = {-0.612220 sqrt(0.7), -0.1}
    assert fps[2]["eigenvalues"] == pytest.approx([-0.612220 * np.sqrt(0.7), -0.1], abs=1e-6)


def phinet_threshold_by_hand(lam, sigma2=0.5, l=1.0, tau=1.0, alpha_p=1.0, alpha_g=1.0):
    """PhiNet's collapse weight decay, derived by hand from its loss (docs/theory.md section 2), not
    from dynamics: per mode, `L = 1/2 E(p w x1 - tau w x2)^2 + lam/2 E(g p w x1 - tau w x0)^2` with the
    targets held fixed gives `ds/dt = 2 s [p (tau l - c p) + lam q (tau l - c q)] - 2 eta s`
    (q = g p, c = l + sigma2); `dp/dt = 0` with `ds/dt = 0` gives `s = p^2 / alpha_p` (the balance
    law) and `dg/dt = 0` gives `g = alpha_g lam tau l p s / (eta + alpha_g lam c p^2 s)`. A
    non-collapsed fixed point exists while `max_p H(p; eta) >= eta`, H the bracket above; the threshold
    is the eta where that maximum touches eta (a bounded maximisation inside a brentq on eta)."""
    from scipy.optimize import brentq, minimize_scalar

    c = l + sigma2

    def H(p, eta):
        s = p * p / alpha_p
        q = p * alpha_g * lam * tau * l * p * s / (eta + alpha_g * lam * c * p * p * s)
        return p * (tau * l - c * p) + lam * q * (tau * l - c * q)

    def margin(eta):
        grid = np.linspace(1e-6, tau * l / c, 4001)
        k = int(np.argmax(H(grid, eta)))
        best = minimize_scalar(lambda p: -H(p, eta), bounds=(grid[max(k - 1, 0)], grid[min(k + 1, 4000)]),
                               method="bounded", options={"xatol": 1e-13})
        return -best.fun - eta

    simsiam = tau**2 * l**2 / (4 * c)
    return brentq(margin, simsiam, (1 + lam) * simsiam, xtol=1e-14)


def test_phinet_threshold_by_hand_matches_the_values_quoted_in_the_issue():
    # issue 26: PhiNet collapse thresholds 0.18818 / 0.25585 / 0.41679 at lam = 0.5 / 1 / 2 (sigma2 = 0.5)
    for lam, quoted in ((0.5, 0.18818), (1.0, 0.25585), (2.0, 0.41679)):
        assert phinet_threshold_by_hand(lam) == pytest.approx(quoted, abs=5e-6)


def test_analysis_cli_phinet_reports_g_and_a_higher_threshold():
    out = json.loads(_run("dynamics.analysis", "--method", "phinet", "--sigma2", "0.5", "--wd", "0.05",
                          "--lam", "1", "--alpha-g", "1", "--json").stdout)
    assert out["collapse_wd"] == pytest.approx(phinet_threshold_by_hand(1.0), rel=1e-8)
    assert 1 / 6 < out["collapse_wd"] < 1 / 3  # above SimSiam's tau^2/(4c), below (1 + lam) times it
    assert all("g" in fp for fp in out["fixed_points"])


def test_simulate_reduced_json_contract(tmp_path):
    # p0 = 0.06 starts above the saddle p_- = 0.054447 (on the parabola s = p^2): survives at p_+;
    # p0 = 0.05 starts below it: collapses.
    proc = _run("dynamics.simulate", "--method", "simsiam", "--level", "reduced", "--p0", "0.06,0.05",
                "--s0", "0.0036,0.0025", "--sigma2", "0.5", "--wd", "0.05", "--t-max", "2000", "--json",
                "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    modes = json.loads(proc.stdout)["modes"]
    assert [(m["p0"], m["s0"]) for m in modes] == [(0.06, 0.0036), (0.05, 0.0025)]
    assert [m["collapsed"] for m in modes] == [False, True]
    assert (modes[0]["p"], modes[0]["s"]) == pytest.approx((0.612220, 0.612220**2), abs=1e-6)
    assert abs(modes[1]["p"]) < 1e-9 and modes[1]["s"] < 1e-9
    for name in ("config.json", "summary.json", "simsiam.npz", "modes.png"):
        assert (tmp_path / "run" / name).exists()
    prov = json.loads((tmp_path / "run" / "config.json").read_text())["provenance"]  # as the trainers
    from importlib import metadata
    assert prov["versions"]["jax"] == metadata.version("jax") and prov["device_count"] >= 1
    assert prov["versions"]["diffrax"] == metadata.version("diffrax") and "git_dirty" in prov


@pytest.mark.parametrize("level", ["matrix", "sgd"])
def test_simulate_matrix_and_sgd_levels_report_modes_from_the_eigendecomposition(tmp_path, level):
    # Isotropic sigma2 = 0.5, wd = 0.05: every mode that survives sits at p_+ = 0.612220, s = p_+^2.
    extra = ["--lr", "0.05", "--batch", "0"] if level == "sgd" else []
    proc = _run("dynamics.simulate", "--method", "simsiam", "--level", level, "--dim", "3", "--seed", "1",
                "--sigma2", "0.5", "--wd", "0.05", "--t-max", "300", "--json", "--no-plot",
                "--out", str(tmp_path / level), *extra)
    assert proc.returncode == 0, proc.stderr
    modes = json.loads(proc.stdout)["modes"]
    assert len(modes) == 3 and all({"p0", "s0", "p", "s", "collapsed"} <= set(m) for m in modes)
    tol = 1e-6 if level == "matrix" else 0.02  # sgd: Euler error O(lr) at lr = 0.05
    for m in modes:
        assert m["collapsed"] or (m["p"], m["s"]) == pytest.approx((0.612220, 0.374813), abs=tol)


@pytest.mark.parametrize("args, needle", [
    (["dynamics.analysis", "--method", "nope"], "'nope'"),
    (["dynamics.analysis", "--method", "simsiam", "--wd", "-0.1"], "'-0.1'"),
    (["dynamics.analysis", "--method", "simsiam", "--sigma2", "-1"], "'-1'"),
    (["dynamics.analysis", "--method", "simsiam", "--sigma2", "abc"], "'abc' is not a number"),
    (["dynamics.analysis", "--method", "simsiam", "--lam", "2"], "--lam"),
    (["dynamics.simulate", "--method", "nope"], "'nope'"),
    (["dynamics.simulate", "--wd", "-1"], "'-1'"),
    (["dynamics.simulate", "--sigma2", "-0.5"], "'-0.5'"),
    (["dynamics.simulate", "--level", "reduced", "--p0", "0.1,0.2", "--s0", "0.1,0.2,0.3", "--sigma2", "0.5"],
     "different lengths"),
    (["dynamics.simulate", "--level", "reduced", "--p0", "0.1,x"], "'x' is not a number"),
    (["dynamics.simulate", "--level", "matrix", "--p0", "0.1"], "--p0"),
    (["dynamics.simulate", "--level", "reduced", "--method", "simsiam-nopred,directpred,nope"], "'nope'"),
    (["dynamics.simulate", "--method", "directpred", "--setter", "cosine"], "'cosine'"),
    (["dynamics.simulate", "--method", "simsiam", "--setter", "normalised"], "--setter normalised"),
    (["dynamics.simulate", "--loss", "l1"], "'l1'"),
    (["dynamics.simulate", "--loss", "cosine"], "--loss cosine"),
    (["dynamics.simulate", "--loss", "cosine", "--level", "reduced"], "--level reduced"),
    (["dynamics.simulate", "--loss", "cosine", "--level", "sgd", "--batch", "0"], "--batch 0"),
    (["dynamics.simulate", "--level", "sgd", "--momentum", "1"], "--momentum 1"),
    (["dynamics.simulate", "--level", "matrix", "--momentum", "0.9"], "--momentum"),
    (["dynamics.analysis", "--method", "simsiam-scaled", "--alpha-g", "2"], "--alpha-g"),
])
def test_bad_input_exits_2_with_one_line_naming_the_value(args, needle, tmp_path):
    proc = _run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert "allowed" in lines[0] or "choose from" in lines[0], lines
    assert proc.stdout == "" and not (tmp_path / "runs").exists()


def test_simulate_flags_are_simconfig_fields_with_its_defaults_and_reach_the_config():
    """`python -m dynamics.simulate` builds its numeric flags from `SimConfig`'s fields (help, bound and
    default from the dataclass): unset, they resolve to the dataclass defaults; set, each reaches its field;
    every other flag is a spectrum, start, selection or output option."""
    import dataclasses

    from dynamics import simulate
    from dynamics.runs import REDUCED_START, SimConfig
    ap = simulate.build_parser()
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    dests = {a.dest for a in ap._actions} - {"help"}
    others = {"method", "level", "lambdas", "sigma2", "t_max", "setter", "dim", "out_dir", "name", "out",
              "overwrite", "json", "no_plot", *REDUCED_START}
    assert dests - others <= set(fields), dests - others - set(fields)
    _, cfg = simulate.resolve(ap, ap.parse_args(["--level", "sgd"]))
    for name, f in fields.items():
        if f.default is not dataclasses.MISSING and name not in REDUCED_START:
            assert getattr(cfg, name) == f.default, name
    flagged = [n for n in dests - others if "help" in fields[n].metadata]
    assert {"alpha_p", "lam", "beta", "eps", "rho", "s_tol", "n_save", "seed", "lr", "batch"} <= set(flagged)
    other = {n: (fields[n].default + 1 if isinstance(fields[n].default, int) else fields[n].default * 1.5)
             for n in flagged}
    other.update(loss="cosine", momentum=0.5)  # the sgd level's choice flags, defaults from SimConfig too
    argv = ["--level", "sgd", "--method", "byol"]
    for n, v in other.items():
        argv += ["--" + n.replace("_", "-"), str(v)]
    _, cfg = simulate.resolve(ap, ap.parse_args(argv))
    for n, v in other.items():
        assert v != fields[n].default and getattr(cfg, n) == (v if n == "loss" else pytest.approx(v)), n
