"""Learning on real CIFAR-10 images (the ../shared/data tarball, decoded once per session by the
``cifar10_jpeg`` fixture; skipped with a reason when it is absent)."""
import numpy as np
import pytest

from selfsup import data
from selfsup.config import preset
from selfsup.train import train

N_TRAIN, N_TEST = 5000, 2000


def _subset(d):
    """The first 5,000 training images (500 per class: the folder's balanced order) and 2,000 test images."""
    return data.Dataset("cifar10", d.x_train[:N_TRAIN], d.y_train[:N_TRAIN], d.x_test[:N_TEST],
                        d.y_test[:N_TEST], 10)


def test_short_simsiam_run_on_cifar10_beats_its_untrained_encoder_and_pixels(cifar10_jpeg, cifar10_root,
                                                                             tmp_path):
    """6 epochs of SimSiam (cifar10-cpu preset, width 16, batch 128: 234 steps) on 5,000 real CIFAR-10
    images, kNN (k = 200, bank = those 5,000) on 2,000 test images. Measured (seed 0, 2 busy cores, 70 s):
    trained 0.3575 vs its untrained encoder with re-estimated BN statistics 0.320 (+3.75 points; with the
    initial statistics 0.2355) and raw pixels 0.3305 (+2.7). About half of each margin is asserted."""
    small = _subset(cifar10_jpeg)
    assert np.array_equal(np.bincount(small.y_train), [500] * 10)
    cfg = preset("cifar10-cpu", data_dir=str(cifar10_root), max_images=N_TRAIN, eval_images=N_TRAIN,
                 width=16, epochs=6, batch_size=128, warmup_epochs=0, eval_every=0, linear_probe=False,
                 progress=False, out_dir=str(tmp_path))
    _, s = train(cfg, dataset=small)
    rnd, rnd0, pix = (s["baselines"][k] for k in ("random_init", "random_init_bn_init", "pixels"))
    print({k: v["knn_acc"] for k, v in (("trained", s), ("random_init", rnd), ("bn_init", rnd0),
                                         ("pixels", pix))})
    assert s["knn_acc"] > rnd["knn_acc"] + 0.018 and s["knn_acc"] > pix["knn_acc"] + 0.013, (s, rnd, pix)
    assert rnd["knn_acc"] > rnd0["knn_acc"]  # re-estimated statistics: the fairer, stronger reference


def test_short_bio_bp_run_on_cifar10_beats_its_untrained_network(cifar10_jpeg, cifar10_root, tmp_path):
    """selfsup.bio (contrastive hinge loss, BP, end to end): 12 epochs, width 8, batch 250 (240 steps) on the
    same 5,000 images, linear probe per layer on the 2,000 test images. Measured (2 busy cores, about 55 s),
    top layer trained vs untrained at seeds 0 / 1 / 2: 0.370 / 0.371 / 0.371 vs 0.336 / 0.330 / 0.347
    (+3.3 +- 0.9 points); best layer +2.7 +- 0.4. Seed 0 runs here; about half the smallest margin is
    asserted."""
    from selfsup.bio import train as bio_train
    from selfsup.bio.config import BioConfig
    small = _subset(cifar10_jpeg)
    cfg = BioConfig(dataset="cifar10", data_dir=str(cifar10_root), rule="bp", schedule="e2e", width=8,
                    epochs=12, batch_size=250, flip_p=0.5, seed=0, progress=False, out_dir=str(tmp_path))
    rnd = bio_train.random_encoder(cfg, dataset=small)
    _, s = bio_train.train(cfg, dataset=small)
    print({"trained": s["linear_acc"], "untrained": rnd["linear_acc"]})
    assert s["linear_acc"][-1] > rnd["linear_acc"][-1] + 0.012, (s["linear_acc"], rnd["linear_acc"])
    assert s["best_acc"] > rnd["best_acc"] + 0.012, (s["linear_acc"], rnd["linear_acc"])


@pytest.mark.slow  # about 150 s on 2 busy cores (evaluation of every task twice at init, then after each)
def test_short_continual_run_on_cifar10_beats_its_untrained_encoder(cifar10_jpeg, cifar10_root, tmp_path):
    """selfsup.continual: SimSiam (cifar10-cpu, width 16, batch 128), 2 class-incremental tasks of 5
    classes, 15 epochs per task (585 steps) on the same 5,000 images; kNN (k = 200) on all classes of the
    2,000 test images after the last task. Measured (seed 0, 2 busy cores): 0.3505 vs R_init (BN statistics
    re-estimated) 0.320 (+3.0 points; with the initial statistics 0.2355). With 3 or 6 epochs per task the
    margin was 0.0 and +1.6 points: too short to show. About half the margin is asserted."""
    import dataclasses

    from selfsup.continual.config import ContinualConfig, with_preset
    from selfsup.continual.continual import run_continual
    cc = with_preset(ContinualConfig(tasks=2), "cifar10-cpu")
    cc = dataclasses.replace(cc, train=cc.train.replace(
        data_dir=str(cifar10_root), max_images=N_TRAIN, eval_images=N_TRAIN, width=16, epochs=15,
        batch_size=128, warmup_epochs=0, linear_probe=False, progress=False, seed=0, out_dir=str(tmp_path)))
    s = run_continual(cc, dataset=_subset(cifar10_jpeg))
    final, init, init0 = s["final_all"]["knn"], s["R_init"]["knn_all"], s["R_init_bn_init"]["knn_all"]
    print({"final": final, "R_init": init, "R_init_bn_init": init0, "R": s["knn"]["R"]})
    assert final > init + 0.015, (final, init)
    assert init > init0  # the re-estimated statistics: the fairer, stronger reference
