"""The README's full-MNIST tables, generated from committed records (no number typed by hand).

    python -m source.tables [--records records] [--readme README.md docs/results.md ...]

For each sweep folder records/<name>/ (config.json and one <sub-run>.json per finished sub-run), a table of
test AUROC per digit: ADAE's four scores, then every baseline of the same runs, and in the paper's protocol
the paper's published ADAE figure where known. The table replaces the lines between
<!-- table:<name> --> and <!-- /table:<name> --> in the README.
"""
import argparse
import os
import re
import sys

import numpy as np

from source.config import SCORE_NAMES
from source.files import write_text
from source.metrics import best_test_reading
from source.rundir import RecordDir

# ADAE's published MNIST figures per anomalous digit (Vu et al., 2019), where this project has them, and their
# published mean over the ten digits; published on the paper's split (compare only with --split paper)
PAPER = {"anomaly": {1: 0.821, 2: 0.948, 5: 0.906, 8: 0.925, 9: 0.631}}
PAPER_MEAN = {"anomaly": 0.858}
BEST_TEST = "best test, diagnostic"   # the column of the best test AUROC along training (--test-curve)


def table(summaries, protocol):
    """Markdown of digit x method test AUROC (mean over seeds), means in the last row, the chosen score
    marked with *; plus the sub-run count and their summed wall time in seconds."""
    by_digit = {}
    for s in summaries.values():
        by_digit.setdefault(s.digit, []).append(s)
    first = next(iter(summaries.values()))
    chosen = first.anomaly_score
    methods = [f"ADAE {k}" + ("*" if k == chosen else "") for k in SCORE_NAMES] + list(first.baselines)
    paper = PAPER.get(protocol, {})
    # the best-test reading only where every run recorded its test curve; it is never bold (not a result)
    with_best = all(s.test_curve for s in summaries.values())
    header = ["digit"] + methods + ([f"ADAE {chosen}, {BEST_TEST}"] if with_best else []) \
        + (["paper's ADAE"] if paper else [])
    best_test = []
    columns = {m: [] for m in methods}
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for digit in sorted(by_digit):
        runs = by_digit[digit]
        values = {f"ADAE {k}" + ("*" if k == chosen else ""): np.mean([r.metrics["AUROC_per_score"][k] for r in runs])
                  for k in SCORE_NAMES}
        values.update({m: np.mean([r.baselines[m]["AUROC"] for r in runs]) for m in first.baselines})
        best = max(values.values())
        cells = [f"**{values[m]:.3f}**" if values[m] == best else f"{values[m]:.3f}" for m in methods]
        for m in methods:
            columns[m].append(values[m])
        extra = []
        if with_best:
            best_test.append(np.mean([best_test_reading(r.test_curve, chosen)[0] for r in runs]))
            extra.append(f"{best_test[-1]:.3f}")
        extra += [f"{paper[digit]:.3f}" if digit in paper else ""] if paper else []
        lines.append(f"| {digit} | " + " | ".join(cells + extra) + " |")
    n = len(by_digit)
    means = [f"{np.mean(columns[m]):.3f}" for m in methods] + ([f"{np.mean(best_test):.3f}"] if with_best else [])
    if paper:
        known = [d for d in sorted(by_digit) if d in paper]
        means.append(f"{PAPER_MEAN[protocol]:.3f} (10 digits)" if len(known) < n
                     else f"{np.mean([paper[d] for d in known]):.3f}")   # every digit's figure known: their mean
    lines.append(f"| mean of {n} digits | " + " | ".join(means) + " |")
    if paper and known and len(known) < n:   # the digits whose published figure is known, side by side
        lines.append(f"| mean of {', '.join(map(str, known))} | "
                     + " | ".join([f"{np.mean([columns[m][sorted(by_digit).index(d)] for d in known]):.3f}"
                                   for m in methods]
                                  + ([f"{np.mean([best_test[sorted(by_digit).index(d)] for d in known]):.3f}"]
                                     if with_best else [])
                                  + [f"{np.mean([paper[d] for d in known]):.3f}"]) + " |")
    seconds = sum(sum(v for k, v in s.timings.items() if k in ("data", "graph_build", "training", "scoring",
                                                                   "baselines", "plotting"))
                  for s in summaries.values())
    return "\n".join(lines) + "\n", len(summaries), seconds


def render(records_root, name):
    """The Markdown block of one sweep's records: how it was made, then its table."""
    records = RecordDir(records_root, name)
    summaries = records.summaries()
    config = records.read_config() if records.has_config() else next(iter(summaries.values())).config
    markdown, n, seconds = table(summaries, config.data.protocol)
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
            f"{seconds / 60:.0f} min of run time in all, on {'; '.join(machines)}. Test AUROC at the end of "
            f"training, mean over seeds; the best of each row in bold; * the score ADAE reports.{best}\n\n"
            + markdown)


def has_markers(text, name):
    """Whether a Markdown text has the marked block of sweep `name`."""
    return f"<!-- table:{name} -->\n" in text and f"<!-- /table:{name} -->" in text


def fill(readme_text, name, block):
    """The README with the block between this sweep's markers replaced."""
    pattern = re.compile(rf"(<!-- table:{re.escape(name)} -->\n).*?(<!-- /table:{re.escape(name)} -->)", re.S)
    if not pattern.search(readme_text):
        raise ValueError(f"the README has no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + block + m.group(2), readme_text)


def main(argv=None):
    p = argparse.ArgumentParser(description="README tables from committed records.")
    p.add_argument("--records", default="records")
    p.add_argument("--readme", nargs="+", help="rewrite the marked tables of these Markdown files (each the "
                   "markers it has; every records folder must have markers in one of them); default: print")
    args = p.parse_args(argv)
    names = sorted(d for d in os.listdir(args.records) if RecordDir(args.records, d).summaries()) \
        if os.path.isdir(args.records) else []
    if not args.readme:
        for name in names:
            print(f"## {name}\n\n{render(args.records, name)}")
        return 0
    texts = {path: open(path).read() for path in args.readme}
    for name in names:
        block, placed = render(args.records, name), False
        for path, text in texts.items():
            if has_markers(text, name):
                texts[path], placed = fill(text, name, block), True
        if not placed:
            print(f"tables: error: none of {', '.join(args.readme)} has <!-- table:{name} --> markers",
                  file=sys.stderr)
            return 2
    for path, text in texts.items():
        write_text(text, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
