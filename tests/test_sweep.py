"""A sweep's table over seeds and digits (source.sweep): markdown, CSV and figure, one rule for seeds."""
import csv

import pytest

from source import sweep
from source.rundir import RunDir


def test_sweep_table_markdown_and_csv(tmp_path):
    """Per class ADAE's mean ± std over seeds, a classic baseline's one value; the mean over classes in the
    last row (± the std over seeds of each seed's mean); every row of sweep.csv as it came."""
    rows = [{"protocol": "normal", "digit": d, "seed": s, "method": m, "AUROC": a, "AUPRC": 0.5}
            for d, s, m, a in [(0, 0, "ADAE", 0.8), (0, 1, "ADAE", 0.9), (1, 0, "ADAE", 1.0), (1, 1, "ADAE", 1.0),
                               (0, 0, "PCA", 0.7), (0, 1, "PCA", 0.7), (1, 0, "PCA", 0.5), (1, 1, "PCA", 0.5)]]
    grid = sweep.write(rows, RunDir("", str(tmp_path), ""), "normal")
    assert grid.mean_std()["ADAE"][0] == pytest.approx((0.85, 0.05)) and grid.mean_std()["PCA"][0] == (0.7, 0.0)
    md = (tmp_path / "sweep.md").read_text().split("\n\n", 1)[1]
    assert md == ("| normal | seeds | ADAE | PCA |\n|---|---|---|---|\n| 0 | 2 | **0.850 ± 0.050** | 0.700 |\n"
                  "| 1 | 2 | **1.000 ± 0.000** | 0.500 |\n| mean of 2 | 2 | 0.925 ± 0.025 | 0.600 |\n")
    assert len(list(csv.DictReader(open(tmp_path / "sweep.csv")))) == 8
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_a_classic_baseline_that_differs_between_seeds_is_refused():
    rows = [{"digit": 0, "seed": s, "method": "PCA", "AUROC": a} for s, a in [(0, 0.7), (1, 0.71)]]
    with pytest.raises(ValueError, match="PCA on digit 0 differs between seeds"):
        sweep.over_seeds(rows)
