"""The test configuration itself: a DeprecationWarning raised from the project's own modules fails the suite
(pyproject's filterwarnings); one raised between third-party libraries does not."""
import warnings

import pytest


def _warn_from(module: str) -> None:
    scope = {"__name__": module, "warnings": warnings}
    exec("def f():\n    warnings.warn('deprecated', DeprecationWarning)\n", scope)
    scope["f"]()


@pytest.mark.parametrize("module", ["dynamics.phase", "selfsup.train", "figures.x", "benchmarks.x"])
def test_a_deprecation_warning_from_the_projects_modules_is_an_error(module):
    with pytest.raises(DeprecationWarning, match="deprecated"):
        _warn_from(module)


def test_a_deprecation_warning_from_a_library_is_ignored():
    _warn_from("optax.somewhere")
