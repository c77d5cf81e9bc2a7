"""Training loop and evaluation: TensorBoard summaries, checkpoints, metrics, result files."""
import logging
import os
import signal
import sys
import time

import numpy as np
import tensorflow as tf

from source import baselines, board, metrics, plots
from source.scores import fit_sample
from source.config import TrainingConfig  # noqa: F401  (solver.TrainingConfig: the loop's settings)
from source.neuralnet import RANGE

logger = logging.getLogger(__name__)

tf1 = tf.compat.v1
N_RESTORATION = 6        # validation images shown in the restoration grids
N_DRAWN = 20         # restoration figures per run at most (every epoch for runs of up to 20 epochs)
CURVE_PER_DECADE = 4  # development evaluations per decade of steps (10, 18, 32, 56, 100, ...), besides epoch ends


def curve_steps(total_steps, per_decade=CURVE_PER_DECADE):
    """Log-spaced steps at which the development AUROC is measured inside epochs, so a learning curve
    has points early on even when an epoch is long (the paper protocol's epoch is ~750 iterations)."""
    if total_steps < 10:
        return set()
    top = int(np.floor(np.log10(total_steps) * per_decade))
    return {int(round(10 ** (k / per_decade))) for k in range(per_decade, top + 1)} - {0}


def learning_rates(schedule, lr, total_steps):
    """The learning rate of each step 0..total_steps-1 (float32): lr throughout ('constant', the paper's form),
    or TensorFlow's cosine decay of lr that reaches zero at the end of the last step ('cosine'). A function of
    the step alone, so a resumed run continues the same schedule."""
    if schedule == "constant" or not total_steps:   # a run of no step (--epoch 0) has no schedule to decay
        return np.full(total_steps, lr, np.float32)
    if schedule == "cosine":
        decay = tf.keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, alpha=0.0)
        return np.asarray(decay(np.arange(total_steps)), np.float32)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def fit_scores(model, data):
    """Fit the model's fitted scores on the fixed subsample of the training normals (ModelConfig.fit_images):
    never a validation, development or test image. Nothing to do where the model holds every fitted score's
    statistics already: they are always its current weights' (a training step drops them, a checkpoint brings
    its own)."""
    if set(model.fitted) <= set(model.fit_stats):
        return model.fit_stats
    return model.fit_scores(fit_sample(data.x_train, model.config.fit_images))


def validation_health(model, data, ema=True, fit=False):
    """What one look at the validation split says: each score's development AUROC and its values on
    validation normals; G's and D's reconstruction error of validation normals (x_gx, x_dx), as L2 in the
    network's frame (the training loop sets them beside the mean normal image's). ema=False: with the
    trained weights where the model scores with their moving average; fit: fit the fitted scores first (on
    training normals), so they are measured too."""
    if fit:
        fit_scores(model, data)
    valid = model.run_scores(data.x_valid, ema=ema)
    dev = model.run_scores(data.x_dev_anomalous, ema=ema)
    return {"valid": valid, "dev_auroc_per_score": {k: dev_auroc_of(valid[k], dev[k]) for k in valid},
            "rec_g": float(valid["x_gx"].mean()), "rec_d": float(valid["x_dx"].mean())}


def test_split_diagnostic(model, data, step):
    """The test AUROC of every score at this step: a marked diagnostic of the test split, recorded to show
    what a best-test-epoch reading would publish. Nothing reads it back: not the threshold, not the reported
    metrics, not a choice of step, checkpoint or recipe."""
    return {"step": step, "test_auroc_per_score": metrics.auroc_per_score(data.anomalous_test,
                                                                           model.run_scores(data.x_test))}


class TrainingError(RuntimeError):
    """Training stopped on purpose (non-finite loss); the message names the step and checkpoint."""


