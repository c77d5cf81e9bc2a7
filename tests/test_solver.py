"""The training loop (source.solver): a model that can learn, interrupts honoured at any point, the progress
it returns being the one it records, log-spaced development looks, the learning-rate schedule."""
import os
import signal

import numpy as np
import pytest

from source import evaluation, experiment, solver
from source.neuralnet import ADAE, RANGE, ModelConfig
from source.record import RunConfig
from source.stops import Interrupted, TrainingError
from tests.conftest import SHORT
from source.rundir import RunDir


def test_signal_during_the_last_epochs_extras_is_honoured(digit1, tmp_path, monkeypatch, signal_on_call):
    """SIGINT while the last epoch is being evaluated: training raises Interrupted with the checkpoint
    written after that epoch; resuming from it trains nothing more, ends at the same step and returns the
    progress that checkpoint's loop state holds."""
    run = RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "late")
    signal_on_call(evaluation, "validation_health", signal.SIGINT, 2)   # the second (the last) epoch's evaluation
    model = ADAE(SHORT.model, seed=0)
    with pytest.raises(Interrupted) as caught:
        solver.train(model, digit1, run, solver.TrainingConfig(epoch=2, batch=128))
    model.close()
    assert caught.value.checkpoint.endswith("model.ckpt-6") and caught.value.signum == signal.SIGINT
    monkeypatch.undo()
    model = ADAE(SHORT.model, seed=0)
    progress = solver.train(model, digit1, run, solver.TrainingConfig(epoch=2, batch=128), resume=True)
    assert [h["step"] for h in progress.history] == [3, 6] and model.sess.run(model.global_step) == 6
    assert [p["step"] for p in progress.curve] == [3, 6] and progress == solver.Progress.of_state(run.read_state())
    model.close()


def test_a_run_folder_deleted_while_training_stops_it_with_one_line(digit1, tmp_path, monkeypatch):
    """Checkpoint/<run> removed during the second epoch (at its development look): the checkpoint that follows
    raises TrainingError naming the folder, not the Saver's traceback; the first epoch's checkpoint went with it."""
    import shutil
    run = RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "gone")
    looks, original = [], evaluation.validation_health

    def look_then_delete(*args, **kwargs):
        looks.append(1)
        if len(looks) == 2:
            shutil.rmtree(run.log)
        return original(*args, **kwargs)
    monkeypatch.setattr(evaluation, "validation_health", look_then_delete)
    model = ADAE(SHORT.model, seed=0)
    with pytest.raises(TrainingError) as caught:
        solver.train(model, digit1, run, solver.TrainingConfig(epoch=2, batch=180))
    model.close()
    assert str(caught.value) == (f"the run's folder {run.log} was deleted while it trained (its checkpoints with "
                                 "it); start the run again")
    assert not os.path.exists(run.log)


def test_curve_steps_are_log_spaced():
    """Four points per decade from 10 up to the budget."""
    assert sorted(solver.curve_steps(1000)) == [10, 18, 32, 56, 100, 178, 316, 562, 1000]
    assert solver.curve_steps(5) == set()


def test_fitted_scores_are_fitted_at_log_spaced_epoch_ends_and_the_last():
    """Epochs 1, 2, 4, 8, ... and the last; none for a run of no epoch."""
    assert solver.fit_epochs(13) == {1, 2, 4, 8, 13} and solver.fit_epochs(16) == {1, 2, 4, 8, 16}
    assert solver.fit_epochs(1) == {1} and solver.fit_epochs(3) == {1, 2, 3} and solver.fit_epochs(0) == set()


def test_a_run_fits_at_those_epoch_ends_only_and_measures_the_rest_at_every_look(digit1, tmp_path, monkeypatch):
    """Five epochs of 3 steps: the fitted scores are fitted (on training normals) and recorded at the ends of
    epochs 1, 2, 4 and 5 only; the graph's scores at every look, epoch 3's end and the in-epoch look at step
    10 included."""
    fits, original = [], ADAE.fit_scores

    def counted(self, x_normals, *args, **kwargs):
        fits.append(int(self.sess.run(self.global_step)))
        return original(self, x_normals, *args, **kwargs)
    monkeypatch.setattr(ADAE, "fit_scores", counted)
    model = ADAE(SHORT.model, seed=0)
    progress = solver.train(model, digit1, RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "fits"),
                            solver.TrainingConfig(epoch=5, batch=128))
    graph_scores, fitted = set(model.scores), set(model.fitted)
    model.close()
    assert fits == [3, 6, 12, 15]
    by_step = {p["step"]: set(p["dev_auroc_per_score"]) for p in progress.curve}
    assert sorted(by_step) == [3, 6, 9, 10, 12, 15]
    for step, names in by_step.items():
        assert names == (graph_scores | fitted if step in (3, 6, 12, 15) else graph_scores), step


