"""Shared test fixtures.

`x64` switches JAX to float64 for one test (the dynamics tests compare against closed forms to 1e-8 and need
it) and restores the previous setting afterwards, so the float32 CNN tests are unaffected.
"""
import jax
import pytest


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield
