"""Multi-process (multi-host) training: ``python -m selfsup.train --distributed``.

``initialize()`` calls ``jax.distributed.initialize``: under SLURM (``SLURM_JOB_ID`` with more than one task)
or on a Cloud TPU pod JAX finds the coordinator itself; elsewhere the three variables ``ENV`` name it
(``JAX_COORDINATOR_ADDRESS=host:port``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), and a run that has none
of these is refused naming the missing variables (the CLI exits 2 with that line). On CPUs the collectives
go through gloo. After it, ``jax.devices()`` lists every process's devices: the trainer's mesh spans them
all, each step's batch is split over the global devices, process 0 alone writes the run folder (config,
metrics, checkpoints, summary), and every process restores from the same checkpoint on ``--resume``.

Public API: ``ENV``, ``initialize() -> dict`` (what was detected: ``{"cluster", "process_id",
"num_processes"}``), ``is_main() -> bool`` (process 0).
"""
from __future__ import annotations

import os

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _cluster() -> str | None:
    if os.environ.get("SLURM_JOB_ID") and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return "slurm"
    if os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"):
        return "tpu"
    return None


def initialize() -> dict:
    """Start JAX's distributed runtime (module doc); ValueError naming the missing variables if there is no
    coordinator to find."""
    import jax
    cluster = _cluster()
    given = {k: os.environ.get(k) for k in ENV}
    if cluster is None and not all(given.values()):
        missing = [k for k, v in given.items() if not v]
        raise ValueError(f"--distributed found no coordinator: set {', '.join(missing)} (or run under SLURM "
                         "with several tasks, or on a Cloud TPU pod)")
    if os.environ.get("JAX_PLATFORMS", "").startswith("cpu") or (cluster is None and not _has_accelerator()):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cluster is None:
        try:
            n, i = int(given["JAX_NUM_PROCESSES"]), int(given["JAX_PROCESS_ID"])
        except ValueError:
            raise ValueError(f"JAX_NUM_PROCESSES={given['JAX_NUM_PROCESSES']!r} and JAX_PROCESS_ID="
                             f"{given['JAX_PROCESS_ID']!r} must be integers") from None
        if not 0 <= i < n:
            raise ValueError(f"JAX_PROCESS_ID={i} is invalid: must be in [0, JAX_NUM_PROCESSES={n})")
        jax.distributed.initialize(coordinator_address=given["JAX_COORDINATOR_ADDRESS"], num_processes=n,
                                   process_id=i)
    else:
        jax.distributed.initialize()
    return {"cluster": cluster or "env", "process_id": jax.process_index(),
            "num_processes": jax.process_count()}


def _has_accelerator() -> bool:
    import importlib.util
    return any(importlib.util.find_spec(m) is not None for m in ("jax_cuda12_plugin", "libtpu"))


def is_main() -> bool:
    """True in process 0 (and in a single-process run): the one that writes the run folder."""
    import jax
    return jax.process_index() == 0
