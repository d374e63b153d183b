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
