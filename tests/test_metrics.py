"""Metrics (source.metrics) on small exact cases: the threshold, its counts, the ranking metrics."""
import numpy as np
import pytest

from source import metrics


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