class Interrupted(RuntimeError):
    """Training was interrupted by a signal after a checkpoint was written."""

    def __init__(self, signum, checkpoint):
        super().__init__(f"interrupted by signal {signum}; checkpoint {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class StopFlag:
    """The one handler of SIGINT/SIGTERM while the block runs. A signal sets `signum`, which the owner checks
    where stopping is safe (the training loop after a checkpoint, the worker pool to pass it on); with
    raise_now (where there is nothing to save: between runs, loading data) it raises Interrupted at once.
    Blocks nest: the innermost handles the signal, and the outer one is back when it ends."""

    def __init__(self, raise_now=False):
        self.signum, self.raise_now = None, raise_now
        self._previous = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        self.signum = signum
        if self.raise_now:
            raise Interrupted(signum, None)


def _rng_state(rng):
    name, keys, pos, has_gauss, cached = rng.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_rng_state(rng, state):
    name, keys, pos, has_gauss, cached = state
    rng.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))


def train(model, data, run, config=TrainingConfig(), resume=False):
    """Train D then G on each batch for config.epoch epochs, or config.steps iterations when given (the last
    epoch then ends early); checkpoints and TensorBoard events go to run.log, per-epoch restoration
    figures to run.results; return the per-epoch history."""
    loop = Training(model, data, run, config, resume)
    with StopFlag() as stop:
        for epoch in range(loop.start_epoch, loop.epochs):
            t_epoch, rng_epoch_start = time.time(), _rng_state(loop.rng)
            sums = loop.sums or dict.fromkeys([*model.d_numbers, *model.g_numbers, "images"], 0.0)
            bar = tf.keras.utils.Progbar(loop.n_per_epoch) if sys.stdout.isatty() else None
            for i, x in enumerate(data.batches(config.batch, loop.rng)):
                if i < loop.skip:                # batches this epoch already trained on before a resume
                    continue
                if loop.step >= loop.total_steps:   # a --steps budget ends inside the last epoch
                    break
                numbers = loop.iteration(x)
                for key, value in numbers.items():
                    sums[key] += float(value) * len(x)
                sums["images"] += len(x)
                if bar:
                    bar.update(i + 1, [(k, numbers[k]) for k in ("loss_g", "loss_d")])
                if loop.step in loop.at_curve and loop.step % loop.n_per_epoch and loop.step < loop.total_steps:
                    loop.look(loop.step)         # log-spaced looks inside epochs; epoch ends: below
                if stop.signum:
                    loop.stop(stop.signum, {"rng": rng_epoch_start, "batches_done": i + 1, "sums": sums})
            loop.skip, loop.sums = 0, None
            loop.end_epoch(epoch, sums, time.time() - t_epoch)
            if stop.signum:   # a signal during this epoch's extras: the checkpoint it wrote holds everything
                loop.stop(stop.signum)
    loop.writer.close()
    return loop.history


