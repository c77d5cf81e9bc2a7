"""One experiment (data -> model -> train -> evaluate -> baselines -> summary), and sweeps of them.

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

from source import baselines, board, console, datamanager, hardware, metrics, parallel, report, solver, sweep
from source.files import DamagedFile, read_json, write_json
from source.neuralnet import ADAE
from source.record import Summary
from source.rundir import FolderError, RecordDir, stored_config, sub_name
from source.scores import G_SCORES

logger = logging.getLogger(__name__)


def build_model(config, seed=None, objective=None):
    """The ADAE of a run's config (objective: another objective on the same network, for ConvAE)."""
    model = config.model if objective is None else dataclasses.replace(config.model, objective=objective)
    return ADAE(model, config.machine, seed=config.training.seed if seed is None else seed,
                keep_checkpoints=config.training.keep_checkpoints)


def run_one(config, arrays, source, run, resume=False, load_from=None, shared_baselines=None):
    """Train ADAE as config says, on its one digit with its one seed (resume: from run's checkpoint;
    load_from: no training, the final checkpoint of that earlier run), evaluate it and the baselines (a
    sweep's sub-run: the classic ones shared through the folder shared_baselines), write run's folders;
    return its Summary."""
    timings, t = {}, time.time()
    (digit, seed), = config.runs()
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
            raise solver.TrainingError(f"run {load_from.name!r} has no checkpoint in {load_from.log}")
        logger.info(f"[test] evaluating {path}")
        state = load_from.read_state(path)   # that checkpoint's: an older one where the newest is damaged
        history = state["history"]
    else:
        history = solver.train(model, data, run, config.training, resume=resume)
        state = run.read_state() if run.has_state() else {}   # training's last, with its final checkpoint
    timings["training"] = time.time() - t
    seconds = sum(h["seconds"] for h in history)
    trained = sum(h["images_per_second"] * h["seconds"] for h in history)
    timings["training_images_per_second"] = trained / seconds if seconds else 0.0
    timings["per_epoch_extras"] = sum(h.get("extra_seconds", 0.0) for h in history)

    result, eval_timings, scored = solver.evaluate(model, data, run)
    timings.update(eval_timings)
    step = int(model.sess.run(model.global_step))
    curve, test_curve = state.get("curve", []), state.get("test_curve", [])

    t = time.time()
    baseline_results, baseline_info = run_baselines(config, data, run, shared_baselines)
    timings["baselines"] = time.time() - t

    summary = Summary(
        name=run.name, config=config, data={"source": source, "protocol": data.protocol, "digit": digit, **c},
        metrics=result, baselines=baseline_results, baseline_info=baseline_info, precision=model.precision,
        final_epoch=history[-1] if history else None, dev_curve=curve, test_curve=test_curve, timings=timings,
        versions={"tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version()},
        machine=hardware.machine())
    run.write_summary(summary)   # the evaluation is on disk before any figure is drawn

    t = time.time()
    bars = {"ADAE": result["AUROC"], **{m: r["AUROC"] for m, r in baseline_results.items()}}
    summary.figures = solver.draw_figures(
        model, data, run, scored, history, class_names, bars=bars,
        bars_title=f"--{data.protocol} {class_names[digit]}: test AUROC")
    model.close()
    timings["plotting"] = time.time() - t
    run.write_summary(summary)
    run.write_report(report.run_report(summary, run))
    write_board_report(run.log, step, summary)
    log_table(summary)
    logger.info(f"[test] results: {run.results}  (report.md)")
    return summary


def run_baselines(config, data, run, shared=None):
    """MeanImage (every run), and with config.training.baselines the classic detectors and ConvAE (G alone,
    same network and budget), on the run's images. The classic detectors do not depend on the seed: with
    `shared` (a sweep's folder for them) a sub-run whose images, labels and settings another sub-run of the
    sweep already scored takes that one's results instead of fitting again."""
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
    t = time.time()
    ae = build_model(config, objective="autoencoder")
    ae_run = run.sub("conv_ae")
    training = dataclasses.replace(config.training, test_curve=False)   # ADAE's diagnostic only
    with console.warnings_only(solver.__name__):   # ConvAE's epoch lines would read as ADAE's
        solver.train(ae, data, ae_run, training, resume=ae_run.has_state())
    solver.fit_scores(ae, data)
    ae_scores = ae.run_scores(data.x_test, names=G_SCORES)   # its pixel error, and RaPP's own setting: G's encoder
    results["ConvAE"] = metrics.ranking_metrics(data.anomalous_test, ae_scores["x_gx"])
    for name in G_SCORES[1:]:
        results[f"ConvAE {name}"] = metrics.ranking_metrics(data.anomalous_test, ae_scores[name])
    ae.close()
    info["seconds"]["ConvAE"] = time.time() - t
    info["settings"]["ConvAE"] = {"note": "G alone, same architecture and budget"}
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


def write_board_report(log_dir, step, summary):
    """TensorBoard: the run's config and result table as text, test and development AUROC as scalars and
    the run's settings as HParams, so runs compare side by side."""
    writer = board.writer(log_dir)
    writer.add_summary(board.text("report/summary", report.run_report(summary, None)), step)
    writer.add_summary(board.hparams(summary.config, summary.name), step)
    writer.add_summary(board.scalar(board.TEST_AUROC, summary.metrics["AUROC"]), step)
    # the development AUROC's last value again, under the tag the training loop logs every epoch: HParams
    # reads it from here, and a --test-only run has no epochs of its own
    dev = (summary.final_epoch or {}).get("dev_auroc", float("nan"))
    writer.add_summary(board.scalar(board.DEV_AUROC, dev), step)
    writer.close()


@dataclasses.dataclass(frozen=True)
class Plan:
    """How run.py asks for a config's runs to be made (the config says what they are): their folders,
    resuming or evaluating an earlier run, where records go, and how a sweep's sub-runs share the machine."""
    run: object                 # rundir.RunDir: the run's folders, or the sweep's
    resume: bool = False        # continue run; a sweep: keep finished sub-runs, resume a started one
    load_from: object = None    # --test-only: evaluate this earlier RunDir's final checkpoint, no training
    records: str = None         # --records root: every finished run's summary is also written there
    part_of: str = None         # --part-of: the sweep this one run is a job-array task of
    jobs: int = 1               # a sweep's sub-runs at once; above 1, each is a `run.py --part-of` process
    threads: int = 0            # threads of each worker process and of the sweep's projection (0: TensorFlow's)
    worker_argv: tuple = ()     # the flags every worker process shares (parallel.part_argv of the sweep's)


def run_all(config, arrays, source, plan):
    """Every (digit, seed) of the config, as plan says: one run, or a sweep whose sub-runs live in the
    plan's folders.

    One run: with plan.part_of it is one job-array task of that sweep (its record then goes to that
    sweep's records). A sweep keeps, when resumed, finished sub-runs (in its folders or committed
    records), resumes a started one from its checkpoint and runs the rest, here one after another or, with
    plan.jobs > 1, as `run.py --part-of` processes (source.parallel); then it builds its table from all
    sub-runs. Returns the Summaries."""
    runs, run = config.runs(), plan.run
    if len(runs) == 1:   # a job-array task's run is a sub-run folder of its sweep's (run.py: sweep.sub)
        shared = os.path.join(os.path.dirname(run.results), SHARED_BASELINES) if plan.part_of else None
        summary = run_one(config, arrays, source, run, plan.resume, plan.load_from, shared)
        if plan.records and plan.part_of:
            RecordDir(plan.records, plan.part_of).write(run.name, summary)
        return [summary]
    records = RecordDir(plan.records, run.name) if plan.records else None
    start_sweep(config, run, records)
    subs = [run.sub(sub_name(config.data.protocol, digit, seed)) for digit, seed in runs]
    summaries = []
    for sub in subs:
        summary, why = kept(sub, records, plan.resume, config, run.name)
        if summary:
            logger.info(f"[sweep] {sub.name}: {why}")
        summaries.append(summary)
    todo = [i for i, summary in enumerate(summaries) if not summary]   # indices of the sub-runs to run now
    project_sweep(config, arrays, [runs[i] for i in todo], plan.jobs, plan.threads)
    t_start = time.time()
    if plan.jobs > 1:
        commands = {subs[i].name: parallel.child_command(plan.worker_argv, config.data.protocol, *runs[i], run.name,
                                                         plan.threads, resume=os.path.exists(subs[i].results))
                    for i in todo}
        status = parallel.run_subprocesses(commands, plan.jobs, run.log)
        logger.info(f"[sweep] {len(commands)} sub-runs in {(time.time() - t_start) / 60:.1f} min wall time")
        failed = sorted(label for label, code in status.items() if code)
        if failed:
            raise solver.TrainingError(f"sub-runs {', '.join(failed)} failed (their logs: {run.log}); "
                                       "rerun with --resume to retry them")
        for i in todo:   # each worker wrote its sub-run's summary
            summaries[i] = subs[i].read_summary()
    else:
        for done, i in enumerate(todo):
            sub = subs[i]
            summaries[i] = run_one(config.one(*runs[i]), arrays, source, sub, plan.resume and sub.has_state(), None,
                                   os.path.join(run.results, SHARED_BASELINES))
            left = (time.time() - t_start) / (done + 1) * (len(todo) - done - 1)   # from runs trained now only
            logger.info(f"[sweep] {len(runs) - len(todo) + done + 1}/{len(runs)} runs done; about {left / 60:.0f} min left")
    for sub, summary in zip(subs, summaries):
        if records and not records.has(sub.name):
            records.write(sub.name, summary)
    sweep.finish(config, summaries, run)
    return summaries


def kept(sub, records, resume, sweep_config, sweep_name):
    """(Summary, why) of a sweep's sub-run that need not run again (resuming: one finished in its folder or
    in a committed record), else (None, None). One made with another recipe than the sweep's is refused
    (record.RecipeError), wherever it was made."""
    summary, why = None, None
    if resume and sub.is_finished():
        summary, why = sub.read_summary(), "finished earlier, kept"
    elif resume and records and records.has(sub.name):
        summary, why = records.read(sub.name), "kept from the committed record"
    if summary:
        sweep_config.check_recipe(summary.config, f"sub-run {sub.name} of {sweep_name}")
    return summary, why


def join_sweep(config, sweep, sub, records=None, resume=False):
    """A job-array task (run.py --part-of): sub-run `sub` of `sweep`, made with config. The first task of a
    sweep writes its config as the sweep's; each task's recipe must be the sweep's (record.RecipeError
    otherwise), and so must that of a sub-run it would keep or continue. Returns why the sub-run need not
    run (finished in its folder, or a committed record), or None: train it (from its checkpoint with resume)."""
    what = f"sub-run {sub.name} of {sweep.name}"
    sweep_config = stored_config(sweep, records)
    if sweep_config is None:
        start_sweep(config, sweep, records)
        sweep_config = config
    elif records and not records.has_config():
        records.write_config(sweep_config)
    sweep_config.check_recipe(config, f"{what} as asked")
    if os.path.exists(sub.results) and not resume:
        raise FolderError(f"{what} exists; add --resume to continue it")
    summary, why = kept(sub, records, resume, sweep_config, sweep.name)
    if summary and records and not records.has(sub.name):   # a record deleted (damaged): written again
        records.write(sub.name, summary)
        why += f"; its record written again to {records.path}"
    if summary:
        return why
    if resume and os.path.isfile(sub.config_path):
        sweep_config.check_recipe(sub.read_config(), f"{what} (its checkpoint)")
    return None


SHARED_BASELINES = "classic_baselines"   # a sweep's results folder for its sub-runs' classic baseline results
PROJECTION_WARMUP, PROJECTION_TIMED = 3, 10   # iterations a sweep's projection runs untimed, then timed
CONVAE_COST = 1 / 3   # ConvAE's (G alone) training time per iteration, as a share of ADAE's


def measure_iteration(config, threads=0):
    """Seconds of one training iteration of config's model on this machine, after oneDNN's warm-up calls."""
    model = build_model(config.with_machine(threads=threads), seed=0)
    x = np.random.RandomState(0).rand(config.training.batch, 28, 28, 1).astype(np.float32)
    for _ in range(PROJECTION_WARMUP):   # oneDNN builds its primitives on the first calls
        model.train_step(x)
    t = time.time()
    for _ in range(PROJECTION_TIMED):
        model.train_step(x)
    per_iteration = (time.time() - t) / PROJECTION_TIMED
    model.close()
    return per_iteration


def project_sweep(config, arrays, todo, jobs=1, threads=0, per_iteration=None):
    """Before a sweep trains: time a few training iterations of its model on this machine (unless
    per_iteration is given) and print the projected wall time of the sub-runs still to do (training, and
    ConvAE's with --baselines, at about a third of ADAE's cost per iteration; evaluation and classic
    baselines come on top). A sweep that trains fewer iterations than the measurement would run is not
    projected. Returns {"iterations", "per_iteration" (seconds, measured or given), "seconds" (projected wall time)}."""
    y_train, y_test = arrays[1], arrays[3]
    iterations = 0
    for digit, _ in todo:
        normal = datamanager.check_protocol(y_train, y_test, **config.data.protocol_of(digit))
        n_train = len(datamanager.split_indices(y_train, y_test, normal, config.data.split)["train"])
        iterations += config.training.total_steps(n_train)
    if not todo or (per_iteration is None and iterations <= PROJECTION_WARMUP + PROJECTION_TIMED):
        if todo:
            logger.info(f"[sweep] {len(todo)} sub-runs to train, {iterations:,} iterations: fewer than a "
                        "measurement of the time per iteration would run, so no projection")
        return {"iterations": iterations, "per_iteration": None, "seconds": None if todo else 0.0}
    where = "given"
    if per_iteration is None:
        per_iteration, where = measure_iteration(config, threads), "measured here"
    seconds = per_iteration * iterations * (1 + CONVAE_COST if config.training.baselines else 1) / max(1, jobs)
    logger.info(f"[sweep] {len(todo)} sub-runs to train, {iterations:,} iterations at {1 / per_iteration:.1f}/s {where} "
        f"({jobs} at a time): about {seconds / 60:.0f} min of training, plus evaluation and baselines")
    return {"iterations": iterations, "per_iteration": per_iteration, "seconds": seconds}


def start_sweep(config, run, records=None):
    """A sweep's own folder, config and HParams experiment (new, or resumed on a clone that has only
    records), and its records' config."""
    if not os.path.isfile(run.config_path):
        os.makedirs(run.log, exist_ok=True)
        run.write_config(config)
        writer = board.writer(run.log)
        writer.add_summary(board.hparams_config())
        writer.close()
    if records and not records.has_config():
        records.write_config(config)
