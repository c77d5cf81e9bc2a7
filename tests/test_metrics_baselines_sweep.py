"""Metrics, classic baselines and sweep tables on small exact cases."""
import csv
import json

import numpy as np
import pytest

import run
from source import baselines, metrics, sweep
from source.rundir import RunDir


def test_threshold_is_mean_plus_three_std():
    """Validation scores 1, 2, 3: threshold = 2 + 3 * sqrt(2/3)."""
    assert metrics.threshold_from_normals([1.0, 2.0, 3.0]) == pytest.approx(2 + 3 * np.sqrt(2 / 3))


def test_threshold_metrics_counts():
    """Two anomalies, two normals, one of each flagged: P = R = F1 = 0.5."""
    out = metrics.threshold_metrics([1, 1, 0, 0], [0.9, 0.1, 0.8, 0.2], 0.5)
    assert (out["TP"], out["FN"], out["FP"], out["TN"]) == (1, 1, 1, 1)
    assert out["precision"] == out["recall"] == out["F1"] == 0.5


def test_ranking_metrics_exact_and_nan_refused():
    """Perfect ranking gives AUROC 1; reversed gives 0; NaN scores are refused."""
    assert metrics.ranking_metrics([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == {"AUROC": 1.0, "AUPRC": 1.0}
    assert metrics.ranking_metrics([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1])["AUROC"] == 0.0
    with pytest.raises(ValueError, match="not finite"):
        metrics.ranking_metrics([0, 1], [0.1, np.nan])


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


def test_sweep_table_markdown_and_csv(tmp_path):
    """Means and stds over seeds per class, means over classes in the last row."""
    rows = [{"protocol": "normal", "digit": d, "seed": s, "method": m, "AUROC": a, "AUPRC": 0.5}
            for d, s, m, a in [(0, 0, "ADAE", 0.8), (0, 1, "ADAE", 0.9), (1, 0, "ADAE", 1.0), (1, 1, "ADAE", 1.0),
                               (0, 0, "PCA", 0.7), (0, 1, "PCA", 0.7), (1, 0, "PCA", 0.5), (1, 1, "PCA", 0.5)]]
    tab = sweep.write(rows, RunDir("", str(tmp_path), ""), "normal")
    assert tab["ADAE"][0] == pytest.approx((0.85, 0.05))
    md = (tmp_path / "sweep.md").read_text().strip().splitlines()
    assert md[-1] == "| mean | **0.925** | **0.600** |"
    assert "0.850 ± 0.050" in md[-3]
    assert len(list(csv.DictReader(open(tmp_path / "sweep.csv")))) == 8
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_cli_sweep_with_baselines(tmp_path, capsys):
    """--seeds 2 --baselines on a zero-epoch budget: per-run summaries, baselines chart, sweep files."""
    code = run.main(["--epoch", "0", "--seeds", "2", "--baselines", "--data", "embedded", "--normal", "4",
                     "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
    assert code == 0
    root = tmp_path / "r" / "embedded_normal4"
    methods = {"ADAE", "MeanImage", "PCA", "kNN", "OC-SVM", "IsolationForest", "ConvAE"}
    rows = list(csv.DictReader(open(root / "sweep.csv")))
    assert {(r["seed"], r["method"]) for r in rows} == {(str(s), m) for s in (0, 1) for m in methods}
    for seed in (0, 1):
        summary = json.loads((root / f"normal4_seed{seed}" / "summary.json").read_text())
        assert set(summary["baselines"]) == methods - {"ADAE"}
        assert summary["data"]["train_normal"] == 360
        assert (root / f"normal4_seed{seed}" / "baselines.png").exists()
    assert (root / "sweep.md").exists() and (root / "sweep.png").exists()
    assert "[sweep] ADAE" in capsys.readouterr().out


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


def test_dev_auroc_of_exact_and_nan_cases():
    """Validation normals vs development anomalies: one swapped pair of four gives 0.75; no anomalies
    or a NaN score gives NaN instead of a number."""
    from source.solver import dev_auroc_of
    assert dev_auroc_of(np.array([0.1, 0.5]), np.array([0.3, 0.9])) == 0.75
    assert np.isnan(dev_auroc_of(np.array([0.1]), np.array([])))
    assert np.isnan(dev_auroc_of(np.array([0.1, np.nan]), np.array([0.3])))


def test_cli_anomaly_protocol(tmp_path):
    """--anomaly 3 through the command line: nine normal digits, digit 3's test images are the anomalies."""
    code = run.main(["--anomaly", "3", "--epoch", "0", "--data", "embedded",
                     "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
    assert code == 0
    summary = json.loads((tmp_path / "r" / "embedded_anomaly3" / "summary.json").read_text())
    assert summary["data"]["normal_digits"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert summary["data"]["test_anomalous"] == 100 and summary["data"]["train_normal"] == 3240
    rows = list(csv.DictReader(open(tmp_path / "r" / "embedded_anomaly3" / "scores.csv")))
    assert {r["anomalous"] for r in rows if r["label"] == "3"} == {"1"}
    assert {r["anomalous"] for r in rows if r["label"] != "3"} == {"0"}


def test_mean_image_baseline_matches_numpy():
    """MeanImage: the L2 distance of each test image to the mean of the normal training images."""
    rng = np.random.RandomState(0)
    train, test = rng.rand(30, 784), rng.rand(5, 784)
    expected = np.sqrt(((test - train.mean(axis=0)) ** 2).sum(axis=1))
    np.testing.assert_allclose(baselines.mean_image_distance(train, test), expected, rtol=1e-12)
