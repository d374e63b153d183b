"""The small-ConvNet SimSiam steps in selfsup (JAX) against a PyTorch implementation of the same nets.

    pip install -e ".[bench]"                  # torch (CPU wheels), only for this benchmark
    python benchmarks/vs_pytorch.py [--regime mnist5k|cifar10-cpu] [--batch-sizes 64,256] [--steps 20]

Each implementation runs in its own process (so their thread pools do not compete), on the same shapes.
``--regime mnist5k`` (default): 28x28x1 uint8 images, the default `ConvNet` (width 16: 4 x (3x3 conv - BN -
ReLU), 2x2 max-pools after the 1st, 2nd and 4th, the 4x4 map flattened). ``--regime cifar10-cpu``: 32x32x3
images, the preset's `StridedConvNet` (width 32: 4 x (3x3 conv - BN - ReLU) at strides 1-2-2-2, the 4x4 map
flattened). Both: SimSiam's projector 512 -> 128 (final BN without affine) and predictor 128 -> 32 -> 128,
symmetric negative cosine with stop-gradient, SGD momentum 0.9 with weight decay 5e-4. The PyTorch side is
this file's own reference implementation (`_torch_step_ms`); it gets two views of random floats and no
augmentation, while the selfsup step includes its on-device augmentations (crop, flip, jitter, grayscale) of
both views, so the comparison favours PyTorch slightly. Prints ms per step for both and the ratio (PyTorch
time / selfsup time: above 1 means selfsup is faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

REGIMES = {"mnist5k": ("small", 16, (28, 28, 1)), "cifar10-cpu": ("strided", 32, (32, 32, 3))}


def _torch_step_ms(regime: str, batch: int, steps: int) -> float:
    import torch
    from torch import nn
    torch.set_num_threads(os.cpu_count() or 1)
    arch, w, (h, _, c) = REGIMES[regime]

    def block(cin, cout, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    if arch == "small":
        backbone = nn.Sequential(*block(c, w), nn.MaxPool2d(2, ceil_mode=True), *block(w, 2 * w),
                                 nn.MaxPool2d(2, ceil_mode=True), *block(2 * w, 4 * w), *block(4 * w, 4 * w),
                                 nn.MaxPool2d(2, ceil_mode=True), nn.Flatten())
    else:
        backbone = nn.Sequential(*block(c, w), *block(w, 2 * w, 2), *block(2 * w, 4 * w, 2),
                                 *block(4 * w, 4 * w, 2), nn.Flatten())
    feat = 4 * w * 4 * 4
    projector = nn.Sequential(nn.Linear(feat, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                              nn.Linear(512, 128, bias=False), nn.BatchNorm1d(128, affine=False))
    predictor = nn.Sequential(nn.Linear(128, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(inplace=True),
                              nn.Linear(32, 128))
    model = nn.ModuleDict({"backbone": backbone, "projector": projector, "predictor": predictor})
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    cos = nn.CosineSimilarity(dim=1)
    g = torch.Generator().manual_seed(0)
    x1, x2 = (torch.rand(batch, c, h, h, generator=g) for _ in range(2))

    def step():
        z1, z2 = projector(backbone(x1)), projector(backbone(x2))
        p1, p2 = predictor(z1), predictor(z2)
        loss = -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean()) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    return 1e3 * (time.perf_counter() - t0) / steps


def _jax_step_ms(regime: str, batch: int, steps: int) -> float:
    """The regime's SimSiam step, timed by train_speed.measure (augmentations included)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_speed import measure
    return 1e3 * measure("simsiam", REGIMES[regime][0], batch, steps)["step_s"]


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regime", choices=sorted(REGIMES), default="mnist5k",
                    help="which net and image shape (default mnist5k)")
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--impl", choices=["torch", "jax"], help=argparse.SUPPRESS)  # one process per side
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.impl:
        fn = _torch_step_ms if a.impl == "torch" else _jax_step_ms
        print(json.dumps({"ms": fn(a.regime, a.batch, a.steps)}))
        return []
    try:
        sizes = [int(b) for b in a.batch_sizes.split(",")]
    except ValueError:
        ap.error(f"--batch-sizes {a.batch_sizes!r} is invalid: must be comma-separated integers")
    rows = []
    print(f"{'batch':>6}{'PyTorch ms':>12}{'selfsup ms':>12}{'ratio':>8}")
    for b in sizes:
        ms = {}
        for impl in ("torch", "jax"):
            cmd = [sys.executable, __file__, "--impl", impl, "--regime", a.regime, "--batch", str(b),
                   "--steps", str(a.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            ms[impl] = json.loads(out.stdout.strip().splitlines()[-1])["ms"]
        rows.append({"regime": a.regime, "batch": b, "torch_ms": ms["torch"], "selfsup_ms": ms["jax"],
                     "ratio": ms["torch"] / ms["jax"]})
        print(f"{b:>6}{ms['torch']:>12.1f}{ms['jax']:>12.1f}{ms['torch'] / ms['jax']:>7.2f}x", flush=True)
    return rows


if __name__ == "__main__":
    main()
