"""The evaluation of a trained model: its scores of validation and test images, the threshold from the
validation normals, the metrics, scores.csv, and what the figures need (which test images each sample grid
shows); and the development looks the training loop takes (validation health, the test-split diagnostic).
No TensorFlow of its own: it asks the model for scores."""
import os
import time

import numpy as np

from source import metrics
from source.scores import fit_sample
from source.stops import TrainingError

N_GRID = 8   # examples per sample grid (the test split's four, the most anomalous of new images)
HALF_SEED = 1902   # the development split's two fixed halves (choose on one, measure on the other)


def fit_scores(model, data):
    """Fit the model's fitted scores on the fixed subsample of the training normals (ModelConfig.fit_images):
    never a validation, development or test image. Nothing to do where the model holds every fitted score's
    statistics already: they are always its current weights' (a training step drops them, a checkpoint brings
    its own)."""
    if set(model.fitted) <= set(model.fit_stats):
        return model.fit_stats
    return model.fit_scores(fit_sample(data.x_train, model.config.fit_images))


def dev_auroc_of(valid_normal_scores, dev_anomalous_scores):
    """AUROC of validation normals against train-split anomalies (NaN when either is missing)."""
    if not len(valid_normal_scores) or not len(dev_anomalous_scores):
        return float("nan")
    scores = np.concatenate([valid_normal_scores, dev_anomalous_scores])
    labels = np.r_[np.zeros(len(valid_normal_scores)), np.ones(len(dev_anomalous_scores))]
    if not np.isfinite(scores).all():
        return float("nan")
    return metrics.ranking_metrics(labels, scores)["AUROC"]


def development_halves(n_valid, n_dev):
    """Two fixed halves of the development images: (valid indices, dev-anomaly indices) of half a and of half
    b, drawn by HALF_SEED alone, so every run and seed of a protocol and digit has the same halves."""
    rng = np.random.RandomState(HALF_SEED)
    valid, dev = rng.permutation(n_valid), rng.permutation(n_dev)
    return {"a": (np.sort(valid[:n_valid // 2]), np.sort(dev[:n_dev // 2])),
            "b": (np.sort(valid[n_valid // 2:]), np.sort(dev[n_dev // 2:]))}


def half_aurocs(valid_normal_scores, dev_anomalous_scores):
    """{"a": AUROC, "b": AUROC} of one score on the development split's two fixed halves."""
    parts = development_halves(len(valid_normal_scores), len(dev_anomalous_scores))
    return {half: dev_auroc_of(valid_normal_scores[iv], dev_anomalous_scores[ia]) for half, (iv, ia) in parts.items()}


def best_half_a(points, warm_up):
    """The selection rule's best look: of (step, half-a AUROC) pairs, the step with the highest AUROC on half a at
    or after warm_up (the earliest of equals; a NaN never); None where there is none. The one comparison of
    run.py's --select best_look and the budget study's rescored checkpoints."""
    eligible = [(step, a) for step, a in points if step >= warm_up and np.isfinite(a)]
    return max(eligible, key=lambda p: (p[1], -p[0]))[0] if eligible else None


def validation_health(model, data, ema=True, fit=False):
    """What one look at the validation split says: each score's development AUROC and its values on
    validation normals ("valid") and development anomalies ("dev"); G's and D's reconstruction error of
    validation normals (x_gx, x_dx), as L2 in the network's frame (the training loop sets them beside the mean
    normal image's). ema=False: with the trained weights where the model scores with their moving average; fit:
    fit the fitted scores first (on training normals), so they are measured too."""
    if fit:
        fit_scores(model, data)
    valid = model.run_scores(data.x_valid, ema=ema)
    dev = model.run_scores(data.x_dev_anomalous, ema=ema)
    return {"valid": valid, "dev": dev, "dev_auroc_per_score": {k: dev_auroc_of(valid[k], dev[k]) for k in valid},
            "rec_g": float(valid["x_gx"].mean()), "rec_d": float(valid["x_dx"].mean())}


def test_split_diagnostic(model, data, step):
    """The test AUROC of every score at this step: a marked diagnostic of the test split, recorded to show
    what a best-test-epoch reading would publish. Nothing reads it back: not the threshold, not the reported
    metrics, not a choice of step, checkpoint or recipe."""
    return {"step": step, "test_auroc_per_score": metrics.auroc_per_score(data.anomalous_test,
                                                                           model.run_scores(data.x_test))}


def evaluate(model, data, run, ckpt_dir=None):
    """Score validation and test images; write valid_scores.csv and scores.csv; return the metrics, the
    timings and what the figures need ({"anomaly_score", "test": scores per name, "threshold", "grids": the
    sample grids' (file name, title, test indices)}). The threshold comes from the validation normals alone.
    The fitted statistics are saved in ckpt_dir (None: run.log), beside the checkpoint evaluated."""
    t0 = time.time()
    fit_scores(model, data)   # unless fitted at the last look or loaded with the checkpoint
    ckpt_dir = ckpt_dir or run.log
    os.makedirs(ckpt_dir, exist_ok=True)
    model.save_fitted(ckpt_dir)
    valid = model.run_scores(data.x_valid)
    t_score = time.time()
    test = model.run_scores(data.x_test)
    score_seconds = time.time() - t_score
    name = model.anomaly_score
    for split, scores in (("validation", valid), ("test", test)):
        bad = {k: int((~np.isfinite(v)).sum()) for k, v in scores.items() if not np.isfinite(v).all()}
        if bad:
            raise TrainingError(f"non-finite {split} scores {bad}; the model has diverged")
    score = test[name]
    anomalous = data.anomalous_test
    threshold = metrics.threshold_from_normals(valid[name])
    result = metrics.all_metrics(anomalous, score, threshold)
    result["anomaly_score"] = name
    result["AUROC_per_score"] = metrics.auroc_per_score(anomalous, test)
    result["valid_score_mean"] = float(valid[name].mean())
    result["valid_score_std"] = float(valid[name].std())
    predicted = metrics.verdicts(score, threshold)
    run.write_valid_scores(valid[name])
    run.write_scores(data.y_test, anomalous, score, predicted)
    timings = {"scoring": time.time() - t0, "scoring_images_per_second": len(data.x_test) / score_seconds}
    return result, timings, {"anomaly_score": name, "test": test, "threshold": threshold,
                             "grids": sample_grid_indices(anomalous, predicted, score)}


def sample_grid_indices(anomalous, predicted, score, n=N_GRID):
    """The four grids (normal|anomalous) as (normal|anomalous): file name, title and test indices, most
    telling first (flagged images: highest scores first; passed images: lowest first)."""
    out = []
    for truth, truth_name in ((0, "normal"), (1, "anomalous")):
        for verdict, verdict_name in ((0, "normal"), (1, "anomalous")):
            idx = np.flatnonzero((anomalous == truth) & (predicted == verdict))
            idx = idx[np.argsort(-score[idx] if verdict else score[idx], kind="stable")][:n]
            out.append((f"{truth_name}_as_{verdict_name}", f"{truth_name} images judged {verdict_name}", idx))
    return out
