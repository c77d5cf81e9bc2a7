"""A run's report.md and scores.csv (source.report, source.rundir) agree with its summary.json."""
import csv
import json


def test_report_and_csv_round_trip(e2e):
    """report.md embeds every figure by a relative path that exists; valid_scores.csv holds floats that read
    back exactly (the threshold recomputed from it is summary.json's, bit for bit)."""
    tmp, _, _ = e2e
    run_dir = tmp / "results" / "embedded_normal1"
    report = (run_dir / "report.md").read_text()
    assert report.startswith("# embedded_normal1") and "python run.py" in report and "| method | AUROC |" in report
    import re
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert len(figures) >= 9 and all((run_dir / f).is_file() for f in figures)
    from source import metrics
    valid = [float(r["valid_score"]) for r in csv.DictReader(open(run_dir / "valid_scores.csv"))]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert metrics.threshold_from_normals(valid) == summary["metrics"]["threshold"]