class Training:
    """What the training loop carries from one batch to the next: the batch order, the step, the history,
    the development (and test-split diagnostic) curves, the last checkpoint, the TensorBoard writer; and the
    loop's named pieces (one iteration, a development look, the end of an epoch, a stop on a signal)."""

    def __init__(self, model, data, run, config, resume):
        self.model, self.data, self.run, self.config = model, data, run, config
        os.makedirs(run.log, exist_ok=True)
        os.makedirs(run.restoration_dir, exist_ok=True)
        self.rng = np.random.RandomState(config.seed)
        self.history, self.step, self.start_epoch, self.last_ckpt, self.skip, self.sums = [], 0, 0, None, 0, None
        state = self.resume() if resume else {}
        self.curve, self.test_curve = list(state.get("curve", [])), list(state.get("test_curve", []))
        self.writer = board.writer(run.log, graph=None if resume else model.graph)
        self.n_per_epoch = int(np.ceil(len(data.x_train) / config.batch))
        self.total_steps = config.total_steps(len(data.x_train))
        self.epochs = int(np.ceil(self.total_steps / self.n_per_epoch))
        self.at_curve = curve_steps(self.total_steps)
        self.learning_rates = learning_rates(config.lr_schedule, model.config.lr, self.total_steps)
        # a matplotlib figure costs time: at most N_DRAWN restoration figures per run
        self.draw_every = max(1, int(np.ceil(self.epochs / N_DRAWN)))
        # the template baseline's (MeanImage's) error on validation normals, in the network's units like x_gx, x_dx
        self.template_error = float(RANGE[model.arch] * baselines.mean_image_distance(
            data.x_train.reshape(len(data.x_train), -1), data.x_valid.reshape(len(data.x_valid), -1)).mean())

    def resume(self):
        """Continue from run's latest checkpoint and the loop state written with it; returns that state."""
        found, self.last_ckpt = self.model.load(self.run.log)   # a damaged newest: an older one, said in one line
        if not found:
            raise TrainingError(f"no checkpoint to resume in {self.run.log}")
        state = self.run.read_state(self.last_ckpt)   # the loop state written with that checkpoint
        _set_rng_state(self.rng, state["rng"])       # the batch order of the epoch to continue
        self.history, self.skip, self.sums = state["history"], state["batches_done"], state["sums"]
        self.step, self.start_epoch = (int(v) for v in self.model.sess.run([self.model.global_step,
                                                                            self.model.epoch]))
        logger.info(f"[train] resumed from {self.last_ckpt} at epoch {self.start_epoch + 1}, step {self.step}")
        return state

    def iteration(self, x):
        """One D step and one G step on batch x (scalar summaries every summary_every steps); its numbers."""
        numbers = self.model.train_step(x, summary=self.step % self.config.summary_every == 0,
                                        learning_rate=self.learning_rates[self.step])
        if "summary" in numbers:
            self.writer.add_summary(numbers.pop("summary"), self.step)
        self.step += 1
        if not np.isfinite(list(numbers.values())).all():
            self.writer.close()
            raise TrainingError(f"non-finite loss at step {self.step} (loss_g={numbers['loss_g']}, "
                                f"loss_d={numbers['loss_d']}); last good checkpoint: {self.last_ckpt or 'none'}")
        return numbers

    def look(self, step, fit=False):
        """Validation health at this step (fit: the fitted scores too, fitted on training normals at this step):
        one curve point, a TensorBoard record, and what it measured."""
        model, writer = self.model, self.writer
        health = validation_health(model, self.data, fit=fit)
        point = {"step": step, "rec_g": health["rec_g"], "rec_d": health["rec_d"],
                 "rec_template": self.template_error, "k_t": float(model.sess.run(model.k)),
                 "dev_auroc_per_score": health["dev_auroc_per_score"]}
        if model.config.ema:   # the trained weights' development AUROC beside their average's
            point["dev_auroc_trained_per_score"] = validation_health(model, self.data, ema=False)["dev_auroc_per_score"]
        self.curve.append(point)
        for key in ("rec_g", "rec_d", "rec_template"):
            writer.add_summary(board.scalar(f"reconstruction/{key}", point[key]), step)
        for key, value in point["dev_auroc_per_score"].items():
            writer.add_summary(board.scalar(f"dev_auroc/{key}", value), step)
        if self.config.test_curve:
            self.test_curve.append(test_split_diagnostic(model, self.data, step))
            for key, value in self.test_curve[-1]["test_auroc_per_score"].items():
                writer.add_summary(board.scalar(f"{board.TEST_SPLIT_DIAGNOSTIC}/{key}", value), step)
        return health

    def end_epoch(self, epoch, sums, seconds):
        """The per-epoch extras: a development look, restorations, summaries, the history record, a
        checkpoint and the log line."""
        model, t_extra = self.model, time.time()
        drawn = (epoch + 1) % self.draw_every == 0 or epoch + 1 == self.epochs
        # the fitted scores cost a fit on training normals (seconds on the paper network): measured at the epoch
        # ends whose restorations are drawn (at most N_DRAWN a run, the last included), and at every epoch end
        # of a run scored by one
        health = self.look(self.step, fit=drawn or model.anomaly_score not in model.scores)
        dev_aurocs = health["dev_auroc_per_score"]
        valid, dev_auroc = health["valid"][model.anomaly_score], dev_aurocs[model.anomaly_score]
        if drawn:
            _draw(f"restoration/epoch_{epoch + 1:04d}", lambda: self.restorations(epoch, valid), {})
        k_t = self.curve[-1]["k_t"]   # read by the look above; nothing has trained since
        self.writer.add_summary(model.sess.run(model.summary_epoch, {
            model.valid_scores_in: valid, model.valid_auroc_in: dev_auroc}), self.step)
        model.sess.run(model.next_epoch)
        n_images = sums.pop("images")
        record = {key: value / n_images for key, value in sums.items()}
        record.update(epoch=epoch + 1, step=self.step, k_t=k_t, valid_score=float(valid.mean()),
                      dev_auroc=dev_auroc, dev_auroc_per_score=dev_aurocs, rec_g=health["rec_g"],
                      rec_d=health["rec_d"], rec_template=self.template_error,
                      seconds=seconds, images_per_second=n_images / seconds)
        self.history.append(record)
        record["extra_seconds"] = time.time() - t_extra
        self.checkpoint({"rng": _rng_state(self.rng), "batches_done": 0, "sums": None})
        self.writer.flush()
        logger.info(f"[train] epoch {epoch + 1:4d}/{self.epochs}  iter {self.step:6d}  loss_g {record['loss_g']:.4f}  "
                    f"loss_d {record['loss_d']:.4f}  k_t {k_t:.3f}  b {record['g_lr_share']:.2f}  "
                    f"valid {record['valid_score']:.3f}  dev AUROC {dev_auroc:.3f}  rec G {health['rec_g']:.2f} "
                    f"D {health['rec_d']:.2f} template {self.template_error:.2f}  {seconds:5.1f}s  "
                    f"{record['images_per_second']:6.0f} img/s")

    def restorations(self, epoch, valid):
        """The restoration grid of the first validation normals, as a file and a TensorBoard image."""
        x = self.data.x_valid[:N_RESTORATION]
        png = plots.example_grid(
            x, self.model.panels(x),
            [f"{cls}\nscore {v:.3g}" for cls, v in zip(self.data.y_valid[:N_RESTORATION], valid[:N_RESTORATION])],
            f"epoch {epoch + 1}, step {self.step}: validation normals ({self.model.anomaly_score})",
            os.path.join(self.run.restoration_dir, f"epoch_{epoch + 1:04d}.png"))
        self.writer.add_summary(board.image("restoration/validation_normals", png, *plots.png_size(png)), self.step)

    def checkpoint(self, position):
        """Saver checkpoint (the Saver keeps the last few) plus the loop's state: position in the batch order
        ({"rng", "batches_done", "sums"}), history and curves."""
        if not os.path.isdir(self.run.log):   # the Saver would fail with a traceback, TensorBoard silently
            self.writer.close()
            raise TrainingError(f"the run's folder {self.run.log} was deleted while it trained (its checkpoints "
                                f"with it); start the run again")
        self.last_ckpt = self.model.save(self.run.checkpoint_prefix)
        self.run.write_state(dict(position, history=self.history, curve=self.curve, test_curve=self.test_curve,
                                  checkpoint=self.last_ckpt), self.model.saver.last_checkpoints)

    def stop(self, signum, position=None):
        """Stop on a signal: checkpoint at this position (none: the epoch end's checkpoint holds it), close."""
        if position is not None:
            self.checkpoint(position)
        self.writer.close()
        raise Interrupted(signum, self.last_ckpt)


