"""Sweeps (source.tools.sweep, source.tools.parallel): the plan of a sweep's sub-runs, its projected time, and a sweep
stopped by a signal and resumed (one process, and worker processes) ending with the straight sweep's table;
records of a sweep's sub-runs, kept when a fresh clone resumes, and the recipe rule for job-array tasks; the
table over seeds and digits (markdown, CSV and figure)."""
import csv
import dataclasses
import json
import logging
import os
import shutil
import signal

import pytest

import run
from source.tools import sweep
from source.rundir import RunDir
from source.scores import G_SCORES
from tests.conftest import SHORT, SMALL_NET, SWEEP_FLAGS, SWEEP_IN_PROCESS, Lines, assert_same_sweep_table, roots


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
    sub-run, two sub-runs), multiplies by the measured time of one iteration and divides by the number of
    workers; a sweep of fewer iterations than the measurement runs (3 + 10) is not measured or projected."""
    lines = logged.lines
    config = dataclasses.replace(SHORT, training=dataclasses.replace(SHORT.training, steps=None, epoch=2, batch=64))
    one = sweep.project(config, embedded, [(7, 0), (7, 1)], jobs=1)
    assert one["iterations"] == 24 and one["per_iteration"] > 0
    assert one["seconds"] == pytest.approx(24 * one["per_iteration"], rel=1e-12)
    assert "2 sub-runs to train, 24 iterations" in lines[0] and "(1 at a time)" in lines[0]
    assert f"at {1 / one['per_iteration']:.1f}/s measured here" in lines[0]
    two = sweep.project(config, embedded, [(7, 0), (7, 1)], jobs=2, per_iteration=0.5)
    assert two["seconds"] == 24 * 0.5 / 2 and "(2 at a time)" in lines[1] and "at 2.0/s given" in lines[1]
    tiny = dataclasses.replace(config, training=dataclasses.replace(config.training, steps=6))
    assert sweep.project(tiny, embedded, [(7, 0), (7, 1)]) == {"iterations": 12, "per_iteration": None,
                                                                           "seconds": None}
    assert "12 iterations: fewer than a measurement" in lines[2] and "no projection" in lines[2]
    assert sweep.project(config, embedded, [])["seconds"] == 0.0 and len(lines) == 3


def _stop_then_resume(tmp_path, flags, straight_sweep, stop_when, monkeypatch, capsys):
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
    assert_same_sweep_table(tmp_path / "r" / "stopped" / "sweep.csv", straight_sweep / "r" / "sweep" / "sweep.csv",
                            seeds=(0, 1))
    return stopped, resumed


def test_sweep_killed_and_resumed_matches_straight_run(straight_sweep, tmp_path, monkeypatch, capsys):
    """A one-process sweep of two sub-runs (--jobs 1: no worker process) stopped by SIGTERM right after its first
    and resumed with --resume --name writes the same sweep.csv as the straight sweep's worker processes; the
    finished sub-run is kept, not retrained."""
    flags = SWEEP_FLAGS + SWEEP_IN_PROCESS
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


def test_cli_sweep_with_baselines(tmp_path, capsys):
    """--seeds 2 --baselines on a zero-epoch budget, one sub-run after another: per-run summaries, baselines
    chart, sweep files; the second seed takes the classic detectors' results of the first (same images,
    labels and settings) instead of fitting them again, and says so."""
    code = run.main(["--epoch", "0", "--seeds", "2", "--baselines", "--data", "embedded", "--normal", "4", "--jobs", "1",
                     *SMALL_NET,
                     "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
    assert code == 0
    root = tmp_path / "r" / "embedded_normal4"
    methods = {"ADAE", "MeanImage", "PCA", "kNN", "OC-SVM", "IsolationForest", "ConvAE",
               *(f"ConvAE {name}" for name in G_SCORES[1:])}   # ConvAE's hidden-layer scores (G's encoder)
    rows = list(csv.DictReader(open(root / "sweep.csv")))
    assert {(r["seed"], r["method"]) for r in rows} == {(str(s), m) for s in (0, 1) for m in methods}
    summaries = [json.loads((root / f"normal4_seed{seed}" / "summary.json").read_text()) for seed in (0, 1)]
    for seed, summary in enumerate(summaries):
        assert set(summary["baselines"]) == methods - {"ADAE"}
        assert summary["data"]["train_normal"] == 360
        assert (root / f"normal4_seed{seed}" / "baselines.png").exists()
    classic = {m for m in methods if not m.startswith(("ADAE", "ConvAE"))}   # ConvAE depends on the seed
    assert "shared_from" not in summaries[0]["baseline_info"]
    assert summaries[1]["baseline_info"]["shared_from"] == "normal4_seed0"
    assert {m: summaries[1]["baselines"][m] for m in classic} == {m: summaries[0]["baselines"][m] for m in classic}
    assert len(os.listdir(root / sweep.SHARED_BASELINES)) == 1
    assert (root / "sweep.md").exists() and (root / "sweep.png").exists()
    out = capsys.readouterr().out
    assert "[sweep] ADAE" in out and "the same images as normal4_seed0, its results taken" in out


def test_sweep_writes_one_record_per_sub_run(straight_sweep):
    """records/sweep/ holds the sweep's config and each sub-run's summary, as finished."""
    folder = straight_sweep / "records" / "sweep"
    assert sorted(os.listdir(folder)) == ["config.json", "normal7_seed0.json", "normal7_seed1.json"]
    for seed in (0, 1):
        record = json.loads((folder / f"normal7_seed{seed}.json").read_text())
        summary = json.loads((straight_sweep / "r" / "sweep" / f"normal7_seed{seed}" / "summary.json").read_text())
        assert record == summary
    sweep_config = json.loads((folder / "config.json").read_text())
    assert sweep_config["training"]["seeds"] == 2 and sweep_config["data"]["digits"] == [7]


def test_fresh_clone_resumes_from_records_and_matches(straight_sweep, tmp_path):
    """Only the records travel (no Checkpoint/, no results/), one of them removed: --resume trains just the
    missing sub-run (here in this process, --jobs 1; the worker sweep's resume is the test above) and writes
    the same sweep.csv as the straight sweep."""
    records = tmp_path / "records"
    shutil.copytree(straight_sweep / "records", records)
    os.remove(records / "sweep" / "normal7_seed1.json")
    code = run.main(SWEEP_FLAGS + SWEEP_IN_PROCESS + roots(tmp_path) + ["--name", "sweep", "--records", str(records), "--resume"])
    assert code == 0
    assert not (tmp_path / "r" / "sweep" / "normal7_seed0").exists()   # kept from its record, not retrained
    assert (tmp_path / "r" / "sweep" / "normal7_seed1" / "summary.json").exists()
    assert (records / "sweep" / "normal7_seed1.json").exists()
    assert_same_sweep_table(tmp_path / "r" / "sweep" / "sweep.csv", straight_sweep / "r" / "sweep" / "sweep.csv")


def _part(seed, *extra):
    """run.py flags of one job-array task of the `straight` sweep (--normal 7, seed `seed`)."""
    return [f for f in SWEEP_FLAGS if f not in ("--seeds", "2")] + ["--seed", str(seed), "--part-of", "sweep",
                                                              "--threads", "1", *extra]


def test_job_array_task_counts_a_committed_record_as_finished(straight_sweep, tmp_path, capsys):
    """A fresh clone with only the records: a task resubmitted with --resume --records keeps the committed
    record (exit 0, nothing trained, no sub-run folder, the record unchanged)."""
    shutil.copytree(straight_sweep / "records", tmp_path / "records")
    before = (tmp_path / "records" / "sweep" / "normal7_seed1.json").read_text()
    assert run.main(_part(1, "--resume", "--records", str(tmp_path / "records")) + roots(tmp_path)) == 0
    assert "sweep/normal7_seed1: kept from the committed record" in capsys.readouterr().out
    assert not (tmp_path / "r" / "sweep" / "normal7_seed1").exists()
    assert (tmp_path / "records" / "sweep" / "normal7_seed1.json").read_text() == before


def test_task_with_another_recipe_is_refused_with_the_differing_settings(straight_sweep, tmp_path, capsys):
    """--part-of --resume with --steps 4 --lr 1e-3 --lr-schedule cosine where the sweep (its records) ran 3 steps
    at the default constant lr: exit 2, one line naming the three settings; nothing is written."""
    shutil.copytree(straight_sweep / "records", tmp_path / "records")
    code = run.main(_part(0, "--resume", "--records", str(tmp_path / "records"), "--steps", "4", "--lr", "1e-3",
                          "--lr-schedule", "cosine") + roots(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "another recipe than its sweep's" in err and "--lr 0.001 (sweep: 0.0002)" in err
    assert "--steps 4 (sweep: 3)" in err and "--lr-schedule cosine (sweep: constant)" in err
    assert not (tmp_path / "r").exists()


def test_started_sub_run_with_another_recipe_is_not_continued(straight_sweep, tmp_path, capsys):
    """A sub-run folder made with --steps 4 inside a sweep of --steps 3 (as if an earlier submission had
    another EXTRA): its task, resubmitted with the sweep's recipe, refuses to continue it."""
    shutil.copytree(straight_sweep / "c", tmp_path / "c")
    shutil.copytree(straight_sweep / "r", tmp_path / "r")
    config = tmp_path / "c" / "sweep" / "normal7_seed0" / "config.json"
    values = json.loads(config.read_text())
    values["training"]["steps"] = 4
    config.write_text(json.dumps(values))
    shutil.rmtree(tmp_path / "r" / "sweep" / "normal7_seed0")   # started, not finished
    assert run.main(_part(0, "--resume") + roots(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "normal7_seed0 of sweep (its checkpoint) was made with another recipe" in err and "--steps 4 (sweep: 3)" in err


def test_one_process_sweep_writes_each_record_as_its_sub_run_finishes(tmp_path, monkeypatch):
    """--jobs 1 --records: a sub-run's record is written when it finishes, not at the sweep's end, so a sweep
    that fails in its second sub-run keeps the first one's record (equal to its summary.json)."""
    from source import experiment
    calls, train_and_evaluate = [], experiment.train_and_evaluate

    def second_fails(*args, **kwargs):
        calls.append(args[3].name)
        if len(calls) == 2:
            raise RuntimeError("the second sub-run fails")
        return train_and_evaluate(*args, **kwargs)
    monkeypatch.setattr(experiment, "train_and_evaluate", second_fails)
    with pytest.raises(RuntimeError, match="the second sub-run fails"):
        run.main(["--epoch", "0", "--seeds", "2", "--data", "embedded", "--normal", "4", "--jobs", "1", *SMALL_NET,
                  "--name", "kept", "--records", str(tmp_path / "records"), *roots(tmp_path)])
    assert calls == ["normal4_seed0", "normal4_seed1"]
    record = json.loads((tmp_path / "records" / "kept" / "normal4_seed0.json").read_text())
    summary = json.loads((tmp_path / "r" / "kept" / "normal4_seed0" / "summary.json").read_text())
    assert record["metrics"] == summary["metrics"] and record["name"] == "normal4_seed0"
    assert not (tmp_path / "records" / "kept" / "normal4_seed1.json").exists()
