"""The package's one linear probe: multinomial logistic regression on standardised features by L-BFGS (JAX).

Every evaluation (trainer summary, baselines, continual, online, bio layers) calls ``linear_probe``; it is
scikit-learn's ``LogisticRegression`` default (C = 1), jitted (about 0.3 s per fit after compilation where
scikit-learn takes 5-30 s on a busy 2-core CPU), and tested against scikit-learn. Objective, divided by N:

    min_{W, c}  mean_i CE(softmax(W^T s_i + c), y_i) + ||W||^2 / (2 N),   s_i = (x_i - mean) / std

(std over the training features; constant features get std 1), so the two agree up to solver tolerance.

Public API
----------
``linear_probe(train_x, train_y, test_x, test_y, *, num_classes, iters=200) -> float`` test accuracy;
``predict(train_x, train_y, test_x, *, num_classes)`` the test predictions.
``fit_logistic(x, y, *, num_classes, iters=200) -> (params, mean, std, loss)``.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax


@partial(jax.jit, static_argnames=("num_classes", "iters"))
def fit_logistic(x, y, *, num_classes: int, iters: int = 200):
    """L-BFGS fit of the objective in the module doc; returns (params {w, b}, mean, std, final loss)."""
    mu, sd = x.mean(0), x.std(0)
    sd = jnp.where(sd > 0, sd, 1.0)
    s = (x - mu) / sd
    l2 = 1.0 / x.shape[0]

    def loss(p):
        ce = optax.softmax_cross_entropy_with_integer_labels(s @ p["w"] + p["b"], y).mean()
        return ce + 0.5 * l2 * (p["w"] ** 2).sum()

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def body(carry, _):
        p, st = carry
        v, g = value_and_grad(p, state=st)
        u, st = opt.update(g, st, p, value=v, grad=g, value_fn=loss)
        return (optax.apply_updates(p, u), st), None

    p0 = {"w": jnp.zeros((x.shape[1], num_classes), x.dtype), "b": jnp.zeros(num_classes, x.dtype)}
    (p, _), _ = jax.lax.scan(body, (p0, opt.init(p0)), None, length=iters)
    return p, mu, sd, loss(p)


def predict(train_x, train_y, test_x, *, num_classes: int, iters: int = 200) -> np.ndarray:
    """Class predictions for ``test_x`` of the logistic regression fitted on (train_x, train_y)."""
    if len(train_x) != len(train_y):
        raise ValueError(f"features and labels differ in length: {len(train_x)} vs {len(train_y)}")
    p, mu, sd, _ = fit_logistic(jnp.asarray(train_x, jnp.float32), jnp.asarray(train_y, jnp.int32),
                                num_classes=num_classes, iters=iters)
    return np.asarray((((jnp.asarray(test_x, jnp.float32) - mu) / sd) @ p["w"] + p["b"]).argmax(1))


def linear_probe(train_x, train_y, test_x, test_y, *, num_classes: int, iters: int = 200) -> float:
    """Test accuracy of the logistic regression fitted on (train_x, train_y)."""
    if len(test_x) != len(test_y):
        raise ValueError(f"features and labels differ in length: {len(test_x)} vs {len(test_y)}")
    pred = predict(train_x, train_y, test_x, num_classes=num_classes, iters=iters)
    return float((pred == np.asarray(test_y)).mean())
