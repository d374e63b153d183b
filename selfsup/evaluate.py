"""Evaluation of a trained encoder: kNN monitor, linear probe, collapse metrics.

Public API
----------
``embed(config, info, params, stats, images, *, batch_size=500) -> (h, z)``: backbone features h (B, F) and
projector outputs z (B, d) of uint8 images, BN in inference mode, one compiled function per shape.
``knn_accuracy(train_h, train_y, test_h, test_y, *, k=200, t=0.1, num_classes)``: weighted kNN on
L2-normalised features, cosine similarity, class score = sum over the k nearest of exp(sim / t).
``linear_probe(train_h, train_y, test_h, test_y)``: test accuracy of a multinomial logistic regression
(L-BFGS, scikit-learn) on standardised frozen features.
``output_std(z)``: mean over dimensions of the std over the batch of z / ||z||; about 1/sqrt(d) for
well-spread outputs, 0 when collapsed (SimSiam paper, Fig. 2).
``effective_rank(z)``: exp of the entropy of the normalised eigenvalues of the output covariance
(Roy & Vetterli 2007): d for isotropic outputs, 1 when they lie on a line.
``evaluate(config, info, params, stats, dataset, *, probe=True) -> dict``: all of the above on a
``data.Dataset`` (kNN memory = train images, queries = test images; collapse metrics on test outputs).
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from selfsup import augment, nets


@lru_cache(maxsize=16)
def _embed_fn(config: Any, info: Any):
    enc = nets.build(config).encoder

    @jax.jit
    def f(params, stats, images):
        x = augment.clean_view(images, info.mean, info.std)
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
    """Fraction of test points whose exp(cos / t)-weighted vote over the k nearest train points is right."""
    k = min(k, len(train_h))
    train_h, train_y = jnp.asarray(train_h, jnp.float32), jnp.asarray(train_y)
    preds = [np.asarray(_knn_scores(train_h, train_y, jnp.asarray(test_h[i:i + chunk], jnp.float32), k, t,
                                    num_classes)).argmax(-1) for i in range(0, len(test_h), chunk)]
    return float((np.concatenate(preds) == np.asarray(test_y)).mean())


def linear_probe(train_h, train_y, test_h, test_y, *, max_iter: int = 1000) -> float:
    """Test accuracy of L-BFGS logistic regression on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    clf.fit(np.asarray(train_h, np.float64), np.asarray(train_y))
    return float(clf.score(np.asarray(test_h, np.float64), np.asarray(test_y)))


def output_std(z) -> float:
    """mean_j std_b (z_b / ||z_b||)_j."""
    return float(np.asarray(_unit(jnp.asarray(z, jnp.float32))).std(0).mean())


def effective_rank(z) -> float:
    """exp(-sum_j q_j log q_j), q = eigenvalues of the covariance of z normalised to sum 1."""
    z = np.asarray(z, np.float64)
    lam = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 0, None)
    q = lam / lam.sum()
    q = q[q > 0]
    return float(np.exp(-(q * np.log(q)).sum()))


def evaluate(config, info, params, stats, dataset, *, probe: bool = True) -> dict:
    """kNN (config.knn_k, config.knn_t), optional linear probe, and collapse metrics on ``dataset``."""
    htr, _ = embed(config, info, params, stats, dataset.x_train)
    hte, zte = embed(config, info, params, stats, dataset.x_test)
    out = {"knn_acc": knn_accuracy(htr, dataset.y_train, hte, dataset.y_test, k=config.knn_k, t=config.knn_t,
                                   num_classes=dataset.num_classes),
           "out_std": output_std(zte), "out_std_healthy": float(1 / np.sqrt(zte.shape[1])),
           "erank": effective_rank(zte)}
    if probe:
        out["linear_acc"] = linear_probe(htr, dataset.y_train, hte, dataset.y_test)
    return out
