"""Aggregate one-class experiments over classes and seeds: sweep.csv, sweep.md, a chart and the sweep's
report. No TensorFlow: `python -m source.collect` builds a table with this alone."""
import logging

import numpy as np

from source import datamanager, files, plots, report

logger = logging.getLogger(__name__)


def table(rows):
    """{method: {class: (mean AUROC, std AUROC)}} from rows of dicts with method, digit, AUROC."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        per_class = {}
        for digit in sorted({r["digit"] for r in rows if r["method"] == method}):
            values = [r["AUROC"] for r in rows if r["method"] == method and r["digit"] == digit]
            per_class[digit] = (float(np.mean(values)), float(np.std(values)))
        out[method] = per_class
    return out


def markdown(tab, protocol, class_names=None):
    """Class x method table of AUROC mean ± std, means over classes in the last row."""
    methods = list(tab)
    classes = sorted({c for m in methods for c in tab[m]})
    lines = [f"| {protocol} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for c in classes:
        name = class_names[c] if class_names else str(c)
        cells = [f"{tab[m][c][0]:.3f} ± {tab[m][c][1]:.3f}" if c in tab[m] else "" for m in methods]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [f"**{np.mean([v[0] for v in tab[m].values()]):.3f}**" for m in methods]
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def rows_of(summary):
    """sweep.csv rows of one sub-run's Summary: ADAE and each baseline."""
    methods = {"ADAE": summary.metrics, **summary.baselines}
    return [{"protocol": summary.data["protocol"], "digit": summary.digit, "seed": summary.seed, "method": m,
             "AUROC": r["AUROC"], "AUPRC": r["AUPRC"]} for m, r in methods.items()]


def write(rows, run, protocol, class_names=None):
    """Write sweep.csv (one row per run and method), sweep.md and sweep.png into run's results; return the table."""
    keys = ["protocol", "digit", "seed", "method", "AUROC", "AUPRC"]
    files.write_csv([[r[k] for k in keys] for r in rows], keys, run.sweep_csv_path)
    tab = table(rows)
    files.write_text(f"AUROC mean ± std over seeds, protocol --{protocol} K\n\n"
                     + markdown(tab, protocol, class_names),
                      run.sweep_md_path)
    plots.sweep_chart(tab, run.figure("sweep"), f"AUROC per class, --{protocol} K")
    return tab


def finish(config, summaries, run):
    """sweep.csv, sweep.md, sweep.png and report.md of a sweep from its sub-runs' Summaries; returns the table."""
    rows = [row for s in summaries for row in rows_of(s)]
    class_names = datamanager.DATASETS[config.data.dataset].class_names
    protocol = config.data.protocol
    tab = write(rows, run, protocol, class_names)
    run.write_report(report.sweep_report(config, run, markdown(tab, protocol, class_names), summaries))
    for method, per_class in tab.items():
        logger.info(f"[sweep] {method:16s} mean AUROC {np.mean([v[0] for v in per_class.values()]):.4f}")
    logger.info(f"[sweep] results: {run.results}  (report.md)")
    return tab
