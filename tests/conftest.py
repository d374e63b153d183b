"""Shared test fixtures.

`x64` switches JAX to float64 for one test (the dynamics tests compare against closed forms to 1e-8 and need
it) and restores the previous setting afterwards, so the float32 CNN tests are unaffected.

Compilation cache: most of the suite's time is XLA compiling the same small steps again (every smoke run
builds a fresh jitted step, and the CLI, notebook and two-process tests are separate processes). JAX's
persistent compilation cache, in a fresh temporary folder for each session (never one left from an earlier
run, so every session still compiles everything once) and removed at exit, lets later tests and their
subprocesses (which inherit the environment) load the executables instead. Every program is kept, however
fast it compiled: a fresh process's eager ops are dozens of 10-50 ms compiles (a smoke `selfsup.train` with a
warm cache: 3.9 s kept at any compile time, 5.1 s kept above 0.05 s). Set JAX_COMPILATION_CACHE_DIR yourself
to keep or share one; an empty value turns the cache off.
"""
import atexit
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:  # before jax is imported: it reads these once
    _cache = tempfile.mkdtemp(prefix="jax-test-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


SHARED_CIFAR10 = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data",
                              "cifar10-jpeg.tar.gz")


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory):
    """All of CIFAR-10 as an image folder (../shared/data/cifar10-jpeg.tar.gz, unpacked once per session,
    about 3 s); tests that use it skip when the tarball is absent (users bring their own copy)."""
    import tarfile
    from pathlib import Path
    if not os.path.isfile(SHARED_CIFAR10):
        pytest.skip(f"CIFAR-10 tarball not found at {os.path.normpath(SHARED_CIFAR10)} (tests and CI only)")
    dest = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(SHARED_CIFAR10) as t:
        t.extractall(dest, filter="data")
    return Path(dest) / "cifar10-jpeg"


@pytest.fixture(scope="session")
def cifar10_jpeg(cifar10_root):
    """``data.load("cifar10", cifar10_root)``, decoded once per session (about 14 s), without the cache."""
    from selfsup import data
    saved = os.environ.get("SSL_DYNAMICS_IMAGE_CACHE")
    os.environ["SSL_DYNAMICS_IMAGE_CACHE"] = ""  # decoded once per session anyway: no cache file to write
    try:
        return data.load("cifar10", cifar10_root, progress=False)
    finally:
        if saved is None:
            del os.environ["SSL_DYNAMICS_IMAGE_CACHE"]
        else:
            os.environ["SSL_DYNAMICS_IMAGE_CACHE"] = saved
