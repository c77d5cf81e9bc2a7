"""ADAE on MNIST: parse flags into a RunConfig, then wire data -> experiment (model, training, evaluation)."""
import logging
import os
import sys

from source import console, datamanager, flags, hardware, record, rundir
from source.files import portable_command
from source.flags import UsageError, parse_args
from source.rundir import RecordDir, RunDir

os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")      # same seed, same data -> same scores

EXIT_USAGE, EXIT_FAILED = 2, 1
logger = logging.getLogger("source.run")   # run.py's lines go where source's do (source.console)


def fail(error, status):
    """The one-line error every failure prints; returns the exit status."""
    print(f"run.py: error: {error}", file=sys.stderr)
    return status


def make_plan(args, argv, config, run):
    """The sweep.Plan of the flags: run's folders, resuming, records, and for a sweep its worker
    processes (--jobs, default 2 on two or more cores; each with --threads, default the cores shared out)."""
    from source.tools import sweep
    jobs = (args.jobs or min(2, os.cpu_count() or 1)) if len(config.digit_seeds()) > 1 else 1
    threads = args.threads or (max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0)
    return sweep.Plan(run, resume=args.resume and (not args.part_of or run.has_state()), records=args.records,
                      part_of=args.part_of, jobs=jobs, threads=threads, worker_argv=tuple(flags.part_argv(argv)))


def score_images(args):
    """--score-images: score new images with the trained run --name."""
    from source import inference
    earlier = RunDir(args.logdir, args.results, args.name)
    rundir.check_trained(earlier)
    return inference.score_new_images(earlier, args.score_images)


def one_run(args, argv, config, claimed):
    """One run: new, continued (--resume), or the checkpoint of run --name evaluated again (--test-only)."""
    from source import experiment, neuralnet
    earlier = earlier_run(args, config)
    arrays, data_source = load_data(args, config)
    load_from = earlier if args.test_only else None
    if load_from:   # a checkpoint that reads, or one line and no new folder
        neuralnet.find_checkpoint(load_from.log)
    run = claim_run(args, args.name + "_eval" if args.test_only else args.name or
                    rundir.default_name(data_source["name"], config), claimed)
    experiment.train_and_evaluate(config, arrays, data_source, run, args.resume, load_from)
    return 0


def whole_sweep(args, argv, config, claimed):
    """A sweep of digits (--normal all, --anomaly all) and seeds (--seeds N), new or continued (--resume)."""
    from source.tools import sweep
    earlier_run(args, config)
    arrays, data_source = load_data(args, config)
    run = claim_run(args, args.name or rundir.default_name(data_source["name"], config), claimed)
    sweep.run_all(config, arrays, data_source, make_plan(args, argv, config, run))
    return 0


def job_array_task(args, argv, config, claimed):
    """--part-of: one digit and seed as a sub-run of sweep --part-of (a job-array task), decided before any
    data is loaded: a sub-run finished or recorded already is not run again."""
    from source.tools import sweep
    whole = RunDir(args.logdir, args.results, args.part_of)   # the sweep's folders
    name = rundir.sub_name(config.data.protocol, *config.digit_seeds()[0])
    claimed.append(name)
    run = whole.sub(name)
    why = sweep.join(config, whole, run, RecordDir(args.records, args.part_of) if args.records else None, args.resume)
    if why:
        logger.info(f"[sweep] {args.part_of}/{name}: {why}")
        return 0
    arrays, data_source = load_data(args, config)
    sweep.run_task(config, arrays, data_source, make_plan(args, argv, config, run))
    return 0


def earlier_run(args, config):
    """Run --name's folders where --resume continues it or --test-only evaluates it, checked to hold the
    experiment asked (with --resume --records, its records too); None for a new run."""
    if not (args.resume or args.test_only):
        return None
    earlier = RunDir(args.logdir, args.results, args.name)
    records = RecordDir(args.records, args.name) if args.records and args.resume else None
    rundir.check_same_experiment(earlier, config, records)
    return earlier


def load_data(args, config):
    """The arrays of --data and where they came from, checked against the experiment before any run starts."""
    arrays, data_source = datamanager.load_data(args.source, args.dataset)
    datamanager.check_experiment(arrays, config.data)
    return arrays, data_source


def claim_run(args, name, claimed):
    """The folders of run `name`: --resume continues them; a new run claims its name by creating them
    (rundir.claim: name_2, ... where name is taken). The name goes to `claimed`, for an interrupt's resume command."""
    name = name if args.resume else rundir.claim(name, [args.results, args.logdir])
    claimed.append(name)
    return RunDir(args.logdir, args.results, name)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    from source.tf_setup import import_tensorflow
    import_tensorflow("--verbose" in argv)
    from source import neuralnet, stops
    console.setup("--verbose" in argv)
    claimed = []   # the name of the run (or sweep) once its folders are decided: what an interrupt resumes
    try:
        with stops.StopFlag(raise_now=True):   # a signal outside a training loop stops where it is
            args = parse_args(argv)
            for flag, root in (("--results", args.results), ("--logdir", args.logdir)):
                rundir.check_writable(flag, root)
            config = record.RunConfig.from_flags(args, "python run.py " + portable_command(argv))
            hardware.resolve_precision(config.machine.precision)   # a precision this CPU cannot run: one line
            if args.score_images:
                return score_images(args)
            if args.part_of:
                return job_array_task(args, argv, config, claimed)
            return (whole_sweep if len(config.digit_seeds()) > 1 else one_run)(args, argv, config, claimed)
    except (UsageError, datamanager.DataError, rundir.FolderError, record.SchemaError, record.RecipeError,
            hardware.PrecisionError, neuralnet.CheckpointError) as err:
        return fail(err, EXIT_USAGE)
    except stops.Interrupted as err:
        saved = f"checkpoint {err.checkpoint}; " if err.checkpoint else ""
        again = f"resume with: {flags.resume_command(argv, claimed[0])}" if claimed else "no run had started"
        print(f"run.py: interrupted; {saved}{again}", file=sys.stderr)
        return 128 + err.signum
    except stops.TrainingError as err:
        return fail(err, EXIT_FAILED)
    except OSError as err:   # a disk that filled or a folder made read-only during a run: what was written stays
        return fail(f"cannot write {err.filename or 'a file'}: {err.strerror or err}", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
