"""The prepared accelerator check runs end to end (its CPU smoke) and writes every number it prints."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~70 s on 2 cores; before an accelerator check: python -m pytest -m slow -k gpu_check
def test_gpu_check_tiny_writes_speed_rows_mfu_and_the_learning_run(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [r["method"] for r in res["speed"]] == ["simsiam", "byol", "phinet"]
    for r in res["speed"]:
        assert r["dtype"] == "bfloat16" and r["images_per_s"] > 0 and r["flops_per_step"] > 0
        assert 0 < r["mfu"] < 1  # FLOPs / time / the measured CPU matmul peak
    assert res["needed_images_per_s"] == 800 * 50_000 / 900
    run = res["learning_run"]
    assert 0 <= run["linear_acc_10pc"] <= 1
    # 8 steps are too few to beat the untrained encoder on a probe, but the SimSiam loss must fall: measured
    # 0.0015 -> -0.0315 (seed 0, CPU); half that fall is asserted
    assert run["loss_last"] < run["loss_first"] - 0.015, run
    assert res["provenance"]["versions"]["jax"] and "800-epoch SimSiam" in proc.stdout


def test_gpu_check_refuses_a_bad_epoch_count_in_one_line():
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--epochs", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.endswith("--epochs 0 is invalid: must be >= 1")
