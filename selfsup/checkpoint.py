"""Atomic checkpoints of the training state (flax msgpack; no pickle, so loading runs no code).

Public API
----------
``save(path, state, meta)``: write ``{"state": state, "meta": meta}`` to ``path`` atomically (a temporary file
in the same folder, fsync, ``os.replace``), so an interruption leaves either the old or the new checkpoint.
``load(path, template) -> (state, meta)``: read it back into the structure of ``template`` (e.g. a fresh
``init_state``); a missing or corrupt file raises ``CheckpointError`` naming the path.
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
    except Exception as e:  # msgpack, key and shape errors all mean the same thing to the user
        msg = f"{path}: unreadable or incompatible checkpoint ({type(e).__name__}: {e})"
        raise CheckpointError(msg) from None
    return state, meta
