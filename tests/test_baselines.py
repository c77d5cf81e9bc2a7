"""The classic baselines (source.baselines): the same images for every method, an obvious outlier
ranked first, OC-SVM's fixed subsample, MeanImage against NumPy."""
import numpy as np

from source import baselines


def test_every_classic_baseline_sees_the_same_images():
    """classic_scores hands each method the same flattened training and test images."""
    seen = {}

    def recorder(name):
        def fn(x_train, x_test):
            seen[name] = (x_train.copy(), x_test.copy())
            return np.zeros(len(x_test))
        return fn
    x_train = np.random.RandomState(0).rand(6, 28, 28, 1)
    x_test = np.random.RandomState(1).rand(4, 28, 28, 1)
    out, seconds = baselines.classic_scores(x_train, x_test, methods={n: recorder(n) for n in baselines.CLASSIC})
    assert set(out) == set(baselines.CLASSIC) == set(seconds)
    for train, test in seen.values():
        np.testing.assert_array_equal(train, x_train.reshape(6, -1).astype(np.float32))
        np.testing.assert_array_equal(test, x_test.reshape(4, -1).astype(np.float32))


def test_classic_baselines_rank_an_obvious_outlier_first():
    """Fitted on faint noise, every detector scores a bright image above fresh faint noise."""
    rng = np.random.RandomState(0)
    x_train = rng.rand(60, 28, 28, 1) * 0.1
    x_test = np.concatenate([rng.rand(5, 28, 28, 1) * 0.1, np.ones((1, 28, 28, 1))])
    for name, scores in baselines.classic_scores(x_train, x_test)[0].items():
        assert np.argmax(scores) == 5, name


def test_ocsvm_fits_on_a_fixed_subsample(monkeypatch):
    """Above OCSVM_MAX_TRAIN images OC-SVM sees a seeded subsample, the same rows every time; the
    settings say how many it saw."""
    x = np.arange(50, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    first, second = baselines.subsample(x, 10), baselines.subsample(x, 10)
    assert first.shape == (10, 4)
    np.testing.assert_array_equal(first, second)
    assert len(np.unique(first[:, 0])) == 10
    np.testing.assert_array_equal(baselines.subsample(x, 80), x)
    monkeypatch.setattr(baselines, "OCSVM_MAX_TRAIN", 10)
    seen = []
    monkeypatch.setattr(baselines, "OneClassSVM", lambda **kw: _Recorder(seen))
    baselines.ocsvm(x, x[:3])
    assert seen == [10]
    assert baselines.settings(50)["OC-SVM"]["train_images"] == 10
    assert baselines.settings(5)["OC-SVM"]["train_images"] == 5


class _Recorder:
    def __init__(self, seen):
        self.seen = seen

    def fit(self, x):
        self.seen.append(len(x))
        return self

    def decision_function(self, x):
        return np.zeros(len(x))


def test_mean_image_baseline_matches_numpy():
    """MeanImage: the L2 distance of each test image to the mean of the normal training images."""
    rng = np.random.RandomState(0)
    train, test = rng.rand(30, 784), rng.rand(5, 784)
    expected = np.sqrt(((test - train.mean(axis=0)) ** 2).sum(axis=1))
    np.testing.assert_allclose(baselines.mean_image_distance(train, test), expected, rtol=1e-12)
