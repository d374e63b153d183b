"""Weight-decay sweep of SimSiam, PhiNet and X-PhiNet with a linear predictor on mnist5k: effective rank and
surviving eigenvalues of F, output std and kNN accuracy, with the linear theory's collapse thresholds.

Rebuild: ``python -m figures.theory_wd_sweep`` (runs, or reuses, the default
``python -m selfsup.theory_check --seed 0 --run-name s0`` folder runs/theory_check/s0; about 10 min on 2 CPU
cores the first time, seconds after).
"""
from pathlib import Path

from selfsup.theory import check as theory_check
from selfsup.theory import plots as theory_plots


def main() -> None:
    tc = theory_check.TheoryConfig(seed=0, name="s0")
    report = theory_check.run_theory_check(tc)
    theory_plots.wd_sweep(report, theory_check.load_arrays(tc), Path(__file__).with_suffix(".png"))


if __name__ == "__main__":
    main()
