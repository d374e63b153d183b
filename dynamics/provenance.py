"""Where a result came from: library versions, the devices JAX runs on, and the code's git state.

Both packages write it into every run folder's ``config.json`` (``dynamics.simulate`` / ``dynamics.phase``
beside their config; ``selfsup.rundir.write_config`` for the trainers), so a number can be traced to the code
and the machine that produced it.

Public API
- ``provenance() -> dict``: ``versions`` (python, jax, jaxlib, numpy, and flax, optax, diffrax, sympy, scipy
  where installed: None otherwise), ``device_kind``, ``device_count``, ``platform``, ``git_sha`` (None
  outside a git checkout) and ``git_dirty`` (uncommitted changes in the checkout; None without git).
- ``git_sha() -> str | None``: the checkout's HEAD commit.
"""
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "numpy", "flax", "optax", "diffrax", "sympy", "scipy")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "--no-optional-locks", *args], capture_output=True, text=True,
                             check=True, timeout=10, cwd=Path(__file__).resolve().parent,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    sha = _git("rev-parse", "HEAD")
    return sha.strip() if sha else None


def provenance() -> dict:
    """Library versions, the devices JAX runs on and the code's git state (module doc)."""
    import jax
    devices = jax.devices()
    sha, status = git_sha(), _git("status", "--porcelain")
    return {"versions": {"python": sys.version.split()[0], **{p: _version(p) for p in PACKAGES}},
            "device_kind": devices[0].device_kind, "device_count": len(devices),
            "platform": devices[0].platform, "git_sha": sha,
            "git_dirty": bool(status.strip()) if status is not None and sha else None}
