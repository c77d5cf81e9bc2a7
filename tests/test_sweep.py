"""A sweep's table over seeds and digits (source.sweep): markdown, CSV and figure."""
import csv

import pytest

from source import sweep
from source.rundir import RunDir


def test_sweep_table_markdown_and_csv(tmp_path):
    """Means and stds over seeds per class, means over classes in the last row."""
    rows = [{"protocol": "normal", "digit": d, "seed": s, "method": m, "AUROC": a, "AUPRC": 0.5}
            for d, s, m, a in [(0, 0, "ADAE", 0.8), (0, 1, "ADAE", 0.9), (1, 0, "ADAE", 1.0), (1, 1, "ADAE", 1.0),
                               (0, 0, "PCA", 0.7), (0, 1, "PCA", 0.7), (1, 0, "PCA", 0.5), (1, 1, "PCA", 0.5)]]
    tab = sweep.write(rows, RunDir("", str(tmp_path), ""), "normal")
    assert tab["ADAE"][0] == pytest.approx((0.85, 0.05))
    md = (tmp_path / "sweep.md").read_text().strip().splitlines()
    assert md[-1] == "| mean | **0.925** | **0.600** |"
    assert "0.850 ± 0.050" in md[-3]
    assert len(list(csv.DictReader(open(tmp_path / "sweep.csv")))) == 8
    assert (tmp_path / "sweep.png").stat().st_size > 0
