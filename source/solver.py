"""The training loop: batches, the learning-rate schedule, development looks along the way, restoration
figures, TensorBoard summaries, checkpoints with the loop's state; it returns what it recorded (Progress)."""
import dataclasses
import logging
import os
import sys
import time

import numpy as np
import tensorflow as tf

from source import baselines, board, evaluation, plots
from source.config import SELECT_WARM_UP, TrainingConfig  # noqa: F401  (solver.TrainingConfig: the loop's settings)
from source.neuralnet import RANGE, copy_checkpoint
from source.stops import Interrupted, StopFlag, TrainingError

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


def fit_epochs(epochs):
    """The epoch ends at which the fitted scores are fitted on training normals and measured: epochs 1, 2, 4, 8, ...
    and the last. A fit costs 15 to 20 looks of 750 images on the paper network (NAP: three randomized SVDs of
    2,000 x 15,368); fitted at every epoch end, the fits were most of a one-class sub-run's per-epoch extras
    (docs/speed.md)."""
    if epochs < 1:
        return set()
    return {2 ** k for k in range(int(np.log2(epochs)) + 1)} | {epochs}


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


def best_look(history):
    """The epoch end --select best_look evaluates (its history record): the best development AUROC of the run's
    score on half a of the development images, at or after SELECT_WARM_UP (the earliest of equals); None where
    no epoch ended there. Half b, on which nothing was chosen, measures the choice."""
    step = evaluation.best_half_a([(h["step"], h["dev_auroc_halves"]["a"]) for h in history
                                   if "dev_auroc_halves" in h], SELECT_WARM_UP)
    return next((h for h in history if h["step"] == step), None)


def restore_selected(model, run, history):
    """--select best_look: restore the best look's checkpoint (run.best_dir holds its copy) and return its
    history record; None where no epoch ended after the warm-up (the last weights stay, said in one line)."""
    best = best_look(history)
    if best is None:
        logger.info(f"[select] no epoch ended at or after iteration {SELECT_WARM_UP:,}: the last weights are "
                    f"evaluated")
        return None
    found, path = model.load(run.best_dir)
    if not found or int(path.rsplit("-", 1)[1]) != best["step"]:
        raise TrainingError(f"the best look's checkpoint (step {best['step']}) is missing from {run.best_dir} "
                            f"(deleted or moved); train the run again")
    halves = best["dev_auroc_halves"]
    logger.info(f"[select] evaluating the best look: epoch {best['epoch']}, step {best['step']}, development AUROC "
                f"{halves['a']:.4f} on half a (chosen on it), {halves['b']:.4f} on half b")
    return best


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the loop records along a run, and what its loop state holds beside each checkpoint: the per-epoch
    history, the development curve, the test-split diagnostic curve (--test-curve) and the loop's wall seconds
    over every invocation (a resumed run's earlier ones included; not compared: it is a timing)."""
    history: list = dataclasses.field(default_factory=list)
    curve: list = dataclasses.field(default_factory=list)
    test_curve: list = dataclasses.field(default_factory=list)
    seconds: float = dataclasses.field(default=0.0, compare=False)

    @classmethod
    def of_state(cls, state):
        """The progress in a loop state written with a checkpoint (RunDir.read_state)."""
        return cls(state["history"], list(state.get("curve", [])), list(state.get("test_curve", [])),
                   float(state.get("seconds", 0.0)))


def _rng_state(rng):
    name, keys, pos, has_gauss, cached = rng.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_rng_state(rng, state):
    name, keys, pos, has_gauss, cached = state
    rng.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))


def train(model, data, run, config=TrainingConfig(), resume=False):
    """Train D then G on each batch for config.epoch epochs, or config.steps iterations when given (the last
    epoch then ends early); checkpoints and TensorBoard events go to run.log, per-epoch restoration
    figures to run.results; return its Progress (history and curves)."""
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
    loop.clock()
    return loop.progress