# The default recipe's G on the embedded subset at batch 32, seed 0: its error on validation normals against the
# mean image's 9.2 is not monotone early on (spikes of 23-26 near iterations 120-180), and when it comes down
# depends on the kernels' last bits. Measured on one CPU with oneDNN's kernels held to each kind
# (ONEDNN_MAX_CPU_ISA; AVX2 reproduced the AVX2-only host's 10.0 at 360 as 10.1-10.2) and the thread count, at
# 480 / 540 / 600 / 720 iterations: AVX-512 1 thread 7.8 / 6.6 / 5.4 / 4.8, 2 threads 5.6 / 5.0 / 4.7 / 4.6; AVX2
# 1 thread 7.1 / 6.4 / 5.9 / 4.7, 2 threads 9.9 / 7.7 / 7.1 / 6.1; SSE4.1 1 thread 5.6 / 5.3 / 4.4 / 4.4. Every
# one stays below 8 from 540 on; at 600 the slowest is 7.1, about a quarter below the template. D's error on real
# images is at most 10 from iteration 300 on, 4.3-5.0 at 600. So the check trains to 600 (docs/speed.md, "What the
# learning check found").
LEARN_STEPS, LEARN_LOOKS = 600, (300, 450, 600)


@pytest.fixture(scope="module")
def learned(digit1):
    """run.py's default recipe on the embedded subset, 600 iterations of 32 (the loop's own iteration,
    ADAE.train_step, without its per-epoch extras): the validation health before, at each look, the mean
    image's error in the network's units, and a large batch of training images through the training path
    (its own batch statistics) and the inference path (the moving averages). The suite's longest training:
    two tests read it, in one process."""
    from source.flags import parse_args
    args = parse_args(["--data", "embedded", "--batch", "32", "--steps", str(LEARN_STEPS)])
    config = RunConfig.from_flags(args, "")
    assert config.model == ModelConfig() and config.training.batch == 32
    model = experiment.build_model(config)
    template = RANGE["paper"] * np.mean(np.sqrt(((digit1.x_valid - digit1.x_train.mean(axis=0)) ** 2).sum((1, 2, 3))))
    initial = evaluation.validation_health(model, digit1)
    rng, step, looks = np.random.RandomState(config.training.seed), 0, {}
    while step < LEARN_STEPS:
        for x in digit1.batches(config.training.batch, rng):
            model.train_step(x)
            step += 1
            if step in LEARN_LOOKS:
                looks[step] = evaluation.validation_health(model, digit1)
            if step == LEARN_STEPS:
                break
    x = digit1.x_train[:256]
    paths = dict(zip(("x_net", "train", "inference"), model.sess.run([model.x_net, model.g_x, model.g_x_test], {model.x: x})))
    model.close()
    return {"template": template, "initial": initial, "looks": looks, "paths": paths}


@pytest.mark.long
def test_default_recipe_learns_to_reconstruct(learned):
    """The default recipe's G ends with its reconstruction error of validation normals far below its initial
    value and below the mean normal image's; D's error on real validation images falls below the mean
    image's and stays below half its initial value at every look (a D that stops rebuilding real images
    fails)."""
    initial, looks, template = learned["initial"], learned["looks"], learned["template"]
    last = looks[LEARN_STEPS]
    assert last["rec_g"] < 0.4 * initial["rec_g"] and last["rec_g"] < template, (last["rec_g"], template)
    assert last["rec_d"] < template
    assert max(h["rec_d"] for h in looks.values()) < initial["rec_d"] * 0.5


@pytest.mark.long
def test_inference_path_matches_the_training_path_after_training(learned):
    """After training, the inference path (batch norm's moving averages) rebuilds a large batch of training
    images almost as the training path (that batch's own statistics) does: the moving averages describe the
    data the test-time graph sees."""
    paths = learned["paths"]
    gap = np.abs(paths["train"] - paths["inference"]).mean()
    assert gap < 0.25 * np.abs(paths["x_net"] - paths["inference"]).mean(), gap


