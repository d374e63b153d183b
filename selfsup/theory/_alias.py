"""The former flat module paths (``selfsup.theory_check`` ...), kept as aliases for one release."""
import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make the module ``old`` (being imported) the module ``new``; run ``new.main()`` under ``python -m``."""
    module = importlib.import_module(new)
    if old == "__main__":
        module.main()
        return
    warnings.warn(f"{old} is now {new}", DeprecationWarning, stacklevel=3)
    sys.modules[old] = module
