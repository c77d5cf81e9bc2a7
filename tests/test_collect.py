"""Collecting a sweep's table from sub-runs made anywhere (source.collect): job-array parts give the
straight sweep's table; missing sub-runs and another recipe's are refused; the report links only what exists."""
import json
import os
import shutil
import subprocess
import sys

import run
from source import collect
from tests.conftest import ROOT, SWEEP_FLAGS, assert_same_sweep_table, roots


def test_job_array_parts_collect_into_the_straight_table(straight_sweep, tmp_path, capsys):
    """Each seed run alone with --part-of (as SLURM array tasks would, one thread as the straight sweep's
    workers), then collected: the same sweep.csv."""
    for seed in ("1", "0"):   # any order (run in this process: tests/test_slurm.py runs them as real array tasks)
        flags = [f for f in SWEEP_FLAGS if f not in ("--seeds", "2")] + ["--seed", seed, "--part-of", "sweep",
                                                                   "--threads", "1"]
        assert run.main(flags + roots(tmp_path)) == 0
    assert collect.main(["sweep", "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]) == 0
    assert_same_sweep_table(tmp_path / "r" / "sweep" / "sweep.csv", straight_sweep / "r" / "sweep" / "sweep.csv")
    assert (tmp_path / "r" / "sweep" / "report.md").exists() and (tmp_path / "r" / "sweep" / "sweep.png").exists()
    capsys.readouterr()
    again = [f for f in SWEEP_FLAGS if f not in ("--seeds", "2")] + ["--part-of", "sweep"]
    assert run.main(again + roots(tmp_path)) == 2
    assert "exists; add --resume" in capsys.readouterr().err


def test_collect_without_sub_runs_fails_cleanly_and_needs_no_tensorflow(tmp_path):
    """As a collect job runs it (its own process): no sub-run gives one line and exit 2, and nothing on the
    way imports TensorFlow (a table is numbers, text and one chart)."""
    probe = ("import sys; from source import collect; code = collect.main(sys.argv[1:]); "
             "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", probe, "nothing", "--results", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout.strip() == "no tensorflow", (out.stdout, out.stderr)
    assert out.stderr.strip().splitlines() == [f"collect: error: no finished sub-run of 'nothing' in {tmp_path / 'nothing'}"]


def test_collect_refuses_a_sub_run_of_another_recipe(straight_sweep, tmp_path, capsys):
    """One sub-run's summary claims another batch: collect exits 2 naming it, and writes no table."""
    shutil.copytree(straight_sweep / "r", tmp_path / "r")
    shutil.copytree(straight_sweep / "c", tmp_path / "c")
    os.remove(tmp_path / "r" / "sweep" / "sweep.csv")
    path = tmp_path / "r" / "sweep" / "normal7_seed1" / "summary.json"
    values = json.loads(path.read_text())
    values["config"]["training"]["batch"] = 32
    path.write_text(json.dumps(values))
    assert collect.main(["sweep", "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("collect: error: sub-run normal7_seed1 of sweep was made with another recipe than its sweep's: "
                   "--batch 32 (sweep: 64)")
    assert not (tmp_path / "r" / "sweep" / "sweep.csv").exists()


def test_collected_report_names_its_own_command_and_links_only_what_exists(straight_sweep, tmp_path):
    """Collected from the records alone: report.md quotes the collect command, lists each sub-run with the
    command that made it, and links no report that is not there."""
    assert collect.main(["sweep", "--results", str(tmp_path / "r"), "--records", str(straight_sweep / "records")]) == 0
    report = (tmp_path / "r" / "sweep" / "report.md").read_text()
    assert "`python -m source.collect sweep --results r --records records`" in report
    assert "](normal7_seed0/report.md)" not in report and "normal7_seed0 (committed record)" in report
    assert "--seed 0" not in report.split("## Runs")[0]
