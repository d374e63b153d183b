"""The training state pytree and the jitted step.

Public API
----------
``TrainState``: one NamedTuple pytree: ``step``, ``params`` / ``batch_stats`` (dicts with ``encoder``,
``predictor`` and, for PhiNet / X-PhiNet, ``ca1``), ``opt_state``, ``target_params`` / ``target_stats`` (EMA
encoder, None if the method has none), ``corr`` (the EMA correlation F of the predictor input, (d, d), kept
for every method, so a bias-free linear predictor can be compared with it).
``init_state(config, key, info=None)``: fresh state (``info`` defaults to the dataset's known image shape).
``make_step(config, info, *, mesh=None)``: ``step(state, images_uint8, key) -> (state, metrics)``, one
``jax.jit`` with the state donated. Views, EMA momentum and DirectPred setting all happen inside; the
randomness is ``key`` only (the loops pass ``fold_in(seed key, global step)``). With a ``mesh`` the batch is
split over its ``data`` axis and the state replicated; BN statistics are those of the global batch.
``steps_per_epoch(config, info)``; ``default_info(config)``.

Extension hook (used by ``selfsup.continual`` for CaSSLe and residual momentum): ``make_step(config, info, *,
extension=ext, tx=tx)`` returns ``step(state, images, key, extra) -> (state, metrics)``. ``ext.targets(net,
state, extra, x1, x2) -> dict`` adds stop-gradient arrays to the loss's dict ``o``, ``ext.loss(params, stats,
o) -> (term, aux, stats)`` adds a term (its trainable parameters live in ``params``, e.g. under
``"distill"``); ``extra`` is a pytree the step reads but neither differentiates nor donates (e.g. a frozen
network); ``tx`` replaces the default optimizer (for parameter groups it does not know). Without an
extension the step is exactly the one above.

Order inside a step: two views (keys split(key)), the stop-gradient targets (EMA encoder on both views, BN
in batch mode updating the target's own running stats; clean view z0), online forward and loss, optimizer
update, EMA update ``xi <- m xi + (1 - m) theta`` with the updated online encoder and ``m`` the cosine
schedule at the current step (X-PhiNet: the constant ``mem_beta``), one update ``F <- rho F + (1 - rho)
mean(z z^T)`` over both views' projector outputs together (2B rows), and for DirectPred / DirectCopy
``Wp <- setter(F)`` when ``step % dp_freq == 0``. With ``config.lam_r > 0`` the loss adds residual momentum
``lam_r * residual_term(z1, z2, f_xi(x1), f_xi(x2))`` (methods with a momentum encoder).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from selfsup import augment, data, methods, nets, optim
from selfsup.config import Config


class TrainState(NamedTuple):
    step: jax.Array
    params: dict
    batch_stats: dict
    opt_state: Any
    target_params: Any
    target_stats: Any
    corr: jax.Array


def default_info(config: Config) -> data.DataInfo:
    """DataInfo from the dataset's known shape (no files read); mean 0.5, std 0.25, n from max_images."""
    c = data.IMAGE_SHAPES[config.dataset][-1]
    return data.DataInfo(config.dataset, data.IMAGE_SHAPES[config.dataset], data.NUM_CLASSES[config.dataset],
                         config.max_images or 4000, (0.5,) * c, (0.25,) * c)


def steps_per_epoch(config: Config, info: data.DataInfo) -> int:
    n = min(info.n_train, config.max_images) if config.max_images else info.n_train
    if n < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n} training images")
    return n // config.batch_size


def _method(config: Config) -> methods.Method:
    return methods.METHODS[config.method]


def _nets(config: Config) -> nets.Nets:
    m = _method(config)
    return nets.build(config, linear_predictor=m.linear_predictor, ca1=m.ca1)


def _optimizer(config: Config, info: data.DataInfo):
    spe = steps_per_epoch(config, info)
    frozen = _method(config).setter is not None
    return optim.make_optimizer(config, config.epochs * spe, spe, frozen_predictor=frozen)


