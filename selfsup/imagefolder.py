"""Image folders (``DIR/train/<class>/*``, ``DIR/test/<class>/*``) decoded once into a uint8 cache.

Public API
----------
``read(root, *, image_size=0, cache="default", progress=True) -> (x_train, y_train, x_test, y_test, classes)``
    The images as uint8 (N, H, W, C) arrays and int32 labels; class index = position of the class folder's
    name in the sorted names (torchvision's ``ImageFolder``), ``classes`` those names. Files are decoded with
    Pillow in sorted order; every image is converted to RGB, or kept as one channel (L) when every image of
    the folder is grayscale. All images must have one size, unless ``image_size = N`` resizes each to N x N
    (bicubic). Names starting with "." (``.DS_Store``, editor files) are skipped; every other entry must be
    a class folder (under train/ and test/) or an image file with one of ``EXTENSIONS`` (in a class folder).
``cache_dir()``: where decoded folders are kept: ``$XDG_CACHE_HOME/ssl-dynamics/images`` or
    ``~/.cache/ssl-dynamics/images`` (the folder the CLIs' compilation cache sits beside), or
    ``$SSL_DYNAMICS_IMAGE_CACHE`` if set (an empty value turns the cache off).

The cache file is ``<cache_dir>/<key>.npz``, ``key`` a hash of the folder's resolved path, every file's
relative path, size and mtime, ``image_size`` and ``FORMAT``: a second run with the same files loads it in
well under a second (CIFAR-10's 60,000 JPEGs take about 17 s to decode on one core), and any added, removed,
resized or touched file makes a new key, so a stale cache is never used. A cache folder that cannot be
written is reported on stderr and the run goes on without it.

Every problem raises ``data.DatasetError`` (a ``ValueError``; ``DatasetNotFoundError`` for a missing
folder) whose one-line message names the file or folder: no ``train/`` or ``test/``, no class folders, a class
folder without images, train and test class sets that differ, a file that is not an image or cannot be
decoded, a stray file or folder, images of different sizes without ``image_size``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from selfsup.data import DatasetError, DatasetNotFoundError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
FORMAT = 1  # bump when the decoded content of the same files changes (part of the cache key)
SPLITS = ("train", "test")


def cache_dir() -> Path | None:
    if "SSL_DYNAMICS_IMAGE_CACHE" in os.environ:
        given = os.environ["SSL_DYNAMICS_IMAGE_CACHE"]
        return Path(given) if given else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssl-dynamics" / "images"


def _visible(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def _class_folders(split: Path) -> list[os.DirEntry]:
    if not split.is_dir():
        raise DatasetNotFoundError(f"{split}: missing folder (an image folder holds train/<class>/* and "
                                   "test/<class>/*)")
    entries = _visible(split)
    stray = [e.name for e in entries if not e.is_dir()]
    if stray:
        raise DatasetError(f"{split / stray[0]}: not a class folder ({split} must hold only one folder per "
                           "class)")
    if not entries:
        raise DatasetError(f"{split}: no class folders (expected {split.name}/<class>/<image files>)")
    return entries


def _list(root: Path) -> dict[str, list[tuple[str, list[os.DirEntry]]]]:
    """split -> [(class name, sorted image entries)], everything checked but nothing decoded."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: image folder does not exist")
    out = {}
    for split in SPLITS:
        classes = []
        for c in _class_folders(root / split):
            files = _visible(Path(c.path))
            for f in files:
                if not f.is_file():
                    raise DatasetError(f"{f.path}: unexpected folder inside class folder {c.path}")
                if not f.name.lower().endswith(EXTENSIONS):
                    raise DatasetError(f"{f.path}: not an image file (allowed extensions: "
                                       f"{', '.join(EXTENSIONS)})")
            if not files:
                raise DatasetError(f"{c.path}: class folder without images")
            classes.append((c.name, files))
        out[split] = classes
    names = {s: [c for c, _ in out[s]] for s in SPLITS}
    if names["train"] != names["test"]:
        only_tr = sorted(set(names["train"]) - set(names["test"]))
        only_te = sorted(set(names["test"]) - set(names["train"]))
        raise DatasetError(f"{root}: train/ and test/ hold different classes (only in train: "
                           f"{only_tr or '-'}; only in test: {only_te or '-'})")
    return out


def _key(root: Path, listing, image_size: int) -> str:
    h = hashlib.sha256(json.dumps([str(root.resolve()), image_size, FORMAT]).encode())
    for split in SPLITS:
        for c, files in listing[split]:
            for f in files:
                st = f.stat()
                h.update(f"{split}/{c}/{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _decode(path: str, image_size: int):
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            gray = im.mode in ("L", "1", "I", "I;16", "F")
            im = im.convert("L" if gray else "RGB")
            if image_size:
                im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(im, np.uint8), gray
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        msg = " ".join(str(e).split())[:160]
        raise DatasetError(f"{path}: cannot decode image ({type(e).__name__}: {msg})") from None


def _decode_all(listing, image_size: int, progress: bool):
    from tqdm.auto import tqdm
    jobs = [(split, y, f.path) for split in SPLITS
            for y, (_, files) in enumerate(listing[split]) for f in files]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool, \
            tqdm(total=len(jobs), desc="decoding images", unit="img", disable=not progress, file=sys.stderr,
                 leave=False) as bar:
        decoded = []
        for out in pool.map(lambda j: _decode(j[2], image_size), jobs, chunksize=256):
            decoded.append(out)
            bar.update(1)
    first = decoded[0][0]
    for (_, _, path), (img, _) in zip(jobs, decoded):
        if img.shape[:2] != first.shape[:2]:
            raise DatasetError(f"{path}: image size {img.shape[1]}x{img.shape[0]} differs from "
                               f"{first.shape[1]}x{first.shape[0]} ({jobs[0][2]}); pass --image-size N to "
                               "resize every image to N x N")
    all_gray = all(g for _, g in decoded)
    to_rgb = lambda a: np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a
    imgs = [(a[..., None] if a.ndim == 2 else a) if all_gray else to_rgb(a) for a, _ in decoded]
    out = {}
    for split in SPLITS:
        sel = [i for i, j in enumerate(jobs) if j[0] == split]
        out[f"x_{split}"] = np.stack([imgs[i] for i in sel])
        out[f"y_{split}"] = np.array([jobs[i][1] for i in sel], np.int32)
    return out


def read(root, *, image_size: int = 0, cache: Path | str | None = "default", progress: bool = True):
    """See the module docstring; ``cache``: the cache folder, ``None`` to decode without one, ``"default"``
    for ``cache_dir()``."""
    if image_size < 0:
        raise ValueError(f"image_size={image_size} is invalid: must be >= 1 (or 0: keep the files' size)")
    root = Path(root).expanduser()
    listing = _list(root)
    classes = [c for c, _ in listing["train"]]
    folder = cache_dir() if cache == "default" else (Path(cache) if cache else None)
    cached = folder / f"{_key(root, listing, image_size)}.npz" if folder else None
    if cached is not None and cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            return (*arrays.values(), classes)
        except (OSError, ValueError, KeyError, EOFError):
            print(f"warning: {cached}: unreadable image cache, decoding {root} again", file=sys.stderr)
    arrays = _decode_all(listing, image_size, progress)
    if cached is not None:
        _save(cached, arrays)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], classes


def _save(path: Path, arrays: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        print(f"warning: cannot write the image cache {path} ({e.strerror or e}); the next run decodes again",
              file=sys.stderr)
