"""The evaluation (source.evaluation): no empty batch sent to the graph, the validation health in the network's
units, the threshold from validation normals alone, the development AUROC's exact and NaN cases, the sample
grids' choice of test images."""
import copy

import numpy as np
import pytest

from source import evaluation
from source.neuralnet import RANGE
from tests.conftest import run_folder


def test_empty_batches_never_reach_the_session(evaluated, monkeypatch):
    """0 images in: empty results of the right shape, and no session call (AVX-512 oneDNN rejects them)."""
    model = evaluated[0]
    monkeypatch.setattr(model, "sess", _NoSession())
    empty = np.zeros((0, 28, 28, 1), np.float32)
    images = model.reconstruct(empty)
    assert set(images) == {"G(x)", "D(G(x))", "D(x)"}
    assert all(v.shape == (0, 28, 28, 1) for v in images.values())
    assert all(v.shape == (0,) for v in model.run_scores(empty).values())
    assert [(title, v.shape) for title, v in model.panels(empty)][-1] == ("|x - D(G(x))|", (0, 28, 28, 1))


class _NoSession:
    def run(self, *args, **kwargs):
        raise AssertionError("the session was called")


def test_validation_health_measures_the_template_in_the_networks_units(evaluated, digit1):
    """rec_g and rec_d are the mean x_gx and x_dx scores of validation normals; the template error given in
    [0, 1] pixels becomes network units through RANGE (2 for the paper's [-1, 1] frame)."""
    model = evaluated[0]
    template = RANGE["paper"] * np.mean(np.sqrt(((digit1.x_valid - digit1.x_train.mean(axis=0)) ** 2).sum((1, 2, 3))))
    health = evaluation.validation_health(model, digit1)
    scores = model.run_scores(digit1.x_valid)
    assert health["rec_g"] == pytest.approx(scores["x_gx"].mean(), rel=1e-6)
    assert health["rec_d"] == pytest.approx(scores["x_dx"].mean(), rel=1e-6)
    # the template's error in the network frame, computed by the graph's own L2 on the padded images
    padded = np.pad(digit1.x_valid - digit1.x_train.mean(axis=0), [(0, 0), (2, 2), (2, 2), (0, 0)]) * 2.0
    assert template == pytest.approx(np.sqrt((padded ** 2).sum((1, 2, 3))).mean(), rel=1e-5)


def test_threshold_comes_from_validation_normals_only(evaluated, digit1, tmp_path):
    """The threshold is mean + 3 std of the model's scores of the validation normals, computed here from
    the model itself; replacing every test image leaves it unchanged."""
    model, result, _ = evaluated
    valid = model.run_scores(digit1.x_valid)[model.anomaly_score]
    assert result["threshold"] == pytest.approx(valid.mean() + 3 * valid.std(), rel=1e-9)
    other = copy.copy(digit1)
    other.x_test = np.clip(digit1.x_test[::-1] * 0.5 + 0.2, 0, 1)
    assert evaluation.evaluate(model, other, run_folder(tmp_path))[0]["threshold"] == result["threshold"]


def test_dev_auroc_of_exact_and_nan_cases():
    """Validation normals vs development anomalies: one swapped pair of four gives 0.75; no anomalies
    or a NaN score gives NaN instead of a number."""
    assert evaluation.dev_auroc_of(np.array([0.1, 0.5]), np.array([0.3, 0.9])) == 0.75
    assert np.isnan(evaluation.dev_auroc_of(np.array([0.1]), np.array([])))
    assert np.isnan(evaluation.dev_auroc_of(np.array([0.1, np.nan]), np.array([0.3])))


def test_sample_grids_show_the_most_telling_images_of_each_category():
    """Each (truth, verdict) grid holds its category's images, flagged ones highest score first and passed
    ones lowest first, at most n; an empty category is an empty grid."""
    anomalous = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([0, 1, 1, 0, 1, 1])
    score = np.array([0.2, 0.9, 0.8, 0.1, 0.5, 0.7])
    grids = {name: (title, idx.tolist()) for name, title, idx in
             evaluation.sample_grid_indices(anomalous, predicted, score, n=2)}
    assert grids == {"normal_as_normal": ("normal images judged normal", [0]),
                     "normal_as_anomalous": ("normal images judged anomalous", [1, 2]),
                     "anomalous_as_normal": ("anomalous images judged normal", [3]),
                     "anomalous_as_anomalous": ("anomalous images judged anomalous", [5, 4])}
    assert [idx.tolist() for _, _, idx in evaluation.sample_grid_indices(anomalous, np.ones(6, int), score)][0] == []
