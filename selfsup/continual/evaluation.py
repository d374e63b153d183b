"""Per-task evaluation of one encoder: kNN and linear probe over all classes, accuracy split by task.

The evaluation is class-incremental: the kNN memory and the probe's training set are all labelled training
images (every class), the classifier chooses among all classes, and task j's accuracy is the fraction of
task j's test images classified correctly. So ``R[i, j]`` measures how well the representation after task i
separates task j's classes from every other class; it needs no task identity at test time.

Public API
----------
``evaluate_tasks(config, info, params, stats, dataset, split, *, probe=True, few_label=None) -> dict``:
``knn`` and (with ``probe``) ``linear`` (all training labels) and ``linear_10pc`` (10 labels per class,
the trainer's fixed draw ``evaluate.few_label_indices(seed=0)``: far from saturating on MNIST, where the
untrained encoder's all-label probe already reaches ~96%): lists of T per-task accuracies;
``<name>_all``: accuracy on the whole test set. ``config`` is the trainer ``Config`` (architecture,
``knn_k``, ``knn_t``).
``per_task_accuracy(pred, y, split) -> list[float]``: accuracy on the samples of each task's classes.
"""
from __future__ import annotations

import numpy as np

from selfsup import evaluate as ev
from selfsup import probe
from selfsup.config import Config
from selfsup.continual import splits

_NET_FIELDS = ("arch", "width", "proj_layers", "proj_hidden", "proj_dim", "method")  # method: its projector


def per_task_accuracy(pred, y, split) -> list[float]:
    pred, y = np.asarray(pred), np.asarray(y)
    return [float((pred[i] == y[i]).mean()) for i in (splits.task_indices(y, c) for c in split)]


def _knn_predictions(htr, ytr, hte, config, num_classes) -> np.ndarray:
    import jax.numpy as jnp
    k = min(config.knn_k, len(htr))
    scores = [np.asarray(ev._knn_scores(jnp.asarray(htr), jnp.asarray(ytr), jnp.asarray(hte[i:i + 500]), k,
                                        config.knn_t, num_classes)) for i in range(0, len(hte), 500)]
    return np.concatenate(scores).argmax(-1)


def _probe_predictions(htr, ytr, hte, num_classes: int) -> np.ndarray:
    return probe.predict(htr, ytr, hte, num_classes=num_classes)  # the package's one linear probe


def evaluate_tasks(config, info, params, stats, dataset, split, *, probe: bool = True,
                   few_label: bool | None = None) -> dict:
    """Per-task kNN (and linear-probe) accuracies of the backbone features; ``few_label`` (default:
    ``probe``) adds the 10-labels-per-class probe alone."""
    net_only = Config(**{k: getattr(config, k) for k in _NET_FIELDS})  # one compiled embedding per network
    htr, _ = ev.embed(net_only, info, params, stats, dataset.x_train)
    hte, _ = ev.embed(net_only, info, params, stats, dataset.x_test)
    out = {}
    preds = {"knn": _knn_predictions(htr, dataset.y_train, hte, config, dataset.num_classes)}
    if probe:
        preds["linear"] = _probe_predictions(htr, dataset.y_train, hte, dataset.num_classes)
    if probe if few_label is None else few_label:
        few = ev.few_label_indices(dataset.y_train, 10, seed=0)
        preds["linear_10pc"] = _probe_predictions(htr[few], dataset.y_train[few], hte, dataset.num_classes)
    for name, pred in preds.items():
        out[name] = per_task_accuracy(pred, dataset.y_test, split)
        out[name + "_all"] = float((pred == dataset.y_test).mean())
    return out
