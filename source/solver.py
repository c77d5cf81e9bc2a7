"""Training loop and evaluation: TensorBoard summaries, checkpoints, metrics, result files."""
import os
import signal
import sys
import time

import numpy as np
import tensorflow as tf

from source import baselines, board, metrics, plots
from source.config import TrainingConfig  # noqa: F401  (solver.TrainingConfig: the loop's settings)
from source.neuralnet import RANGE

tf1 = tf.compat.v1
N_RESTORATION = 6        # validation images shown in the restoration grids
N_GRID = 8           # examples per sample grid
N_DRAWN = 20         # restoration figures per run at most (every epoch for runs of up to 20 epochs)
CURVE_PER_DECADE = 4  # development evaluations per decade of steps (10, 18, 32, 56, 100, ...), besides epoch ends


def curve_steps(total_steps, per_decade=CURVE_PER_DECADE):
    """Log-spaced steps at which the development AUROC is measured inside epochs, so a learning curve
    has points early on even when an epoch is long (the paper protocol's epoch is ~750 iterations)."""
    if total_steps < 10:
        return set()
    top = int(np.floor(np.log10(total_steps) * per_decade))
    return {int(round(10 ** (k / per_decade))) for k in range(per_decade, top + 1)} - {0}


def validation_health(model, data, ema=True):
    """What one look at the validation split says: each score's development AUROC and its values on
    validation normals; G's and D's reconstruction error of validation normals (x_gx, x_dx), as L2 in the
    network's frame (the training loop sets them beside the mean normal image's). ema=False: with the
    trained weights where the model scores with their moving average."""
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