def dev_auroc_of(valid_normal_scores, dev_anomalous_scores):
    """AUROC of validation normals against train-split anomalies (NaN when either is missing)."""
    if not len(valid_normal_scores) or not len(dev_anomalous_scores):
        return float("nan")
    scores = np.concatenate([valid_normal_scores, dev_anomalous_scores])
    labels = np.r_[np.zeros(len(valid_normal_scores)), np.ones(len(dev_anomalous_scores))]
    if not np.isfinite(scores).all():
        return float("nan")
    return metrics.ranking_metrics(labels, scores)["AUROC"]


def evaluate(model, data, run):
    """Score validation and test images; write valid_scores.csv and scores.csv; return the metrics, the
    timings and what the figures need ({"test": scores per name, "threshold", "predicted"}). The threshold
    comes from the validation normals alone."""
    t0 = time.time()
    fit_scores(model, data)   # unless fitted at the last look or loaded with the checkpoint
    os.makedirs(run.log, exist_ok=True)
    model.save_fitted(run.log)
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
    return result, timings, {"test": test, "threshold": threshold, "predicted": predicted}


def draw_figures(model, data, run, scored, history=None, class_names=None, bars=None, bars_title=""):
    """Every figure of a run, each on its own: one that fails is named on one line and the others are still
    drawn. Sample grids of an empty category are stated, not drawn. Returns {"failed": {figure: error},
    "empty_grids": {grid: title}} for report.md and summary.json."""
    name, test, threshold = model.anomaly_score, scored["test"], scored["threshold"]
    score, anomalous = test[name], data.anomalous_test
    writer = board.writer(run.log)
    step = int(model.sess.run(model.global_step))
    curves = {f"ADAE {k}" if k == name else k: v for k, v in test.items()}
    jobs = [("box_plot", lambda: plots.box_plot(score, data.y_test, threshold, run.figure("box_plot"), class_names,
                                                normal_classes=data.normal_digits)),
            ("roc_curve", lambda: plots.roc_curve(anomalous, curves, run.figure("roc_curve"))),
            ("pr_curve", lambda: plots.pr_curve(anomalous, curves, run.figure("pr_curve"))),
            ("score_histogram", lambda: plots.score_histogram(score, anomalous, threshold,
                                                              run.figure("score_histogram"))),
            ("test/pr_curve", lambda: writer.add_summary(board.pr_curve("test/pr_curve", anomalous, score), step))]
    if history:
        jobs.append(("loss_curves", lambda: plots.loss_curves(history, run.figure("loss_curves"))))
    if bars:
        jobs.append(("baselines", lambda: plots.bar_chart(bars, run.figure("baselines"), bars_title)))
    os.makedirs(run.grid_dir, exist_ok=True)
    empty = {}
    for grid_name, title, idx in sample_grid_indices(anomalous, scored["predicted"], score):
        if not len(idx):
            empty[grid_name] = title
            writer.add_summary(board.text(f"test_grids/{grid_name}", f"No test image: no {title}."), step)
            continue

        def grid(grid_name=grid_name, title=title, idx=idx):
            png = plots.example_grid(
                data.x_test[idx], model.panels(data.x_test[idx]),
                [f"{_class_name(data.y_test[i], class_names)}\nscore {score[i]:.3g}" for i in idx],
                f"{title} (threshold {threshold:.3g}, score {name})", run.figure(f"grids/{grid_name}"))
            writer.add_summary(board.image(f"test_grids/{grid_name}", png, *plots.png_size(png)), step)
        jobs.append((f"grids/{grid_name}", grid))
    failed = {}
    for figure, draw in jobs:
        _draw(figure, draw, failed)
    writer.close()
    return {"failed": failed, "empty_grids": empty}


def _draw(figure, draw, failed):
    """Draw one figure; one that fails is named on one line and in `failed`, and never costs the run."""
    try:
        draw()
    except Exception as err:
        failed[figure] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        logger.warning(f"[figures] {figure} failed: {failed[figure]}")


def _class_name(label, class_names):
    return class_names[label] if class_names else str(label)


def sample_grid_indices(anomalous, predicted, score, n=plots.N_GRID):
    """The four grids (normal|anomalous) as (normal|anomalous): file name, title and test indices, most
    telling first (flagged images: highest scores first; passed images: lowest first)."""
    out = []
    for truth, truth_name in ((0, "normal"), (1, "anomalous")):
        for verdict, verdict_name in ((0, "normal"), (1, "anomalous")):
            idx = np.flatnonzero((anomalous == truth) & (predicted == verdict))
            idx = idx[np.argsort(-score[idx] if verdict else score[idx], kind="stable")][:n]
            out.append((f"{truth_name}_as_{verdict_name}", f"{truth_name} images judged {verdict_name}", idx))
    return out