def test_learning_rates_constant_and_cosine_against_numpy():
    """constant: lr at every step; cosine: lr (1 + cos(pi t / T)) / 2 at step t of T, lr at the first step,
    falling, and zero at the end of the last (t = T)."""
    lr, total = 2e-4, 50
    constant = solver.learning_rates("constant", lr, total)
    assert constant.dtype == np.float32 and constant.shape == (total,) and (constant == np.float32(lr)).all()
    cosine = solver.learning_rates("cosine", lr, total)
    t = np.arange(total)
    np.testing.assert_allclose(cosine, lr * (1 + np.cos(np.pi * t / total)) / 2, rtol=1e-5, atol=1e-12)
    assert cosine[0] == np.float32(lr) and (np.diff(cosine) < 0).all() and 0 < cosine[-1] < lr / 1000
    with pytest.raises(ValueError, match="schedule"):
        solver.learning_rates("step", lr, total)
    assert solver.learning_rates("cosine", lr, 0).shape == (0,)   # --epoch 0: no step, no decay to build


def test_the_fed_learning_rate_drives_both_optimizers(batch):
    """A step at learning rate 0 leaves every trained weight of G and D as it was, bit for bit; the same step at
    the model's lr moves both networks: the schedule's value, not a constant, reaches Adam."""
    from tests.conftest import SHORT
    model = ADAE(SHORT.model, seed=0)
    before = model.sess.run(model.vars_g + model.vars_d)
    model.train_step(batch, learning_rate=0.0)
    after = model.sess.run(model.vars_g + model.vars_d)
    assert all(np.array_equal(b, a) for b, a in zip(before, after))
    model.train_step(batch)
    moved = model.sess.run(model.vars_g + model.vars_d)
    n_g = len(model.vars_g)
    assert any(not np.array_equal(b, m) for b, m in zip(after[:n_g], moved[:n_g]))
    assert any(not np.array_equal(b, m) for b, m in zip(after[n_g:], moved[n_g:]))
    model.close()


