"""Every anomaly score of this version (source.scores: pixel and hidden-layer), read from finished runs'
checkpoints on the development split only (validation normals against the development anomalies; never the
test split): a run trained before a score existed is scored with it without training again. The scores are
the graph's own (ADAE.run_scores); the fitted ones are fitted on the run's training normals where the
checkpoint has no saved statistics.

    python -m source.tools.rescore --data PATH --sweep NAME [--results results] [--logdir Checkpoint] [--out study/rescore]
    python -m source.tools.rescore [--out study/rescore] [--readme docs/study.md]      # the table only

Each finished sub-run's development AUROCs go to OUT/<sweep>/<sub-run>.json, kept once written (a rerun
scores only the sub-runs it has not); the table (one per sweep: each digit's mean ± std over seeds, then
the mean over digits, for the scores every sub-run's file holds) fills <!-- rescore:<sweep> --> blocks, and the
choice of one score for every digit (the best mean over digits and seeds on half a of the development images,
measured on half b) fills <!-- rescore:<sweep>_choice --> blocks, and each encoder layer's development AUROC alone
(which layer carries which digit) <!-- rescore:<sweep>_layers --> blocks.
"""
import argparse
import os
import sys

import numpy as np

from source import markdown
from source.evaluation import HALF_SEED
from source.tools.aggregate import OverSeeds
from source.files import DamagedFile, read_json, write_json, write_text
from source.scores import PAIRS, SCORE_NAMES


def development_aurocs(model, data, halves=False, ema=True, layers=False):
    """{name: development AUROC} of every score the model has (the fitted ones fitted on training normals
    where none are loaded for these weights): validation normals against development anomalies; with halves,
    {"all": that, "a": ..., "b": ...} on the two fixed halves as well. ema=False: the trained weights where the
    model scores with their moving average (the scores that need no fit). layers: each hidden-layer pair's
    encoder layers alone too, by the name "<pair> L<i>" (L0 the input, the last the code): which layer carries
    the anomaly; an analysis, not a score a run can report."""
    from source.evaluation import dev_auroc_of, fit_scores, half_aurocs
    if ema:
        fit_scores(model, data)
    valid, dev = model.run_scores(data.x_valid, ema=ema), model.run_scores(data.x_dev_anomalous, ema=ema)
    if layers:
        for pair in PAIRS:
            per_layer = [model.layer_distances(x, pair, ema=ema) for x in (data.x_valid, data.x_dev_anomalous)]
            for i in range(per_layer[0].shape[1]):
                valid[f"{pair} L{i}"], dev[f"{pair} L{i}"] = per_layer[0][:, i], per_layer[1][:, i]
    out = {name: dev_auroc_of(valid[name], dev[name]) for name in valid}
    if not halves:
        return out
    per_half = {name: half_aurocs(valid[name], dev[name]) for name in valid}
    return {"all": out, **{h: {name: per_half[name][h] for name in valid} for h in ("a", "b")}}


def by_kind(aurocs):
    """A rescore file's two parts of development_aurocs' halves: "dev_auroc", the scores a run can report, and
    "dev_auroc_layers", each encoder layer alone."""
    return {"dev_auroc": {h: {n: v for n, v in d.items() if n in SCORE_NAMES} for h, d in aurocs.items()},
            "dev_auroc_layers": {h: {n: v for n, v in d.items() if n not in SCORE_NAMES} for h, d in aurocs.items()}}


def rescore_sweep(arrays, sweep, out, seeds=None):
    """Score every finished sub-run of sweep (a RunDir) that has no file in out/<sweep> yet (of these seeds
    only, where given: a table fixed in advance to some seeds); returns the names scored now."""
    from source import datamanager, experiment
    folder = os.path.join(out, sweep.name)
    done = []
    for name in sorted(os.listdir(sweep.results)) if os.path.isdir(sweep.results) else []:
        sub, path = sweep.sub(name), os.path.join(folder, name + ".json")
        if not sub.is_finished() or os.path.isfile(path):
            continue
        config = sub.read_config()
        (digit, seed), = config.digit_seeds()
        if seeds is not None and seed not in seeds:
            continue
        data = datamanager.Dataset(*arrays, datnorm=config.data.datnorm, split=config.data.split,
                                   **config.data.protocol_of(digit))
        model = experiment.build_model(config)
        found, checkpoint = model.load(sub.log)
        if found:
            os.makedirs(folder, exist_ok=True)
            write_json({"sub_run": name, "digit": digit, "seed": seed, "checkpoint": os.path.basename(checkpoint),
                        "half_seed": HALF_SEED, **by_kind(development_aurocs(model, data, halves=True, layers=True))},
                       path)
            done.append(name)
            print(f"[rescore] {sweep.name}/{name}: done", flush=True)
        model.close()
    return done


def read_rows(folder):
    """The rescore files of one sweep (a damaged one named with the command that makes it again)."""
    rows = []
    for f in sorted(os.listdir(folder)):
        if f.endswith(".json"):
            try:
                rows.append(read_json(os.path.join(folder, f)))
            except DamagedFile as err:
                raise DamagedFile(f"{err}; delete it and score that sub-run again with: python -m source.tools.rescore "
                                  f"--data PATH --sweep {os.path.basename(folder)}") from None
    return rows


def on(row, half="all"):
    """A rescore file's development AUROCs on all the development images or on one half ("a", "b"); files
    written before the halves were recorded hold only all of them (flat), and no half."""
    dev = row["dev_auroc"]
    if "all" not in dev:
        return dev if half == "all" else None
    return dev[half]


