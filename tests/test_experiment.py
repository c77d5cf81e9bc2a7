"""One run (source.experiment): data, model, training, evaluation, baselines, summary, figures and report
in one direction; the evaluation kept when every figure fails; the test-split curve recorded and read by
nothing; the classic baselines' shared results named by the images they scored."""
import json
import os

import pytest
import tensorflow as tf

from source import experiment
from source.rundir import RunDir
from source.scores import SCORE_NAMES
from tests.conftest import SHORT

tf1 = tf.compat.v1


def test_run_keeps_its_evaluation_when_every_grid_fails(embedded, tmp_path, monkeypatch):
    """A run whose image grids all fail still writes summary.json, scores.csv and report.md, which names
    each failed figure."""
    from source import plots

    def broken(*args, **kwargs):
        raise ValueError("input depth must be evenly divisible by filter depth")
    monkeypatch.setattr(plots, "example_grid", broken)
    run = RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "broken")
    summary = experiment.train_and_evaluate(SHORT.one(1, 0), embedded, {"name": "embedded", "reason": "test"}, run)
    on_disk = json.loads(open(run.summary_path).read())
    assert on_disk["metrics"]["AUROC"] == summary.metrics["AUROC"]
    assert sorted(on_disk["figures"]["failed"]) == [f"grids/{g}" for g in sorted(
        ["anomalous_as_anomalous", "anomalous_as_normal", "normal_as_anomalous", "normal_as_normal"])
        if g not in on_disk["figures"]["empty_grids"]]
    assert os.path.isfile(run.scores_path)
    assert "Not drawn: the figure failed (ValueError" in open(run.report_path).read()


