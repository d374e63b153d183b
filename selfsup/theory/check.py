"""Check the linear theory's predictions on real images: ``python -m selfsup.theory``.

Every run trains with a bias-free linear predictor ``p = Wp z`` and records, during training, the spectrum of
F (the EMA correlation of the projector outputs z), of Wp's symmetric part, the alignment
``cos(Wp u_j, u_j)`` per eigenvector u_j of F and the asymmetry ``||Wp - Wp^T|| / ||Wp||`` (Tian21 Fig. 2),
and the relation between ``p_j = u_j^T Wp u_j`` and ``s_j`` (the theory's stable fixed points lie on the
parabola ``s = p^2 / alpha_p``: exponent 1/2, DirectPred's rule). Runs:

- a weight-decay sweep of ``methods`` (SimSiam, PhiNet, X-PhiNet) over ``wds``: effective rank and surviving
  eigenvalues of F, collapse metrics and kNN accuracy against weight decay, next to the linear theory's
  collapse thresholds from ``dynamics.analysis.collapse_wd`` (isotropic mode, ``lambda = 1``, the
  augmentation noise ``sigma2`` measured on the lowest-wd run of the first method, ``lam`` as trained);
- ``compare`` at ``base_wd``: DirectPred / DirectCopy against BYOL with a gradient-trained linear predictor
  (the same loss and EMA target; only the predictor differs).

Public API
----------
``TheoryConfig``: the sizes (defaults: mnist5k, the trainer's ConvNet of width 16 and its augmentations,
d = 64, batch 256, lr 1.0 with 2 warm-up epochs then cosine, 10 epochs = 150 steps per point, wds 5e-4 /
0.15 / 0.3 / 0.45 around the predicted thresholds, 15 points, about 40 s each on 2 idle CPU cores);
``TheoryConfig.smoke()``: tiny preset for tests. ``THEORY_PRESETS``: the defaults ``--preset NAME`` sets
(``cifar10-cpu``: the CIFAR-10 regime of ``selfsup.train --preset cifar10-cpu`` with d = 64, 20 epochs = 780
steps per point). ``train_config(tc, method, wd)``: the trainer ``Config`` of one point.
``predicted_thresholds(methods, *, sigma2, lam)``: the linear theory's collapse weight decays.
``run_theory_check(tc, *, dataset=None, overwrite=False) -> report``: runs (or loads finished) points and
writes to ``<out_dir>/<name>/``: ``config.json`` (TheoryConfig + git SHA + provenance),
``points/<method>-wd<wd>/`` (the trainer's run folder plus ``trajectory.npz`` and ``theory_point.json``),
``report.json``, ``data.npz`` (sweep table and every point's trajectory as ``<tag>__<field>``) and PNG
figures. Re-running with the same config skips finished points and resumes an interrupted one from its last
finished epoch; a root holding another config is refused (``--overwrite`` replaces it; ``selfsup.rundir``).
The measurements themselves are in ``selfsup.theory.measure`` (``alignment``, ``asymmetry``,
``fit_exponent``, ``spectral_erank``, ...).
``load_arrays(tc)``: the per-point arrays of a finished run (for figures); plots in ``selfsup.theory.plots``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynamics import jit_cache
from selfsup import data, rundir
from selfsup import methods as registry
from selfsup.config import Config, Parser, add_flags, from_args, preset, run_cli, validated_once
from selfsup.theory import measure as tm
from selfsup.theory.run import run_point, save_npz

SWEEP_METHODS = ("simsiam", "phinet", "xphinet")
COMPARE_METHODS = ("byol", "directpred", "directcopy")


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class TheoryConfig:
    name: str = _f("default", "run folder name under out_dir (--name: alias, kept for one release)",
                   flags=("--run-name", "--name"))
    out_dir: str = _f("runs/theory_check", "parent folder")
    preset: str = _f("", "trainer preset every point starts from (its backbone, augmentations, kNN k and "
                     "evaluation set); the fields below override its sizes. --preset cifar10-cpu also sets "
                     "this command's CIFAR-10 defaults (THEORY_PRESETS)")
    dataset: str = _f("mnist5k", "dataset (selfsup.data)")
    data_dir: str = _f("", "folder with the official CIFAR / STL-10 files or an image folder")
    methods: tuple = _f(SWEEP_METHODS, "methods of the weight-decay sweep", elem=str)
    wds: tuple = _f((5e-4, 0.15, 0.3, 0.45), "weight decays of the sweep (around the predicted 0.24 / 0.42)",
                    elem=float)
    compare: tuple = _f(COMPARE_METHODS, "predictor comparison at base_wd (byol = trained linear predictor)",
                        elem=str)
    base_wd: float = _f(5e-4, "weight decay of the predictor comparison")
    epochs: int = _f(10, "training epochs per point")
    max_images: int = _f(0, "train on the first N images only (0: all)")
    width: int = _f(16, "small convnet width")
    proj_hidden: int = _f(256, "projector hidden width")
    proj_dim: int = _f(64, "projector output dimension d (size of F and Wp)")
    batch_size: int = _f(256, "batch size")
    lr: float = _f(1.0, "base learning rate per 256 images")
    lam: float = _f(1.0, "PhiNet / X-PhiNet weight of the CA1 loss")
    record_every: int = _f(10, "record (F, Wp) every N steps")
    probe: bool = _f(True, "score each point with the linear probes (all labels, 10 per class)")
    rel_tol: float = _f(1e-3, "an eigenvalue of F survives if >= rel_tol * the largest")
    collapse_erank: float = _f(1.5, "a point has collapsed if the effective rank of F is below this")
    seed: int = _f(0, "seed")
    progress: bool = _f(True, "tqdm progress bars")

    @classmethod
    def smoke(cls, **kw) -> TheoryConfig:
        small = dict(name="smoke", out_dir="runs/smoke/theory_check", methods=("simsiam", "phinet"),
                     wds=(5e-4,), compare=("directpred",),
                     epochs=1, max_images=256, width=8, proj_hidden=32, proj_dim=16, record_every=2,
                     batch_size=64, lr=0.1, probe=False, progress=False)
        return cls(**{**small, **kw})

    @validated_once
    def validate(self) -> TheoryConfig:
        def need(ok, name, allowed):
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: must be {allowed}")
        need(set(self.methods) <= set(SWEEP_METHODS), "methods", f"a subset of {SWEEP_METHODS}")
        need(set(self.compare) <= set(COMPARE_METHODS), "compare", f"a subset of {COMPARE_METHODS}")
        need(len(self.methods) + len(self.compare) > 0, "methods", "non-empty (or compare non-empty)")
        need(all(w >= 0 for w in self.wds) and (self.wds or not self.methods), "wds", "weight decays >= 0")
        need(self.base_wd >= 0, "base_wd", ">= 0")
        for name in ("record_every", "epochs", "width", "proj_hidden", "proj_dim", "batch_size"):
            need(getattr(self, name) >= 1, name, ">= 1")
        need(0 < self.rel_tol < 1, "rel_tol", "in (0, 1)")
        need(self.collapse_erank >= 1, "collapse_erank", ">= 1")
        data.check_source(self.dataset, self.data_dir)
        if self.preset:
            preset(self.preset, dataset=self.dataset)  # an unknown preset, or one for another dataset
        need(self.name and "/" not in self.name, "name", "a non-empty folder name without '/'")
        for m, wd in self.points():
            train_config(self, m, wd).validate()
        return self

    def points(self) -> list[tuple[str, float]]:
        """(method, wd) of every run: the sweep, then the comparison (shared points appear once)."""
        pts = [(m, float(w)) for m in self.methods for w in sorted(self.wds)]
        return pts + [(m, float(self.base_wd)) for m in self.compare if (m, float(self.base_wd)) not in pts]

    @property
    def root(self) -> Path:
        return Path(self.out_dir) / self.name


# --preset NAME: the trainer preset the points start from, and this command's defaults for it. CIFAR-10:
# the cifar10-cpu regime (strided net, width 32, 10,000 images, SimSiam's CIFAR augmentations, kNN k = 200
# on the 10,000 training images) with d = 64 and 20 epochs (780 steps, five times mnist5k's 150: the weak
# modes have time to leave their initial imbalance before the p-s fit); weight decays log-spaced from the
# recipe's 5e-4 to 0.3.
THEORY_PRESETS = {
    "cifar10-cpu": dict(preset="cifar10-cpu", dataset="cifar10", width=32, max_images=10000, epochs=20,
                        proj_hidden=512, proj_dim=64, wds=(5e-4, 0.03, 0.1, 0.3)),
}


def train_config(tc: TheoryConfig, method: str, wd: float) -> Config:
    """The trainer config of one point: linear bias-free predictor, scored once at the end (kNN and, with
    ``tc.probe``, the linear probes). Without a preset: the trainer's default backbone and augmentations,
    kNN k = 20; with ``tc.preset``: that preset's backbone, augmentations, kNN k and evaluation set."""
    base = preset(tc.preset, dataset=tc.dataset) if tc.preset else Config()
    knn_k = base.knn_k if tc.preset else min(20, max(1, tc.max_images // 4) if tc.max_images else 20)
    return base.replace(method=method, predictor="linear", wd=wd, dataset=tc.dataset, data_dir=tc.data_dir,
                        epochs=tc.epochs, max_images=tc.max_images, width=tc.width,
                        proj_hidden=tc.proj_hidden, proj_dim=tc.proj_dim, batch_size=tc.batch_size, lr=tc.lr,
                        lam=tc.lam, seed=tc.seed, eval_every=0, linear_probe=tc.probe, baselines=False,
                        log_every=10, progress=tc.progress, knn_k=knn_k, out_dir=str(tc.root / "points"),
                        run_name=f"{method}-wd{wd:g}")


def predicted_thresholds(methods, *, sigma2: float, lam: float) -> dict:
    """Linear theory's collapse weight decay per method for one mode (lambda_j = 1, tau = 1, alpha = 1)."""
    from dynamics.analysis import collapse_wd
    from dynamics.reduced import Params
    params = Params(lambda_j=1.0, sigma2=float(sigma2), lam=float(lam))
    return {m: collapse_wd(m, params, rtol=1e-8) for m in methods}


def _tag(method: str, wd: float) -> str:
    return f"{method}-wd{wd:g}"


_SWEEP_FIELDS = ("erank_F", "surviving_F", "erank", "out_std", "knn_acc", "align_weighted_final",
                 "align_mean_final",
                 "asym_final", "exponent_final")


def _sweep(tc: TheoryConfig, results: dict) -> dict:
    """Per method, each field as a list over the sorted wds; and the largest wd whose F kept its rank."""
    wds = sorted(float(w) for w in tc.wds)
    fields = _SWEEP_FIELDS + (("linear_acc", "linear_acc_10pc") if tc.probe else ())
    table = {m: {k: [results[_tag(m, w)][k] for w in wds] for k in fields} for m in tc.methods}
    alive = {m: [w for w, e in zip(wds, table[m]["erank_F"]) if e >= tc.collapse_erank] for m in tc.methods}
    return {"wds": wds, "table": table, "last_alive_wd": {m: max(a) if a else None for m, a in alive.items()}}


def _headline(tc: TheoryConfig, results: dict, sweep: dict, predicted: dict) -> dict:
    base = [t for t, r in results.items() if r["wd"] == tc.base_wd]
    trained = [t for t in base if not registry.METHODS[results[t]["method"]].setter]
    wds = sweep["wds"]
    erank = {m: sweep["table"][m]["erank_F"] for m in tc.methods}
    out = {"alignment_weighted_first_final": {t: [results[t]["align_weighted_first"],
                                                  results[t]["align_weighted_final"]] for t in trained},
           "alignment_mean_first_final": {t: [results[t]["align_mean_first"], results[t]["align_mean_final"]]
                                          for t in trained},
           "alignment_rises": all(results[t]["align_weighted_final"] > results[t]["align_weighted_first"]
                                  for t in trained),
           "exponent": {t: results[t]["exponent_final"] for t in base},
           "exponent_median_trained": float(np.median([results[t]["exponent_final"] for t in trained]))
           if trained else None,
           "exponent_median_sweep": float(np.nanmedian([r["exponent_final"] for r in results.values()])),
           "predicted_threshold": predicted,
           "predicted_ratio_to_simsiam": {m: v / predicted["simsiam"] for m, v in predicted.items()}
           if predicted.get("simsiam") else {},
           "predicted_order": sorted(predicted, key=predicted.get),
           "measured_last_alive_wd": sweep["last_alive_wd"],
           "knn_at_base_wd": {t: results[t]["knn_acc"] for t in base}}
    if "simsiam" in erank:
        for m in ("phinet", "xphinet"):
            if m in erank:
                diff = np.subtract(erank[m], erank["simsiam"]).tolist()
                out[f"{m}_minus_simsiam_erank_F"] = dict(zip(map(str, wds), diff))
    return out


def run_theory_check(tc: TheoryConfig, *, dataset=None, overwrite: bool = False) -> dict:
    """Run (or load) every point of ``tc``; write config.json, report.json, data.npz and the figures.

    The root folder follows ``selfsup.rundir.open_run`` with resume always on: the same config continues
    (finished points are loaded), another config is refused naming the fields; ``overwrite`` removes the
    old root's run (points included) first; one process at a time writes a root (lock file)."""
    tc.validate()
    with rundir.open_run(tc.root, dataclasses.asdict(tc), resume=not overwrite, overwrite=overwrite,
                         ignore=("name",)):
        return _run_theory_check(tc, dataset)


def _run_theory_check(tc: TheoryConfig, dataset) -> dict:
    from tqdm.auto import tqdm

    from selfsup.theory import plots as theory_plots
    dataset = dataset or data.from_config(tc, seed=0)  # the fixed split
    rundir.write_config(tc.root, dataclasses.asdict(tc))
    results, arrays = {}, {}
    for m, wd in tqdm(tc.points(), desc="theory check", disable=not tc.progress, file=sys.stderr):
        results[_tag(m, wd)], arrays[_tag(m, wd)] = run_point(train_config(tc, m, wd), dataset,
                                                              record_every=tc.record_every,
                                                              rel_tol=tc.rel_tol)
    for t, r in results.items():  # derived from the stored arrays, so finished points need no re-run
        w = tm.weighted_alignment(arrays[t]["cos"], arrays[t]["s"])
        r["align_weighted_first"], r["align_weighted_final"] = float(w[0]), float(w[-1])
    first = results[_tag(*tc.points()[0])]
    predicted = predicted_thresholds([m for m in SWEEP_METHODS if m in tc.methods] or ["simsiam"],
                                     sigma2=first["sigma2_hat"], lam=tc.lam)
    sweep = _sweep(tc, results)
    report = {"config": dataclasses.asdict(tc), "sigma2_hat": first["sigma2_hat"],
              "headline": _headline(tc, results, sweep, predicted), "sweep": sweep,
              "points": {t: {k: v for k, v in r.items() if k != "train_config"} for t, r in results.items()},
              "wall_s_points": float(sum(r["wall_s"] for r in results.values()))}
    (tc.root / "report.json").write_text(json.dumps(report, indent=1))
    flat = {f"{t}__{k}": v for t, a in arrays.items() for k, v in a.items()}
    table = {f"sweep__{m}__{k}": np.asarray(v, np.float64)
             for m, d in sweep["table"].items() for k, v in d.items()}
    save_npz(tc.root / "data.npz", {**flat, **table, "sweep__wds": np.asarray(sweep["wds"])})
    theory_plots.write_all(tc.root, report, arrays)
    return report


def load_arrays(tc: TheoryConfig) -> dict:
    """Every point's arrays from ``data.npz`` of a finished run: ``{tag: {field: array}}``."""
    out: dict = {}
    with np.load(tc.root / "data.npz") as z:
        for key in z.files:
            tag, name = key.split("__", 1)
            if tag != "sweep":
                out.setdefault(tag, {})[name] = z[key]
    return out


def main(argv=None) -> dict:
    parser = Parser(prog="python -m selfsup.theory",
                    description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="start from the tiny TheoryConfig.smoke() preset (its values: --smoke --help)")
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--smoke", action="store_true")
    pre.add_argument("--preset", default="")
    known = pre.parse_known_args(argv)[0]
    defaults = TheoryConfig.smoke() if known.smoke else TheoryConfig()
    if known.preset in THEORY_PRESETS:  # this command's defaults for the preset (flags still override them)
        defaults = dataclasses.replace(defaults, **THEORY_PRESETS[known.preset])
    add_flags(parser, defaults)  # the package's one flag generator, tuple fields included
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the run in the root folder (points included), then start afresh")
    ns = parser.parse_args(argv)
    tc = run_cli(parser, lambda: from_args(ns, defaults).validate())
    jit_cache.enable()
    report = run_cli(parser, lambda: run_theory_check(tc, overwrite=ns.overwrite))
    print(json.dumps({"out_dir": str(tc.root), **report["headline"]}))
    return report


if __name__ == "__main__":
    main()
