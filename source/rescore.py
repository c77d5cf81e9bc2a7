"""Every anomaly score of this version (source.scores: pixel and hidden-layer), read from finished runs'
checkpoints on the development split only (validation normals against the development anomalies; never the
test split): a run trained before a score existed is scored with it without training again. The scores are
the graph's own (ADAE.run_scores); the fitted ones are fitted on the run's training normals where the
checkpoint has no saved statistics.

    python -m source.rescore --data PATH --sweep NAME [--results results] [--logdir Checkpoint] [--out study/rescore]
    python -m source.rescore [--out study/rescore] [--readme docs/study.md]      # the table only

Each finished sub-run's development AUROCs go to OUT/<sweep>/<sub-run>.json, kept once written (a rerun
scores only the sub-runs it has not); the table (one per sweep: each digit's mean ± std over seeds, then
the mean over digits, for the scores every sub-run's file holds) fills <!-- rescore:<sweep> --> blocks.
"""
import argparse
import os
import sys

import numpy as np

from source.files import DamagedFile, read_json, write_json, write_text
from source import tables
from source.tables import cell

HALF_SEED = 1902   # the development split's two fixed halves (choose on one, measure on the other)


def development_halves(n_valid, n_dev):
    """Two fixed halves of the development images: (valid indices, dev-anomaly indices) of half a and of half
    b, drawn by HALF_SEED alone, so every run and seed of a protocol and digit has the same halves."""
    rng = np.random.RandomState(HALF_SEED)
    valid, dev = rng.permutation(n_valid), rng.permutation(n_dev)
    return {"a": (np.sort(valid[:n_valid // 2]), np.sort(dev[:n_dev // 2])),
            "b": (np.sort(valid[n_valid // 2:]), np.sort(dev[n_dev // 2:]))}


def development_aurocs(model, data, halves=False, ema=True):
    """{name: development AUROC} of every score the model has (the fitted ones fitted on training normals
    where none are loaded for these weights): validation normals against development anomalies; with halves,
    {"all": that, "a": ..., "b": ...} on the two fixed halves as well. ema=False: the trained weights where the
    model scores with their moving average (the scores that need no fit)."""
    from source.evaluation import dev_auroc_of, fit_scores
    if ema:
        fit_scores(model, data)
    valid, dev = model.run_scores(data.x_valid, ema=ema), model.run_scores(data.x_dev_anomalous, ema=ema)
    out = {name: dev_auroc_of(valid[name], dev[name]) for name in valid}
    if not halves:
        return out
    parts = development_halves(len(data.x_valid), len(data.x_dev_anomalous))
    return {"all": out, **{h: {name: dev_auroc_of(valid[name][iv], dev[name][ia]) for name in valid}
                           for h, (iv, ia) in parts.items()}}


def rescore_sweep(arrays, sweep, out):
    """Score every finished sub-run of sweep (a RunDir) that has no file in out/<sweep> yet; returns the names
    scored now."""
    from source import datamanager, experiment
    folder = os.path.join(out, sweep.name)
    done = []
    for name in sorted(os.listdir(sweep.results)) if os.path.isdir(sweep.results) else []:
        sub, path = sweep.sub(name), os.path.join(folder, name + ".json")
        if not sub.is_finished() or os.path.isfile(path):
            continue
        config = sub.read_config()
        (digit, seed), = config.runs()
        data = datamanager.Dataset(*arrays, datnorm=config.data.datnorm, split=config.data.split,
                                   **config.data.protocol_of(digit))
        model = experiment.build_model(config)
        found, checkpoint = model.load(sub.log)
        if found:
            os.makedirs(folder, exist_ok=True)
            write_json({"sub_run": name, "digit": digit, "seed": seed, "checkpoint": os.path.basename(checkpoint),
                        "dev_auroc": development_aurocs(model, data)}, path)
            done.append(name)
            print(f"[rescore] {sweep.name}/{name}: done", flush=True)
        model.close()
    return done


def table(folder):
    """Markdown: per digit each score's development AUROC, mean ± std over seeds, then the mean over digits
    (± the std over seeds of each seed's mean, for the seeds every digit has)."""
    rows = []
    for f in sorted(os.listdir(folder)):
        if f.endswith(".json"):
            try:
                rows.append(read_json(os.path.join(folder, f)))
            except DamagedFile as err:
                raise DamagedFile(f"{err}; delete it and score that sub-run again with: python -m source.rescore "
                                  f"--data PATH --sweep {os.path.basename(folder)}") from None
    by_digit = {}
    for r in rows:
        by_digit.setdefault(r["digit"], {})[r["seed"]] = r["dev_auroc"]
    common = sorted(set.intersection(*(set(v) for v in by_digit.values())))
    names = [name for name in rows[0]["dev_auroc"] if all(name in r["dev_auroc"] for r in rows)]
    lines = ["| digit | seeds | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for digit in sorted(by_digit):
        cells = [cell([v[name] for v in by_digit[digit].values()]) for name in names]
        lines.append(f"| {digit} | {len(by_digit[digit])} | " + " | ".join(cells) + " |")
    means = [tables.mean_cell({d: {seed: v[name] for seed, v in by_seed.items()} for d, by_seed in by_digit.items()},
                              common) for name in names]
    lines.append(f"| mean of {len(by_digit)} | {len(common)} | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def fill(path, out):
    """Replace each <!-- rescore:SWEEP --> ... <!-- /rescore:SWEEP --> block of a Markdown file."""
    with open(path) as f:
        text = f.read()
    for sweep in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if tables.has_markers(text, sweep, "rescore"):
            text = tables.fill(text, sweep, table(os.path.join(out, sweep)), "rescore")
    write_text(text, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="Development AUROC of other anomaly scores from finished runs.")
    p.add_argument("--data", help="the data the sweep trained on (full MNIST: mnist.npz or IDX folder)")
    p.add_argument("--sweep", action="append", help="score this sweep's finished sub-runs")
    p.add_argument("--results", default="results")
    p.add_argument("--logdir", default="Checkpoint")
    p.add_argument("--out", default=os.path.join("study", "rescore"))
    p.add_argument("--readme", action="append", help="fill this file's <!-- rescore:SWEEP --> blocks")
    args = p.parse_args(argv)
    if args.sweep and not args.data:
        p.error("--sweep needs --data")
    try:   # a damaged file (a run's config, a checkpoint, a rescore record): one line naming it
        return rescore(args)
    except ValueError as err:
        print(f"rescore: error: {err}", file=sys.stderr)
        return 2


def rescore(args):
    """main's work: score the sweeps asked, fill the Markdown files, print the tables."""
    if args.sweep:
        from source.tf_setup import import_tensorflow
        import_tensorflow(False)
        from source import datamanager
        from source.rundir import RunDir
        arrays, _ = datamanager.load_data(args.data)
        for name in args.sweep:
            rescore_sweep(arrays, RunDir(args.logdir, args.results, name), args.out)
    for path in args.readme or []:
        fill(path, args.out)
    for sweep in sorted(os.listdir(args.out)) if os.path.isdir(args.out) else []:
        print(f"## {sweep}\n\n{table(os.path.join(args.out, sweep))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