def train(model, data, run, config=TrainingConfig(), resume=False, log=print):
    """Train D then G on each batch for config.epoch epochs, or config.steps iterations when given (the last
    epoch then ends early); checkpoints and TensorBoard events go to run.log, per-epoch restoration
    figures to run.results; return the per-epoch history."""
    batch_size, summary_every = config.batch, config.summary_every
    sess = model.sess
    os.makedirs(run.log, exist_ok=True)
    os.makedirs(run.restoration_dir, exist_ok=True)
    rng = np.random.RandomState(config.seed)
    history, step, start_epoch, last_ckpt, skip, partial_sums, state = [], 0, 0, None, 0, None, {}
    if resume:
        found, last_ckpt = model.load(run.log)
        if not found:
            raise TrainingError(f"no checkpoint to resume in {run.log}")
        state = run.read_state()
        _set_rng_state(rng, state["rng"])       # the batch order of the epoch to continue
        history, skip, partial_sums = state["history"], state["batches_done"], state["sums"]
        step, start_epoch = (int(v) for v in sess.run([model.global_step, model.epoch]))
        log(f"[train] resumed from {last_ckpt} at epoch {start_epoch + 1}, step {step}")
    with model.graph.as_default():   # the v1 FileWriter refuses to open in eager mode
        writer = tf1.summary.FileWriter(run.log, graph=None if resume else model.graph)
    x_restoration = data.x_valid[:N_RESTORATION]
    adversarial = model.objective != "autoencoder"
    n_per_epoch = int(np.ceil(len(data.x_train) / batch_size))
    total_steps = config.total_steps(len(data.x_train))
    epochs = int(np.ceil(total_steps / n_per_epoch))
    # the template baseline's (MeanImage's) error on validation normals, in the network's units like x_gx and x_dx
    template_error = float(RANGE[model.arch] * baselines.mean_image_distance(
        data.x_train.reshape(len(data.x_train), -1), data.x_valid.reshape(len(data.x_valid), -1)).mean())
    curve = list(state.get("curve", []))
    test_curve = list(state.get("test_curve", []))
    at_curve = curve_steps(total_steps)

    def look(tag_step):
        """Validation health at this step: one curve point, a TensorBoard record, and what it measured."""
        health = validation_health(model, data)
        point = {"step": tag_step, "rec_g": health["rec_g"], "rec_d": health["rec_d"],
                 "rec_template": template_error, "k_t": float(sess.run(model.k)),
                 "dev_auroc_per_score": health["dev_auroc_per_score"]}
        if model.config.ema:   # the trained weights' development AUROC beside their average's
            point["dev_auroc_trained_per_score"] = validation_health(model, data, ema=False)["dev_auroc_per_score"]
        curve.append(point)
        for key in ("rec_g", "rec_d", "rec_template"):
            writer.add_summary(board.scalar(f"reconstruction/{key}", point[key]), tag_step)
        for key, value in point["dev_auroc_per_score"].items():
            writer.add_summary(board.scalar(f"dev_auroc/{key}", value), tag_step)
        if config.test_curve:
            test_curve.append(test_split_diagnostic(model, data, tag_step))
            for key, value in test_curve[-1]["test_auroc_per_score"].items():
                writer.add_summary(board.scalar(f"{board.TEST_SPLIT_DIAGNOSTIC}/{key}", value), tag_step)
        return health
    # a matplotlib figure costs about a second: at most N_DRAWN restoration figures per run
    draw_every = max(1, int(np.ceil(epochs / N_DRAWN)))

    with StopFlag() as stop:
        for epoch in range(start_epoch, epochs):
            # forward/backward/update: one D step, then one G step on the same batch
            t_epoch = time.time()
            rng_epoch_start = _rng_state(rng)
            sums = partial_sums or dict(loss_g=0.0, loss_d=0.0, loss_g_rec=0.0, loss_d_real=0.0,
                                        loss_d_fake=0.0, g_lr_share=0.0, images=0)
            bar = tf.keras.utils.Progbar(n_per_epoch) if sys.stdout.isatty() else None
            for i, x in enumerate(data.batches(batch_size, rng)):
                if i < skip:                     # batches this epoch already trained on before a resume
                    continue
                if step >= total_steps:          # a --steps budget ends inside the last epoch
                    break
                feed = {model.x: x}
                if adversarial:
                    loss_d, loss_d_real, loss_d_fake, g_lr_share, _ = sess.run(
                        [model.loss_d, model.loss_d_real, model.loss_d_fake, model.g_lr_share, model.step_d], feed)
                else:
                    loss_d = loss_d_real = loss_d_fake = g_lr_share = 0.0
                fetch = [model.loss_g, model.loss_g_rec, model.step_g]
                log_now = step % summary_every == 0
                if log_now:
                    fetch.append(model.summary_step)
                out = sess.run(fetch, feed)
                loss_g, loss_g_rec = out[0], out[1]
                if log_now:
                    writer.add_summary(out[3], step)
                step += 1
                if not np.isfinite([loss_g, loss_d]).all():
                    writer.close()
                    raise TrainingError(f"non-finite loss at step {step} (loss_g={loss_g}, loss_d={loss_d}); "
                                        f"last good checkpoint: {last_ckpt or 'none'}")
                for key, value in (("loss_g", loss_g), ("loss_d", loss_d), ("loss_g_rec", loss_g_rec),
                                   ("loss_d_real", loss_d_real), ("loss_d_fake", loss_d_fake),
                                   ("g_lr_share", g_lr_share)):
                    sums[key] += float(value) * len(x)
                sums["images"] += len(x)
                if bar:
                    bar.update(i + 1, [("loss_g", loss_g), ("loss_d", loss_d)])
                if step in at_curve and step % n_per_epoch and step < total_steps:   # epoch ends: below
                    look(step)
                if stop.signum:
                    last_ckpt = _save_checkpoint(model, run, {
                        "rng": rng_epoch_start, "batches_done": i + 1, "sums": sums, "history": history,
                        "curve": curve, "test_curve": test_curve})
                    writer.close()
                    raise Interrupted(stop.signum, last_ckpt)
            skip, partial_sums = 0, None
            seconds = time.time() - t_epoch

            # evaluate on validation normals, draw restorations, checkpoint (per-epoch extras)
            t_extra = time.time()
            health = look(step)
            dev_aurocs = health["dev_auroc_per_score"]
            valid, dev_auroc = health["valid"][model.anomaly_score], dev_aurocs[model.anomaly_score]
            if (epoch + 1) % draw_every == 0 or epoch + 1 == epochs:
                def restorations():
                    png = plots.example_grid(
                        x_restoration, model.panels(x_restoration),
                        [f"{cls}\nscore {v:.3g}"
                         for cls, v in zip(data.y_valid[:N_RESTORATION], valid[:N_RESTORATION])],
                        f"epoch {epoch + 1}, step {step}: validation normals ({model.anomaly_score})",
                        os.path.join(run.restoration_dir, f"epoch_{epoch + 1:04d}.png"))
                    writer.add_summary(board.image("restoration/validation_normals", png, *plots.png_size(png)),
                                       step)
                _draw(f"restoration/epoch_{epoch + 1:04d}", restorations, {}, log)
            k_t = float(sess.run(model.k))
            g_lr_share = sums.pop("g_lr_share") / max(1, sums["images"])
            writer.add_summary(sess.run(model.summary_epoch, {
                model.valid_scores_in: valid, model.valid_auroc_in: dev_auroc}), step)
            sess.run(model.next_epoch)
            n_images = sums.pop("images")
            record = {key: value / n_images for key, value in sums.items()}
            record.update(epoch=epoch + 1, step=step, k_t=k_t, g_lr_share=g_lr_share, valid_score=float(valid.mean()),
                          dev_auroc=dev_auroc, dev_auroc_per_score=dev_aurocs, rec_g=health["rec_g"],
                          rec_d=health["rec_d"], rec_template=template_error,
                          seconds=seconds, images_per_second=n_images / seconds)
            history.append(record)
            record["extra_seconds"] = time.time() - t_extra
            last_ckpt = _save_checkpoint(model, run, {
                "rng": _rng_state(rng), "batches_done": 0, "sums": None, "history": history, "curve": curve,
                "test_curve": test_curve})
            writer.flush()
            log(f"[train] epoch {epoch + 1:4d}/{epochs}  iter {step:6d}  loss_g {record['loss_g']:.4f}  "
                f"loss_d {record['loss_d']:.4f}  k_t {k_t:.3f}  b {g_lr_share:.2f}  valid {record['valid_score']:.3f}  "
                f"dev AUROC {dev_auroc:.3f}  rec G {health['rec_g']:.2f} D {health['rec_d']:.2f} "
                f"template {template_error:.2f}  {seconds:5.1f}s  {record['images_per_second']:6.0f} img/s")
            if stop.signum:   # a signal during this epoch's extras: the checkpoint above holds everything
                writer.close()
                raise Interrupted(stop.signum, last_ckpt)
    writer.close()
    return history


