"""The trainer's one frozen config, its smoke preset, validation, and CLI flags generated from its fields.

Public API
----------
``Config``: every hyper-parameter of a run (fields below, each with its help text). ``Config.smoke(**kw)``:
a tiny variant for tests and notebooks (512 images, width-8 convnet, batch 64, 1 epoch), writing under
``runs/smoke/`` so that a later real run is never refused because of it.
``config.validate()``: raises ``ValueError`` naming the bad value and what is allowed; the checks run once
per config object (``validated_once``: ``train``, ``make_step`` and ``init_state`` all call it, the work is
done by the first), a replaced config is checked afresh.
``config.augment_spec()``: the ``augment.AugmentSpec`` of the config.
``add_flags(parser, defaults)`` / ``from_args(ns, base)``: one ``--flag`` per field of a frozen dataclass
(bools as ``--x/--no-x``); shared by every selfsup CLI (train, bio, continual, online).
``Parser``: the ``argparse.ArgumentParser`` every selfsup CLI uses: a bad flag exits 2 with one line
``prog: error: message`` (no usage block), as in dynamics.
``run_cli(parser, fn)``: runs a CLI's body with the shared exit codes (2: bad input, 1: non-finite loss).
``PRESETS`` / ``preset(name, **overrides)`` / ``presets_help()``: named recipes (``--preset simsiam-cifar10``,
the SimSiam paper's CIFAR recipe; ``byol-cifar10``, BYOL with LARS; ``mnist5k``, the default), each meant for
the datasets it names (another dataset is refused).

Defaults are the mnist5k CPU regime (docs/results.md, "How the mnist5k defaults were chosen"): the 4-conv
net keeping a 4 x 4 map, no flip, crop scale (0.5, 1), batch 256, lr 1.0, 80 epochs, BYOL-family EMA from
0.9, kNN k = 20; the CIFAR recipes are presets.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from dataclasses import dataclass, field

from dynamics._cli import Parser as Parser  # one-line errors, exit 2 (re-exported: shared with dynamics)
from selfsup import augment, data, methods


def validated_once(validate):
    """Decorator for a frozen config's ``validate``: the checks run the first time it is called on an object
    and return ``self``; later calls on the same (immutable) object return at once. A config changed with
    ``replace`` is a new object, so it is checked again."""
    @functools.wraps(validate)
    def once(self):
        if not self.__dict__.get("_validated", False):
            validate(self)
            object.__setattr__(self, "_validated", True)
        return self
    return once


def _f(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    method: str = _f("simsiam", "self-supervised method (registry in selfsup.methods)")
    dataset: str = _f("mnist5k", "dataset", data.DATASETS)
    data_dir: str = _f("", "cifar10 / cifar100 / stl10 / imagefolder: folder with the official files or an "
                       "image folder DIR/train/<class>/*, DIR/test/<class>/*")
    image_size: int = _f(0, "image folders: resize every image to N x N (0: keep; all must share one size)")
    data_seed: int = _f(0, "seed of the mnist5k / digits train-test split (fixed across training seeds)")
    stl10_unlabeled: bool = _f(False, "also train on STL-10's 100k unlabeled images")
    max_images: int = _f(0, "train on the first N training images only (0: all)")
    arch: str = _f("small", "backbone: small = 4-conv net with max-pools keeping a 4x4 map (28x28 input); "
                   "strided = the same widths with strides 1-2-2-2 (4x4 map from 32x32); small-gap = the "
                   "former 3-conv net with global pooling", ("small", "strided", "small-gap", "resnet18"))
    width: int = _f(16, "base width of the small convnets")
    proj_layers: int = _f(2, "projector depth (Linear-BN-ReLU blocks + final Linear[-BN])")
    proj_hidden: int = _f(512, "projector hidden width")
    proj_dim: int = _f(128, "projector output dimension d")
    pred_hidden: int = _f(0, "predictor hidden width (0: the method's: d / 4 for the SimSiam family, "
                          "proj_hidden for BYOL's expanding predictor)")
    predictor: str = _f("mlp", "predictor h (DirectPred/DirectCopy always use linear)", ("mlp", "linear"))
    lam: float = _f(1.0, "PhiNet / X-PhiNet weight of the CA1 (clean-view) loss")
    ema_m0: float = _f(0.9, "BYOL / DirectPred / DirectCopy: initial EMA momentum, cosine-scheduled to 1 "
                       "(0.9 for ~1000-step CPU runs; the papers' 0.99 / 0.996 are for 100k+ steps: presets)")
    mem_beta: float = _f(0.99, "X-PhiNet: constant EMA rate of the momentum encoder (the authors' beta)")
    lam_r: float = _f(0.0, "residual momentum weight lam_r (methods with a momentum encoder)")
    dp_rho: float = _f(0.3, "EMA rate rho of the correlation F of the predictor input")
    dp_eps: float = _f(0.1, "DirectPred / DirectCopy eps")
    dp_freq: int = _f(1, "set the DirectPred / DirectCopy predictor every freq steps")
    epochs: int = _f(80, "training epochs")
    dtype: str = _f("float32", "compute dtype of convolutions and matmuls; bfloat16 = mixed precision: "
                    "parameters, BN statistics, optimizer state, EMA target, F and the loss stay float32",
                    ("float32", "bfloat16"))
    batch_size: int = _f(256, "global batch size (split over local devices)")
    optimizer: str = _f("sgd", "optimizer", ("sgd", "lars"))
    lr: float = _f(1.0, "base learning rate per 256 images (peak lr = lr * batch / 256)")
    momentum: float = _f(0.9, "SGD / LARS momentum")
    wd: float = _f(5e-4, "weight decay (the only source of decay)")
    warmup_epochs: int = _f(2, "linear warm-up epochs before the cosine decay")
    fix_pred_lr: bool = _f(True, "keep the SimSiam-family predictor h's learning rate constant at the peak "
                           "(BYOL's h always follows the schedule)")
    lars_trust: float = _f(1e-3, "LARS trust coefficient")
    crop_min: float = _f(0.5, "random resized crop: smallest area fraction")
    flip_p: float = _f(0.0, "horizontal flip probability (digits: 0, mirror images are other symbols)")
    jitter: float = _f(0.4, "colour jitter strength (brightness, contrast, saturation; hue = jitter / 4)")
    jitter_p: float = _f(0.8, "colour jitter probability")
    gray_p: float = _f(0.0, "grayscale probability (the identity on one channel)")
    blur_p: float = _f(0.0, "Gaussian blur probability")
    eval_images: int = _f(0, "score on the first N training images only (kNN memory bank, linear probes' "
                          "training set; 0: all)")
    knn_k: int = _f(20, "kNN monitor: neighbours (20 for a 4000-image bank; CIFAR's recipe: 200)")
    knn_t: float = _f(0.1, "kNN monitor: temperature")
    eval_every: int = _f(10, "kNN evaluation every N epochs (0: only at the end)")
    linear_probe: bool = _f(True, "fit the linear probes in the final summary")
    baselines: bool = _f(True, "also score the untrained encoder and raw pixels in the final summary")
    log_every: int = _f(10, "write metrics and check for NaN/inf every N steps")
    seed: int = _f(0, "seed of every random key (init, data order, augmentations)")
    out_dir: str = _f("runs/selfsup", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: <method>-<dataset>-<arch>-s<seed>)")
    progress: bool = _f(True, "show a tqdm progress bar")

    @classmethod
    def smoke(cls, **overrides) -> Config:
        small = dict(max_images=512, width=8, proj_hidden=64, proj_dim=32, pred_hidden=16, batch_size=64,
                     epochs=1, warmup_epochs=0, knn_k=20, linear_probe=False, baselines=False, log_every=4,
                     progress=False, out_dir="runs/smoke/selfsup")
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

    @validated_once
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
        for name in ("max_images", "eval_images", "pred_hidden", "warmup_epochs", "eval_every", "lr", "wd",
                     "lam", "lam_r"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("ema_m0", "mem_beta", "dp_rho", "momentum"):
            need(0 <= getattr(self, name) < 1, name, "in [0, 1)")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            need(0 <= getattr(self, name) <= 1, name, "a probability in [0, 1]")
        need(0 < self.crop_min <= 1, "crop_min", "in (0, 1]")
        need(0 <= self.jitter <= 1, "jitter", "in [0, 1]")
        need(self.knn_t > 0, "knn_t", "> 0")
        need(self.dp_eps >= 0, "dp_eps", ">= 0")
        if self.lam_r and not methods.METHODS[self.method].uses_ema:
            have = sorted(n for n, m in methods.METHODS.items() if m.uses_ema)
            need(False, "lam_r", f"0 for method={self.method!r}, which has no momentum encoder (methods with "
                 f"one: {have})")
        data.check_source(self.dataset, self.data_dir, self.image_size)
        return self


_SIMSIAM_CIFAR = dict(
    method="simsiam", arch="resnet18", lr=0.03, batch_size=512, epochs=800, warmup_epochs=10, wd=5e-4,
    momentum=0.9, proj_layers=3, proj_hidden=2048, proj_dim=2048, pred_hidden=512, crop_min=0.2, flip_p=0.5,
    jitter=0.4, jitter_p=0.8, gray_p=0.2, blur_p=0.0, knn_k=200, eval_every=10)
_BYOL_CIFAR = dict(
    method="byol", arch="resnet18", optimizer="lars", lars_trust=0.02, lr=1.0, wd=1e-5, batch_size=256,
    epochs=1000, warmup_epochs=10, ema_m0=0.99, proj_layers=2, proj_hidden=4096, proj_dim=256,
    pred_hidden=4096,
    crop_min=0.08, flip_p=0.5, jitter=0.4, jitter_p=0.8, gray_p=0.2, blur_p=0.0, knn_k=200, eval_every=10)

_CIFAR_CPU = dict(
    arch="strided", width=32, max_images=10000, batch_size=256, lr=1.0, wd=5e-4, epochs=20, warmup_epochs=2,
    proj_layers=2, proj_hidden=512, proj_dim=128, crop_min=0.2, flip_p=0.5, jitter=0.4, jitter_p=0.8,
    gray_p=0.2, blur_p=0.0, knn_k=200, eval_every=5, eval_images=10000)

# name -> (what it is, the datasets it is meant for, the fields it sets)
PRESETS: dict[str, tuple[str, tuple[str, ...], dict]] = {
    "mnist5k": ("the default CPU regime (about 2.5 min on 2 cores)", ("mnist5k",), {}),
    "cifar10-cpu": ("a CIFAR-10 regime that learns on 2 CPU cores in about 10 minutes: 10,000 training "
                    "images, 4-conv strided net (width 32, 4x4 map), SimSiam's CIFAR augmentations, 20 "
                    "epochs; scored on the 10,000 test images, kNN bank and probes = the 10,000 training "
                    "images",
                    ("cifar10",), {**_CIFAR_CPU, "dataset": "cifar10"}),
    "simsiam-cifar10": ("SimSiam paper, CIFAR-10: ResNet-18, SGD lr 0.03 x B/256, B 512, 800 epochs",
                        ("cifar10",), {**_SIMSIAM_CIFAR, "dataset": "cifar10"}),
    "simsiam-cifar100": ("the SimSiam CIFAR recipe on CIFAR-100", ("cifar100",),
                         {**_SIMSIAM_CIFAR, "dataset": "cifar100"}),
    "byol-cifar10": ("BYOL with LARS (solo-learn's CIFAR recipe: lr 1.0 x B/256, wd 1e-5, trust 0.02, "
                     "4096-256 heads, 1000 epochs; no solarisation)", ("cifar10", "cifar100"),
                     {**_BYOL_CIFAR, "dataset": "cifar10"}),
}


def preset(name: str, **overrides) -> Config:
    """``Config`` with the preset's fields, then ``overrides``; raises ``ValueError`` for an unknown preset
    or a dataset the preset is not meant for."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown: must be one of {sorted(PRESETS)}")
    _, datasets, fields = PRESETS[name]
    cfg = Config(**{**fields, **overrides})
    if cfg.dataset not in datasets:
        raise ValueError(f"preset={name!r} is for dataset {' or '.join(datasets)}, "
                         f"not dataset={cfg.dataset!r}")
    return cfg