def init_state(config: Config, key, info: data.DataInfo | None = None) -> TrainState:
    """Fresh parameters (keys fold_in(key, 0/1/2): encoder/predictor/ca1), optimizer state, EMA copy, F=0."""
    config.validate()
    info = info or default_info(config)
    net = _nets(config)
    x = nets.dummy_input(info.image_shape)
    v = {"encoder": net.encoder.init(jax.random.fold_in(key, 0), x, False)}
    z = jnp.zeros((2, config.proj_dim))
    v["predictor"] = net.predictor.init(jax.random.fold_in(key, 1), z, False)
    if net.ca1 is not None:
        v["ca1"] = net.ca1.init(jax.random.fold_in(key, 2), z, False)
    params = {k: u["params"] for k, u in v.items()}
    stats = {k: u.get("batch_stats", {}) for k, u in v.items()}
    ema = _method(config).uses_ema
    copy = lambda tree: jax.tree.map(jnp.copy, tree) if ema else None  # own buffers: the step donates both
    return TrainState(jnp.zeros((), jnp.int32), params, stats, _optimizer(config, info).init(params),
                      copy(params["encoder"]), copy(stats["encoder"]),
                      jnp.zeros((config.proj_dim, config.proj_dim)))


def _forward_targets(net, state, method, x1, x2, x0, lam_r=0.0):
    """Stop-gradient targets computed before the loss: EMA projections, the clean-view z0 and, for residual
    momentum without an EMA target (X-PhiNet), the momentum encoder's projections e1, e2 of x1, x2."""
    out, tstats = {}, state.target_stats
    if method.target == "ema":
        (_, out["t1"]), tstats = nets.apply(net.encoder, state.target_params, tstats, x1, True)
        (_, out["t2"]), tstats = nets.apply(net.encoder, state.target_params, tstats, x2, True)
    if lam_r and method.target != "ema":  # BN in batch mode, running-stat updates discarded
        out["e1"] = nets.apply(net.encoder, state.target_params, tstats, x1, True)[0][1]
        out["e2"] = nets.apply(net.encoder, state.target_params, tstats, x2, True)[0][1]
    if method.clean_view == "ema":  # X-PhiNet's f_m(x0): BN in batch mode, its running-stat update discarded
        out["z0"] = nets.apply(net.encoder, state.target_params, tstats, x0, True)[0][1]
    return jax.tree.map(jax.lax.stop_gradient, out), tstats


def _loss(params, stats, net, method, config, x1, x2, fixed, extension=None, x0=None):
    """Online forward of both views (and PhiNet's clean view x0), then the method's loss (+ the extension's
    term); returns (loss, (aux, new_stats, z1, z2))."""
    s = dict(stats)
    o = dict(fixed)
    for i, x in (("1", x1), ("2", x2)):
        (o["h" + i], o["z" + i]), s["encoder"] = nets.apply(net.encoder, params["encoder"], s["encoder"], x,
                                                            True)
        o["p" + i], s["predictor"] = nets.apply(net.predictor, params["predictor"], s["predictor"],
                                                o["z" + i], True)
        if net.ca1 is not None:
            o["q" + i], s["ca1"] = nets.apply(net.ca1, params["ca1"], s["ca1"], o["p" + i], True)
    if method.clean_view == "online":
        if x0 is None:
            raise ValueError(f"method {method.name!r} needs the clean view x0 (pass x0=)")
        # PhiNet's z0 = sg f(x0), as the authors' forward f(x1), f(x2), f(x0): BN normalises with the batch's
        # statistics (so z0 does not depend on the running ones) and its running statistics take a third
        # update, from the clean images, after the two views' (they set the encoder's evaluation mode).
        sg = jax.lax.stop_gradient
        (_, z0), s["encoder"] = nets.apply(net.encoder, sg(params["encoder"]), s["encoder"], x0, True)
        o["z0"] = sg(z0)
    if method.target == "online":
        o["t1"], o["t2"] = jax.lax.stop_gradient(o["z1"]), jax.lax.stop_gradient(o["z2"])
    loss, aux = method.loss(o, config)
    if config.lam_r:
        e1, e2 = (o["t1"], o["t2"]) if method.target == "ema" else (o["e1"], o["e2"])
        term = residual_term(o["z1"], o["z2"], e1, e2)
        loss, aux = loss + config.lam_r * term, {**aux, "residual": term}
    if extension is not None:
        term, ext_aux, s = extension.loss(params, s, o)
        loss, aux = loss + term, {**aux, **ext_aux}
    return loss, (aux, s, o["z1"], o["z2"])


