"""The README's full-MNIST tables, generated from committed records (no number typed by hand).

    python -m source.tools.tables [--records records] [--readme README.md docs/results.md ...]

For each sweep folder records/<name>/ (config.json and one <sub-run>.json per finished sub-run), a table of
test AUROC per digit: ADAE's scores, then every baseline of the same runs, and in the paper's protocol
the paper's published ADAE figure where known. The table replaces the lines between
<!-- table:<name> --> and <!-- /table:<name> --> in the README.
"""
import argparse
import os
import re
import sys

import numpy as np

from source import markdown
from source.tools.aggregate import READING, OverSeeds, seeded
from source.config import SCORE_NAMES, SELECT_WARM_UP
from source.files import write_text
from source.metrics import best_test_reading
from source.rundir import RecordDir

# ADAE's published MNIST figures per anomalous digit (Vu et al., 2019), where this project has them, and their
# published mean over the ten digits; published on the paper's split (compare only with --split paper)
PAPER = {"anomaly": {1: 0.821, 2: 0.948, 5: 0.906, 8: 0.925, 9: 0.631}}
PAPER_MEAN = {"anomaly": 0.858}
BEST_TEST = "best test, diagnostic"   # the column of the best test AUROC along training (--test-curve)


def measured(summaries):
    """ADAE's scores every one of the summaries measured (records older than a score lack it), in SCORE_NAMES
    order."""
    return [k for k in SCORE_NAMES if all(k in s.metrics["AUROC_per_score"] for s in summaries)]


def seed_table(summaries):
    """Markdown of one digit's sweep seed by seed (the main command over seeds), four decimals (its numbers
    sit near 1): a row per seed of each method's test AUROC, then their mean ± std."""
    runs = sorted(summaries.values(), key=lambda s: s.seed)
    chosen = runs[0].anomaly_score
    columns = {f"ADAE {k}" + ("*" if k == chosen else ""): [r.metrics["AUROC_per_score"][k] for r in runs]
               for k in measured(runs)}
    columns.update({m: [r.baselines[m]["AUROC"] for r in runs] for m in runs[0].baselines})
    rows = []
    for i, r in enumerate(runs):
        best = max(v[i] for v in columns.values())
        rows.append([str(r.seed)] + [f"**{v[i]:.4f}**" if v[i] == best else f"{v[i]:.4f}" for v in columns.values()])
    rows.append([f"mean ± std of {len(runs)}"] + [f"{np.mean(v):.4f}" + (f" ± {np.std(v):.4f}" if seeded(m) else "")
                                                  for m, v in columns.items()])   # a classic one: no spread to show
    return markdown.table(["seed"] + list(columns), rows)


def table(summaries, protocol):
    """Markdown of digit x method test AUROC, the chosen score marked with *: per digit the mean over seeds,
    ± their std for what depends on the seed (ADAE, ConvAE); the classic baselines, the same in every seed's
    sub-run (checked), once. The means over digits in the last rows (± the std over seeds of each seed's
    mean, for the seeds every digit has). Returns the Markdown, the sub-run count and their summed wall time
    in seconds."""
    first = next(iter(summaries.values()))
    chosen = first.anomaly_score
    adae = {f"ADAE {k}" + ("*" if k == chosen else ""): k for k in measured(summaries.values())}
    methods = list(adae) + list(first.baselines)
    auroc = {}   # digit -> seed -> method -> test AUROC
    for s in summaries.values():
        auroc.setdefault(s.digit, {})[s.seed] = dict(
            {m: s.metrics["AUROC_per_score"][k] for m, k in adae.items()},
            **{m: s.baselines[m]["AUROC"] for m in first.baselines})
    grid = OverSeeds(auroc, methods, [m for m in methods if not seeded(m)])
    digits = grid.digits
    paper = PAPER.get(protocol, {})
    # the best-test reading only where every run recorded its test curve; it is never bold (not a result)
    with_best = all(s.test_curve for s in summaries.values())
    best_test = {d: np.mean([best_test_reading(s.test_curve, chosen)[0] for s in summaries.values() if s.digit == d])
                 for d in digits} if with_best else {}
    header = ["digit", "seeds"] + methods + ([f"ADAE {chosen}, {BEST_TEST}"] if with_best else []) \
        + (["paper's ADAE"] if paper else [])
    rows = []
    for digit in digits:
        cells = grid.row(digit, bold_best=True)
        cells += [f"{best_test[digit]:.3f}"] if with_best else []
        cells += [f"{paper[digit]:.3f}" if digit in paper else ""] if paper else []
        rows.append([str(digit), str(len(auroc[digit]))] + cells)

    def mean_row(label, over, paper_cell):
        cells = grid.mean_row(over)
        cells += [f"{np.mean([best_test[d] for d in over]):.3f}"] if with_best else []
        cells += [paper_cell] if paper else []
        return [label, str(len(grid.common))] + cells

    known = [d for d in digits if d in paper]
    paper_mean = (f"{np.mean([paper[d] for d in known]):.3f}" if len(known) == len(digits)
                  else f"{PAPER_MEAN[protocol]:.3f} (10 digits)") if paper else ""
    rows.append(mean_row(f"mean of {len(digits)} digits", digits, paper_mean))
    if paper and known and len(known) < len(digits):   # the digits whose published figure is known, side by side
        rows.append(mean_row(f"mean of {', '.join(map(str, known))}", known,
                             f"{np.mean([paper[d] for d in known]):.3f}"))
    seconds = sum(sum(v for k, v in s.timings.items() if k in ("data", "graph_build", "training", "scoring",
                                                                   "baselines", "plotting"))
                  for s in summaries.values())
    return markdown.table(header, rows), len(summaries), seconds


