"""Evaluation of a trained encoder: kNN monitor, linear probe, collapse metrics.

Public API
----------
``embed(config, info, params, stats, images, *, batch_size=500) -> (h, z)``: backbone features h (B, F) and
projector outputs z (B, d) of uint8 images, BN in inference mode, one compiled function per shape.
``knn_accuracy(train_h, train_y, test_h, test_y, *, k=200, t=0.1, num_classes)``: weighted kNN on
L2-normalised features, cosine similarity, class score = sum over the k nearest of exp(sim / t).
``linear_probe(train_h, train_y, test_h, test_y)``: test accuracy of a multinomial logistic regression
on standardised frozen features (``selfsup.probe``: the package's one probe).
``feature_scores(...)``: ``knn_acc`` (config's k), ``knn_acc_k20``, ``knn_acc_k200``, ``linear_acc``,
``linear_acc_10pc`` (10 labels per class, fixed seed) of one set of features, and ``linear_acc_10pc_draws``:
the same probe on ``FEW_LABEL_DRAWS`` label draws (seeds 0, 1, ...; the first is ``linear_acc_10pc``'s), whose
mean varies less between runs than the one fixed draw.
``reestimate_bn(config, info, params, stats, images, *, batch_size=500) -> stats``: BN running statistics
re-estimated on uint8 ``images``: training-mode passes on the evaluation view in equal chunks, no gradient
and no parameter change; each BN's running mean / variance is the average over the chunks of its batch mean
/ (biased, as flax keeps it) batch variance (PyTorch's cumulative ``momentum=None`` re-estimation). With one
chunk the running mean is exactly the mean of that BN's input over the images.
``baselines(config, info, dataset)``: those scores for raw pixels and for the untrained encoder, twice:
``random_init`` with BN statistics re-estimated on the training images (``reestimate_bn``: the fair
reference every margin is taken against) and ``random_init_bn_init`` with BN's initial running statistics
(mean 0, variance 1: the number reported before; kept for continuity).
``output_std(z)``: mean over dimensions of the std over the batch of z / ||z||; about 1/sqrt(d) for
well-spread outputs, 0 when collapsed (SimSiam paper, Fig. 2).
``effective_rank(z)``: exp of the entropy of the normalised eigenvalues of the output covariance
(Roy & Vetterli 2007): d for isotropic outputs, 1 when they lie on a line, 0 when they do not vary.
``evaluate(config, info, params, stats, dataset, *, probe=True) -> dict``: the scores and collapse metrics
on a ``data.Dataset`` (kNN memory = the training images of ``eval_train``: all, or the first
``config.eval_images``; queries = test images; collapse metrics on test outputs).
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from selfsup import augment, nets, probe


@lru_cache(maxsize=16)
def _embed_fn(config: Any, info: Any):
    enc = nets.build(config).encoder

    @jax.jit
    def f(params, stats, images):
        x = augment.eval_view(images, info.mean, info.std)
        return nets.apply(enc, params, stats, x, False)[0]
    return f


def embed(config, info, params, stats, images, *, batch_size: int = 500):
    """Backbone features and projector outputs of uint8 ``images`` (N, H, W, C), as numpy float32."""
    f = _embed_fn(config, info)
    n = len(images)
    bs = min(batch_size, n)
    hs, zs = [], []
    for i in range(0, n, bs):
        chunk = np.asarray(images[i:i + bs])
        pad = bs - len(chunk)
        if pad:  # keep one compiled shape
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        h, z = f(params, stats, chunk)
        hs.append(np.asarray(h)[: bs - pad])
        zs.append(np.asarray(z)[: bs - pad])
    return np.concatenate(hs), np.concatenate(zs)


def _unit(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # no gradients taken here


@partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_scores(train_h, train_y, test_h, k, t, num_classes):
    sim = _unit(test_h) @ _unit(train_h).T
    top, idx = jax.lax.top_k(sim, k)
    w = jnp.exp(top / t)
    return (jax.nn.one_hot(train_y[idx], num_classes) * w[..., None]).sum(1)


def knn_accuracy(train_h, train_y, test_h, test_y, *, k: int = 200, t: float = 0.1, num_classes: int,
                 chunk: int = 500) -> float:
    """Fraction of test points whose exp(cos / t)-weighted vote over the k nearest train points is right;
    ``k`` larger than the memory bank raises ``ValueError`` (never clamped silently)."""
    if not 1 <= k <= len(train_h):
        raise ValueError(f"knn_k={k} is invalid: must be between 1 and the {len(train_h)} images of the kNN "
                         "memory bank")
    train_h, train_y = jnp.asarray(train_h, jnp.float32), jnp.asarray(train_y)
    preds = [np.asarray(_knn_scores(train_h, train_y, jnp.asarray(test_h[i:i + chunk], jnp.float32), k, t,
                                    num_classes)).argmax(-1) for i in range(0, len(test_h), chunk)]
    return float((np.concatenate(preds) == np.asarray(test_y)).mean())


def linear_probe(train_h, train_y, test_h, test_y, *, num_classes: int | None = None) -> float:
    """Test accuracy of logistic regression on standardised frozen features (``selfsup.probe``, the package's
    one probe: scikit-learn's default objective, solved by L-BFGS in JAX)."""
    k = int(num_classes or max(np.max(train_y), np.max(test_y)) + 1)
    return probe.linear_probe(train_h, train_y, test_h, test_y, num_classes=k)


def few_label_indices(y, per_class: int = 10, *, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` training examples of every class, drawn with a fixed seed (sorted)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    idx = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(idx))


FEW_LABEL_DRAWS = 5


def feature_scores(htr, ytr, hte, yte, *, num_classes: int, knn_k: int, knn_t: float,
                   probe_: bool = True) -> dict:
    """The accuracy fields of ``summary.json`` for one set of frozen features: ``knn_acc`` (k = knn_k),
    ``knn_acc_k20``, ``knn_acc_k200``, ``linear_acc`` (all training labels), ``linear_acc_10pc`` (10 labels
    per class, ``few_label_indices(seed=0)``), ``linear_acc_10pc_draws`` (seeds 0 .. FEW_LABEL_DRAWS - 1)."""
    knn = lambda k: knn_accuracy(htr, ytr, hte, yte, k=k, t=knn_t, num_classes=num_classes)
    # the fixed-k columns are None where the bank holds fewer images than k
    out = {"knn_acc": knn(knn_k), **{f"knn_acc_k{k}": knn(k) if k <= len(htr) else None for k in (20, 200)}}
    if probe_:
        out["linear_acc"] = linear_probe(htr, ytr, hte, yte, num_classes=num_classes)
        y, draws = np.asarray(ytr), []
        for seed in range(FEW_LABEL_DRAWS):  # one shape: one compiled fit for all draws
            few = few_label_indices(y, 10, seed=seed)
            draws.append(linear_probe(htr[few], y[few], hte, yte, num_classes=num_classes))
        out["linear_acc_10pc"], out["linear_acc_10pc_draws"] = draws[0], draws
    return out


def output_std(z) -> float:
    """mean_j std_b (z_b / ||z_b||)_j."""
    return float(np.asarray(_unit(jnp.asarray(z, jnp.float32))).std(0).mean())


def effective_rank(z) -> float:
    """exp(-sum_j q_j log q_j), q = eigenvalues of the covariance of z normalised to sum 1; 0.0 when z does
    not vary at all (complete collapse to a point, which has no direction: not the 1.0 of a line)."""
    z = np.asarray(z, np.float64)
    lam = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0, None)
    if not lam.sum() > 0:
        return 0.0
    q = lam / lam.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def eval_train(config, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The labelled training images the scores use (kNN memory bank, probes' training set): the first
    ``config.eval_images`` (0: all) of ``dataset.x_train`` / ``y_train``."""
    n = getattr(config, "eval_images", 0) or len(dataset.x_train)
    return dataset.x_train[:n], dataset.y_train[:n]


def evaluate(config, info, params, stats, dataset, *, probe: bool = True) -> dict:
    """``feature_scores`` of the backbone features (kNN memory = ``eval_train``'s images, queries = test
    images) and the collapse metrics of the test images' projector outputs."""
    xtr, ytr = eval_train(config, dataset)
    htr, _ = embed(config, info, params, stats, xtr)
    hte, zte = embed(config, info, params, stats, dataset.x_test)
    out = feature_scores(htr, ytr, hte, dataset.y_test, num_classes=dataset.num_classes,
                         knn_k=config.knn_k, knn_t=config.knn_t, probe_=probe)
    return {**out, "out_std": output_std(zte), "out_std_healthy": float(1 / np.sqrt(zte.shape[1])),
            "erank": effective_rank(zte)}


def pixel_features(images, mean, std) -> np.ndarray:
    """Raw pixels as features: the normalised image, flattened (the evaluation view of ``embed``)."""
    return np.asarray(augment.eval_view(jnp.asarray(images), mean, std)).reshape(len(images), -1)


@lru_cache(maxsize=16)
def _bn_pass_fn(config: Any, info: Any):
    enc = nets.build(config).encoder
    momentum = nets.BN_MOMENTUM

    @jax.jit
    def f(params, stats, images):
        # from zero statistics one update leaves (1 - momentum) * the batch statistics
        zero = jax.tree.map(jnp.zeros_like, stats)
        _, new = nets.apply(enc, params, zero, augment.eval_view(images, info.mean, info.std), True)
        return jax.tree.map(lambda s: s / (1.0 - momentum), new)
    return f


def reestimate_bn(config, info, params, stats, images, *, batch_size: int = 500):
    """See the module docstring. The chunks are ``images[i * b:(i + 1) * b]`` with ``b = min(batch_size,
    len(images))``; a last incomplete chunk is left out so that every chunk weighs the same."""
    n = len(images)
    if n == 0:
        raise ValueError("reestimate_bn needs at least one image")
    bs = min(batch_size, n)
    f, total = _bn_pass_fn(config, info), None
    for i in range(n // bs):
        batch = f(params, stats, np.asarray(images[i * bs:(i + 1) * bs]))
        total = batch if total is None else jax.tree.map(jnp.add, total, batch)
    return jax.device_get(jax.tree.map(lambda t: t / (n // bs), total))


def baselines(config, info, dataset, *, probe: bool = True) -> dict:
    """The same scores for the references every trained encoder must beat, on the same split: ``pixels``,
    and the untrained encoder of ``init_state(config, key(seed))``, scored with BN statistics re-estimated on
    the training images (``random_init``, the fair reference) and with its initial BN statistics
    (``random_init_bn_init``)."""
    from selfsup.step import init_state
    st = init_state(config, jax.random.key(config.seed), info)
    params, stats0 = st.params["encoder"], st.batch_stats["encoder"]
    n = min(len(dataset.x_train), config.max_images) if config.max_images else len(dataset.x_train)
    stats = reestimate_bn(config, info, params, stats0, dataset.x_train[:n])
    rnd = evaluate(config, info, params, stats, dataset, probe=probe)
    rnd0 = evaluate(config, info, params, stats0, dataset, probe=probe)
    xtr, ytr = eval_train(config, dataset)
    px = [pixel_features(x, info.mean, info.std) for x in (xtr, dataset.x_test)]
    pix = feature_scores(px[0], ytr, px[1], dataset.y_test, num_classes=dataset.num_classes,
                         knn_k=config.knn_k, knn_t=config.knn_t, probe_=probe)
    return {"random_init": rnd, "random_init_bn_init": rnd0, "pixels": pix}
