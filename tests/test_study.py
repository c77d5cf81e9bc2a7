"""The recipe study's table: rows from finished runs, one per (case, recipe), mean ± std over seeds."""
import json
import os
import shutil

import numpy as np
import pytest

from source import study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = ["study_normal8_default_latent8_ema", "study_normal8_default_latent8_ema_seed1"]


def test_study_table_averages_seeds_from_committed_summaries(tmp_path):
    """Two committed seeds of one recipe: one row, seeds 2, each cell the mean ± std of their end values,
    the trained weights' column from dev_auroc_trained_per_score; a run without seed 0 is not listed."""
    for name in RUNS:
        os.makedirs(tmp_path / "results" / name)
        shutil.copy(os.path.join(ROOT, "study", "results", name, "summary.json"), tmp_path / "results" / name)
    ends = [json.load(open(tmp_path / "results" / n / "summary.json"))["dev_curve"][-1] for n in RUNS]
    rows = [line for line in study.table(str(tmp_path)).splitlines() if line.startswith("| normal8")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert cells[:4] == ["normal8", "default_latent8_ema", "2", "1000"]
    values = [e["dev_auroc_per_score"]["x_dgx"] for e in ends]
    mean, std = (float(v) for v in cells[4].split(" ± "))
    assert mean == pytest.approx(np.mean(values), abs=5e-4) and std == pytest.approx(np.std(values), abs=5e-4)
    trained = [e["dev_auroc_trained_per_score"]["x_dgx"] for e in ends]
    assert float(cells[9].split(" ± ")[0]) == pytest.approx(np.mean(trained), abs=5e-4)
    shutil.rmtree(tmp_path / "results" / RUNS[0])   # seeds are counted from 0: seed 1 alone is no row
    assert not [line for line in study.table(str(tmp_path)).splitlines() if line.startswith("| normal8")]


def test_run_names_and_stage_plans():
    assert study.run_name("normal8", "default_latent8_ema") == RUNS[0]
    assert study.run_name("normal8", "default_latent8_ema", 1) == RUNS[1]
    assert study.stage_plan("code_ema")[2] == 2 and study.stage_plan("one_class")[2] == 1


def test_readme_block_is_filled_with_the_stage_table(tmp_path):
    """<!-- study:code_ema --> blocks get the stage's table from the records; the text around is kept."""
    for name in RUNS:
        os.makedirs(tmp_path / "results" / name)
        shutil.copy(os.path.join(ROOT, "study", "results", name, "summary.json"), tmp_path / "results" / name)
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- study:code_ema -->\nold\n<!-- /study:code_ema -->\nafter\n")
    study.fill_readme(str(readme), str(tmp_path))
    text = readme.read_text()
    assert text.startswith("before\n<!-- study:code_ema -->\n| case |") and text.endswith("<!-- /study:code_ema -->\nafter\n")
    rows = [line for line in text.splitlines() if line.startswith("| normal8")]
    assert len(rows) == 1 and "| default_latent8_ema | 2 |" in rows[0] and "\nold\n" not in text


def test_a_damaged_summary_is_named_in_one_line(tmp_path, capsys):
    """A study run's summary.json emptied (a disk that filled): `study table` names it and exits 2."""
    name = RUNS[0]
    os.makedirs(tmp_path / "results" / name)
    (tmp_path / "results" / name / "summary.json").write_text("")
    assert study.main(["table", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"study: error: {tmp_path / 'results' / name / 'summary.json'} is damaged (Expecting "
                                f"value: line 1 column 1 (char 0)); delete it and rerun with: python run.py ... "
                                f"--name {name} --resume"]
