"""The trainer's one frozen config, its smoke preset, validation, and CLI flags generated from its fields.

Public API
----------
``Config``: every hyper-parameter of a run (fields below, each with its help text). ``Config.smoke(**kw)``:
a tiny variant for tests and notebooks (512 images, width-8 convnet, batch 64, 1 epoch).
``config.validate()``: raises ``ValueError`` naming the bad value and what is allowed.
``config.augment_spec()``: the ``augment.AugmentSpec`` of the config.
``add_flags(parser, defaults)`` / ``from_args(ns, base)``: one ``--flag`` per field of a frozen dataclass
(bools as ``--x/--no-x``); shared by every selfsup CLI (train, bio, continual, online).
``run_cli(parser, fn)``: runs a CLI's body with the shared exit codes (2: bad input, 1: non-finite loss).

Defaults are tuned for mnist5k with the small convnet on a CPU (2 epochs reach kNN accuracy well above a
random encoder's); for CIFAR the SimSiam recipe is ``--arch resnet18 --dataset cifar10 --lr 0.03
--batch-size 512 --epochs 800 --warmup-epochs 10 --proj-layers 3 --proj-hidden 2048 --proj-dim 2048
--pred-hidden 512``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field

from selfsup import augment, data, methods


def _f(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    method: str = _f("simsiam", "self-supervised method (registry in selfsup.methods)")
    dataset: str = _f("mnist5k", "dataset", data.DATASETS)
    data_dir: str = _f("", "folder with the official CIFAR / STL-10 files")
    stl10_unlabeled: bool = _f(False, "also train on STL-10's 100k unlabeled images")
    max_images: int = _f(0, "train on the first N training images only (0: all)")
    arch: str = _f("small", "backbone", ("small", "resnet18"))
    width: int = _f(32, "base width of the small convnet (features = 4 * width)")
    proj_layers: int = _f(2, "projector depth (Linear-BN-ReLU blocks + final Linear-BN)")
    proj_hidden: int = _f(512, "projector hidden width")
    proj_dim: int = _f(128, "projector output dimension d")
    pred_hidden: int = _f(0, "predictor bottleneck width (0: d / 4)")
    predictor: str = _f("mlp", "predictor h (DirectPred/DirectCopy always use linear)", ("mlp", "linear"))
    lam: float = _f(1.0, "PhiNet / X-PhiNet weight of the CA1 (clean-view) loss")
    ema_m0: float = _f(0.99, "initial EMA momentum, cosine-scheduled to 1")
    dp_rho: float = _f(0.3, "EMA rate rho of the correlation F of the predictor input")
    dp_eps: float = _f(0.1, "DirectPred / DirectCopy eps")
    dp_freq: int = _f(1, "set the DirectPred / DirectCopy predictor every freq steps")
    epochs: int = _f(2, "training epochs")
    batch_size: int = _f(64, "global batch size (split over local devices)")
    optimizer: str = _f("sgd", "optimizer", ("sgd", "lars"))
    lr: float = _f(0.1, "base learning rate per 256 images (peak lr = lr * batch / 256)")
    momentum: float = _f(0.9, "SGD / LARS momentum")
    wd: float = _f(5e-4, "weight decay (the only source of decay)")
    warmup_epochs: int = _f(0, "linear warm-up epochs before the cosine decay")
    fix_pred_lr: bool = _f(True, "keep the predictor heads' learning rate constant at the peak")
    lars_trust: float = _f(1e-3, "LARS trust coefficient")
    crop_min: float = _f(0.2, "random resized crop: smallest area fraction")
    flip_p: float = _f(0.5, "horizontal flip probability")
    jitter: float = _f(0.4, "colour jitter strength (brightness, contrast, saturation; hue = jitter / 4)")
    jitter_p: float = _f(0.8, "colour jitter probability")
    gray_p: float = _f(0.2, "grayscale probability")
    blur_p: float = _f(0.0, "Gaussian blur probability")
    knn_k: int = _f(200, "kNN monitor: neighbours")
    knn_t: float = _f(0.1, "kNN monitor: temperature")
    eval_every: int = _f(1, "kNN evaluation every N epochs (0: only at the end)")
    linear_probe: bool = _f(True, "fit a linear probe in the final summary")
    log_every: int = _f(10, "write metrics and check for NaN/inf every N steps")
    seed: int = _f(0, "seed of every random key (init, data order, augmentations)")
    out_dir: str = _f("runs/selfsup", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: <method>-<dataset>-<arch>-s<seed>)")
    progress: bool = _f(True, "show a tqdm progress bar")

    @classmethod
    def smoke(cls, **overrides) -> Config:
        small = dict(max_images=512, width=8, proj_hidden=64, proj_dim=32, pred_hidden=16, batch_size=64,
                     epochs=1, knn_k=20, linear_probe=False, log_every=4, progress=False)
        return cls(**{**small, **overrides})

    def replace(self, **kw) -> Config:
        return dataclasses.replace(self, **kw)

    @property
    def name(self) -> str:
        return self.run_name or f"{self.method}-{self.dataset}-{self.arch}-s{self.seed}"

    def augment_spec(self) -> augment.AugmentSpec:
        j = self.jitter
        return augment.AugmentSpec(crop_scale=(self.crop_min, 1.0), flip_p=self.flip_p,
                                   jitter=(j, j, j, j / 4), jitter_p=self.jitter_p, gray_p=self.gray_p,
                                   blur_p=self.blur_p)

    def validate(self) -> Config:
        def need(ok, name, allowed):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: must be {allowed}")
        need(self.method in methods.METHODS, "method", f"one of {sorted(methods.METHODS)}")
        for f in dataclasses.fields(self):
            if f.metadata.get("choices"):
                choices = f.metadata["choices"]
                need(getattr(self, f.name) in choices, f.name, f"one of {choices}")
        for name in ("width", "proj_layers", "proj_hidden", "proj_dim", "epochs", "batch_size", "knn_k",
                     "log_every", "dp_freq"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("max_images", "pred_hidden", "warmup_epochs", "eval_every", "lr", "wd", "lam"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("ema_m0", "dp_rho", "momentum"):
            need(0 <= getattr(self, name) < 1, name, "in [0, 1)")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            need(0 <= getattr(self, name) <= 1, name, "a probability in [0, 1]")
        need(0 < self.crop_min <= 1, "crop_min", "in (0, 1]")
        need(0 <= self.jitter <= 1, "jitter", "in [0, 1]")
        need(self.knn_t > 0, "knn_t", "> 0")
        need(self.dp_eps >= 0, "dp_eps", ">= 0")
        need(self.dataset in ("mnist5k", "digits") or self.data_dir, "data_dir",
             f"a folder with the official files for dataset={self.dataset!r}")
        return self


def add_flags(parser: argparse.ArgumentParser, defaults=None) -> None:
    """One ``--flag`` per field of the frozen dataclass instance ``defaults`` (default ``Config()``).

    The help shows ``defaults``' value; a flag not given on the command line is absent from the namespace
    (``argparse.SUPPRESS``), so ``from_args`` keeps the preset's value and a given flag always wins.
    """
    defaults = Config() if defaults is None else defaults
    for f in dataclasses.fields(defaults):
        add_field_flag(parser, f, getattr(defaults, f.name))


def add_field_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, default) -> None:
    """The ``--flag`` of one dataclass field (bools as ``--x/--no-x``, choices from its metadata)."""
    flag = "--" + f.name.replace("_", "-")
    kw = dict(default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {default})")
    if f.type in ("bool", bool):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
    else:
        typ = {"int": int, "float": float, "str": str}[str(f.type)]
        parser.add_argument(flag, type=typ, choices=f.metadata.get("choices"), **kw)


def from_args(ns: argparse.Namespace, base=None):
    """``base`` (default ``Config()``, or any frozen dataclass) with the fields given on the command line."""
    base = Config() if base is None else base
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(base) if hasattr(ns, f.name)}
    return dataclasses.replace(base, **given)


def run_cli(parser: argparse.ArgumentParser, fn):
    """``fn()`` for a command line: bad input (``ValueError``, which includes ``DatasetError`` and
    ``CheckpointError``) exits with status 2 and one line via ``parser.error``; a non-finite loss
    (``NonFiniteLossError``, a ``FloatingPointError``) exits with status 1 and one line naming the steps."""
    try:
        return fn()
    except ValueError as e:
        parser.error(str(e))
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