def test_best_look_is_the_best_half_a_after_the_warm_up():
    """--select best_look's choice on hand-built epoch records: the highest half-a AUROC at or after the
    warm-up (an earlier look never, however good), the earliest of equals, records without halves (an older
    run's) or with a NaN skipped; none eligible: None."""
    def rec(step, a):
        return {"epoch": step // 500, "step": step, "dev_auroc_halves": {"a": a, "b": 0.5}}
    history = [rec(500, 0.99), rec(1000, 0.7), rec(1500, 0.8), rec(2000, 0.8), rec(2500, float("nan")),
               {"epoch": 6, "step": 3000}]
    assert solver.best_look(history)["step"] == 1500
    assert solver.best_look(history[:2])["step"] == 1000
    assert solver.best_look(history[:1]) is None and solver.best_look([]) is None


def test_select_best_look_evaluates_the_chosen_epochs_weights(embedded, tmp_path, monkeypatch):
    """A three-epoch run with --select best_look whose half-a AUROCs are 0.6, 0.9, 0.7 (fixed here; the halves
    themselves are tested with the rescoring): the Saver keeps one checkpoint, so epoch 2's survives only as the
    copy in best_look/; the evaluation uses epoch 2's weights (its validation scores are that look's), the
    summary and the report name the choice; a second evaluation (--test-only) and new images use it too."""
    import dataclasses
    from source import datamanager, inference
    halves = iter([{"a": 0.6, "b": 0.5}, {"a": 0.9, "b": 0.8}, {"a": 0.7, "b": 0.6}])
    monkeypatch.setattr(evaluation, "half_aurocs", lambda valid, dev: next(halves))
    monkeypatch.setattr(solver, "SELECT_WARM_UP", 1)
    config = dataclasses.replace(SHORT, training=dataclasses.replace(
        SHORT.training, epoch=3, steps=None, batch=200, keep_checkpoints=1, select="best_look")).one(1, 0)
    source = {"name": "embedded", "reason": "test"}
    run = RunDir(str(tmp_path / "logs"), str(tmp_path / "results"), "best")
    summary = experiment.train_and_evaluate(config, embedded, source, run)
    assert summary.selected["epoch"] == 2 and summary.selected["dev_auroc_halves"] == {"a": 0.9, "b": 0.8}
    assert summary.final_epoch["epoch"] == 3
    step = summary.selected["step"]
    assert sorted(os.listdir(run.best_dir)) == [f"fitted_scores-{step}.npz", f"model.ckpt-{step}.data-00000-of-00001",
                                                f"model.ckpt-{step}.index"]
    assert not os.path.exists(os.path.join(run.log, f"model.ckpt-{step}.index"))   # the Saver's own is gone
    assert summary.metrics["valid_score_mean"] == pytest.approx(summary.selected["valid_score"], rel=1e-5)
    assert abs(summary.final_epoch["valid_score"] - summary.selected["valid_score"]) > 1e-4
    with open(run.report_path) as f:
        assert f"the best look, epoch 2, step {step}: development AUROC 0.9000 on half a" in f.read()
    again = RunDir(str(tmp_path / "logs"), str(tmp_path / "results"), "best_eval")
    summary2 = experiment.train_and_evaluate(config, embedded, source, again, load_from=run)
    assert summary2.selected["step"] == step
    assert summary2.metrics["AUROC"] == pytest.approx(summary.metrics["AUROC"], abs=1e-9)
    x = embedded[2][:5]
    np.save(tmp_path / "new.npy", x)
    inference.score_new_images(run, str(tmp_path / "new.npy"))
    with open(os.path.join(run.results, "score_new", "scores.csv")) as f:
        scored = [float(line.split(",")[1]) for line in f.read().splitlines()[1:]]
    model = experiment.build_model(config)
    model.load(run.best_dir)
    expected = model.run_scores(datamanager.scale(x, config.data.datnorm))[config.model.anomaly_score]
    model.close()
    np.testing.assert_allclose(scored, expected, rtol=1e-5)
    import shutil
    shutil.rmtree(run.best_dir)   # the copy gone: one clear error, not the last weights in its place
    with pytest.raises(TrainingError, match=rf"the best look's checkpoint \(step {step}\) is missing"):
        experiment.train_and_evaluate(config, embedded, source, RunDir(str(tmp_path / "logs"), str(
            tmp_path / "results"), "best_eval2"), load_from=run)


def test_select_best_look_resumed_keeps_the_copy_and_evaluates_the_chosen_epoch(embedded, digit1, tmp_path,
                                                                                 monkeypatch, signal_on_call):
    """--select best_look stopped by SIGINT inside epoch 3 (half-a AUROCs 0.6, 0.9, then 0.7 after the resume):
    the stop's mid-epoch checkpoint leaves the copy of epoch 2 (the best so far) in best_look/, and the resumed
    run chooses epoch 2 from the history its loop state held and evaluates its weights, not the last ones; its
    record's training time counts both invocations."""
    import dataclasses
    halves = iter([{"a": 0.6, "b": 0.5}, {"a": 0.9, "b": 0.8}, {"a": 0.7, "b": 0.6}])
    monkeypatch.setattr(evaluation, "half_aurocs", lambda valid, dev: next(halves))
    monkeypatch.setattr(solver, "SELECT_WARM_UP", 1)
    config = dataclasses.replace(SHORT, training=dataclasses.replace(
        SHORT.training, epoch=3, steps=None, batch=200, keep_checkpoints=1, select="best_look")).one(1, 0)
    n_per_epoch = int(np.ceil(len(digit1.x_train) / 200))
    assert n_per_epoch >= 2   # so that the stop falls inside epoch 3, after its first batch
    signal_on_call(solver.Training, "iteration", signal.SIGINT, 2 * n_per_epoch + 1)
    source = {"name": "embedded", "reason": "test"}
    run = RunDir(str(tmp_path / "logs"), str(tmp_path / "results"), "stopped")
    with pytest.raises(Interrupted) as caught:
        experiment.train_and_evaluate(config, embedded, source, run)
    stopped_at = int(caught.value.checkpoint.rsplit("-", 1)[1])
    assert stopped_at == 2 * n_per_epoch + 1
    step_2 = 2 * n_per_epoch
    assert sorted(os.listdir(run.best_dir)) == [f"model.ckpt-{step_2}.data-00000-of-00001",
                                                f"model.ckpt-{step_2}.index"]
    first_seconds = run.read_state()["seconds"]   # the stopped invocation's: two epochs and a third's batch
    assert first_seconds >= sum(h["seconds"] for h in run.read_state()["history"]) > 0
    summary = experiment.train_and_evaluate(config, embedded, source, run, resume=True)   # no second signal
    # the record's training time is both invocations' (it was the resumed one's alone: one epoch of three)
    assert summary.timings["training"] > first_seconds + summary.final_epoch["seconds"]
    assert summary.final_epoch["epoch"] == 3
    assert summary.selected["epoch"] == 2 and summary.selected["step"] == step_2
    assert summary.selected["dev_auroc_halves"] == {"a": 0.9, "b": 0.8}
    assert any(name.startswith(f"model.ckpt-{step_2}.") for name in os.listdir(run.best_dir))
    assert summary.metrics["valid_score_mean"] == pytest.approx(summary.selected["valid_score"], rel=1e-5)
    assert abs(summary.final_epoch["valid_score"] - summary.selected["valid_score"]) > 1e-4
