"""p_j = u_j^T Wp u_j against the eigenvalues s_j of F at the end of training (log-log), with the fitted
exponent and the linear theory's slope 1/2 (invariant parabola, DirectPred's rule).

Rebuild: ``python -m figures.theory_ps`` (runs, or reuses, the default
``python -m selfsup.theory_check --seed 0 --run-name s0`` folder runs/theory_check/s0; about 10 min on 2 CPU
cores the first time, seconds after).
"""
from pathlib import Path

from selfsup.theory import check as theory_check
from selfsup.theory import plots as theory_plots


def main() -> None:
    tc = theory_check.TheoryConfig(seed=0, name="s0")
    report = theory_check.run_theory_check(tc)
    theory_plots.ps_scatter(report, theory_check.load_arrays(tc), Path(__file__).with_suffix(".png"))


if __name__ == "__main__":
    main()
