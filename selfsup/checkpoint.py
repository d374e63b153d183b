"""Atomic checkpoints of the training state (flax msgpack; no pickle, so loading runs no code).

Public API
----------
``save(path, state, meta)``: write ``{"state": state, "meta": meta}`` to ``path`` atomically (a temporary file
in the same folder, fsync, ``os.replace``), so an interruption leaves either the old or the new checkpoint.
``load(path, template) -> (state, meta)``: read it back into the structure of ``template`` (e.g. a fresh
``init_state``); a missing, truncated or corrupt file, or one whose arrays do not have the template's
shapes, raises ``CheckpointError`` (a ``ValueError``: exit status 2 at the CLIs) naming the path.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import jax
from flax import serialization


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable or does not match the state's structure."""


def save(path, state, meta: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = serialization.msgpack_serialize({"state": serialization.to_state_dict(jax.device_get(state)),
                                               "meta": json.dumps(meta)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path, template):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
        state = serialization.from_state_dict(template, raw["state"])
        meta = json.loads(raw["meta"])
        if not isinstance(meta, dict):
            raise TypeError(f"meta is a {type(meta).__name__}, not a dict")
        _same_shapes(template, state)
    except Exception as e:  # msgpack, key and shape errors all mean the same thing to the user
        msg = f"{path}: unreadable or incompatible checkpoint ({type(e).__name__}: {e})".replace("\n", " ")
        raise CheckpointError(msg) from None
    return state, meta


def _same_shapes(template, state) -> None:
    """Raise ``ValueError`` if a leaf of ``state`` has another shape than the template's (flax's
    ``from_state_dict`` restores arrays as they were saved, whatever the template)."""
    a, b = jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(state)
    if len(a) != len(b):
        raise ValueError(f"{len(b)} arrays where the state has {len(a)}")
    for (where, x), y in zip(a, b):
        if hasattr(x, "shape") and tuple(getattr(y, "shape", ())) != tuple(x.shape):
            raise ValueError(f"{jax.tree_util.keystr(where)} has shape {tuple(getattr(y, 'shape', ()))}, "
                             f"the state needs {tuple(x.shape)}")
