"""Build a sweep's table from sub-runs made anywhere: job-array tasks (`run.py --part-of NAME`), other
machines, or committed records.

    python -m source.tools.collect NAME [--results results] [--logdir Checkpoint] [--records records]

Reads results/NAME/<sub-run>/summary.json and, for sub-runs not there, records/NAME/<sub-run>.json; writes
sweep.csv, sweep.md, sweep.png and report.md into results/NAME, as a sweep run straight through would.
"""
import argparse
import dataclasses
import logging
import os
import sys

from source import console
from source.tools import sweep
from source.files import portable_command
from source.record import RecipeError, SchemaError
from source.rundir import RecordDir, RunDir, stored_config

logger = logging.getLogger("source.tools.collect")   # its name also when run as python -m source.tools.collect


def gather(run, records=None):
    """{sub-run name: summary} from a sweep's results folder, then from records for the sub-runs it lacks;
    ordered by digit and seed, as a sweep runs them."""
    found = {}
    if os.path.isdir(run.results):
        for name in sorted(os.listdir(run.results)):
            sub = run.sub(name)
            if sub.is_finished():
                found[name] = sub.read_summary()
    for name, summary in (records.summaries() if records else {}).items():
        found.setdefault(name, summary)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].digit, kv[1].seed)))


def collect(name, results="results", logdir="Checkpoint", records_root=None, command=""):
    """Write the sweep files of NAME from every sub-run found; returns the table. ValueError when none, and
    RecipeError naming the first sub-run made with another recipe than the sweep's (none is mixed in)."""
    run = RunDir(logdir, results, name)
    records = RecordDir(records_root, name) if records_root else None
    summaries = gather(run, records)
    if not summaries:
        raise ValueError(f"no finished sub-run of {name!r} in {run.results}"
                         + (f" or {records.path}" if records else ""))
    # the sweep's config (written by a straight sweep or the first job-array task), else the first sub-run's
    config = stored_config(run, records) or next(iter(summaries.values())).config
    for sub, summary in summaries.items():
        config.check_recipe(summary.config, f"sub-run {sub} of {name}")
    os.makedirs(run.results, exist_ok=True)
    logger.info(f"[collect] {name}: {len(summaries)} sub-runs")
    return sweep.finish(dataclasses.replace(config, command=command or config.command), list(summaries.values()), run)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description="Build a sweep's table from its sub-runs.")
    p.add_argument("name")
    p.add_argument("--results", default="results")
    p.add_argument("--logdir", default="Checkpoint")
    p.add_argument("--records", help="folder of committed records (records/NAME/*.json)")
    p.add_argument("--verbose", action="store_true", help="show the debug lines too")
    args = p.parse_args(argv)
    console.setup(args.verbose)
    try:
        collect(args.name, args.results, args.logdir, args.records,
                command="python -m source.tools.collect " + portable_command(argv))
    except (ValueError, RecipeError, SchemaError) as err:
        print(f"collect: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
