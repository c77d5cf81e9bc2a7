"""Tables that last: committed records, a sweep resumed from them on a fresh clone, job-array sub-runs
(--part-of) collected into the same table as a straight sweep, README tables generated from records."""
import json
import os
import shutil
import subprocess

import pytest

import run
from source import collect, tables
from tests.conftest import SWEEP_FLAGS, SWEEP_WORKERS, assert_same_sweep_table, roots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS, WORKERS, _roots = SWEEP_FLAGS, SWEEP_WORKERS, roots


@pytest.fixture
def straight(straight_sweep):
    """The suite's straight two-seed sweep with records (conftest.straight_sweep)."""
    return straight_sweep


def test_sweep_writes_one_record_per_sub_run(straight):
    """records/sweep/ holds the sweep's config and each sub-run's summary, as finished."""
    folder = straight / "records" / "sweep"
    assert sorted(os.listdir(folder)) == ["config.json", "normal7_seed0.json", "normal7_seed1.json"]
    for seed in (0, 1):
        record = json.loads((folder / f"normal7_seed{seed}.json").read_text())
        summary = json.loads((straight / "r" / "sweep" / f"normal7_seed{seed}" / "summary.json").read_text())
        assert record == summary
    sweep_config = json.loads((folder / "config.json").read_text())
    assert sweep_config["training"]["seeds"] == 2 and sweep_config["data"]["digits"] == [7]


def test_fresh_clone_resumes_from_records_and_matches(straight, tmp_path):
    """Only the records travel (no Checkpoint/, no results/), one of them removed: --resume trains just the
    missing sub-run and writes the same sweep.csv as the straight sweep."""
    records = tmp_path / "records"
    shutil.copytree(straight / "records", records)
    os.remove(records / "sweep" / "normal7_seed1.json")
    code = run.main(FLAGS + WORKERS + _roots(tmp_path) + ["--name", "sweep", "--records", str(records), "--resume"])
    assert code == 0
    assert not (tmp_path / "r" / "sweep" / "normal7_seed0").exists()   # kept from its record, not retrained
    assert (tmp_path / "r" / "sweep" / "normal7_seed1" / "summary.json").exists()
    assert (records / "sweep" / "normal7_seed1.json").exists()
    assert_same_sweep_table(tmp_path / "r" / "sweep" / "sweep.csv", straight / "r" / "sweep" / "sweep.csv")


