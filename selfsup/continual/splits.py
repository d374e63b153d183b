"""Class-incremental task splits: the classes of a dataset cut into T disjoint tasks with a fixed seed.

Public API
----------
``class_split(num_classes, tasks, seed=0) -> tuple[np.ndarray, ...]``: the classes permuted with
``jax.random.permutation(fold_in(key(seed), 0), num_classes)`` and cut into ``tasks`` contiguous groups whose
sizes differ by at most one (``np.array_split``); each group is sorted. Disjoint, and together all classes.
``task_indices(labels, classes) -> np.ndarray``: positions of the samples whose label is in ``classes``,
in their original order.
``task_of_class(split, num_classes) -> np.ndarray``: (num_classes,) int, the task each class belongs to.
"""
from __future__ import annotations

import jax
import numpy as np


def class_split(num_classes: int, tasks: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Disjoint, covering groups of class ids, one per task (sizes differ by at most one)."""
    if not 1 <= tasks <= num_classes:
        raise ValueError(f"tasks={tasks} is invalid: must be between 1 and the {num_classes} classes")
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(seed), 0), num_classes))
    return tuple(np.sort(g).astype(np.int32) for g in np.array_split(perm, tasks))


def task_indices(labels, classes) -> np.ndarray:
    """Indices i with labels[i] in classes, ascending."""
    return np.flatnonzero(np.isin(np.asarray(labels), np.asarray(classes)))


def task_of_class(split, num_classes: int) -> np.ndarray:
    """t[c] = the task that holds class c."""
    out = np.full(num_classes, -1, np.int32)
    for t, classes in enumerate(split):
        out[np.asarray(classes)] = t
    if (out < 0).any():
        raise ValueError(f"classes {np.flatnonzero(out < 0).tolist()} belong to no task of the split")
    return out
