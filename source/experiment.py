"""One run, one way: data -> model -> training (solver) -> evaluation -> baselines -> summary -> figures
(plots) -> report. Each stage is called once, in this order, and hands its results on; none comes back to an
earlier one (ConvAE, a baseline, is trained and scored by its own solver and evaluation calls). A sweep of
runs is source.tools.sweep's.

`config` is a record.RunConfig, built once by run.py from the flags; nothing here reads flags.
"""
import dataclasses
import hashlib
import json
import logging
import os
import platform
import time

import numpy as np
import tensorflow as tf

from source import baselines, board, console, datamanager, evaluation, hardware, metrics, plots, report, solver
from source.files import DamagedFile, read_json, write_json
from source.neuralnet import ADAE
from source.record import Summary
from source.scores import G_SCORES
from source.stops import TrainingError

logger = logging.getLogger(__name__)


def build_model(config, seed=None, objective=None):
    """The ADAE of a run's config (objective: another objective on the same network, for ConvAE)."""
    model = config.model if objective is None else dataclasses.replace(config.model, objective=objective)
    return ADAE(model, config.machine, seed=config.training.seed if seed is None else seed,
                keep_checkpoints=config.training.keep_checkpoints)


def train_and_evaluate(config, arrays, data_source, run, resume=False, load_from=None, shared_baselines=None):
    """Train ADAE as config says, on its one digit with its one seed (resume: from run's checkpoint;
    load_from: no training, the final checkpoint of that earlier run), evaluate it and the baselines (a
    sweep's sub-run: the classic ones shared through the folder shared_baselines), write run's folders;
    return its Summary."""
    timings, t = {}, time.time()
    (digit, seed), = config.digit_seeds()
    class_names = datamanager.DATASETS[config.data.dataset].class_names
    data = datamanager.Dataset(*arrays, datnorm=config.data.datnorm, split=config.data.split,
                               **config.data.protocol_of(digit))
    timings["data"] = time.time() - t
    os.makedirs(run.results, exist_ok=True)   # run.py chose a new name unless this run is resumed
    os.makedirs(run.log, exist_ok=True)
    if not resume:
        run.write_config(config)

    t = time.time()
    model = build_model(config)
    timings["graph_build"] = time.time() - t
    logger.info(f"[model] {model.arch} arch, {model.objective} objective, score {model.anomaly_score}; "
        f"parameters G {model.n_params_g:,}  D {model.n_params_d:,}; {model.precision['used']}")
    c = data.counts()
    logger.info(f"[data] --{data.protocol} {class_names[digit]}: {c['train_normal']:,} training and {c['valid_normal']:,} "
        f"validation normals, {c['dev_anomalous']} development anomalies; test {c['test']:,} images, "
        f"{c['test_anomalous']:,} anomalous")

    t = time.time()
    if load_from:
        found, path = model.load(load_from.log)
        if not found:
            raise TrainingError(f"run {load_from.name!r} has no checkpoint in {load_from.log}")
        logger.info(f"[test] evaluating {path}")
        # the earlier run's history and curves: the state written with that checkpoint (an older one where the
        # newest is damaged)
        progress = solver.Progress.of_state(load_from.read_state(path))
    else:
        progress = solver.train(model, data, run, config.training, resume=resume)
    history = progress.history
    # a resumed run's training: its earlier invocations' too (an evaluated run's: the loading)
    timings["training"] = time.time() - t if load_from else progress.seconds
    seconds = sum(h["seconds"] for h in history)
    trained = sum(h["images_per_second"] * h["seconds"] for h in history)
    timings["training_images_per_second"] = trained / seconds if seconds else 0.0
    timings["per_epoch_extras"] = sum(h.get("extra_seconds", 0.0) for h in history)
    selected = None
    if config.training.select == "best_look":   # the best look's weights, else the last step's stay
        selected = solver.restore_selected(model, load_from or run, history)

    # the fitted statistics go beside the checkpoint evaluated (of a run evaluated again: into its own folder)
    result, eval_timings, scored = evaluation.evaluate(
        model, data, run, ckpt_dir=run.best_dir if selected and not load_from else run.log)
    timings.update(eval_timings)
    step = int(model.sess.run(model.global_step))

    t = time.time()
    baseline_results, baseline_info = run_baselines(config, data, run, shared_baselines)
    timings["baselines"] = time.time() - t

    summary = Summary(
        name=run.name, config=config, data={"source": data_source, "protocol": data.protocol, "digit": digit, **c},
        metrics=result, baselines=baseline_results, baseline_info=baseline_info, precision=model.precision,
        final_epoch=history[-1] if history else None, selected=selected, dev_curve=progress.curve,
        test_curve=progress.test_curve,
        timings=timings,
        versions={"tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version()},
        machine=hardware.machine())
    run.write_summary(summary)   # the evaluation is on disk before any figure is drawn

    t = time.time()
    bars = {"ADAE": result["AUROC"], **{m: r["AUROC"] for m, r in baseline_results.items()}}
    summary.figures = plots.draw_figures(
        data, run, scored, model.panels, step, history, class_names, bars=bars,
        bars_title=f"--{data.protocol} {class_names[digit]}: test AUROC")
    model.close()
    timings["plotting"] = time.time() - t
    run.write_summary(summary)   # again, with the figures' outcome
    text = report.run_report(summary)   # TensorBoard's text; report.md adds the figures
    run.write_report(text + "\n" + report.figures_section(summary, run))
    write_board_report(run.log, step, summary, text)
    log_table(summary)
    logger.info(f"[test] results: {run.results}  (report.md)")
    return summary


def run_baselines(config, data, run, shared=None):
    """MeanImage (every run), and with config.training.baselines the classic detectors and ConvAE (G alone,
    same network, budget and --select: its own best look where ADAE's is chosen), on the run's images. The
    classic detectors do not depend on the seed: with `shared` (a sweep's folder for them) a sub-run whose
    images, labels and settings another sub-run of the sweep already scored takes that one's results instead
    of fitting again."""
    with_all = config.training.baselines
    methods = dict(baselines.TEMPLATE, **(baselines.CLASSIC if with_all else {}))
    info = {"settings": {m: v for m, v in baselines.settings(len(data.x_train)).items() if m in methods}}
    memo = shared_baselines_path(shared, data, info["settings"]) if shared and with_all else None
    stored = None
    if memo and os.path.isfile(memo):
        try:
            stored = read_json(memo)
        except DamagedFile as err:   # a cache: fitted again and rewritten
            logger.warning(f"[baselines] {err}; fitting them again")
    if stored:
        results, info["seconds"], info["shared_from"] = stored["results"], stored["seconds"], stored["fitted_by"]
        logger.info(f"[baselines] {', '.join(results)}: the same images as {stored['fitted_by']}, its results taken")
    else:
        scores, info["seconds"] = baselines.classic_scores(data.x_train, data.x_test, methods)
        results = {m: metrics.ranking_metrics(data.anomalous_test, s) for m, s in scores.items()}
        if memo:
            os.makedirs(shared, exist_ok=True)
            write_json({"fitted_by": run.name, "results": results, "seconds": info["seconds"]}, memo)
    if not with_all:
        return results, info
    ae = build_model(config, objective="autoencoder")
    ae_run = run.sub("conv_ae")
    training = dataclasses.replace(config.training, test_curve=False)   # ADAE's diagnostic only
    with console.warnings_only(solver.__name__):   # ConvAE's epoch lines would read as ADAE's
        progress = solver.train(ae, data, ae_run, training, resume=ae_run.has_state())
        t_trained = time.time()
        # the same rule as ADAE's: with --select best_look, ConvAE's own best look (of its score, on half a)
        selected = solver.restore_selected(ae, ae_run, progress.history) if training.select == "best_look" else None
    evaluation.fit_scores(ae, data)
    ae_scores = ae.run_scores(data.x_test, names=G_SCORES)   # its pixel error, and RaPP's own setting: G's encoder
    results["ConvAE"] = metrics.ranking_metrics(data.anomalous_test, ae_scores["x_gx"])
    for name in G_SCORES[1:]:
        results[f"ConvAE {name}"] = metrics.ranking_metrics(data.anomalous_test, ae_scores[name])
    ae.close()
    # its training over every invocation (a resumed run's earlier ones too), then its scoring
    info["seconds"]["ConvAE"] = progress.seconds + time.time() - t_trained
    info["settings"]["ConvAE"] = {"note": "G alone, same architecture, budget and selection of weights",
                                  "selected_step": selected["step"] if selected else None}
    return results, info


def shared_baselines_path(folder, data, settings):
    """The file in folder of the classic detectors' results on exactly these training and test images, test
    labels and settings (a SHA-1 of them names it)."""
    digest = hashlib.sha1()
    for array in (data.x_train, data.x_test, data.anomalous_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return os.path.join(folder, digest.hexdigest()[:16] + ".json")


def log_table(summary):
    """The run's last lines: each method's AUROC and AUPRC, then ADAE's threshold metrics."""
    rows = summary.methods()
    if len(rows) > 1:
        logger.info(f"[test] {'method':16s} AUROC   AUPRC")
        for method, r in rows:
            logger.info(f"[test] {method:16s} {r['AUROC']:.4f}  {r['AUPRC']:.4f}")
    m = summary.metrics
    logger.info(f"[test] AUROC {m['AUROC']:.4f}  AUPRC {m['AUPRC']:.4f}  F1 {m['F1']:.4f} (threshold {m['threshold']:.4f})")


def write_board_report(log_dir, step, summary, text):
    """TensorBoard: the run's report text (report.run_report), test and development AUROC as scalars and the
    run's settings as HParams, so runs compare side by side."""
    writer = board.writer(log_dir)
    writer.add_summary(board.text("report/summary", text), step)
    writer.add_summary(board.hparams(summary.config, summary.name), step)
    writer.add_summary(board.scalar(board.TEST_AUROC, summary.metrics["AUROC"]), step)
    # the development AUROC's last value again, under the tag the training loop logs every epoch: HParams
    # reads it from here, and a --test-only run has no epochs of its own
    dev = (summary.final_epoch or {}).get("dev_auroc", float("nan"))
    writer.add_summary(board.scalar(board.DEV_AUROC, dev), step)
    writer.close()
