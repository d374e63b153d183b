"""JAX's persistent compilation cache for the command-line tools.

Every `python -m dynamics.simulate` / `dynamics.phase` / `selfsup.train` ... is a fresh process that would
compile its jitted functions anew (seconds: most of a default `simulate`'s time, several seconds per CNN
method). With the cache on, the first run stores the compiled executables on disk and later runs with the
same shapes load them instead (JAX keys each entry on the program, the compiler options, the JAX version
and the device, so a stale entry is never used).

`enable()` is called at the start of each CLI's `main`: it uses `$JAX_COMPILATION_CACHE_DIR` if that is set
(JAX reads it itself; an empty value turns the cache off), else `$XDG_CACHE_HOME/ssl-dynamics/jax` or
`~/.cache/ssl-dynamics/jax`; programs that compile in under 0.2 s are not stored. A folder that cannot be
created leaves the cache off. Library use (notebooks, `import dynamics`) is never changed.
"""
import os
from pathlib import Path

import jax

MIN_COMPILE_S = 0.2


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssl-dynamics" / "jax"


def enable() -> str | None:
    """Turn the persistent cache on (module docstring); returns its folder, or None if it stays off."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return os.environ["JAX_COMPILATION_CACHE_DIR"] or None
    path = default_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return str(path)
