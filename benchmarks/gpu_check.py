"""One-command accelerator check: ResNet-18 step speed at the CIFAR recipe's size, then a run that learns.

    python benchmarks/gpu_check.py [--json runs/gpu_check/<time>.json]     # on one GPU: a few minutes
    python benchmarks/gpu_check.py --tiny                                  # CPU smoke of the same code

1. SimSiam, BYOL and PhiNet steps of ResNet-18 with SimSiam's CIFAR heads (2048-2048 projector, 512
   predictor) at batch 512 in bfloat16 on synthetic CIFAR-shaped uint8 images (augmentations included):
   images/s, step ms, compile s, FLOPs per step, MFU and peak device memory (`benchmarks/train_speed.py`'s
   `measure`, whose peak-rate table it uses).
2. A short ResNet-18 SimSiam run on mnist5k (`--epochs`, default 20; bfloat16, batch 256) through the
   trainer, scored by the trainer's own summary: it must beat its random-init encoder on
   `linear_acc_10pc` (the check fails, exit 1, if not).
Prints one table and writes JSON (device, versions, every number) to `--json` (default
`runs/gpu_check/<timestamp>.json`, git-ignored). `--tiny` shrinks both parts (batch 16, 2 steps, the small
ConvNet run of 1 epoch on 512 images, too short to beat the untrained encoder: its test checks that the loss
falls instead) so the suite can run it on a CPU. The run's first and last logged losses are in the JSON.

Throughput needed for the real recipe (docs/selfsup.md, "Accelerators"): 800 epochs of CIFAR-10 are 40M
images; in 15 min that is 44,400 images/s, at the measured 5.93 GFLOP per image per step (two views,
forward and backward, SimSiam's CIFAR heads) 264 TFLOP/s: 27% MFU on an H100 / H200 in bf16 (989 TFLOP/s
dense).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
from train_speed import measure, peak_flops  # noqa: E402

RECIPE_IMAGES = 800 * 50_000
RECIPE_SECONDS = 15 * 60


def speed_rows(tiny: bool) -> list[dict]:
    batch, steps = (16, 2) if tiny else (512, 20)
    arch = "small" if tiny else "resnet18"
    return [measure(m, arch, batch, steps, "bfloat16") for m in ("simsiam", "byol", "phinet")]


def learning_run(tiny: bool, epochs: int, out: str) -> dict:
    from selfsup.config import Config
    from selfsup.train import train
    kw = (dict(arch="small", epochs=1, max_images=512, batch_size=64, log_every=2) if tiny
          else dict(arch="resnet18", epochs=epochs, batch_size=256))
    cfg = Config(method="simsiam", dataset="mnist5k", dtype="bfloat16", eval_every=0, progress=False,
                 out_dir=out, run_name="resnet18-simsiam-mnist5k", **kw)
    t0 = time.perf_counter()
    _, s = train(cfg, overwrite=True)
    rnd = s["baselines"]["random_init"]
    steps = [json.loads(ln) for ln in (Path(out) / cfg.name / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if "loss" in r]
    return {"arch": cfg.arch, "epochs": cfg.epochs, "wall_s": time.perf_counter() - t0,
            "loss_first": losses[0], "loss_last": losses[-1],
            "linear_acc_10pc": s["linear_acc_10pc"], "random_init_linear_acc_10pc": rnd["linear_acc_10pc"],
            "linear_acc": s["linear_acc"], "random_init_linear_acc": rnd["linear_acc"],
            "images_per_s": s.get("images_per_s"),
            "beats_random_init": bool(s["linear_acc_10pc"] > rnd["linear_acc_10pc"])}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke: tiny sizes, no learning requirement")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the mnist5k ResNet-18 run (20)")
    ap.add_argument("--json", default="", help="where to write the JSON (default runs/gpu_check/<time>.json)")
    a = ap.parse_args(argv)
    if a.epochs < 1:
        ap.error(f"--epochs {a.epochs} is invalid: must be >= 1")
    from dynamics.provenance import provenance
    peak, source = peak_flops("bfloat16")
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} x{jax.device_count()}, bf16 peak "
          f"{peak / 1e12 if peak else float('nan'):.1f} TFLOP/s ({source})", flush=True)
    rows = speed_rows(a.tiny)
    print(f"{'method':<9}{'arch':<10}{'batch':>6}{'img/s':>9}{'step ms':>9}{'compile s':>10}{'GFLOP/img':>10}"
          f"{'MFU %':>7}{'mem GB':>8}")
    for r in rows:
        gf = r["flops_per_step"] / 1e9 / r["batch_size"] if r["flops_per_step"] else float("nan")
        mem = r["peak_memory_bytes"] / 2**30 if r["peak_memory_bytes"] else float("nan")
        print(f"{r['method']:<9}{r['arch']:<10}{r['batch_size']:>6}{r['images_per_s']:>9.0f}"
              f"{1e3 * r['step_s']:>9.1f}{r['compile_s']:>10.1f}{gf:>10.2f}"
              f"{100 * r['mfu'] if r['mfu'] else float('nan'):>7.1f}{mem:>8.2f}", flush=True)
    need = RECIPE_IMAGES / RECIPE_SECONDS
    simsiam = rows[0]
    print(f"800-epoch SimSiam CIFAR-10 in 15 min needs {need:,.0f} images/s; measured "
          f"{simsiam['images_per_s']:,.0f} ({simsiam['images_per_s'] / need:.1%} of it)")
    with tempfile.TemporaryDirectory() as tmp:
        run = learning_run(a.tiny, a.epochs, tmp)
    print(f"mnist5k {run['arch']} SimSiam, {run['epochs']} epochs, bf16: linear_acc_10pc "
          f"{run['linear_acc_10pc']:.3f} vs random init {run['random_init_linear_acc_10pc']:.3f} "
          f"({'beats' if run['beats_random_init'] else 'does NOT beat'} it), {run['wall_s']:.0f} s")
    result = {"device": dev.device_kind, "device_count": jax.device_count(), "peak_bf16_flops": peak,
              "peak_source": source, "speed": rows, "needed_images_per_s": need, "learning_run": run,
              "tiny": a.tiny, "provenance": provenance()}
    path = Path(a.json or f"runs/gpu_check/{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    if not a.tiny and not run["beats_random_init"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
