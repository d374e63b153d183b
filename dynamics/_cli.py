"""Argument validation shared by the command-line entry points.

Bad input exits with status 2 and one line on stderr naming the bad value and what is allowed (no usage
block, no traceback): `Parser.error` prints `prog: error: message` only, and the `type=` helpers below turn
a bad value into such a message.
"""
import argparse
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

# A token that starts like a negative number ("-1e-3", "-.5", "-inf", "-0.2,1", even "-1x"): a value, never a
# flag (no flag of these CLIs starts with a digit), so the flag's validator sees it and names what is allowed.
NEGATIVE_VALUE = re.compile(r"^-(?:\d|\.\d|inf|nan)", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2. Flags are never abbreviated
    (`allow_abbrev=False`: `--wd` is not read as `--wds`), and a token that starts like a negative number
    (`-1e-3`, `-.5`, `-inf`, a comma list `-0.2,1`) is a value, so it reaches the flag's validator, which
    names the allowed range (argparse itself takes only `-1` and `-0.5` as numbers and says "expected one
    argument" for the rest)."""

    def __init__(self, *args, allow_abbrev: bool = False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)
        self._negative_number_matcher = NEGATIVE_VALUE

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def number(low: float | None = None, *, strict: bool = False, integer: bool = False):
    """`type=` for a finite number (an integer if asked) `>= low` (`> low` if strict)."""
    kind = "an integer" if integer else "a number"
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}; allowed: {kind}{bound}") from None
        bad = not math.isfinite(value) or (low is not None and (value <= low if strict else value < low))
        if bad:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; allowed: {kind}{bound}")
        return value

    return parse


def number_list(low: float | None = None, *, strict: bool = False):
    """`type=` for a comma-separated list of finite numbers, each `>= low` (`> low` if strict)."""
    one = number(low, strict=strict)

    def parse(text: str):
        try:
            return [one(part) for part in text.split(",")]
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"in list {text!r}: {err}") from None

    return parse


def same_lengths(parser: Parser, lists: dict) -> int:
    """Common length of the given lists (length-1 lists broadcast); a parser error naming them otherwise."""
    lengths = {name: len(v) for name, v in lists.items() if v is not None and len(v) != 1}
    if len(set(lengths.values())) > 1:
        parser.error("lists of different lengths: " + ", ".join(f"{k} has {n}" for k, n in lengths.items())
                     + "; allowed: equal lengths (or a single value)")
    return next(iter(lengths.values()), 1)


def add_output_flags(parser: argparse.ArgumentParser, parent: str, default_name: str) -> None:
    """The output flags every CLI of both packages spells alike: ``--out-dir`` (parent folder, default
    ``parent``) and ``--run-name`` (folder name under it, default ``default_name``), so the run folder is
    ``<out-dir>/<run-name>``. Old spellings, kept for one release: ``--name`` (alias of ``--run-name``) and
    ``--out P`` (the run folder itself: ``--out-dir`` P's parent, ``--run-name`` P's name)."""
    parser.add_argument("--out-dir", default=parent, help=f"parent folder of run folders ({parent})")
    parser.add_argument("--run-name", "--name", dest="name", default=None,
                        help=f"run folder name under --out-dir (default: {default_name}; --name: alias, kept "
                             "for one release)")
    parser.add_argument("--out", default=None,
                        help="the run folder itself, overriding --out-dir and --run-name (old spelling, kept "
                             "for one release)")


def run_folder(args, default_name: str) -> Path:
    """The run folder the output flags of ``add_output_flags`` name."""
    return Path(args.out) if args.out else Path(args.out_dir) / (args.name or default_name)


def writable_folder(parser: Parser, folder: Path) -> Path:
    """Create `folder` (and its parents) and check that a file can be written in it; a one-line parser error
    naming the folder otherwise (read-only, a path under a regular file, no permission)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        parser.error(f"output folder {folder} cannot be written ({err.strerror or err}); allowed: a writable "
                     "folder (--out-dir, --run-name)")
    return folder


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so an interrupted write never leaves a
    truncated file that a later run would read as finished."""
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def print_json(obj) -> None:
    """One JSON object on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")


def run_main(main) -> None:
    """Run a CLI's `main()`, then end the process without the interpreter's teardown. Destroying the
    compiled XLA programs, sympy's caches and every module's objects takes 0.6-0.7 s after
    `python -m dynamics.simulate --wd 5e-4` (measured: `main()` 6.9 s, the process 7.6 s) and does nothing
    a finished command needs: every output file is already written and closed, so only the standard
    streams are flushed. An exception or `SystemExit` (bad input, `--help`) leaves the normal way."""
    main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
