"""kNN accuracy of DirectPred and DirectCopy against BYOL with a gradient-trained linear predictor (same loss,
same EMA target) on mnist5k.

Rebuild: ``python -m figures.theory_predictors`` (runs, or reuses, the default
``python -m selfsup.theory_check --seed 0 --run-name s0`` folder runs/theory_check/s0; about 10 min on 2 CPU
cores the first time, seconds after).
"""
from pathlib import Path

from selfsup.theory import check as theory_check
from selfsup.theory import plots as theory_plots


def main() -> None:
    tc = theory_check.TheoryConfig(seed=0, name="s0")
    report = theory_check.run_theory_check(tc)
    theory_plots.predictors(report, theory_check.load_arrays(tc), Path(__file__).with_suffix(".png"))


if __name__ == "__main__":
    main()