def make_step(config: Config, info: data.DataInfo, *, mesh: Mesh | None = None, extension=None, tx=None):
    """The jitted, donated ``step(state, images, key) -> (state, metrics)`` for ``config``
    (``step(state, images, key, extra)`` with an ``extension``, see the module docstring)."""
    config.validate()
    method, net, spec = _method(config), _nets(config), config.augment_spec()
    spe = steps_per_epoch(config, info)
    total = config.epochs * spe
    tx, sched = tx or _optimizer(config, info), optim.lr_schedule(config, total, spe)

    def step(state: TrainState, images, key, extra=None):
        k1, k2 = jax.random.split(key)
        x1 = augment.augment_batch(images, k1, spec, info.mean, info.std)
        x2 = augment.augment_batch(images, k2, spec, info.mean, info.std)
        x0 = augment.clean_view(images, info.mean, info.std)
        fixed, tstats = _forward_targets(net, state, method, x1, x2, x0, config.lam_r)
        if extension is not None:
            fixed = {**fixed, **jax.lax.stop_gradient(extension.targets(net, state, extra, x1, x2))}
        grad_fn = jax.value_and_grad(_loss, has_aux=True)
        (loss, (aux, stats, z1, z2)), g = grad_fn(state.params, state.batch_stats, net, method, config,
                                                  x1, x2, fixed, extension, x0)
        upd, opt_state = tx.update(g, state.opt_state, state.params)
        params = optax.apply_updates(state.params, upd)
        m = methods.ema_rate(method, config, state.step, total)
        tparams = methods.ema_update(state.target_params, params["encoder"], m) if method.uses_ema else None
        corr = methods.update_corr(state.corr, jnp.concatenate([z1, z2]), config.dp_rho)  # once, both views
        if method.setter is not None:
            # cond, not where: the eigendecomposition runs only on setting steps
            kernel = jax.lax.cond(state.step % config.dp_freq == 0,
                                  lambda: method.setter(corr, config.dp_eps).T.astype(corr.dtype),
                                  lambda: params["predictor"]["Dense_0"]["kernel"])
            params = {**params, "predictor": {"Dense_0": {"kernel": kernel}}}
        metrics = {"loss": loss, **aux, "lr": sched(state.step), "ema_m": m,
                   "z_std": _std_unit(jax.lax.stop_gradient(z1))}
        return TrainState(state.step + 1, params, stats, opt_state, tparams, tstats, corr), metrics

    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    rep, batch = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))
    ins = (rep, batch, rep) + ((rep,) if extension is not None else ())
    return jax.jit(step, donate_argnums=0, in_shardings=ins, out_shardings=(rep, rep))


def residual_term(z1, z2, e1, e2):
    """Residual momentum (Pham et al. 2023): [(1 - cos(z1, sg e1)) + (1 - cos(z2, sg e2))] / 2, the online
    vs the momentum encoder's projections of the same view (``1 + D(f(x), sg f_xi(x))``, D = -cos)."""
    sg = jax.lax.stop_gradient
    return 1.0 + 0.5 * (methods.neg_cos(z1, sg(e1)) + methods.neg_cos(z2, sg(e2)))


def _std_unit(z):
    return methods.unit(z).std(0).mean()