def weights_read(config):
    """Which weights a table's test AUROC is of: the last step's, or (--select best_look) each sub-run's best look."""
    if config.training.select == "best_look":
        return (f"with the weights `--select best_look` chose (each sub-run's epoch end with the best development "
                f"AUROC on half a of the development images, from iteration {SELECT_WARM_UP:,} on; ConvAE's its own)")
    return "at the end of training"


def render(records_root, name):
    """The Markdown block of one sweep's records: how it was made, then its table."""
    records = RecordDir(records_root, name)
    summaries = records.summaries()
    config = records.read_config() if records.has_config() else next(iter(summaries.values())).config
    markdown, n, seconds = table(summaries, config.data.protocol)
    reading = READING
    if len({s.digit for s in summaries.values()}) == 1 and n > 1:   # one digit over seeds: seed by seed
        markdown, reading = seed_table(summaries), "seed by seed, then their mean ± std"
    machines = sorted({s.machine["cpu"] for s in summaries.values()})
    seeds = sorted({s.seed for s in summaries.values()})
    best = (f" The {BEST_TEST} column is the highest test AUROC along training (`--test-curve`): what a "
            "best-test-epoch reading would publish, shown to explain a gap, never used to choose anything."
            if all(s.test_curve for s in summaries.values()) else "")
    command = f"`{config.command}`"
    if "--part-of" in config.command:   # job-array tasks: the first task's command stands for every digit K
        command = "job-array sub-runs `" + re.sub(rf"--{config.data.protocol} \d", f"--{config.data.protocol} K",
                                                  config.command) + "`"
    return (f"{command}: {n} sub-runs (split {config.data.split}, seeds {', '.join(map(str, seeds))}), "
            f"{seconds / 60:.0f} min of run time in all, on {'; '.join(machines)}. Test AUROC {weights_read(config)}, "
            f"{reading}; the best of each row in bold; * the score ADAE reports.{best}\n\n"
            + markdown)


def main(argv=None):
    p = argparse.ArgumentParser(description="README tables from committed records.")
    p.add_argument("--records", default="records")
    p.add_argument("--readme", nargs="+", help="rewrite the marked tables of these Markdown files (each the "
                   "markers it has; every records folder must have markers in one of them); default: print")
    args = p.parse_args(argv)
    try:   # a damaged record names its own file
        names = sorted(d for d in os.listdir(args.records) if RecordDir(args.records, d).summaries()) \
            if os.path.isdir(args.records) else []
    except ValueError as err:
        print(f"tables: error: {err}", file=sys.stderr)
        return 2
    blocks = {}
    for name in names:
        try:
            blocks[name] = render(args.records, name)
        except ValueError as err:   # records that cannot be one table
            print(f"tables: error: {os.path.join(args.records, name)}: {err}", file=sys.stderr)
            return 2
    if not args.readme:
        for name in names:
            print(f"## {name}\n\n{blocks[name]}")
        return 0
    texts = {path: open(path).read() for path in args.readme}
    for name in names:
        block, placed = blocks[name], False
        for path, text in texts.items():
            if markdown.has_markers(text, "table", name):
                texts[path], placed = markdown.fill(text, "table", name, block), True
        if not placed:
            print(f"tables: error: none of {', '.join(args.readme)} has <!-- table:{name} --> markers",
                  file=sys.stderr)
            return 2
    for path, text in texts.items():
        write_text(text, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
