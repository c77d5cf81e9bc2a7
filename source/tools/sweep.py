"""A sweep: one-class runs over classes and seeds (source.experiment's, one after another or in worker
processes), resumed or kept from records, job-array tasks joining it, a projection of its time; and its table:
sweep.csv, sweep.md, a chart and the sweep's report. The table needs no TensorFlow (`python -m source.tools.collect`
builds one with this module alone): experiment is imported where a run is made."""
import dataclasses
import logging
import os
import time

import numpy as np

from source import board, datamanager, files, markdown, plots
from source.tools import parallel
from source.tools.aggregate import READING, OverSeeds, seeded
from source.rundir import FolderError, RecordDir, stored_config, sub_name
from source.stops import TrainingError

logger = logging.getLogger(__name__)


def over_seeds(rows):
    """sweep.csv rows (dicts with method, digit, seed, AUROC) by class and seed under the one rule of
    source.tools.aggregate (ValueError where a classic baseline differs between seeds)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    results = {}   # class -> seed -> method -> AUROC
    for r in rows:
        results.setdefault(r["digit"], {}).setdefault(r["seed"], {})[r["method"]] = r["AUROC"]
    return OverSeeds(results, methods, [m for m in methods if not seeded(m)])


def markdown_table(grid, protocol, class_names=None):
    """Class x method table of AUROC (an OverSeeds; the best of each row in bold), the mean over classes last."""
    rows = [[class_names[c] if class_names else str(c), str(len(grid.results[c]))] + grid.row(c, bold_best=True)
            for c in grid.digits]
    rows.append([f"mean of {len(grid.digits)}", str(len(grid.common))] + grid.mean_row(grid.digits))
    return markdown.table([protocol, "seeds"] + grid.methods, rows)


def rows_of(summary):
    """sweep.csv rows of one sub-run's Summary: ADAE and each baseline."""
    methods = {"ADAE": summary.metrics, **summary.baselines}
    return [{"protocol": summary.data["protocol"], "digit": summary.digit, "seed": summary.seed, "method": m,
             "AUROC": r["AUROC"], "AUPRC": r["AUPRC"]} for m, r in methods.items()]


def write(rows, run, protocol, class_names=None):
    """Write sweep.csv (one row per run and method), sweep.md and sweep.png into run's results; return the
    rows' OverSeeds."""
    keys = ["protocol", "digit", "seed", "method", "AUROC", "AUPRC"]
    files.write_csv([[r[k] for k in keys] for r in rows], keys, run.sweep_csv_path)
    grid = over_seeds(rows)
    files.write_text(f"Test AUROC, protocol --{protocol} K: {READING}; the best of each row in bold.\n\n"
                     + markdown_table(grid, protocol, class_names), run.sweep_md_path)
    plots.sweep_chart(grid.mean_std(), run.figure("sweep"), f"AUROC per class, --{protocol} K")
    return grid


def finish(config, summaries, run):
    """sweep.csv, sweep.md, sweep.png and report.md of a sweep from its sub-runs' Summaries; returns the
    OverSeeds of its test AUROCs."""
    rows = [row for s in summaries for row in rows_of(s)]
    class_names = datamanager.DATASETS[config.data.dataset].class_names
    protocol = config.data.protocol
    grid = write(rows, run, protocol, class_names)
    run.write_report(sweep_report(config, run, markdown_table(grid, protocol, class_names), summaries))
    for method, per_class in grid.mean_std().items():
        logger.info(f"[sweep] {method:16s} mean AUROC {np.mean([v[0] for v in per_class.values()]):.4f}")
    logger.info(f"[sweep] results: {run.results}  (report.md)")
    return grid


@dataclasses.dataclass(frozen=True)
class Plan:
    """How run.py asks for a sweep's runs, or one job-array task of a sweep, to be made (the config says what
    they are): their folders, resuming, where records go, and how the sub-runs share the machine."""
    run: object                 # rundir.RunDir: the sweep's folders, or the task's sub-run's
    resume: bool = False        # keep finished sub-runs, resume a started one; a task: continue its sub-run
    records: str = None         # --records root: every finished run's summary is also written there
    part_of: str = None         # --part-of: the sweep this one run is a job-array task of
    jobs: int = 1               # a sweep's sub-runs at once; above 1, each is a `run.py --part-of` process
    threads: int = 0            # threads of each worker process and of the sweep's projection (0: TensorFlow's)
    worker_argv: tuple = ()     # the flags every worker process shares (source.flags.part_argv of the sweep's)


def run_task(config, arrays, data_source, plan):
    """One job-array task of sweep plan.part_of (run.py --part-of, after join): its one run in the sub-run
    folder plan.run, the classic baselines shared through the sweep's folder, its record in the sweep's
    records. Returns its Summary."""
    from source import experiment   # TensorFlow's module: collect imports this one without it
    run = plan.run
    summary = experiment.train_and_evaluate(config, arrays, data_source, run, plan.resume, None,
                                 os.path.join(os.path.dirname(run.results), SHARED_BASELINES))
    if plan.records:
        RecordDir(plan.records, plan.part_of).write(run.name, summary)
    return summary


