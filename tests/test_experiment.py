"""Sweeps (source.experiment, source.parallel): the plan of a sweep's sub-runs, its projected time, and a
sweep stopped by a signal and resumed (one process, and worker processes) ending with the straight sweep's
table."""
import dataclasses
import logging
import os
import signal

import pytest

import run
from source import experiment, parallel
from tests.conftest import SHORT, SWEEP_FLAGS, Lines, assert_same_sweep_table


def test_part_argv_drops_what_chooses_the_sub_runs():
    argv = ["--normal", "all", "--seeds", "3", "--jobs=2", "--name", "x", "--resume", "--lr", "2e-4", "--threads", "1"]
    assert parallel.part_argv(argv) == ["--lr", "2e-4"]


def test_plan_from_flags_runs_a_sweep_in_workers_and_one_run_in_this_process(monkeypatch):
    """run.make_plan: a sweep with --jobs 2 gets two workers, the cores shared out, the flags each worker
    shares (none that choose sub-runs); one run is always one process with TensorFlow's threads."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    from source.record import RunConfig
    argv = ["--normal", "all", "--jobs", "2", "--lr", "1e-4", "--records", "rec"]
    args = run.parse_args(argv)
    plan = run.make_plan(args, argv, RunConfig.from_flags(args, "python run.py"), "RUN")
    assert (plan.run, plan.jobs, plan.threads, plan.records, plan.resume) == ("RUN", 2, 4, "rec", False)
    assert plan.worker_argv == ("--lr", "1e-4", "--records", "rec")
    argv = ["--normal", "3", "--jobs", "2"]
    args = run.parse_args(argv)
    plan = run.make_plan(args, argv, RunConfig.from_flags(args, "python run.py"), "RUN")
    assert (plan.jobs, plan.threads, plan.part_of) == (1, 0, None)


def test_sweep_projects_its_time_from_a_measurement(embedded, logged):
    """The projection counts the iterations still to do (2 epochs of 360 images in batches of 64 = 12 per
    sub-run, two sub-runs) and divides by the number of workers."""
    lines = logged.lines
    config = dataclasses.replace(SHORT, training=dataclasses.replace(SHORT.training, steps=None, epoch=2, batch=64))
    one = experiment.project_sweep(config, embedded, [(7, 0), (7, 1)], jobs=1)
    assert one["iterations"] == 24 and one["seconds"] == pytest.approx(24 * one["per_iteration"], rel=1e-12)
    assert "2 sub-runs to train, 24 iterations" in lines[0] and "(1 at a time)" in lines[0]
    assert f"at {1 / one['per_iteration']:.1f}/s measured" in lines[0]
    two = experiment.project_sweep(config, embedded, [(7, 0), (7, 1)], jobs=2)
    assert two["seconds"] == pytest.approx(24 * two["per_iteration"] / 2, rel=1e-12) and "(2 at a time)" in lines[1]
    assert experiment.project_sweep(config, embedded, [])["seconds"] == 0.0 and len(lines) == 2


def _stop_then_resume(tmp_path, flags, straight, stop_when, monkeypatch, capsys):
    """Run a sweep with SIGTERM sent to this process at the log line where stop_when(line) first holds
    (in-process, so the point is the same on every CPU): it must exit 143 with the resume command and no
    table; --resume must finish it with the straight sweep's sweep.csv (conftest.straight_sweep: seeds 0
    and 1). Returns the stopped-folder and resumed outputs for the caller's own checks."""
    flags = flags + ["--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]
    named = flags + ["--name", "stopped"]
    lines = Lines()   # SIGTERM from a logging handler, at the first line stop_when accepts

    def on_line(line):
        if stop_when(line) and len([x for x in lines.lines if stop_when(x)]) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
    lines.on_line = on_line
    logging.getLogger("source").addHandler(lines)
    try:
        assert run.main(named) == 143
    finally:
        logging.getLogger("source").removeHandler(lines)
    err = capsys.readouterr().err
    assert "--resume" in err and "--name stopped" in err
    assert not (tmp_path / "r" / "stopped" / "sweep.csv").exists()
    stopped = {p.parent.name: p.read_bytes() for p in (tmp_path / "r" / "stopped").glob("*/scores.csv")}
    monkeypatch.undo()
    assert run.main(named + ["--resume"]) == 0
    resumed = capsys.readouterr().out
    assert_same_sweep_table(tmp_path / "r" / "stopped" / "sweep.csv", straight / "r" / "sweep" / "sweep.csv",
                            seeds=(0, 1))
    return stopped, resumed


def test_sweep_killed_and_resumed_matches_straight_run(straight_sweep, tmp_path, monkeypatch, capsys):
    """A one-process sweep of two sub-runs (--jobs 1: no worker process) stopped by SIGTERM right after its first
    and resumed with --resume --name writes the same sweep.csv as the straight sweep's worker processes; the
    finished sub-run is kept, not retrained."""
    flags = SWEEP_FLAGS + ["--jobs", "1", "--threads", "1"]
    stopped, resumed = _stop_then_resume(
        tmp_path, flags, straight_sweep, lambda line: line.startswith("[sweep] 1/2 runs done"), monkeypatch, capsys)
    assert "[sweep] 2/2 runs done" in resumed and "started in its own process" not in resumed
    assert list(stopped) == ["normal7_seed0"]
    assert "normal7_seed0: finished earlier, kept" in resumed and "normal7_seed1: finished" not in resumed
    assert (tmp_path / "r" / "stopped" / "normal7_seed0" / "scores.csv").read_bytes() == stopped["normal7_seed0"]


def test_worker_sweep_stopped_and_resumed_matches_straight_run(straight_sweep, tmp_path, monkeypatch, capsys):
    """The default sweep on 2 cores (sub-runs in worker processes): SIGTERM once a sub-run is done is passed
    on to the running worker; the sweep exits 143 with the resume command, starts no further sub-run, and
    --resume keeps what finished and writes the same sweep.csv as a straight sweep."""
    flags = SWEEP_FLAGS + ["--jobs", "2"]
    flags[flags.index("--seeds") + 1] = "3"   # three sub-runs, two at a time: the third waits
    stopped, resumed = _stop_then_resume(
        tmp_path, flags, straight_sweep, lambda line: line.startswith("[sweep] normal7_seed") and line.strip().endswith(": done"),
        monkeypatch, capsys)
    assert "normal7_seed2" not in stopped   # the third sub-run never started
    assert "finished earlier, kept" in resumed
