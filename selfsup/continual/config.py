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
``parse(parser, argv, cls, *, exclude=())``: the CLIs' parsing with the defaults chosen by ``--smoke`` and
``--preset NAME`` (``with_preset(defaults, name)``: the trainer config from a ``selfsup.config`` preset, the
experiment's own trainer settings ``cls.PRESET_KEEP`` kept);
``add_flags(parser, defaults)`` / ``from_args(ns, defaults)``: one ``--flag`` per field of ``Config`` and of
``ContinualConfig`` (bools as ``--x/--no-x``), defaults (and help) from ``defaults``.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

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

    # --preset keeps these trainer settings of the continual runs (with_preset)
    PRESET_KEEP: ClassVar[tuple] = ("eval_every", "baselines", "out_dir")

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


def add_flags(parser: argparse.ArgumentParser, defaults, *, exclude=()) -> None:
    """Flags for ``defaults`` (a ``ContinualConfig`` or any frozen dataclass with a ``train: Config``):
    the trainer's fields, then the experiment's own (``selfsup.config.add_field_flag`` for each), except
    the fields named in ``exclude`` (a command that sets them per run)."""
    config.add_flags(parser, defaults.train, exclude=exclude)
    for f in dataclasses.fields(defaults):
        if f.name != "train" and f.name not in exclude:
            config.add_field_flag(parser, f, getattr(defaults, f.name))


def from_args(ns: argparse.Namespace, defaults):
    """``defaults`` with the flags given on the command line, the trainer's fields into ``train``."""
    return dataclasses.replace(config.from_args(ns, defaults), train=config.from_args(ns, defaults.train))


def with_preset(defaults, name: str):
    """``defaults`` (a ``ContinualConfig`` or ``OnlineConfig``) whose trainer config starts from the trainer
    preset ``name`` (``selfsup.config.PRESETS``: backbone, augmentations, sizes, evaluation), keeping the
    trainer settings the experiment owns (``cls.PRESET_KEEP``: the online stream's batch of 16 and single
    pass, the run folder, ...). An unknown preset raises ``ValueError``."""
    keep = {k: getattr(defaults.train, k) for k in type(defaults).PRESET_KEEP}
    return dataclasses.replace(defaults, train=config.preset(name, **keep))


def parse(parser: argparse.ArgumentParser, argv, cls, *, exclude=(), train_defaults=None):
    """Add ``--smoke``, ``--preset`` and every flag of ``cls`` (``ContinualConfig`` or ``OnlineConfig``; not
    those in ``exclude``) to ``parser`` and parse ``argv``; ``cls.smoke()`` with ``--smoke``, else ``cls()``,
    then ``with_preset`` for ``--preset NAME`` gives the defaults, also those ``--help`` shows. Returns
    ``(namespace, config with the given flags)``, not yet validated. An unknown preset exits 2, one line.
    ``train_defaults``: trainer fields a command defaults otherwise (a comparison's own ``out_dir``)."""
    parser.add_argument("--smoke", action="store_true", help=f"start from the tiny {cls.__name__}.smoke()")
    parser.add_argument("--preset", default="", help=f"start the trainer settings from a named recipe, one "
                        f"of {sorted(config.PRESETS)}, keeping this command's own "
                        f"{', '.join(cls.PRESET_KEEP)}")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--smoke", action="store_true")
    pre.add_argument("--preset", default="")
    known = pre.parse_known_args(argv)[0]
    defaults = cls.smoke() if known.smoke else cls()
    if known.preset:
        defaults = config.run_cli(parser, lambda: with_preset(defaults, known.preset))
    if train_defaults:
        defaults = dataclasses.replace(defaults, train=defaults.train.replace(**train_defaults))
    add_flags(parser, defaults, exclude=exclude)
    ns = parser.parse_args(argv)
    return ns, from_args(ns, defaults)
