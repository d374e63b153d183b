"""The theory check's figures, from one seed's folder of ``python -m selfsup.theory``.

- ``theory_alignment.png``: cos(Wp u_j, u_j) between the linear predictor and F's eigenvectors over training;
- ``theory_ps.png``: p_j = u_j^T Wp u_j against F's eigenvalues s_j at the end (log-log), with the fitted
  exponent and the linear theory's slope 1/2 (invariant parabola, DirectPred's rule);
- ``theory_wd_sweep.png``: kNN and effective rank across weight decay, with the predicted collapse thresholds;
- ``theory_predictors.png``: DirectPred and DirectCopy against a trained linear predictor.

Rebuild: ``python -m figures.theory_check`` (runs, or reuses, the default ``python -m selfsup.theory --seed 0
--run-name s0`` folder runs/theory_check/s0; about 10 min on 2 CPU cores the first time, seconds after).
"""
from pathlib import Path

from selfsup.theory import check, plots

FIGURES = {"theory_alignment": plots.alignment, "theory_ps": plots.ps_scatter,
           "theory_wd_sweep": plots.wd_sweep, "theory_predictors": plots.predictors}


def main() -> list[Path]:
    tc = check.TheoryConfig(seed=0, name="s0")
    report = check.run_theory_check(tc)
    arrays = check.load_arrays(tc)
    here = Path(__file__).parent
    paths = []
    for name, draw in FIGURES.items():
        draw(report, arrays, here / f"{name}.png")
        paths.append(here / f"{name}.png")
    return paths


if __name__ == "__main__":
    for path in main():
        print(path)
