"""Aggregate one-class experiments over classes and seeds: sweep.csv, sweep.md and a chart."""
import os

import numpy as np

from source import plots
from source.solver import write_csv


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


def write(rows, out_dir, protocol, class_names=None):
    """Write sweep.csv (one row per run and method), sweep.md and sweep.png; return the table."""
    keys = ["protocol", "digit", "seed", "method", "AUROC", "AUPRC"]
    write_csv([[r[k] if not isinstance(r[k], float) else repr(float(r[k])) for k in keys] for r in rows], keys,
              os.path.join(out_dir, "sweep.csv"))
    tab = table(rows)
    tmp = os.path.join(out_dir, "sweep.md.tmp")
    with open(tmp, "w") as f:
        f.write(f"AUROC mean ± std over seeds, protocol --{protocol} K\n\n" + markdown(tab, protocol, class_names))
    os.replace(tmp, os.path.join(out_dir, "sweep.md"))
    plots.sweep_chart(tab, os.path.join(out_dir, "sweep.png"), f"AUROC per class, --{protocol} K")
    return tab