def test_job_array_parts_collect_into_the_straight_table(straight, tmp_path, capsys):
    """Each seed run alone with --part-of (as SLURM array tasks would, one thread as the straight sweep's
    workers), then collected: the same sweep.csv."""
    for seed in ("1", "0"):   # any order (run in this process: tests/test_slurm.py runs them as real array tasks)
        flags = [f for f in FLAGS if f not in ("--seeds", "2")] + ["--seed", seed, "--part-of", "sweep",
                                                                   "--threads", "1"]
        assert run.main(flags + _roots(tmp_path)) == 0
    assert collect.main(["sweep", "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]) == 0
    assert_same_sweep_table(tmp_path / "r" / "sweep" / "sweep.csv", straight / "r" / "sweep" / "sweep.csv")
    assert (tmp_path / "r" / "sweep" / "report.md").exists() and (tmp_path / "r" / "sweep" / "sweep.png").exists()
    capsys.readouterr()
    again = [f for f in FLAGS if f not in ("--seeds", "2")] + ["--part-of", "sweep"]
    assert run.main(again + _roots(tmp_path)) == 2
    assert "exists; add --resume" in capsys.readouterr().err


def test_collect_without_sub_runs_fails_cleanly(tmp_path, capsys):
    assert collect.main(["nothing", "--results", str(tmp_path)]) == 2
    assert "no finished sub-run" in capsys.readouterr().err


def test_readme_tables_come_from_records(straight, tmp_path):
    """The marked block is replaced by the table of the records: one row per digit with each method's mean
    AUROC over seeds, equal to the records' own numbers."""
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- table:sweep -->\nold\n<!-- /table:sweep -->\nafter\n")
    assert tables.main(["--records", str(straight / "records"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("before\n<!-- table:sweep -->\n`python run.py") and text.endswith("<!-- /table:sweep -->\nafter\n")
    assert "\nold\n" not in text and "2 sub-runs" in text
    records = [json.loads((straight / "records" / "sweep" / f"normal7_seed{s}.json").read_text()) for s in (0, 1)]
    row = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| 7 |")).split("|")]
    header = [c.strip() for c in next(line for line in text.splitlines() if line.startswith("| digit |")).split("|")]
    mean_image = sum(r["baselines"]["MeanImage"]["AUROC"] for r in records) / 2
    assert float(row[header.index("MeanImage")].strip("*")) == pytest.approx(mean_image, abs=5e-4)
    x_dgx = sum(r["metrics"]["AUROC_per_score"]["x_dgx"] for r in records) / 2
    column = next(i for i, h in enumerate(header) if h.startswith("ADAE x_dgx"))
    assert float(row[column].strip("*")) == pytest.approx(x_dgx, abs=5e-4)


def test_configs_take_their_owners_defaults_and_round_trip():
    """ModelConfig() is the paper network's recipe, the reference network's fields left open take its own,
    and a flag given wins; a RunConfig and a Summary survive JSON unchanged (tuples included)."""
    from source.config import ARCH_DEFAULTS, ModelConfig
    from source.record import RunConfig, Summary
    assert {k: getattr(ModelConfig(), k) for k in ARCH_DEFAULTS["paper"]} == ARCH_DEFAULTS["paper"]
    reference = ModelConfig(arch="reference", lr=3e-4)
    assert reference.lr == 3e-4 and reference.gamma == ARCH_DEFAULTS["reference"]["gamma"] == 0.5
    args = run.parse_args(["--arch", "reference", "--anomaly", "3", "--seeds", "2", "--widths", "8,16"])
    config = RunConfig.from_flags(args, "python run.py")
    assert config.model.arch == "reference" and config.model.widths == (8, 16) and config.training.batch == 32
    assert config.data.protocol == "anomaly" and config.data.digits == (3,) and config.runs() == [(3, 0), (3, 1)]
    assert config.one(3, 1).runs() == [(3, 1)]
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    summary = Summary(name="x", config=config.one(3, 1), data={"digit": 3}, metrics={"anomaly_score": "x_dgx",
                      "threshold": 1.5, "AUROC": 0.9}, baselines={"PCA": {"AUROC": 0.8}}, baseline_info={},
                      precision={}, final_epoch=None, dev_curve=[], timings={}, versions={}, machine={"cpu": "c"})
    back = Summary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert back == summary and back.seed == 1 and back.digit == 3 and back.threshold == 1.5
    assert [m for m, _ in back.methods()] == ["ADAE (x_dgx)", "PCA"]


def test_a_record_of_an_older_schema_is_refused_with_one_line(tmp_path, capsys):
    """--resume of a run whose config.json has the flat layout of schema 1: exit 2, one line naming the schema."""
    folder = tmp_path / "c" / "old"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"arch": "paper", "lr": 2e-4}))
    code = run.main(["--data", "embedded", "--name", "old", "--resume", "--results", str(tmp_path / "r"),
                     "--logdir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "schema 1" in err, err


def _part(seed, *extra):
    """run.py flags of one job-array task of the `straight` sweep (--normal 7, seed `seed`)."""
    return [f for f in FLAGS if f not in ("--seeds", "2")] + ["--seed", str(seed), "--part-of", "sweep",
                                                              "--threads", "1", *extra]


def test_job_array_task_counts_a_committed_record_as_finished(straight, tmp_path, capsys):
    """A fresh clone with only the records: a task resubmitted with --resume --records keeps the committed
    record (exit 0, nothing trained, no sub-run folder, the record unchanged)."""
    shutil.copytree(straight / "records", tmp_path / "records")
    before = (tmp_path / "records" / "sweep" / "normal7_seed1.json").read_text()
    assert run.main(_part(1, "--resume", "--records", str(tmp_path / "records")) + _roots(tmp_path)) == 0
    assert "sweep/normal7_seed1: kept from the committed record" in capsys.readouterr().out
    assert not (tmp_path / "r" / "sweep" / "normal7_seed1").exists()
    assert (tmp_path / "records" / "sweep" / "normal7_seed1.json").read_text() == before


def test_task_with_another_recipe_is_refused_with_the_differing_settings(straight, tmp_path, capsys):
    """--part-of --resume with --steps 4 --lr 1e-3 where the sweep (its records) ran 3 steps at the default lr:
    exit 2, one line naming both settings; nothing is written."""
    shutil.copytree(straight / "records", tmp_path / "records")
    code = run.main(_part(0, "--resume", "--records", str(tmp_path / "records"), "--steps", "4", "--lr", "1e-3")
                    + _roots(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "another recipe than its sweep's" in err and "--lr 0.001 (sweep: 0.0002)" in err
    assert "--steps 4 (sweep: 3)" in err
    assert not (tmp_path / "r").exists()


def test_started_sub_run_with_another_recipe_is_not_continued(straight, tmp_path, capsys):
    """A sub-run folder made with --steps 4 inside a sweep of --steps 3 (as if an earlier submission had
    another EXTRA): its task, resubmitted with the sweep's recipe, refuses to continue it."""
    shutil.copytree(straight / "c", tmp_path / "c")
    shutil.copytree(straight / "r", tmp_path / "r")
    config = tmp_path / "c" / "sweep" / "normal7_seed0" / "config.json"
    values = json.loads(config.read_text())
    values["training"]["steps"] = 4
    config.write_text(json.dumps(values))
    shutil.rmtree(tmp_path / "r" / "sweep" / "normal7_seed0")   # started, not finished
    assert run.main(_part(0, "--resume") + _roots(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "normal7_seed0 of sweep (its checkpoint) was made with another recipe" in err and "--steps 4 (sweep: 3)" in err


def test_collect_refuses_a_sub_run_of_another_recipe(straight, tmp_path, capsys):
    """One sub-run's summary claims another batch: collect exits 2 naming it, and writes no table."""
    shutil.copytree(straight / "r", tmp_path / "r")
    shutil.copytree(straight / "c", tmp_path / "c")
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


def test_collected_report_names_its_own_command_and_links_only_what_exists(straight, tmp_path):
    """Collected from the records alone: report.md quotes the collect command, lists each sub-run with the
    command that made it, and links no report that is not there."""
    assert collect.main(["sweep", "--results", str(tmp_path / "r"), "--records", str(straight / "records")]) == 0
    report = (tmp_path / "r" / "sweep" / "report.md").read_text()
    assert "`python -m source.collect sweep --results r --records records`" in report
    assert "](normal7_seed0/report.md)" not in report and "normal7_seed0 (committed record)" in report
    assert "--seed 0" not in report.split("## Runs")[0]


@pytest.mark.parametrize("case", ["no_tensorflow", "not_the_root"])
def test_slurm_job_environment_fails_with_one_line(tmp_path, case):
    """slurm/env.sh, which every job script sources: no Python with TensorFlow, or a working directory that is
    not the repository, is one line and exit 2 (not an import error in every task)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text("#!/bin/sh\nexit 1\n")   # a python that cannot import TensorFlow
    (fake_bin / "python").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "ADAE_VENV": str(tmp_path / "no_venv"),
           "ADAE_ROOT": ROOT if case == "no_tensorflow" else str(tmp_path)}
    out = subprocess.run(["bash", "-c", f". {os.path.join(ROOT, 'slurm', 'env.sh')}; echo reached"], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "reached" not in out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
    assert ("no Python environment with TensorFlow" if case == "no_tensorflow" else "not the repository root") \
        in out.stderr


def test_table_shows_the_best_test_reading_beside_the_end_value(straight, tmp_path):
    """Records with a test curve get a best-test column (the curve's maximum, mean over seeds), never bold;
    the paper's protocol adds the mean over the digits whose published figure is known."""
    from source.record import Summary
    summaries = {name: s for name, s in tables.RecordDir(str(straight / "records"), "sweep").summaries().items()}
    for i, s in enumerate(summaries.values()):
        s.test_curve = [{"step": 1, "test_auroc_per_score": {k: 0.5 + 0.1 * i for k in s.metrics["AUROC_per_score"]}},
                        {"step": 3, "test_auroc_per_score": dict(s.metrics["AUROC_per_score"])}]
    markdown, n, _ = tables.table(summaries, "normal")
    header, _, row = markdown.splitlines()[:3]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    column = [c.strip() for c in header.split("|")[1:-1]].index(f"ADAE x_dgx, {tables.BEST_TEST}")
    expected = sum(max(0.5 + 0.1 * i, s.metrics["AUROC_per_score"]["x_dgx"]) for i, s in enumerate(summaries.values())) / 2
    assert float(cells[column]) == pytest.approx(expected, abs=5e-4) and "**" not in cells[column]
    # as the paper's protocol on digits 1 (published 0.821) and 3 (no published figure)
    anomaly = {k: Summary.from_dict(dict(s.to_dict(), data=dict(s.data, digit=d)))
               for d, (k, s) in zip((1, 3), summaries.items())}
    lines = tables.table(anomaly, "anomaly")[0].splitlines()
    assert lines[-2].startswith("| mean of 2 digits |") and lines[-2].rstrip(" |").endswith("0.858 (10 digits)")
    assert lines[-1].startswith("| mean of 1 |") and lines[-1].rstrip(" |").endswith("0.821")
    # digits 1 and 2, both published: the mean row sets the paper's mean of those two beside ours, once
    both = {k: Summary.from_dict(dict(s.to_dict(), data=dict(s.data, digit=d)))
            for d, (k, s) in zip((1, 2), summaries.items())}
    lines = tables.table(both, "anomaly")[0].splitlines()
    assert lines[-1].startswith("| mean of 2 digits |") and lines[-1].rstrip(" |").endswith(f"{(0.821 + 0.948) / 2:.3f}")


def test_tables_fill_several_files_and_refuse_a_table_without_markers(straight, tmp_path, capsys):
    """--readme with two files fills each with the blocks it marks; a records folder marked in none is one
    line and exit 2, and no file is rewritten."""
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("<!-- table:sweep -->\nold\n<!-- /table:sweep -->\n")
    b.write_text("nothing marked\n")
    assert tables.main(["--records", str(straight / "records"), "--readme", str(a), str(b)]) == 0
    assert "2 sub-runs" in a.read_text() and b.read_text() == "nothing marked\n"
    a.write_text("unmarked\n")
    assert tables.main(["--records", str(straight / "records"), "--readme", str(a), str(b)]) == 2
    assert "has <!-- table:sweep --> markers" in capsys.readouterr().err and a.read_text() == "unmarked\n"
