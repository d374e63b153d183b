"""The frozen config of a biologically plausible SSL run, its smoke preset, validation and CLI flags.

Public API
----------
``BioConfig``: every hyper-parameter of one rule x schedule run (fields below, each with help text).
``BioConfig.smoke(**kw)``: a tiny variant for tests (256 images, width 4, batch 32, 1 epoch).
``config.validate()`` raises ``ValueError`` naming the bad value and what is allowed; ``config.arch()`` gives
the ``net.Arch``; ``config.augment_spec()`` the view distribution (``selfsup.augment``).
CLI flags come from the fields through ``selfsup.config.add_flags`` / ``from_args``.

Defaults: mnist5k on a CPU, Adam lr 1e-3, batch 250, 6 epochs; augmentations for digits (crop scale
(0.3, 1), no flip, brightness/contrast jitter 0.4 with p = 0.8); hinge T = 2, d = 1, all negatives.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from selfsup import augment, data
from selfsup.bio import net, rules, schedules
from selfsup.config import validated_once

BIO_DATASETS = ("mnist5k", "digits", "cifar10", "cifar100")


def _f(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class BioConfig:
    rule: str = _f("fa", "learning rule", tuple(rules.RULES))
    schedule: str = _f("e2e", "e2e (end to end), gll (greedy layer-wise), rll (random layer-wise)",
                       schedules.SCHEDULES)
    dataset: str = _f("mnist5k", "dataset", BIO_DATASETS)
    data_dir: str = _f("", "cifar10 / cifar100: folder with the official files or an image folder "
                       "DIR/train/<class>/*, DIR/test/<class>/*")
    max_images: int = _f(0, "train on the first N training images only (0: all)")
    width: int = _f(16, "channels of the 5 conv layers are (w, 2w, 2w, 4w, 4w)")
    embed_dim: int = _f(64, "output size of every head")
    pool_grid: int = _f(1, "heads and linear evaluation see each layer average-pooled to g x g (1: global)")
    epochs: int = _f(6, "training epochs (gll: split equally over the layers)")
    batch_size: int = _f(250, "pairs per step")
    lr: float = _f(1e-3, "Adam learning rate")
    hinge_t: float = _f(2.0, "hinge threshold T")
    hinge_d: float = _f(1.0, "hinge margin d (positives below T - d, negatives above T + d)")
    neg_k: int = _f(0, "negatives: 0 = all pairs, k = the k nearest diagonals on each side")
    grad_block: bool = _f(False, "detach the first view's embedding (grad block)")
    dtp_eta: float = _f(0.1, "DTP: target step on the embedding, t = z - eta grad l(z)")
    dtp_sigma: float = _f(0.1, "DTP: noise std of the inverses' reconstruction loss")
    crop_min: float = _f(0.3, "random resized crop: smallest area fraction")
    flip_p: float = _f(0.0, "horizontal flip probability")
    jitter: float = _f(0.4, "colour jitter strength (hue: jitter / 4; grey images: brightness, contrast)")
    jitter_p: float = _f(0.8, "jitter probability")
    log_every: int = _f(10, "write metrics and check for NaN/inf every N steps")
    seed: int = _f(0, "seed of every key (init, feedback, data order, views, layer draws)")
    out_dir: str = _f("runs/bio", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: <rule>-<schedule>-<dataset>-s<seed>)")
    progress: bool = _f(True, "show tqdm progress bars")

    @classmethod
    def smoke(cls, **overrides) -> BioConfig:
        small = dict(max_images=256, width=4, embed_dim=16, batch_size=32, epochs=1, log_every=2,
                     progress=False, out_dir="runs/smoke/bio")
        return cls(**{**small, **overrides})

    def replace(self, **kw) -> BioConfig:
        return dataclasses.replace(self, **kw)

    @property
    def name(self) -> str:
        return self.run_name or f"{self.rule}-{self.schedule}-{self.dataset}-s{self.seed}"

    def arch(self) -> net.Arch:
        w = self.width
        return net.Arch((w, 2 * w, 2 * w, 4 * w, 4 * w), (True, True, False, False, False), self.embed_dim,
                        self.pool_grid, data.IMAGE_SHAPES[self.dataset])

    def augment_spec(self) -> augment.AugmentSpec:
        j = self.jitter
        return augment.AugmentSpec(crop_scale=(self.crop_min, 1.0), flip_p=self.flip_p,
                                   jitter=(j, j, j, j / 4), jitter_p=self.jitter_p, gray_p=0.0)

    @validated_once
    def validate(self) -> BioConfig:
        def need(ok, name, allowed):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: must be {allowed}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices:
                need(getattr(self, f.name) in choices, f.name, f"one of {choices}")
        for name in ("width", "embed_dim", "pool_grid", "epochs", "batch_size", "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("max_images", "neg_k"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("lr", "dtp_eta", "dtp_sigma", "hinge_t"):
            need(getattr(self, name) > 0, name, "> 0")
        need(0 <= self.hinge_d <= self.hinge_t, "hinge_d", f"in [0, hinge_t={self.hinge_t}]")
        need(self.neg_k < self.batch_size, "neg_k", f"< batch_size={self.batch_size}")
        need(0 < self.crop_min <= 1, "crop_min", "in (0, 1]")
        for name in ("flip_p", "jitter_p", "jitter"):
            need(0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        data.check_source(self.dataset, self.data_dir)
        self.arch().validate()
        return self