def dev_auroc_of(valid_normal_scores, dev_anomalous_scores):
    """AUROC of validation normals against train-split anomalies (NaN when either is missing)."""
    if not len(valid_normal_scores) or not len(dev_anomalous_scores):
        return float("nan")
    scores = np.concatenate([valid_normal_scores, dev_anomalous_scores])
    labels = np.r_[np.zeros(len(valid_normal_scores)), np.ones(len(dev_anomalous_scores))]
    if not np.isfinite(scores).all():
        return float("nan")
    return metrics.ranking_metrics(labels, scores)["AUROC"]


def _save_checkpoint(model, run, state):
    """Saver checkpoint (the Saver keeps the last few) plus the loop's state: batch-order RNG, position, history."""
    path = model.save(run.checkpoint_prefix)
    run.write_state(dict(state, checkpoint=path))
    return path


def evaluate(model, data, run):
    """Score validation and test images; write valid_scores.csv and scores.csv; return the metrics, the
    timings and what the figures need ({"test": scores per name, "threshold", "predicted"}). The threshold
    comes from the validation normals alone."""
    t0 = time.time()
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


def draw_figures(model, data, run, scored, history=None, class_names=None, bars=None, bars_title="", log=print):
    """Every figure of a run, each on its own: one that fails is named on one line and the others are still
    drawn. Sample grids of an empty category are stated, not drawn. Returns {"failed": {figure: error},
    "empty_grids": {grid: title}} for report.md and summary.json."""
    name, test, threshold = model.anomaly_score, scored["test"], scored["threshold"]
    score, anomalous = test[name], data.anomalous_test
    with model.graph.as_default():
        writer = tf1.summary.FileWriter(run.log)
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
        _draw(figure, draw, failed, log)
    writer.close()
    return {"failed": failed, "empty_grids": empty}


def _draw(figure, draw, failed, log):
    """Draw one figure; one that fails is named on one line and in `failed`, and never costs the run."""
    try:
        draw()
    except Exception as err:
        failed[figure] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        log(f"[figures] {figure} failed: {failed[figure]}")


def _class_name(label, class_names):
    return class_names[label] if class_names else str(label)


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