def presets_help() -> str:
    """The presets and the fields each sets, for ``--help``."""
    lines = ["presets (--preset NAME; flags given on the command line override them):"]
    for name, (what, _, fields) in PRESETS.items():
        sets = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in fields.items()) or "(the defaults)"
        lines.append(f"  {name}: {what}\n      {sets}")
    return "\n".join(lines)


def add_flags(parser: argparse.ArgumentParser, defaults=None, *, exclude=()) -> None:
    """One ``--flag`` per field of the frozen dataclass instance ``defaults`` (default ``Config()``), except
    the fields named in ``exclude`` (a command that sets them itself does not offer them).

    The help shows ``defaults``' value; a flag not given on the command line is absent from the namespace
    (``argparse.SUPPRESS``), so ``from_args`` keeps the preset's value and a given flag always wins.
    """
    defaults = Config() if defaults is None else defaults
    for f in dataclasses.fields(defaults):
        if f.name not in exclude:
            add_field_flag(parser, f, getattr(defaults, f.name))


def _comma_list(elem):
    def parse(text: str) -> tuple:
        try:
            return tuple(elem(x.strip()) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {elem.__name__}") \
                from None
    return parse


def add_field_flag(parser: argparse.ArgumentParser, f: dataclasses.Field, default) -> None:
    """The ``--flag`` of one dataclass field: bools as ``--x/--no-x``, tuples as comma-separated lists
    (element type from the metadata's ``elem``, else from the default's first element, else ``str``),
    ``choices`` and extra option strings (``flags``, e.g. an alias) from its metadata; ``dest`` is the field's
    name."""
    flags = f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    kw = dict(dest=f.name, default=argparse.SUPPRESS, help=f"{f.metadata['help']} (default: {shown})")
    if f.type in ("bool", bool):
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
    elif f.type in ("tuple", tuple):
        elem = f.metadata.get("elem") or (type(default[0]) if default else str)
        parser.add_argument(*flags, type=_comma_list(elem), **kw)
    else:
        typ = {"int": int, "float": float, "str": str}[str(f.type)]
        parser.add_argument(*flags, type=typ, choices=f.metadata.get("choices"), **kw)


def from_args(ns: argparse.Namespace, base=None):
    """``base`` (default ``Config()``, or any frozen dataclass) with the fields given on the command line."""
    base = Config() if base is None else base
    given = {f.name: getattr(ns, f.name) for f in dataclasses.fields(base) if hasattr(ns, f.name)}
    return dataclasses.replace(base, **given)


def run_cli(parser: argparse.ArgumentParser, fn):
    """``fn()`` for a command line: bad input (``ValueError``, which includes ``DatasetError``,
    ``CheckpointError`` and ``rundir.RunFolderError``) exits with status 2 and one line
    ``prog: error: message`` (no usage block); a non-finite loss (``NonFiniteLossError``, a
    ``FloatingPointError``) exits with status 1 and one line naming the steps."""
    try:
        return fn()
    except ValueError as e:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(e).split())}\n")
    except FloatingPointError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