class Training:
    """What the training loop carries from one batch to the next: the batch order, the step, its Progress
    (history and curves), the last checkpoint, the TensorBoard writer; and the loop's named pieces (one
    iteration, a development look, the end of an epoch, a stop on a signal)."""

    def __init__(self, model, data, run, config, resume):
        self.model, self.data, self.run, self.config = model, data, run, config
        os.makedirs(run.log, exist_ok=True)
        os.makedirs(run.restoration_dir, exist_ok=True)
        self.rng = np.random.RandomState(config.seed)
        self.step, self.start_epoch, self.last_ckpt, self.skip, self.sums = 0, 0, None, 0, None
        started = time.time()
        self.progress = self.resume() if resume else Progress()
        self.started = started - self.progress.seconds   # as if this invocation had run the earlier ones too
        self.writer = board.writer(run.log, graph=None if resume else model.graph)
        self.n_per_epoch = int(np.ceil(len(data.x_train) / config.batch))
        self.total_steps = config.total_steps(len(data.x_train))
        self.epochs = int(np.ceil(self.total_steps / self.n_per_epoch))
        self.at_curve = curve_steps(self.total_steps)
        self.at_fit = fit_epochs(self.epochs)
        self.learning_rates = learning_rates(config.lr_schedule, model.config.lr, self.total_steps)
        # a matplotlib figure costs time: at most N_DRAWN restoration figures per run
        self.draw_every = max(1, int(np.ceil(self.epochs / N_DRAWN)))
        # the template baseline's (MeanImage's) error on validation normals, in the network's units like x_gx, x_dx
        self.template_error = float(RANGE[model.arch] * baselines.mean_image_distance(
            data.x_train.reshape(len(data.x_train), -1), data.x_valid.reshape(len(data.x_valid), -1)).mean())

    def resume(self):
        """Continue from run's latest checkpoint and the loop state written with it; returns its Progress."""
        found, self.last_ckpt = self.model.load(self.run.log)   # a damaged newest: an older one, said in one line
        if not found:
            raise TrainingError(f"no checkpoint to resume in {self.run.log}")
        state = self.run.read_state(self.last_ckpt)   # the loop state written with that checkpoint
        _set_rng_state(self.rng, state["rng"])       # the batch order of the epoch to continue
        self.skip, self.sums = state["batches_done"], state["sums"]
        self.step, self.start_epoch = (int(v) for v in self.model.sess.run([self.model.global_step,
                                                                            self.model.epoch]))
        logger.info(f"[train] resumed from {self.last_ckpt} at epoch {self.start_epoch + 1}, step {self.step}")
        return Progress.of_state(state)

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
        health = evaluation.validation_health(model, self.data, fit=fit)
        point = {"step": step, "rec_g": health["rec_g"], "rec_d": health["rec_d"],
                 "rec_template": self.template_error, "k_t": float(model.sess.run(model.k)),
                 "dev_auroc_per_score": health["dev_auroc_per_score"]}
        if model.config.ema:   # the trained weights' development AUROC beside their average's
            point["dev_auroc_trained_per_score"] = evaluation.validation_health(
                model, self.data, ema=False)["dev_auroc_per_score"]
        self.progress.curve.append(point)
        for key in ("rec_g", "rec_d", "rec_template"):
            writer.add_summary(board.scalar(f"reconstruction/{key}", point[key]), step)
        for key, value in point["dev_auroc_per_score"].items():
            writer.add_summary(board.scalar(f"dev_auroc/{key}", value), step)
        if self.config.test_curve:
            self.progress.test_curve.append(evaluation.test_split_diagnostic(model, self.data, step))
            for key, value in self.progress.test_curve[-1]["test_auroc_per_score"].items():
                writer.add_summary(board.scalar(f"{board.TEST_SPLIT_DIAGNOSTIC}/{key}", value), step)
        return health

    def end_epoch(self, epoch, sums, seconds):
        """The per-epoch extras: a development look, restorations, summaries, the history record, a
        checkpoint and the log line."""
        model, t_extra = self.model, time.time()
        drawn = (epoch + 1) % self.draw_every == 0 or epoch + 1 == self.epochs
        # the fitted scores cost a fit on training normals (seconds on the paper network): measured at the
        # log-spaced epoch ends of fit_epochs (the last included), and at every epoch end of a run scored by one
        health = self.look(self.step, fit=epoch + 1 in self.at_fit or model.anomaly_score not in model.scores)
        dev_aurocs = health["dev_auroc_per_score"]
        valid, dev_auroc = health["valid"][model.anomaly_score], dev_aurocs[model.anomaly_score]
        halves = evaluation.half_aurocs(valid, health["dev"][model.anomaly_score])
        if drawn:
            plots.draw(f"restoration/epoch_{epoch + 1:04d}", lambda: self.restorations(epoch, valid), {})
        k_t = self.progress.curve[-1]["k_t"]   # read by the look above; nothing has trained since
        self.writer.add_summary(model.sess.run(model.summary_epoch, {
            model.valid_scores_in: valid, model.valid_auroc_in: dev_auroc}), self.step)
        model.sess.run(model.next_epoch)
        n_images = sums.pop("images")
        record = {key: value / n_images for key, value in sums.items()}
        record.update(epoch=epoch + 1, step=self.step, k_t=k_t, valid_score=float(valid.mean()),
                      dev_auroc=dev_auroc, dev_auroc_halves=halves, dev_auroc_per_score=dev_aurocs,
                      rec_g=health["rec_g"], rec_d=health["rec_d"], rec_template=self.template_error,
                      seconds=seconds, images_per_second=n_images / seconds)
        self.progress.history.append(record)
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

    def clock(self):
        """Bring the progress's wall seconds up to now: the earlier invocations' and this one's."""
        self.progress = dataclasses.replace(self.progress, seconds=time.time() - self.started)

    def checkpoint(self, position):
        """Saver checkpoint (the Saver keeps the last few) plus the loop's state: position in the batch order
        ({"rng", "batches_done", "sums"}) and its Progress."""
        if not os.path.isdir(self.run.log):   # the Saver would fail with a traceback, TensorBoard silently
            self.writer.close()
            raise TrainingError(f"the run's folder {self.run.log} was deleted while it trained (its checkpoints "
                                f"with it); start the run again")
        self.last_ckpt = self.model.save(self.run.checkpoint_prefix)
        best = best_look(self.progress.history) if self.config.select == "best_look" else None
        if best is not None and best["step"] == self.step and position["batches_done"] == 0:
            copy_checkpoint(self.last_ckpt, self.run.best_dir)   # the best look so far: kept past the Saver's few
        self.clock()
        progress = self.progress
        self.run.write_state(dict(position, history=progress.history, curve=progress.curve,
                                  test_curve=progress.test_curve, seconds=progress.seconds,
                                  checkpoint=self.last_ckpt),
                             self.model.saver.last_checkpoints)

    def stop(self, signum, position=None):
        """Stop on a signal: checkpoint at this position (none: the epoch end's checkpoint holds it), close."""
        if position is not None:
            self.checkpoint(position)
        self.writer.close()
        raise Interrupted(signum, self.last_ckpt)
