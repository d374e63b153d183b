"""The continual / online experiment config: the trainer's ``Config`` plus the continual options.

Public API
----------
``ContinualConfig(train, tasks, split_seed, cassle, lam_d, distill_hidden, eval_init)`` (residual momentum:
the trainer's ``train.lam_r``, flag ``--lam-r``), frozen;
``train.epochs`` is the number of epochs per task. ``ContinualConfig.smoke(**kw)``: a tiny variant (keys of
``Config`` go to ``train``). ``validate()`` raises ``ValueError`` naming the bad value.
``DEFAULT_TRAIN``: the trainer config the CLIs start from (CPU-sized: 20 epochs per task of 800 mnist5k
images at batch 128 = 120 steps per task, the trainer's default ConvNet, augmentations, lr 1.0 x B/256 with
2 warm-up epochs then cosine, restarted every task; kNN k = 20; no baselines).
``parse(parser, argv, cls)``: the CLIs' parsing with the preset chosen by ``--smoke``;
``add_flags(parser, defaults)`` / ``from_args(ns, defaults)``: one ``--flag`` per field of ``Config`` and of
``ContinualConfig`` (bools as ``--x/--no-x``), defaults (and help) from ``defaults``.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from selfsup import config, data
from selfsup.config import Config, validated_once

DEFAULT_TRAIN = Config(epochs=20, batch_size=128, eval_every=0, baselines=False, out_dir="runs/continual")


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ContinualConfig:
    train: Config = _f(DEFAULT_TRAIN, "trainer config (epochs = epochs per task)")
    tasks: int = _f(5, "number of class-incremental tasks T")
    split_seed: int = _f(0, "seed of the class split (fixed across training seeds)")
    cassle: bool = _f(False, "CaSSLe predictive distillation from task 2 on")
    lam_d: float = _f(1.0, "CaSSLe weight lam_d")
    distill_hidden: int = _f(2048, "hidden width of the distillation predictor g_d (the cassle repo's 2048)")
    eval_init: bool = _f(True, "also evaluate the untrained encoder (row R_init)")

    @classmethod
    def smoke(cls, **kw) -> ContinualConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        own = {k: v for k, v in kw.items() if k in names}
        rest = {k: v for k, v in kw.items() if k not in names}
        train = Config.smoke(**{"out_dir": "runs/smoke/continual", **rest})
        return cls(train=train, **{"tasks": 2, "distill_hidden": 32, **own})

    def replace(self, **kw) -> ContinualConfig:
        return dataclasses.replace(self, **kw)

    @property
    def lam_d_used(self) -> float:
        return self.lam_d if self.cassle else 0.0

    @property
    def name(self) -> str:
        t = self.train
        tags = ("-cassle" if self.cassle else "") + (f"-rm{t.lam_r:g}" if t.lam_r else "")
        return t.run_name or f"{t.method}{tags}-{t.dataset}-T{self.tasks}-e{t.epochs}-s{t.seed}"

    @validated_once
    def validate(self) -> ContinualConfig:
        self.train.validate()
        classes = data.NUM_CLASSES.get(self.train.dataset)  # an image folder's: checked once it is read
        if classes is not None and not 1 <= self.tasks <= classes:
            raise ValueError(f"tasks={self.tasks} is invalid: must be between 1 and the {classes} classes of "
                             f"{self.train.dataset}")
        if self.lam_d < 0:
            raise ValueError(f"lam_d={self.lam_d} is invalid: must be >= 0")
        if self.distill_hidden < 1:
            raise ValueError(f"distill_hidden={self.distill_hidden} is invalid: must be >= 1")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def add_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Flags for ``defaults`` (a ``ContinualConfig`` or any frozen dataclass with a ``train: Config``):
    the trainer's fields, then the experiment's own (``selfsup.config.add_field_flag`` for each)."""
    config.add_flags(parser, defaults.train)
    for f in dataclasses.fields(defaults):
        if f.name != "train":
            config.add_field_flag(parser, f, getattr(defaults, f.name))


def from_args(ns: argparse.Namespace, defaults):
    """``defaults`` with the flags given on the command line, the trainer's fields into ``train``."""
    return dataclasses.replace(config.from_args(ns, defaults), train=config.from_args(ns, defaults.train))


def parse(parser: argparse.ArgumentParser, argv, cls):
    """Add ``--smoke`` and every flag of ``cls`` (``ContinualConfig`` or ``OnlineConfig``) to ``parser`` and
    parse ``argv``; the preset (``cls.smoke()`` with ``--smoke``, else ``cls()``) gives the defaults, also
    those ``--help`` shows. Returns ``(namespace, config with the given flags)``, not yet validated."""
    parser.add_argument("--smoke", action="store_true", help=f"start from the tiny {cls.__name__}.smoke()")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--smoke", action="store_true")
    defaults = cls.smoke() if pre.parse_known_args(argv)[0].smoke else cls()
    add_flags(parser, defaults)
    ns = parser.parse_args(argv)
    return ns, from_args(ns, defaults)
