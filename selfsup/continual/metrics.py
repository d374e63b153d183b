"""Continual-learning metrics on the accuracy matrix R (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).

``R[i, j]`` is the accuracy on task j's test data after training on tasks 0..i (i, j < T); rows before a
task is learned (j > i) are kept: they measure forward transfer of a self-supervised representation.

Public API
----------
``average_accuracy(R) = mean_j R[T-1, j]``: the final accuracy averaged over tasks.
``forgetting_per_task(R)``: (T-1,) ``f_j = max_{k < T-1} R[k, j] - R[T-1, j]`` for j < T-1 (the last task
cannot have been forgotten); the max runs over every earlier evaluation, as in docs/methods.md section 4.
``forgetting(R)``: the mean of ``forgetting_per_task`` (0 for a single task).
``backward_transfer(R) = mean_{j < T-1} (R[T-1, j] - R[j, j])``: negative when learning later tasks hurts.
``summarize(R) -> dict``: all of the above as plain floats / lists (for JSON).
"""
from __future__ import annotations

import numpy as np


def _check(R) -> np.ndarray:
    R = np.asarray(R, np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a square (T, T) matrix with T >= 1, got shape {R.shape}")
    return R


def average_accuracy(R) -> float:
    return float(_check(R)[-1].mean())


def forgetting_per_task(R) -> np.ndarray:
    R = _check(R)
    return R[:-1, :-1].max(0) - R[-1, :-1] if len(R) > 1 else np.zeros(0)


def forgetting(R) -> float:
    f = forgetting_per_task(R)
    return float(f.mean()) if f.size else 0.0


def backward_transfer(R) -> float:
    R = _check(R)
    return float((R[-1, :-1] - np.diag(R)[:-1]).mean()) if len(R) > 1 else 0.0


def summarize(R) -> dict:
    R = _check(R)
    return {"R": R.tolist(), "average_accuracy": average_accuracy(R), "forgetting": forgetting(R),
            "forgetting_per_task": forgetting_per_task(R).tolist(), "backward_transfer": backward_transfer(R)}
