"""Collecting a sweep's table from sub-runs made anywhere (source.tools.collect): job-array parts give the
straight sweep's table; missing sub-runs and another recipe's are refused; the report links only what exists."""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

import run
from source.tools import collect
from tests.conftest import ROOT, SMALL_NET, SWEEP_FLAGS, assert_same_scores, assert_same_sweep_table, roots

# one job-array task of sweep "sw", with relative roots (run from its root folder) so that the commands the
# error lines give can be run as they are
TASK = ["--data", "embedded", "--steps", "2", "--batch", "64", "--threads", "1", *SMALL_NET, "--normal", "1",
        "--seed", "0", "--part-of", "sw", "--records", "rec", "--results", "r", "--logdir", "c"]
RERUN = ("python run.py --data embedded --steps 2 --batch 64 --widths 8,16 --latent 4 --records rec --results r "
         "--logdir c --normal 1 --seed 0 --part-of sw --resume")
RERUN_HERE = RERUN.replace(" --records rec", "")   # a damaged summary: evaluated again here, not kept from the record


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
    probe = ("import sys; from source.tools import collect; code = collect.main(sys.argv[1:]); "
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
    assert "`python -m source.tools.collect sweep --results r --records records`" in report
    assert "](normal7_seed0/report.md)" not in report and "normal7_seed0 (committed record)" in report
    assert "--seed 0" not in report.split("## Runs")[0]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """The root of TASK, run there."""
    root, cwd = tmp_path_factory.mktemp("task"), os.getcwd()
    os.chdir(root)
    try:
        assert run.main(TASK) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def task_copy(task, tmp_path, monkeypatch):
    """A copy of the task's root, made the working directory."""
    shutil.copytree(task, tmp_path / "root")
    monkeypatch.chdir(tmp_path / "root")
    return tmp_path / "root"


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_damaged_summary_is_named_and_the_command_it_gives_restores_it(task_copy, capsys):
    """A sub-run's summary.json cut short: collect and the sub-run's --resume each exit 2 with one line naming
    it and the command to run; deleted and that command run, the sub-run is evaluated again from its last
    checkpoint (no training: the same scores) and collect builds the table."""
    path = os.path.join("r", "sw", "normal1_seed0", "summary.json")
    whole = json.loads(open(path).read())
    open(path, "w").write(json.dumps(whole, indent=2)[:500])
    shutil.copy(os.path.join("r", "sw", "normal1_seed0", "scores.csv"), "scores_before.csv")
    assert collect.main(["sw", "--results", "r", "--logdir", "c"]) == 2
    err = _one_line(capsys)
    assert err.startswith(f"collect: error: {path} is damaged (") and err.endswith(
        f"); delete it and rerun with: {RERUN_HERE}"), err
    assert run.main(shlex.split(RERUN)[2:]) == 2   # the resume meets the same file
    assert _one_line(capsys) == err.replace("collect: error:", "run.py: error:")
    os.remove(path)
    assert run.main(shlex.split(RERUN_HERE)[2:]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "[train] epoch" not in out
    again = json.loads(open(path).read())
    assert again["metrics"]["AUROC"] == pytest.approx(whole["metrics"]["AUROC"], abs=1e-6)
    assert_same_scores(os.path.join("r", "sw", "normal1_seed0", "scores.csv"), "scores_before.csv")
    assert collect.main(["sw", "--results", "r", "--logdir", "c"]) == 0


def test_a_damaged_record_is_named_and_the_command_it_gives_writes_it_again(task_copy, capsys):
    """The task's committed record emptied: collect from the records exits 2 naming it and the job-array command;
    deleted and that command run, the record is written again from the sub-run's summary and collect works."""
    path = os.path.join("rec", "sw", "normal1_seed0.json")
    whole = json.loads(open(path).read())
    open(path, "w").close()
    assert collect.main(["sw", "--results", "elsewhere", "--records", "rec"]) == 2
    assert _one_line(capsys) == (f"collect: error: {path} is damaged (Expecting value: line 1 column 1 (char 0)); "
                                 "delete it and rerun that sub-run (trained again where its checkpoint is not on this "
                                 f"machine) with: {RERUN}")
    os.remove(path)
    assert run.main(shlex.split(RERUN)[2:]) == 0
    assert "its record written again" in capsys.readouterr().out
    assert json.loads(open(path).read()) == whole
    assert collect.main(["sw", "--results", "elsewhere", "--records", "rec"]) == 0