def run_all(config, arrays, data_source, plan):
    """Every (digit, seed) of the config, as sub-runs in the plan's folders. Resumed, it keeps finished
    sub-runs (in its folders or committed records), resumes a started one from its checkpoint and runs the
    rest, here one after another or, with plan.jobs > 1, as `run.py --part-of` processes (source.tools.parallel);
    then it builds its table from all sub-runs. Returns the Summaries."""
    from source import experiment   # TensorFlow's module: collect imports this one without it
    runs, run = config.digit_seeds(), plan.run
    records = RecordDir(plan.records, run.name) if plan.records else None
    start(config, run, records)
    subs = [run.sub(sub_name(config.data.protocol, digit, seed)) for digit, seed in runs]
    summaries = []
    for sub in subs:
        summary, why = kept(sub, records, plan.resume, config, run.name)
        if summary:
            logger.info(f"[sweep] {sub.name}: {why}")
        summaries.append(summary)
    todo = [i for i, summary in enumerate(summaries) if not summary]   # indices of the sub-runs to run now
    project(config, arrays, [runs[i] for i in todo], plan.jobs, plan.threads)
    t_start = time.time()
    if plan.jobs > 1:
        commands = {subs[i].name: parallel.child_command(plan.worker_argv, config.data.protocol, *runs[i], run.name,
                                                         plan.threads, resume=os.path.exists(subs[i].results))
                    for i in todo}
        status = parallel.run_subprocesses(commands, plan.jobs, run.log)
        logger.info(f"[sweep] {len(commands)} sub-runs in {(time.time() - t_start) / 60:.1f} min wall time")
        failed = sorted(label for label, code in status.items() if code)
        if failed:
            raise TrainingError(f"sub-runs {', '.join(failed)} failed (their logs: {run.log}); "
                                "rerun with --resume to retry them")
        for i in todo:   # each worker wrote its sub-run's summary
            summaries[i] = subs[i].read_summary()
    else:
        for done, i in enumerate(todo):
            sub = subs[i]
            summaries[i] = experiment.train_and_evaluate(config.one(*runs[i]), arrays, data_source, sub,
                                              plan.resume and sub.has_state(), None,
                                              os.path.join(run.results, SHARED_BASELINES))
            if records:   # at once, as a worker does: a sweep stopped later keeps it
                records.write(sub.name, summaries[i])
            left = (time.time() - t_start) / (done + 1) * (len(todo) - done - 1)   # from runs trained now only
            logger.info(f"[sweep] {len(runs) - len(todo) + done + 1}/{len(runs)} runs done; about {left / 60:.0f} min left")
    for sub, summary in zip(subs, summaries):
        if records and not records.has(sub.name):
            records.write(sub.name, summary)
    finish(config, summaries, run)
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


def join(config, sweep, sub, records=None, resume=False):
    """A job-array task (run.py --part-of): sub-run `sub` of `sweep`, made with config. The first task of a
    sweep writes its config as the sweep's; each task's recipe must be the sweep's (record.RecipeError
    otherwise), and so must that of a sub-run it would keep or continue. Returns why the sub-run need not
    run (finished in its folder, or a committed record), or None: train it (from its checkpoint with resume)."""
    what = f"sub-run {sub.name} of {sweep.name}"
    sweep_config = stored_config(sweep, records)
    if sweep_config is None:
        start(config, sweep, records)
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
    from source import experiment   # TensorFlow's module: collect imports this one without it
    model = experiment.build_model(config.with_machine(threads=threads), seed=0)
    x = np.random.RandomState(0).rand(config.training.batch, 28, 28, 1).astype(np.float32)
    for _ in range(PROJECTION_WARMUP):   # oneDNN builds its primitives on the first calls
        model.train_step(x)
    t = time.time()
    for _ in range(PROJECTION_TIMED):
        model.train_step(x)
    per_iteration = (time.time() - t) / PROJECTION_TIMED
    model.close()
    return per_iteration


def project(config, arrays, todo, jobs=1, threads=0, per_iteration=None):
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


def start(config, run, records=None):
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


def sweep_report(config, run, table_markdown, summaries):
    """The sweep's command, its AUROC table (per class over seeds, source.tools.aggregate's rule) and chart, and each
    sub-run with the command that made it; a link to its report where the sub-run's folder is here (not for a
    record)."""
    out = [f"# {run.name}\n", f"`{config.command}`\n",
           f"AUROC on the test split, --{config.data.protocol} K: {READING}; the best of each row in bold.\n",
           table_markdown,
           "![AUROC per class](sweep.png)\n", "## Runs\n"]
    for s in summaries:
        sub = os.path.basename(s.name)
        here = os.path.isfile(run.sub(sub).report_path)
        out.append(f"- {f'[{sub}]({sub}/report.md)' if here else f'{sub} (committed record)'}: "
                   f"AUROC {s.metrics['AUROC']:.4f}; `{s.config.command}`")
    return "\n".join(out) + "\n"