def test_test_curve_is_recorded_and_read_by_nothing(embedded, tmp_path, monkeypatch):
    """--test-curve records the test AUROC of every score at each development look (here one: the end of the
    4-step epoch; log-spaced looks start at step 10) and as TensorBoard tags named for the test split; the run's
    reported metrics, threshold and scores.csv are the same with it on and off. The curves reach the summary
    from training itself, never read back from the loop state on disk, and are the ones that state holds."""
    import dataclasses
    from source import board

    def no_read_back(*args, **kwargs):
        raise AssertionError("a run read its loop state back")
    monkeypatch.setattr(RunDir, "read_state", no_read_back)
    runs = {}
    for on in (False, True):
        config = dataclasses.replace(SHORT, training=dataclasses.replace(SHORT.training, test_curve=on)).one(1, 0)
        run = RunDir(str(tmp_path / f"c{on}"), str(tmp_path / f"r{on}"), "curve")
        runs[on] = (experiment.train_and_evaluate(config, embedded, {"name": "embedded", "reason": "test"}, run), run)
    monkeypatch.undo()
    (off, run_off), (on, run_on) = runs[False], runs[True]
    state = run_on.read_state()
    assert (on.dev_curve, on.test_curve) == (state["curve"], state["test_curve"])
    assert on.final_epoch == state["history"][-1]
    assert off.test_curve == [] and [p["step"] for p in on.test_curve] == [4]
    assert set(on.test_curve[0]["test_auroc_per_score"]) == set(SCORE_NAMES)   # an epoch end: the fitted ones too
    # the look at the last step sees the model that is evaluated: its test AUROC is the reported one
    assert on.test_curve[0]["test_auroc_per_score"] == pytest.approx(on.metrics["AUROC_per_score"], rel=1e-9)
    assert on.metrics == off.metrics and on.threshold == off.threshold
    assert open(run_on.scores_path).read() == open(run_off.scores_path).read()
    tags = {v.tag for path in os.listdir(run_on.log) if path.startswith("events")
            for e in tf1.train.summary_iterator(os.path.join(run_on.log, path)) for v in e.summary.value}
    assert {f"{board.TEST_SPLIT_DIAGNOSTIC}/{k}" for k in ("x_dgx", "x_gx", "x_dx", "gx_dgx", "x_dgx_rel")} <= tags
    assert not any(t.startswith(board.TEST_SPLIT_DIAGNOSTIC) for path in os.listdir(run_off.log)
                   if path.startswith("events") for e in tf1.train.summary_iterator(os.path.join(run_off.log, path))
                   for t in [v.tag for v in e.summary.value])
    assert "best test AUROC of x_dgx over training is" in open(run_on.report_path).read()
    from source.tools import curves   # the README's curve figure, drawn from the summary as from a record
    assert curves.main([str(tmp_path / "curves.png"), run_on.summary_path, run_off.summary_path]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_shared_baselines_differ_with_the_images_labels_or_settings(digit1, embedded, tmp_path):
    """The shared results' file is named by the training and test images, the test labels and the settings:
    another digit, one changed pixel or another setting is another file."""
    import copy
    from source import datamanager
    path = experiment.shared_baselines_path
    settings = {"kNN": {"k": 5}}
    assert path(tmp_path, digit1, settings) == path(tmp_path, copy.copy(digit1), settings)
    assert path(tmp_path, digit1, settings) != path(tmp_path, datamanager.Dataset(*embedded, normal=2), settings)
    changed = copy.copy(digit1)
    changed.x_test = digit1.x_test.copy()
    changed.x_test[0, 0, 0, 0] += 0.5
    assert path(tmp_path, digit1, settings) != path(tmp_path, changed, settings)
    assert path(tmp_path, digit1, settings) != path(tmp_path, digit1, {"kNN": {"k": 6}})


def test_convae_is_evaluated_by_the_same_selection_rule(embedded, digit1, tmp_path, monkeypatch):
    """With --select best_look, ConvAE (a baseline trained by the same loop) is scored with its own best look,
    as ADAE is: its half-a AUROCs are 0.95, 0.6, 0.7 here (fixed), so epoch 1's weights, kept only as the copy in
    best_look/, give its AUROC, and the record names the step; with --select last the last weights do."""
    import dataclasses
    from source import baselines, evaluation, metrics, solver
    monkeypatch.setattr(baselines, "CLASSIC", {})   # MeanImage and ConvAE only: the classic detectors are tested apart
    monkeypatch.setattr(solver, "SELECT_WARM_UP", 1)
    results = {}
    for select in ("best_look", "last"):
        halves = iter([{"a": 0.95, "b": 0.5}, {"a": 0.6, "b": 0.5}, {"a": 0.7, "b": 0.6}])
        monkeypatch.setattr(evaluation, "half_aurocs", lambda valid, dev: next(halves))
        config = dataclasses.replace(SHORT, training=dataclasses.replace(
            SHORT.training, epoch=3, steps=None, batch=200, keep_checkpoints=1, baselines=True,
            select=select)).one(1, 0)
        run = RunDir(str(tmp_path / "c"), str(tmp_path / "r"), select)
        results[select] = experiment.run_baselines(config, digit1, run)
        ae_run = run.sub("conv_ae")
        ae = experiment.build_model(config, objective="autoencoder")
        found, path = ae.load(ae_run.best_dir if select == "best_look" else ae_run.log)
        assert found
        expected = metrics.ranking_metrics(digit1.anomalous_test, ae.run_scores(digit1.x_test, names=["x_gx"])["x_gx"])
        steps = sorted(h["step"] for h in ae_run.read_state()["history"])
        ae.close()
        scored, info = results[select]
        assert scored["ConvAE"]["AUROC"] == pytest.approx(expected["AUROC"], abs=1e-9)
        assert info["settings"]["ConvAE"]["selected_step"] == (steps[0] if select == "best_look" else None)
        assert int(path.rsplit("-", 1)[1]) == (steps[0] if select == "best_look" else steps[-1])
    assert results["best_look"][0]["ConvAE"]["AUROC"] != results["last"][0]["ConvAE"]["AUROC"]
