"""Shared fixtures, all on the CPU: the embedded MNIST subset, a batch, a signal at a chosen call, the suite's
straight sweep and e2e run (one real command-line run), and the comparisons of sweep tables and scores
across processes.

The README's test command runs the suite in two processes (pytest-xdist, `-n 2 --dist loadgroup`): the tests
that share an expensive fixture (the straight sweep, the e2e run, the learning check's training) are grouped
so that each group's fixture is built once, in one process. The two long checks (marked `long`: the learning
check, the real-SLURM test) are handed out first, one to each process, and the groups next: the suite's wall
time is then about its total over two, not a long check started last on a busy process. Each process takes
its share of the cores as TensorFlow's threads."""
import logging
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Each of the README's two test processes gets its share of the cores as TensorFlow's intra-op threads (a run
# whose --threads is 0 reads it; subprocesses inherit it): two processes of two threads on two cores trained
# 56 images/s each on the AVX2-only AMD EPYC, two of one thread 70-78 each (docs/speed.md, "The test suite")
# NumPy's and SciPy's BLAS and OpenMP pools get the same share, set before NumPy loads them (a run with --threads N
# holds them itself: source.hardware.limit_math_threads)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for variable in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, share)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from source.config import ModelConfig, TrainingConfig  # noqa: E402  (no TensorFlow: the configs import none)
from source.record import RunConfig  # noqa: E402


SHARED = {"straight_sweep": "straight_sweep", "straight": "straight_sweep", "e2e": "e2e", "own_copy": "e2e",
          "learned": "learned", "evaluated": "evaluated"}


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): tests that share a run (pytest-xdist's marker)")
    config.addinivalue_line("markers", "long: one of the suite's few long checks, started first")
    # pytest-xdist otherwise hands out the largest groups first and the single long checks last, in collection
    # order; the order below (long checks, then groups, then the rest) is kept instead
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


@pytest.hookimpl(tryfirst=True)   # before pytest-xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items):
    """Each test that uses a shared run goes to that run's xdist group (one process builds it once); the long
    checks come first, then the grouped tests, then the rest, each in collection order."""
    for item in items:
        groups = {SHARED[name] for name in getattr(item, "fixturenames", ()) if name in SHARED}
        if groups:
            item.add_marker(pytest.mark.xdist_group("+".join(sorted(groups))))
    items.sort(key=lambda item: 0 if item.get_closest_marker("long") else 1 if item.get_closest_marker("xdist_group")
               else 2)


@pytest.fixture(scope="session")
def embedded():
    """The embedded subset as (x_train, y_train, x_test, y_test)."""
    from source import datamanager
    return datamanager.check_arrays(*datamanager.load_embedded())


@pytest.fixture(scope="session")
def digit1(embedded):
    """Digit 1 normal, the default protocol."""
    from source import datamanager
    return datamanager.Dataset(*embedded, normal=1)


@pytest.fixture
def batch():
    """A fixed batch of 8 images in [0, 1]."""
    return np.random.RandomState(0).rand(8, 28, 28, 1).astype(np.float32)


class Lines(logging.Handler):
    """Collects the messages of source's loggers; on_line(message), when set, sees each as it comes."""

    def __init__(self):
        super().__init__()
        self.lines, self.on_line = [], None

    def emit(self, record):
        self.lines.append(record.getMessage())
        if self.on_line:
            self.on_line(record.getMessage())


@pytest.fixture
def logged():
    """What source's loggers say during the test (info and above), in order: .lines, and .on_line."""
    handler, logger = Lines(), logging.getLogger("source")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def signal_on_call(monkeypatch):
    """signal_on_call(module, name, signum, n): wrap module.name so that its n-th call sends this process
    signum right after it returns: an interrupt at a chosen point, the same on every CPU."""
    def install(module, name, signum, n):
        original, calls = getattr(module, name), []

        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signum)
            return out
        monkeypatch.setattr(module, name, wrapped)
    return install


def _csv_rows(path):
    import csv
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_same_sweep_table(path, expected_path, abs_auroc=1e-4, seeds=None):
    """Two sweep.csv files hold the same rows (protocol, digit, seed, method; with seeds, only the first
    file's rows of those seeds are compared) and the same AUROC and AUPRC to within abs_auroc: runs in other
    processes or after a resume may differ in oneDNN's last bits, which can swap a few of the ~10^5
    normal-anomalous pairs an AUROC counts (1e-5 each here)."""
    rows, expected = _csv_rows(path), _csv_rows(expected_path)
    if seeds is not None:
        rows = [r for r in rows if int(r["seed"]) in seeds]
    key = ("protocol", "digit", "seed", "method")
    assert [tuple(r[k] for k in key) for r in rows] == [tuple(r[k] for k in key) for r in expected]
    for r, e in zip(rows, expected):
        for metric in ("AUROC", "AUPRC"):
            assert float(r[metric]) == pytest.approx(float(e[metric]), abs=abs_auroc), (r, e)


