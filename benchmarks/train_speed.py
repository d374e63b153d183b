"""Training throughput (images/s) of every method on the small convnet and the CIFAR ResNet-18.

    python benchmarks/train_speed.py                       # all methods, both nets, this machine's devices
    python benchmarks/train_speed.py --archs small --steps 20 --methods simsiam phinet

Per (method, arch): the jitted step is lowered and compiled explicitly (compile time reported on its own),
one warm-up step runs, then ``--steps`` steps are timed with ``block_until_ready``. Images are random uint8
batches of the dataset's shape (mnist5k 28x28x1 for the small net, CIFAR 32x32x3 for ResNet-18), so the number
is the step's cost (augmentations included) without the host data pipeline. Results print as a table and,
with ``--json``, go to a file with the device description.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

from selfsup import data, methods
from selfsup.config import Config
from selfsup.step import init_state, make_step

SHAPES = {"small": "mnist5k", "resnet18": "cifar10"}


def measure(method: str, arch: str, batch_size: int, steps: int) -> dict:
    dataset = SHAPES[arch]
    shape = data.IMAGE_SHAPES[dataset]
    heads = {"proj_hidden": 2048, "proj_dim": 2048, "pred_hidden": 512} if arch == "resnet18" else {}
    cfg = Config(method=method, arch=arch, dataset=dataset, data_dir="-", batch_size=batch_size, epochs=1,
                 **heads)  # ResNet-18 with SimSiam's CIFAR heads
    c = shape[-1]
    info = data.DataInfo(dataset, shape, 10, batch_size * (steps + 1), (0.5,) * c, (0.25,) * c)
    state = init_state(cfg, jax.random.key(0), info)
    step = make_step(cfg, info)
    images = jax.device_put(np.random.default_rng(0).integers(0, 256, (batch_size, *shape), dtype=np.uint8))
    key = jax.random.key(1)
    t0 = time.perf_counter()
    compiled = step.lower(state, images, key).compile()
    compile_s = time.perf_counter() - t0
    state, m = compiled(state, images, key)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for i in range(steps):
        state, m = compiled(state, images, jax.random.fold_in(key, i))
    jax.block_until_ready((state, m))
    dt = time.perf_counter() - t0
    return {"method": method, "arch": arch, "batch_size": batch_size, "steps": steps, "compile_s": compile_s,
            "step_s": dt / steps, "images_per_s": steps * batch_size / dt}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=sorted(methods.METHODS), choices=sorted(methods.METHODS))
    p.add_argument("--archs", nargs="+", default=["small", "resnet18"], choices=list(SHAPES))
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    p.add_argument("--steps", type=int, default=10, help="timed steps for the small net (default 10)")
    p.add_argument("--resnet-steps", type=int, default=3, help="timed steps for ResNet-18 (default 3)")
    p.add_argument("--json", default="", help="write the results here")
    a = p.parse_args(argv)
    if a.batch_size < 1 or a.steps < 1 or a.resnet_steps < 1:
        p.error("--batch-size, --steps and --resnet-steps must be >= 1")
    cpu = platform.processor() or platform.machine()
    device = f"{jax.devices()[0].device_kind} x{jax.device_count()} ({cpu})"
    print(f"device: {device}")
    print(f"{'method':<12}{'arch':<10}{'batch':>6}{'compile s':>11}{'step s':>9}{'images/s':>10}")
    rows = []
    for arch in a.archs:
        for method in a.methods:
            r = measure(method, arch, a.batch_size, a.steps if arch == "small" else a.resnet_steps)
            rows.append(r)
            print(f"{method:<12}{arch:<10}{r['batch_size']:>6}{r['compile_s']:>11.1f}{r['step_s']:>9.3f}"
                  f"{r['images_per_s']:>10.0f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device, "results": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