def by_digit_seed(rows, half="all"):
    """digit -> seed -> {score: development AUROC} on all the development images or one half."""
    out = {}
    for r in rows:
        out.setdefault(r["digit"], {})[r["seed"]] = on(r, half)
    return out


def table(folder):
    """Markdown: per digit each score's development AUROC, mean ± std over seeds, then the mean over digits
    (± the std over seeds of each seed's mean, for the seeds every digit has)."""
    rows = read_rows(folder)
    names = [name for name in on(rows[0]) if all(name in on(r) for r in rows)]
    grid = OverSeeds(by_digit_seed(rows), names)   # ADAE's scores: each depends on the seed
    return markdown.table(["digit", "seeds"] + names,
                          [[str(d), str(len(grid.results[d]))] + grid.row(d) for d in grid.digits]
                          + [[f"mean of {len(grid.digits)}", str(len(grid.common))] + grid.mean_row(grid.digits)])


def half_means(rows, half):
    """{score: the mean over digits of each digit's mean over seeds} on one half, for the scores every file has."""
    by_digit = by_digit_seed(rows, half)
    names = [n for n in on(rows[0], half) if all(n in on(r, half) for r in rows)]
    return {n: float(np.mean([np.mean([v[n] for v in by_seed.values()]) for by_seed in by_digit.values()]))
            for n in names}


def choice(rows):
    """The one score for every digit, chosen on half a of the development images (the mean over digits and
    seeds), and its mean on half b, which the choice never saw: (name, half-a means, half-b means). None
    where a file has no halves."""
    if any(on(r, "a") is None for r in rows):
        return None
    a, b = half_means(rows, "a"), half_means(rows, "b")
    return max(a, key=a.get), a, b   # the first in SCORE_NAMES order on a tie


def choice_table(folder):
    """Markdown, one row per score: each digit's development AUROC on all the development images (mean over
    seeds), the mean over digits, then the means on half a (where the default is chosen: the best, bold) and on
    half b (where the choice is measured)."""
    rows = read_rows(folder)
    chosen = choice(rows)
    if chosen is None:
        return "Files without the development halves: no choice to draw.\n"
    best, a, b = chosen
    by_digit = by_digit_seed(rows)
    digits = sorted(by_digit)
    rows = []
    for n in a:
        per_digit = [np.mean([v[n] for v in by_digit[d].values()]) for d in digits]
        mark = (lambda t: f"**{t}**") if n == best else (lambda t: t)
        rows.append([mark(n)] + [f"{v:.3f}" for v in per_digit]
                    + [f"{np.mean(per_digit):.3f}", mark(f"{a[n]:.3f}"), f"{b[n]:.3f}"])
    return markdown.table(["score"] + [str(d) for d in digits] + ["mean", "half a (choose)", "half b (measure)"], rows)


def layer_table(folder):
    """Markdown: per digit, the development AUROC of each hidden-layer pair's squared distance at one encoder
    layer alone (L0 the input, the last the code), mean over seeds on all the development images: which layer
    carries which digit's anomaly."""
    rows = [r for r in read_rows(folder) if "dev_auroc_layers" in r]
    if not rows:
        return "Files without per-layer AUROCs.\n"
    by_digit = {}
    for r in rows:
        by_digit.setdefault(r["digit"], []).append(r["dev_auroc_layers"]["all"])
    names = list(rows[0]["dev_auroc_layers"]["all"])
    lines = []
    for digit in sorted(by_digit):
        means = {n: np.mean([v[n] for v in by_digit[digit]]) for n in names}
        best = {pair: max(v for n, v in means.items() if n.startswith(pair + " ")) for pair in PAIRS}
        lines.append([str(digit), str(len(by_digit[digit]))]
                     + [f"**{means[n]:.3f}**" if means[n] == best[n.split(" ")[0]] else f"{means[n]:.3f}" for n in names])
    lines.append([f"mean of {len(by_digit)}", ""]
                 + [f"{np.mean([np.mean([v[n] for v in runs]) for runs in by_digit.values()]):.3f}" for n in names])
    return markdown.table(["digit", "seeds"] + names, lines)


def fill_readme(path, out):
    """Replace each <!-- rescore:SWEEP --> ... <!-- /rescore:SWEEP --> block of a Markdown file with the
sweep's table, each <!-- rescore:SWEEP_choice --> block with its choice of one score, and each
<!-- rescore:SWEEP_layers --> block with its per-layer table."""
    with open(path) as f:
        text = f.read()
    for sweep in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        for name, draw in ((sweep, table), (f"{sweep}_choice", choice_table), (f"{sweep}_layers", layer_table)):
            if markdown.has_markers(text, "rescore", name):
                text = markdown.fill(text, "rescore", name, draw(os.path.join(out, sweep)))
    write_text(text, path)


def main(argv=None):
    p = argparse.ArgumentParser(description="Development AUROC of other anomaly scores from finished runs.")
    p.add_argument("--data", help="the data the sweep trained on (full MNIST: mnist.npz or IDX folder)")
    p.add_argument("--sweep", action="append", help="score this sweep's finished sub-runs")
    p.add_argument("--seed", type=int, action="append", help="score only these seeds' sub-runs (default: all)")
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
            rescore_sweep(arrays, RunDir(args.logdir, args.results, name), args.out, args.seed)
    for path in args.readme or []:
        fill_readme(path, args.out)
    for sweep in sorted(os.listdir(args.out)) if os.path.isdir(args.out) else []:
        folder = os.path.join(args.out, sweep)
        print(f"## {sweep}\n\n{table(folder)}\n{choice_table(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
