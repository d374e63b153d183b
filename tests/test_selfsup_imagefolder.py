"""Image folders: decoding (exact pixels on PNG files written here), label order, cache, the bad-input cases,
and the real CIFAR-10 JPEG folder (counts, class order, per-channel mean against the shared README's values)
when ../shared/data holds it."""
import os

import numpy as np
import pytest
from PIL import Image

from selfsup import data, imagefolder
from selfsup.train import main as train_main


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _folder(root, classes=("b_cls", "a_cls", "c_cls"), n_train=2, n_test=1, size=(5, 4), mode="RGB", seed=0):
    """PNG images (exact pixels) under root/train/<class>/ and root/test/<class>/; returns the arrays."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            for i in range(n):
                img = rng.integers(0, 256, shape, dtype=np.uint8)
                _write(root / split / c / f"{i:03d}.png", img)
                out[(split, c, i)] = img
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_DYNAMICS_IMAGE_CACHE", str(tmp_path / "cache"))


def test_pixels_labels_and_class_order(tmp_path):
    imgs = _folder(tmp_path / "f")
    x_train, y_train, x_test, y_test, classes = imagefolder.read(tmp_path / "f", progress=False)
    assert classes == ["a_cls", "b_cls", "c_cls"]  # sorted names, not creation order
    assert x_train.shape == (6, 4, 5, 3) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(y_train, [0, 0, 1, 1, 2, 2])  # folder order: class, then file name
    np.testing.assert_array_equal(y_test, [0, 1, 2])
    np.testing.assert_array_equal(x_train[2], imgs[("train", "b_cls", 0)])
    np.testing.assert_array_equal(x_test[2], imgs[("test", "c_cls", 0)])


def test_dataset_comes_in_a_fixed_class_balanced_order(tmp_path):
    """``data.load`` keeps every (image, label) pair of the folder but orders them so that any prefix is
    balanced: ``--max-images`` of a folder read class by class must not train on the first classes only."""
    imgs = _folder(tmp_path / "f", classes=("a", "b", "c", "d"), n_train=5, n_test=2)
    d = data.load("imagefolder", tmp_path / "f", progress=False)
    assert d.classes == ("a", "b", "c", "d") and d.num_classes == 4
    for k in range(1, 6):
        np.testing.assert_array_equal(np.bincount(d.y_train[:4 * k], minlength=4), [k] * 4)
    want = sorted((imgs[("train", c, i)].tobytes(), y) for y, c in enumerate("abcd") for i in range(5))
    assert sorted((x.tobytes(), int(y)) for x, y in zip(d.x_train, d.y_train)) == want
    again = data.load("imagefolder", tmp_path / "f", progress=False)
    np.testing.assert_array_equal(again.x_train, d.x_train)  # the same order every time
    np.testing.assert_array_equal(np.bincount(d.y_test[:4]), [1] * 4)


def test_grayscale_folder_keeps_one_channel_and_mixed_folder_becomes_rgb(tmp_path):
    imgs = _folder(tmp_path / "g", mode="L")
    x_train = imagefolder.read(tmp_path / "g", progress=False)[0]
    assert x_train.shape[-1] == 1
    np.testing.assert_array_equal(x_train[0, ..., 0], imgs[("train", "a_cls", 0)])
    _write(tmp_path / "g" / "train" / "a_cls" / "rgb.png", np.full((4, 5, 3), 7, np.uint8))
    x_train = imagefolder.read(tmp_path / "g", progress=False)[0]
    assert x_train.shape[-1] == 3
    np.testing.assert_array_equal(x_train[0], np.repeat(imgs[("train", "a_cls", 0)][..., None], 3, -1))


def test_image_size_resizes_every_image(tmp_path):
    _folder(tmp_path / "f")
    _write(tmp_path / "f" / "train" / "a_cls" / "big.png", np.zeros((9, 7, 3), np.uint8))
    d = data.load("imagefolder", tmp_path / "f", image_size=6, progress=False)
    assert d.x_train.shape[1:] == (6, 6, 3) and d.x_test.shape[1:] == (6, 6, 3)
    want = np.asarray(Image.open(tmp_path / "f" / "test" / "b_cls" / "000.png").resize((6, 6),
                                                                                     Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(d.x_test[d.y_test == 1][0], want)  # the one test image of class b_cls


def test_second_read_comes_from_the_cache_and_a_touched_file_invalidates_it(tmp_path, monkeypatch):
    _folder(tmp_path / "f")
    first = imagefolder.read(tmp_path / "f", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def fail(*a):
        raise AssertionError("decoded again although the cache holds these files")
    monkeypatch.setattr(imagefolder, "_decode", fail)
    again = imagefolder.read(tmp_path / "f", progress=False)
    for a, b in zip(first[:4], again[:4]):
        np.testing.assert_array_equal(a, b)
    monkeypatch.undo()
    monkeypatch.setenv("SSL_DYNAMICS_IMAGE_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "f" / "test" / "a_cls" / "000.png"
    new = np.full((4, 5, 3), 200, np.uint8)
    _write(f, new)
    os.utime(f, ns=(1, 1))  # same size, other mtime and content: a new key
    x_test = imagefolder.read(tmp_path / "f", progress=False)[2]
    np.testing.assert_array_equal(x_test[0], new)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_unwritable_cache_warns_and_still_reads(tmp_path, monkeypatch, capsys):
    _folder(tmp_path / "f")
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("SSL_DYNAMICS_IMAGE_CACHE", str(tmp_path / "file" / "cache"))
    d = data.load("imagefolder", tmp_path / "f", progress=False)
    assert len(d.x_train) == 6 and "cannot write the image cache" in capsys.readouterr().err


def _break(root, case):
    """Damage a good folder in one of the ways the reader must name; returns the path the error names."""
    if case == "no_test":
        import shutil
        shutil.rmtree(root / "test")
        return root / "test"
    if case == "empty_class":
        (root / "train" / "d_cls").mkdir()
        (root / "test" / "d_cls").mkdir()
        _write(root / "test" / "d_cls" / "x.png", np.zeros((4, 5, 3), np.uint8))
        return root / "train" / "d_cls"
    if case == "class_sets_differ":
        _write(root / "test" / "zebra" / "x.png", np.zeros((4, 5, 3), np.uint8))
        return "zebra"
    if case == "corrupt":
        (root / "train" / "a_cls" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        return root / "train" / "a_cls" / "bad.jpg"
    if case == "not_an_image":
        (root / "train" / "b_cls" / "notes.txt").write_text("hello")
        return root / "train" / "b_cls" / "notes.txt"
    if case == "sizes_differ":
        _write(root / "test" / "c_cls" / "big.png", np.zeros((6, 5, 3), np.uint8))
        return root / "test" / "c_cls" / "big.png"
    if case == "stray_file":
        (root / "train" / "README").write_text("x")
        return root / "train" / "README"
    if case == "empty":
        import shutil
        shutil.rmtree(root)
        root.mkdir()
        return root / "train"
    raise AssertionError(case)


CASES = ["no_test", "empty_class", "class_sets_differ", "corrupt", "not_an_image", "sizes_differ",
         "stray_file", "empty"]


@pytest.mark.parametrize("case", CASES)
def test_bad_folders_raise_one_line_naming_the_path(tmp_path, case):
    _folder(tmp_path / "f")
    named = _break(tmp_path / "f", case)
    with pytest.raises(data.DatasetError) as err:
        data.load("imagefolder", tmp_path / "f", progress=False)
    assert str(named) in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("case", ["corrupt", "sizes_differ", "empty"])
def test_cli_exits_2_with_one_line_on_a_bad_folder(tmp_path, case, capsys):
    _folder(tmp_path / "f")
    named = _break(tmp_path / "f", case)
    with pytest.raises(SystemExit) as e:
        train_main(["--smoke", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "f"), "--out-dir",
                    str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and str(named) in err, err


def test_cifar10_from_a_folder_needs_its_classes_and_size(tmp_path):
    _folder(tmp_path / "f")  # 3 classes of 5x4 images
    with pytest.raises(data.DatasetError, match="3 class folders, but cifar10 has 10"):
        data.load("cifar10", tmp_path / "f", progress=False)
    _folder(tmp_path / "g", classes=[f"c{i}" for i in range(10)], n_train=1, n_test=1, size=(8, 8))
    with pytest.raises(data.DatasetError, match=r"needs \(32, 32, 3\)"):
        data.load("cifar10", tmp_path / "g", progress=False)
    d = data.load("cifar10", tmp_path / "g", image_size=32, progress=False)
    assert d.x_train.shape == (10, 32, 32, 3) and d.num_classes == 10
    with pytest.raises(data.DatasetNotFoundError, match="data_batch_1.*image folder"):
        data.load("cifar10", tmp_path / "f" / "train")  # class folders, but neither train/ nor official files


def test_folder_flags_are_refused_where_they_would_be_ignored():
    with pytest.raises(ValueError, match="data_dir='/x' is invalid.*ships with the package"):
        data.load("mnist5k", "/x")
    with pytest.raises(ValueError, match="image_size=8 is invalid"):
        data.load("digits", image_size=8)
    with pytest.raises(ValueError, match="--data-dir"):
        data.load("imagefolder")


# ---------------------------------------------------------------------------------------------- real CIFAR-10

README_MEAN = (0.4913, 0.4821, 0.4465)  # ../shared/data/README.md, measured over the 50,000 training JPEGs
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_real_cifar10_jpeg_folder(cifar10_jpeg, cifar10_root):
    d = cifar10_jpeg
    assert d.classes == CLASSES
    assert d.x_train.shape == (50000, 32, 32, 3) and d.x_test.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(d.y_train), [5000] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test), [1000] * 10)
    np.testing.assert_allclose(d.mean, README_MEAN, atol=0.003)
    np.testing.assert_array_equal(np.bincount(d.y_train[:10000]), [1000] * 10)  # --max-images 10000
    # every test image labelled 3 is one of the files in test/cat, and all of them are there
    cats = cifar10_root / "test" / "cat"
    files = {np.asarray(Image.open(cats / f)).tobytes() for f in os.listdir(cats)}
    assert {x.tobytes() for x in d.x_test[d.y_test == 3]} == files
