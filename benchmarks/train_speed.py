"""Training throughput (images/s) of every method on the small convnets and the CIFAR ResNet-18.

    python benchmarks/train_speed.py                       # all methods, both nets, this machine's devices
    python benchmarks/train_speed.py --archs small --steps 20 --methods simsiam phinet

Per (method, arch): the jitted step is lowered and compiled explicitly (compile time reported on its own),
one warm-up step runs, then ``--steps`` steps are timed with ``block_until_ready``. Images are random uint8
batches of the dataset's shape (mnist5k 28x28x1 for the small net, CIFAR 32x32x3 for ResNet-18), so the number
is the step's cost (augmentations included) without the host data pipeline. ``strided`` is the cifar10-cpu
preset's net (width 32, 32x32x3 images). Results print as a table and,
with ``--json``, go to a file with the device description and library versions (``dynamics.provenance``).

Figures of merit per row: images/s, step ms, compile s, FLOPs per step (XLA's cost analysis of the compiled
step), MFU = FLOPs per step / step time / the device's peak rate for the compute dtype (``PEAK_TFLOPS``:
dense bf16 and fp32 of H100 / H200 / A100 / L4 / TPU v4 / v5e from the vendors' data sheets; on a CPU the
peak is measured here as the best of a few 2048^2 matmuls in that dtype) and peak device memory (where the
backend reports it; CPUs do not).
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

SHAPES = {"small": "mnist5k", "strided": "cifar10", "resnet18": "cifar10"}

# dense peak TFLOP/s (bf16 tensor cores / MXU, fp32 without TF32), matched by substring of device_kind
PEAK_TFLOPS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5), "L4": (121.0, 30.3),
               "TPU v4": (275.0, None), "TPU v5 lite": (197.0, None), "TPU v5e": (197.0, None)}


def peak_flops(dtype: str) -> tuple[float | None, str]:
    """(peak FLOP/s of device 0 for ``dtype``, where the number comes from)."""
    kind = jax.devices()[0].device_kind
    for name, (bf16, fp32) in PEAK_TFLOPS.items():
        if name.lower() in kind.lower():
            rate = bf16 if dtype == "bfloat16" else fp32
            return (None if rate is None else rate * 1e12), f"data sheet ({name})"
    if jax.devices()[0].platform == "cpu":
        return _measured_matmul_peak(dtype), "measured 2048^2 matmul"
    return None, f"unknown device {kind!r}"


def _measured_matmul_peak(dtype: str, n: int = 2048, reps: int = 5) -> float:
    import jax.numpy as jnp
    dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    a = jnp.ones((n, n), dt)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def _peak_memory() -> int | None:
    stats = jax.devices()[0].memory_stats()
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def measure(method: str, arch: str, batch_size: int, steps: int, dtype: str = "float32") -> dict:
    dataset = SHAPES[arch]
    shape = data.IMAGE_SHAPES[dataset]
    heads = {"resnet18": {"proj_hidden": 2048, "proj_dim": 2048, "pred_hidden": 512},  # SimSiam's CIFAR heads
             "strided": {"width": 32}}.get(arch, {})  # the cifar10-cpu preset's backbone
    folder = "-" if dataset in data.FOLDER_DATASETS else ""  # no file is read: the shape is all it needs
    cfg = Config(method=method, arch=arch, dataset=dataset, data_dir=folder, batch_size=batch_size, epochs=1,
                 dtype=dtype, **heads)
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
    flops, (peak, _) = _flops(compiled), peak_flops(dtype)
    return {"method": method, "arch": arch, "dtype": dtype, "batch_size": batch_size, "steps": steps,
            "compile_s": compile_s, "flops_per_step": flops,
            "mfu": flops / (dt / steps) / peak if flops and peak else None,
            "peak_memory_bytes": _peak_memory(),
            "step_s": dt / steps, "images_per_s": steps * batch_size / dt}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=sorted(methods.METHODS), choices=sorted(methods.METHODS))
    p.add_argument("--archs", nargs="+", default=["small", "strided", "resnet18"], choices=list(SHAPES))
    p.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    p.add_argument("--steps", type=int, default=10, help="timed steps for the small nets (default 10)")
    p.add_argument("--resnet-steps", type=int, default=3, help="timed steps for ResNet-18 (default 3)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute dtype (bfloat16: mixed precision, selfsup's --dtype)")
    p.add_argument("--json", default="", help="write the results here")
    a = p.parse_args(argv)
    if a.batch_size < 1 or a.steps < 1 or a.resnet_steps < 1:
        p.error("--batch-size, --steps and --resnet-steps must be >= 1")
    cpu = platform.processor() or platform.machine()
    device = f"{jax.devices()[0].device_kind} x{jax.device_count()} ({cpu})"
    peak, source = peak_flops(a.dtype)
    print(f"device: {device}, dtype {a.dtype}, peak {peak / 1e12 if peak else float('nan'):.2f} TFLOP/s "
          f"({source})")
    print(f"{'method':<12}{'arch':<10}{'batch':>6}{'compile s':>11}{'step ms':>9}{'images/s':>10}"
          f"{'GFLOP/step':>11}{'MFU %':>7}{'peak mem GB':>12}")
    rows = []
    for arch in a.archs:
        for method in a.methods:
            steps = a.resnet_steps if arch == "resnet18" else a.steps
            r = measure(method, arch, a.batch_size, steps, a.dtype)
            rows.append(r)
            gf = r["flops_per_step"] / 1e9 if r["flops_per_step"] else float("nan")
            mfu = 100 * r["mfu"] if r["mfu"] else float("nan")
            mem = r["peak_memory_bytes"] / 2**30 if r["peak_memory_bytes"] else float("nan")
            print(f"{method:<12}{arch:<10}{r['batch_size']:>6}{r['compile_s']:>11.1f}"
                  f"{1e3 * r['step_s']:>9.1f}{r['images_per_s']:>10.0f}{gf:>11.2f}{mfu:>7.2f}{mem:>12.2f}",
                  flush=True)
    if a.json:
        from dynamics.provenance import provenance
        with open(a.json, "w") as f:
            json.dump({"device": device, "dtype": a.dtype, "peak_flops": peak, "peak_source": source,
                       "provenance": provenance(), "results": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
