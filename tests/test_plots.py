"""A run's figures (source.plots.draw_figures): a grid of an empty category stated, not drawn; a figure that
fails named alone while the others are drawn; both said in report.md."""
import os

import numpy as np
import tensorflow as tf

from source import evaluation, plots, report
from source.record import RunConfig, Summary
from tests.conftest import run_folder

tf1 = tf.compat.v1


def _draw(evaluated, data, run, scored=None):
    model, _, own = evaluated
    return plots.draw_figures(data, run, scored or own, model.panels, int(model.sess.run(model.global_step)))


def test_empty_grid_category_is_stated_not_drawn(evaluated, digit1, tmp_path):
    """Every image judged normal: the two 'judged anomalous' grids are stated as empty in the returned
    record, in report.md and in TensorBoard text; every other figure is drawn."""
    (_, result, scored), run = evaluated, run_folder(tmp_path)
    name = scored["anomaly_score"]
    none_flagged = evaluation.sample_grid_indices(digit1.anomalous_test, np.zeros(len(digit1.x_test), int),
                                                  scored["test"][name])
    figures = _draw(evaluated, digit1, run, dict(scored, grids=none_flagged))
    assert set(figures["empty_grids"]) == {"normal_as_anomalous", "anomalous_as_anomalous"}
    assert figures["failed"] == {}
    for figure in ("box_plot", "roc_curve", "pr_curve", "score_histogram", "grids/normal_as_normal",
                   "grids/anomalous_as_normal"):
        assert os.path.getsize(run.figure(figure)) > 0, figure
    assert not os.path.exists(run.figure("grids/normal_as_anomalous"))
    assert report.figures_section(_summary(result, figures), run).count("No test image falls in this category.") == 2
    texts = [v.tag for path in os.listdir(run.log) if path.startswith("events")
             for e in tf1.train.summary_iterator(os.path.join(run.log, path)) for v in e.summary.value]
    assert any(t.startswith("test_grids/normal_as_anomalous") for t in texts)


def _summary(result, figures):
    return Summary(name="eval", config=RunConfig(command="python run.py"), metrics=result, baselines={},
                   baseline_info={}, precision={"used": "fp32"}, final_epoch=None, dev_curve=[], timings={},
                   versions={}, machine={"cpu": "test"}, figures=figures,
                   data={"source": {"name": "embedded", "reason": "test"}, "protocol": "normal", "digit": 1,
                         "normal_digits": [1], "train_normal": 1, "valid_normal": 1, "dev_anomalous": 1, "test": 1,
                         "test_anomalous": 1})


def test_a_failing_figure_is_named_and_the_others_drawn(evaluated, digit1, tmp_path, monkeypatch, logged):
    """The box plot raises: it is named in the log and the record; the ROC curve and grids still exist."""
    (_, result, _), run = evaluated, run_folder(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("no font")
    monkeypatch.setattr(plots, "box_plot", broken)
    figures = _draw(evaluated, digit1, run)
    assert figures["failed"] == {"box_plot": "RuntimeError: no font"}
    assert logged.lines == ["[figures] box_plot failed: RuntimeError: no font"]
    assert os.path.isfile(run.figure("roc_curve")) and os.path.isfile(run.figure("grids/normal_as_normal"))
    assert "Not drawn: the figure failed (RuntimeError: no font)" in report.figures_section(_summary(result, figures),
                                                                                         run)
