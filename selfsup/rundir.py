"""Run folders that never lose work: refuse, resume or overwrite; one writer at a time; provenance.

Every selfsup trainer (``selfsup.train``, ``selfsup.continual``, ``selfsup.continual.online``,
``selfsup.bio``) and the theory check's root folder go through ``open_run``, so they share one policy:

- a folder that holds no run (no ``config.json``, ``checkpoint.msgpack`` or ``summary.json``) is started;
- a folder that holds a run with a different config is refused: ``RunFolderError`` (a ``ValueError``, so the
  CLIs exit with status 2 and one line) names the folder and the differing fields, e.g.
  ``lr: 0.1 -> 0.2``; with ``overwrite=True`` the old run's files are removed first;
- a folder that holds a run with the same config is refused unless ``resume=True`` (the trainer then
  continues from its checkpoint, or starts from the beginning when there is none yet) or ``overwrite=True``;
- ``resume=True`` and ``overwrite=True`` exclude each other;
- a folder that cannot be created or written raises ``RunFolderError`` naming it.
On the command line (``add_cli_flags``, ``cli_resume``) ``--resume`` is stricter: the folder must hold the run
(a mistyped name is refused, not started afresh); ``--resume-if-present`` is the lenient form.

The comparison leaves out ``IGNORED``: config fields that do not change results (``progress``, ``out_dir``,
``run_name``, at any depth of a nested config) and what the trainers write beside the config
(``git_sha``, ``provenance``, ``devices``, ``processes``, ``split``); configs are compared as JSON would
store them (tuples equal lists).

Public API
----------
``open_run(folder, config, *, resume=False, overwrite=False, ignore=())``: context manager; creates
``folder``, takes its ``RunLock``, applies the policy above, yields ``folder`` (a ``Path``) and releases
the lock on the way out, also when the body raises.
``write_config(folder, config, **extra)``: writes ``config.json`` = ``{**config, **extra, "git_sha": ...,
"provenance": provenance()}`` atomically.
``config_diff(saved, new, ignore=IGNORED) -> list[str]``: dotted names of the fields that differ (a field
present on one side only differs, except a field added later, ``ADDED_FIELDS``, missing from an older run's
config and at its recorded default in the new one).
``describe_diff(saved, new, names) -> str``: ``"lr: 0.1 -> 0.2, ..."``.
``provenance() -> dict``: ``dynamics.provenance.provenance`` (shared by both packages): ``versions``
(python, jax, jaxlib, numpy, flax, optax, diffrax, sympy, scipy), ``device_kind``, ``device_count``,
``platform`` (of ``jax.devices()``), ``git_sha`` and ``git_dirty`` (both None outside a git checkout).
``RunLock(folder)``: the lock file ``folder/.lock``, created atomically (``O_CREAT | O_EXCL``) holding
``{"pid", "host", "started"}``; ``acquire()`` raises ``RunFolderError`` naming the holder while another live
process holds it, and takes over a stale lock (its pid is dead on this host, or the file stayed empty for
``EMPTY_LOCK_S`` seconds: a writer that died between creating and filling it); ``release()`` removes the
file if it is still ours. Usable as a context manager.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from dynamics.provenance import provenance

IGNORED = frozenset({"progress", "out_dir", "run_name", "git_sha", "provenance", "devices", "processes",
                     "split"})
MARKERS = ("config.json", "checkpoint.msgpack", "summary.json")
LOCK_NAME = ".lock"
EMPTY_LOCK_S = 60.0
_MAX_LISTED = 6


class RunFolderError(ValueError):
    """The run folder holds another run, or is in use by another process."""


# --------------------------------------------------------------------------- comparison

def _plain(x):
    """``x`` as a JSON round trip gives it back (tuples -> lists, dict keys -> str)."""
    return json.loads(json.dumps(x))


# Fields added to a config after runs were recorded, with the value those older runs implicitly had: a saved
# config that lacks one is read as having that value (so adding a field does not orphan finished runs).
ADDED_FIELDS = {"dtype": "float32", "image_size": 0, "eval_images": 0}


def config_diff(saved: dict, new: dict, ignore=IGNORED) -> list[str]:
    """Dotted names of the fields of ``saved`` and ``new`` that differ, ``ignore`` left out at any depth; a
    field of ``ADDED_FIELDS`` missing from ``saved`` counts as its recorded default."""
    ignore = frozenset(ignore)
    out: list[str] = []

    def walk(a, b, prefix):
        for k in sorted(set(a) | set(b)):
            if k in ignore:
                continue
            name = f"{prefix}{k}"
            if k not in a and k in ADDED_FIELDS and b.get(k) == ADDED_FIELDS[k]:
                continue
            if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
                walk(a[k], b[k], name + ".")
            elif k not in a or k not in b or a[k] != b[k]:
                out.append(name)
    walk(_plain(saved), _plain(new), "")
    return out


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return "<absent>"
        d = d[part]
    return d


def describe_diff(saved: dict, new: dict, names: list[str]) -> str:
    """``"name: saved -> new, ..."`` for the first few ``names`` (then ``"and N more"``), on one line."""
    saved, new = _plain(saved), _plain(new)
    parts = [f"{n}: {_get(saved, n)!r} -> {_get(new, n)!r}" for n in names[:_MAX_LISTED]]
    if len(names) > _MAX_LISTED:
        parts.append(f"and {len(names) - _MAX_LISTED} more")
    return ", ".join(parts).replace("\n", " ")


# --------------------------------------------------------------------------- provenance

def write_config(folder, config: dict, **extra) -> dict:
    """Write ``config.json`` (config, extra keys, git SHA, provenance) atomically; returns what it wrote."""
    prov = provenance()
    payload = {**config, **extra, "git_sha": prov["git_sha"], "provenance": prov}
    path = Path(folder) / "config.json"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="config.json.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the config from other users
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(payload, indent=1))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return payload


# --------------------------------------------------------------------------- lock

def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 probes without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path) -> dict | None:
    """The holder ``{"pid", "host", ...}`` of a lock file, or None if it is missing, empty or unreadable."""
    try:
        holder = json.loads(Path(path).read_text())
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def is_stale(holder: dict | None, path, *, now: float | None = None) -> bool:
    """A lock is stale if its process is dead on this host, or it stayed unreadable ``EMPTY_LOCK_S`` s.

    A lock of another host is never stale (its pid cannot be checked from here)."""
    if holder is None:
        try:
            age = (time.time() if now is None else now) - Path(path).stat().st_mtime
        except OSError:
            return True  # gone meanwhile
        return age > EMPTY_LOCK_S
    return holder.get("host") == socket.gethostname() and not pid_alive(int(holder["pid"]))


class RunLock:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.held = False
        self._token: dict | None = None

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self._token = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self._token))
        return True

    def acquire(self) -> RunLock:
        if self.held:
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return self._acquire()
        except OSError as e:
            raise RunFolderError(f"cannot write run folder {self.folder} ({e.strerror or e}); allowed: a "
                                 "writable --out-dir") from None

    def _acquire(self) -> RunLock:
        for _ in range(2):  # the second try after taking over a stale lock
            if self._create():
                self.held = True
                return self
            holder = read_lock(self.path)
            if not is_stale(holder, self.path):
                break
            if read_lock(self.path) == holder:  # still the same stale holder: remove it, then try again
                self.path.unlink(missing_ok=True)
        holder = read_lock(self.path)
        who = f"pid {holder['pid']} on {holder.get('host')}" if holder else "another process"
        raise RunFolderError(f"run folder {self.folder} is in use by {who} (lock file {self.path}); allowed: "
                             "wait until it finishes, or another --run-name / --out-dir (remove the lock "
                             "file only if that process is gone)")

    def release(self) -> None:
        if self.held and read_lock(self.path) == self._token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------- policy

def holds_run(folder) -> bool:
    """Whether ``folder`` holds (part of) a run: its config.json, checkpoint or summary."""
    return any((Path(folder) / m).exists() for m in MARKERS)


def clear(folder) -> None:
    """Remove every file and folder in ``folder`` except the lock file."""
    for p in Path(folder).iterdir():
        if p.name == LOCK_NAME:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def check(folder, config: dict, *, resume: bool = False, overwrite: bool = False, ignore=()) -> None:
    """Apply the folder policy (module doc) to ``folder`` for a run of ``config``; may clear the folder."""
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError("resume and overwrite exclude each other; allowed: one of --resume, --overwrite")
    if not holds_run(folder):
        return
    if overwrite:
        clear(folder)
        return
    saved_path = folder / "config.json"
    saved = None
    if saved_path.exists():
        try:
            saved = json.loads(saved_path.read_text())
        except (OSError, ValueError):
            msg = (f"run folder {folder} holds an unreadable {saved_path.name}; allowed: --overwrite to "
                   "replace the run, or another --run-name / --out-dir")
            raise RunFolderError(msg) from None
    if saved is not None:
        diff = config_diff(saved, config, IGNORED | frozenset(ignore))
        if diff:
            raise RunFolderError(
                f"run folder {folder} holds a run with a different config "
                f"({describe_diff(saved, config, diff)}); allowed: the same config (with --resume to "
                "continue it), --overwrite to replace it, or another --run-name / --out-dir")
    if not resume:
        raise RunFolderError(f"run folder {folder} already holds a run with this config; allowed: --resume "
                             "to continue it, --overwrite to replace it, or another --run-name / --out-dir")


@contextmanager
def open_run(folder, config: dict, *, resume: bool = False, overwrite: bool = False, ignore=()):
    """Lock ``folder``, apply the policy, yield it as a ``Path``; the lock goes on exit (module doc)."""
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError("resume and overwrite exclude each other; allowed: one of --resume, --overwrite")
    with RunLock(folder):
        check(folder, config, resume=resume, overwrite=overwrite, ignore=ignore)
        yield folder


def add_cli_flags(parser, *, resume_help: str = "continue the run in the folder from its checkpoint") -> None:
    """``--resume``, ``--resume-if-present`` and ``--overwrite`` for a CLI (store_true each); read them with
    ``cli_resume``."""
    parser.add_argument("--resume", action="store_true",
                        help=resume_help + " (same config required; the folder must hold the run)")
    parser.add_argument("--resume-if-present", action="store_true",
                        help="continue the run if the folder holds it, else start it (for restartable jobs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the run already in the folder, then start afresh")


def cli_resume(ns, folder) -> bool:
    """The library's ``resume`` from the CLI flags: ``--resume`` on a folder that holds no run raises
    ``RunFolderError`` (a mistyped --run-name must not silently start a new run); ``--resume-if-present``
    continues a run that is there and starts one that is not."""
    if ns.resume and ns.resume_if_present:
        raise RunFolderError("--resume and --resume-if-present exclude each other; allowed: one of them")
    if ns.resume and not holds_run(folder):
        raise RunFolderError(f"--resume: run folder {folder} holds no run to continue; allowed: drop "
                             "--resume to start it, --resume-if-present, or the --run-name / --out-dir of an "
                             "existing run")
    return bool(ns.resume or ns.resume_if_present)
