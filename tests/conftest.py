"""Shared fixtures: the embedded MNIST subset and small models, all on the CPU."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402


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
