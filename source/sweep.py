"""Aggregate one-class experiments over classes and seeds: sweep.csv, sweep.md, a chart and the sweep's
report. No TensorFlow: `python -m source.collect` builds a table with this alone."""
import logging

import numpy as np

from source import datamanager, files, markdown, plots, report
from source.aggregate import READING, OverSeeds, seeded

logger = logging.getLogger(__name__)


def over_seeds(rows):
    """sweep.csv rows (dicts with method, digit, seed, AUROC) by class and seed under the one rule of
    source.aggregate (ValueError where a classic baseline differs between seeds)."""
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
    run.write_report(report.sweep_report(config, run, markdown_table(grid, protocol, class_names), summaries))
    for method, per_class in grid.mean_std().items():
        logger.info(f"[sweep] {method:16s} mean AUROC {np.mean([v[0] for v in per_class.values()]):.4f}")
    logger.info(f"[sweep] results: {run.results}  (report.md)")
    return grid