def assert_same_scores(path, expected_path, rel=1e-5):
    """Two scores.csv files score the same test images alike: same images and labels, scores within rel."""
    rows, expected = _csv_rows(path), _csv_rows(expected_path)
    assert [(r["index"], r["label"], r["anomalous"]) for r in rows] == \
        [(r["index"], r["label"], r["anomalous"]) for r in expected]
    np.testing.assert_allclose([float(r["score"]) for r in rows], [float(r["score"]) for r in expected], rtol=rel)


# the suite's short run: four steps of the small network (SMALL_NET below as a ModelConfig), He initialisation: not
# the default recipe; its graph builds, trains and scores a few times faster than the full one
SHORT = RunConfig(model=ModelConfig(widths=(8, 16), latent=4, gamma=0.5, lambda_k=1e-3, init="he"),
                  training=TrainingConfig(epoch=1, steps=4, batch=32, summary_every=2, keep_checkpoints=2))


# the small network's flags (two layers of widths 8 and 16, code size 4): runs whose checks are not the network's
SMALL_NET = ["--widths", "8,16", "--latent", "4"]


# the suite's one straight sweep: digit 7 normal, seeds 0 and 1, three iterations each of the small network, in
# two one-thread worker processes (the default on 2 cores), writing records; tests that stop, resume, split or
# collect a sweep compare their tables with its table
SWEEP_FLAGS = ["--data", "embedded", "--normal", "7", "--seeds", "2", "--steps", "3", "--batch", "64", *SMALL_NET]
SWEEP_WORKERS = ["--jobs", "2", "--threads", "1"]
SWEEP_IN_PROCESS = ["--jobs", "1", "--threads", "1"]   # the same sub-runs one after another, no worker process


def roots(root):
    """run.py's --results and --logdir under root."""
    return ["--results", str(root / "r"), "--logdir", str(root / "c")]


@pytest.fixture(scope="session")
def straight_sweep(tmp_path_factory):
    """The straight sweep's root: r/sweep, c/sweep and records/sweep."""
    import run
    root = tmp_path_factory.mktemp("straight")
    code = run.main(SWEEP_FLAGS + SWEEP_WORKERS + roots(root) + ["--name", "sweep", "--records", str(root / "records")])
    assert code == 0
    return root


@pytest.fixture(scope="session")
def evaluated(digit1, tmp_path_factory):
    """An untrained model's evaluation of digit 1's validation and test images: (model, result, scored), read
    by the tests of the evaluation and of the figures, each drawing into a run folder of its own."""
    from source import evaluation
    from source.neuralnet import ADAE
    model = ADAE(seed=0)
    result, _, scored = evaluation.evaluate(model, digit1, run_folder(tmp_path_factory.mktemp("evaluated")))
    yield model, result, scored
    model.close()


def run_folder(root):
    """A run folder under root (its results folder made) for one test's evaluation or figures."""
    from source.rundir import RunDir
    run = RunDir(str(root / "c"), str(root / "r"), "eval")
    os.makedirs(run.results)
    return run


# the command line end to end: one real run (e2e) that test_run, test_board, test_report and test_inference read
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRIDS = ["normal_as_normal", "anomalous_as_normal", "normal_as_anomalous", "anomalous_as_anomalous"]


def cli(*flags, cwd=ROOT):
    """run.py as a user runs it, in a subprocess."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), *flags], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def run_main(capsys, *flags):
    """run.py's main in this process (the e2e fixture is the one command-line run a subprocess is for):
    (exit status, stdout, stderr)."""
    capsys.readouterr()
    import run
    code = run.main(list(flags))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="session")
def e2e(tmp_path_factory):
    """One tiny real run through the command line (a subprocess): embedded data, 2 epochs, batch 64; its
    root, the finished process and its flags."""
    tmp = tmp_path_factory.mktemp("e2e")
    flags = ["--datnorm", "--batch", "64", "--epoch", "2", "--data", "embedded",
             "--results", str(tmp / "results"), "--logdir", str(tmp / "Checkpoint"), "--summary-every", "2"]
    proc = cli(*flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp, proc, flags


@pytest.fixture
def own_copy(e2e, tmp_path):
    """The e2e run's folders copied for one test that writes (a new run beside it, new scores, a resume),
    so no test sees another's files; returns the copy's root and the flags that point at it."""
    tmp, _, flags = e2e
    for root in ("results", "Checkpoint"):
        shutil.copytree(tmp / root, tmp_path / root)
    return tmp_path, flags_under(flags, tmp_path)


def flags_under(flags, root):
    """flags with --results and --logdir moved under root."""
    flags = list(flags)
    flags[flags.index("--results") + 1] = str(root / "results")
    flags[flags.index("--logdir") + 1] = str(root / "Checkpoint")
    return flags
