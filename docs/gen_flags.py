"""Write docs/flags.md, the flags reference, from the CLIs' own parsers: `python docs/gen_flags.py`.

Every module of `dynamics/` and `selfsup/` that runs as `python -m X` (it has an `if __name__ == "__main__":`
block) is a CLI; for each, its `main(["--help"])` is called in this one process with stdout captured, at a
fixed width of 100 columns, so the page is exactly what `python -m X --help` prints there. A module whose
`main` is another CLI's (`selfsup.theory.check` is `python -m selfsup.theory`) is listed once.

    python docs/gen_flags.py            # rewrite docs/flags.md
    python docs/gen_flags.py --check    # exit 1 and say which CLIs differ if docs/flags.md is stale

`tests/test_docs.py` runs `--check`.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the packages of this checkout, also when run as `python docs/gen_flags.py`
PAGE = ROOT / "docs" / "flags.md"
PACKAGES = ("dynamics", "selfsup")
WIDTH = "100"
MAIN_BLOCK = re.compile(r'^if __name__ == "__main__":', re.M)
HEADER = """# Flags reference

Generated from the parsers by `python docs/gen_flags.py` (Python {version}); do not edit by hand. After
changing a CLI's flags, run that one command and commit this page with the change: `tests/test_docs.py` fails
while it is stale. Each section is exactly what `python -m <module> --help` prints (at 100 columns).
Conventions shared by every CLI (run folders, `--resume`, `--overwrite`, exit codes):
[README](../README.md#cli-conventions).

"""


def cli_modules() -> list[str]:
    """Dotted names of the modules that run as `python -m X`; a package's `__main__.py` is the package."""
    names = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if MAIN_BLOCK.search(path.read_text(encoding="utf-8")):
                parts = list(path.relative_to(ROOT).with_suffix("").parts)
                if parts[-1] == "__main__":
                    parts.pop()
                names.append(".".join(parts))
    return sorted(names, key=lambda n: (n.split(".")[0] != "dynamics", n))


def _main_of(name: str):
    spec = importlib.util.find_spec(name)
    module = importlib.import_module(name + ".__main__" if spec.submodule_search_locations else name)
    return getattr(module, "main", None)  # None: its __main__ block runs another CLI's main


def help_text(name: str) -> str:
    """What `python -m name --help` prints, captured in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            _main_of(name)(["--help"])
        except SystemExit as stop:
            if stop.code not in (0, None):
                raise RuntimeError(f"python -m {name} --help exited {stop.code}") from None
        else:
            raise RuntimeError(f"python -m {name} --help did not exit")
    return out.getvalue().rstrip() + "\n"


def helps() -> dict[str, str]:
    """{module: help text}, one entry per distinct CLI (the shortest name of a shared `main`)."""
    os.environ["COLUMNS"] = WIDTH
    seen, result = {}, {}
    for name in sorted(cli_modules(), key=len):
        main = _main_of(name)
        if main is not None and main not in seen:
            seen[main] = name
            result[name] = help_text(name)
    return {name: result[name] for name in cli_modules() if name in result}


def render(texts: dict[str, str]) -> str:
    version = "{}.{}".format(*sys.version_info[:2])
    index = " · ".join(f"[`{n}`](#python--m-{n.replace('.', '')})" for n in texts)
    body = "".join(f"## python -m {n}\n\n```text\n{t}```\n\n" for n, t in texts.items())
    return HEADER.format(version=version) + index + "\n\n" + body.rstrip() + "\n"


def sections(page: str) -> dict[str, str]:
    """{module: help text} read back from a rendered page."""
    return dict(re.findall(r"^## python -m (\S+)\n\n```text\n(.*?)```$", page, flags=re.M | re.S))


def flags(text: str) -> set[str]:
    """The option strings (`--wd`, `-h`) a help text names: independent of Python's help layout."""
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with docs/flags.md instead of writing it")
    ns = ap.parse_args(argv)
    page = render(helps())
    if not ns.check:
        PAGE.write_text(page, encoding="utf-8")
        print(f"wrote {PAGE.relative_to(ROOT)}")
        return 0
    text = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    old, new = sections(text), sections(page)
    # The help layout changes between Python versions; on another version only the flags are compared.
    made_with = re.search(r"\(Python (\d+\.\d+)\)", text)
    same_python = bool(made_with) and made_with.group(1) == "{}.{}".format(*sys.version_info[:2])
    differ = sorted(set(old) ^ set(new)) + sorted(
        n for n in set(old) & set(new)
        if (old[n] != new[n] if same_python else flags(old[n]) != flags(new[n])))
    if differ:
        print(f"docs/flags.md is stale for {', '.join(differ)}: run `python docs/gen_flags.py`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
