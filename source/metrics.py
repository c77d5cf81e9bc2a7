"""Detection metrics with scikit-learn: anomalous images are the positive class."""
import numpy as np
from sklearn import metrics as skm


THRESHOLD_STD = 3.0   # the decision threshold: mean + THRESHOLD_STD * std of the validation normals' scores


def threshold_from_normals(scores, n_std=THRESHOLD_STD):
    """Decision threshold: mean + n_std * std of the validation normals' scores."""
    scores = np.asarray(scores, np.float64)
    return float(scores.mean() + n_std * scores.std())


def ranking_metrics(anomalous, scores):
    """AUROC and AUPRC of a score; NaN scores are refused rather than passed on."""
    scores = np.asarray(scores, np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are not finite")
    return {"AUROC": float(skm.roc_auc_score(anomalous, scores)),
            "AUPRC": float(skm.average_precision_score(anomalous, scores))}


def verdicts(scores, threshold):
    """The decision rule, in one place: 1 (anomalous) where score > threshold, else 0."""
    return (np.asarray(scores, np.float64) > threshold).astype(np.int64)


def threshold_metrics(anomalous, scores, threshold):
    """Precision, recall, F1 and confusion counts of the rule score > threshold."""
    anomalous = np.asarray(anomalous, np.int64)
    predicted = verdicts(scores, threshold)
    tp = int(((predicted == 1) & (anomalous == 1)).sum())
    fp = int(((predicted == 1) & (anomalous == 0)).sum())
    fn = int(((predicted == 0) & (anomalous == 1)).sum())
    tn = int(((predicted == 0) & (anomalous == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "F1": f1,
            "TP": tp, "FP": fp, "FN": fn, "TN": tn}


def f1_max(anomalous, scores):
    """Best F1 over all thresholds (an oracle figure, reported beside the honest one)."""
    precision, recall, _ = skm.precision_recall_curve(anomalous, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def all_metrics(anomalous, scores, threshold):
    """Ranking metrics, F1Max and the metrics at the given threshold, in one dict."""
    out = ranking_metrics(anomalous, scores)
    out["F1Max"] = f1_max(anomalous, scores)
    out.update(threshold_metrics(anomalous, scores, threshold))
    return out


def auroc_per_score(anomalous, scores):
    """{score name: AUROC} of a {name: scores} dict against the same labels."""
    return {k: ranking_metrics(anomalous, v)["AUROC"] for k, v in scores.items()}


def best_test_reading(test_curve, score):
    """(best test AUROC of `score` along a test curve, its step): what a best-test-epoch reading would publish;
    (nan, None) for a run without a test curve."""
    if not test_curve:
        return float("nan"), None
    best = max(test_curve, key=lambda p: p["test_auroc_per_score"][score])
    return best["test_auroc_per_score"][score], best["step"]
