"""The recipe study's table: rows from finished runs, one per (case, recipe), mean ± std over seeds."""
import json
import os
import shutil

import numpy as np
import pytest

from source.tools import study

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


def test_budget_rescoring_of_every_checkpoint_and_the_selection_rule(embedded, tmp_path, monkeypatch):
    """A short study run with two kept checkpoints (steps 2 and 4): each is rescored once (a second call
    scores nothing new) with every score on all the development images and on both fixed halves, with the
    moving average and the trained weights; the budget table reads the checkpoint nearest each budget; the
    best-look candidate is the eligible step with the best half-a AUROC, reported on half b, and a step before
    the warm-up is never chosen."""
    import dataclasses
    from source import experiment
    from source.scores import SCORE_NAMES
    from tests.conftest import SHORT
    config = dataclasses.replace(
        SHORT, model=dataclasses.replace(SHORT.model, ema=0.9),
        training=dataclasses.replace(SHORT.training, epoch=2, steps=None, batch=180, keep_checkpoints=5)).one(1, 0)
    name = study.run_name("anomaly1_paper", "default_ema_8k")
    experiment.train_and_evaluate(config, embedded, {"name": "embedded", "reason": "test"}, study.study_run(str(tmp_path), name))
    monkeypatch.setattr(study, "stage_plan", lambda stage: (["anomaly1_paper"], ["default_ema_8k"], 1))
    monkeypatch.setattr(study, "RESCORE_EVERY", 2)   # every checkpoint of this short run
    assert study.rescored_stage(str(tmp_path), "budget", embedded, only_cases=["normal8"]) == {}   # not this case
    found = study.rescored_stage(str(tmp_path), "budget", embedded)
    (run_out,), = found.values()
    assert sorted(run_out["steps"], key=int) == ["2", "4"]
    point = run_out["steps"]["4"]
    assert set(point["scoring"]["all"]) == set(SCORE_NAMES) and set(point["scoring"]) == {"all", "a", "b"}
    assert "nap_g_x_gx" not in point["trained"]["all"] and "x_dgx" in point["trained"]["a"]
    summary = study.study_run(str(tmp_path), name).read_summary()   # the last checkpoint is the run's model
    assert point["scoring"]["all"]["x_dgx"] == pytest.approx(summary.final_epoch["dev_auroc"], abs=1e-9)
    before = json.loads((tmp_path / "rescore_budget" / f"{name}.json").read_text())
    assert study.rescored_stage(str(tmp_path), "budget", embedded)[("anomaly1_paper", "default_ema_8k")] == [before]
    monkeypatch.setattr(study, "WARM_UP", 3)
    cands = study.selection_candidates(run_out, "x_dgx")
    assert cands["best half-a look after warm-up"] == (4, point["scoring"]["a"]["x_dgx"], point["scoring"]["b"]["x_dgx"])
    assert cands["last trained weights"] == (4, point["trained"]["a"]["x_dgx"], point["trained"]["b"]["x_dgx"])
    monkeypatch.setattr(study, "WARM_UP", 5)
    assert "best half-a look after warm-up" not in study.selection_candidates(run_out, "x_dgx")
    monkeypatch.setattr(study, "BUDGETS", (2, 4))
    rows = [line for line in study.budget_table(found).splitlines() if line.startswith("| anomaly1_paper")]
    assert [r.split("|")[4].strip() for r in rows] == ["2 (2)", "4 (4)"]
    assert f"{point['scoring']['all']['x_dgx']:.3f}" in rows[1]


def test_the_rescoring_reads_one_checkpoint_per_700_iterations_each_budget_and_the_last():
    """Paper-protocol epochs (699 iterations): every kept checkpoint; one-class epochs (92): the one nearest each
    multiple of 700 and each budget, and the last; none kept, none read."""
    paper = [699 * k for k in range(1, 12)] + [8000]
    assert study.rescored_steps(paper) == paper
    one_class = [92 * k for k in range(1, 87)] + [8000]
    chosen = study.rescored_steps(one_class)
    assert chosen == sorted(set(chosen)) and chosen[-1] == 8000 and {1012, 2024, 3956} <= set(chosen)
    assert all(abs(min(chosen, key=lambda s: abs(s - t)) - t) <= 46 for t in range(700, 8001, 700))
    assert len(chosen) == 15   # 11 multiples of 700 (up to 7,700), the budgets 1,000, 2,000, 4,000 and 8,000 (the last)
    assert study.rescored_steps([]) == []


def _rescored_run(name, steps):
    """A rescore_checkpoints output by hand: steps {step: (scoring half a, half b, trained half a, half b)} of
    x_dgx; the trained weights' only where given."""
    out = {"run": name, "steps": {}}
    for step, (a, b, ta, tb) in steps.items():
        trained = {"a": {"x_dgx": ta}, "b": {"x_dgx": tb}} if ta is not None else {"a": {}, "b": {}}
        out["steps"][str(step)] = {"scoring": {"a": {"x_dgx": a}, "b": {"x_dgx": b}}, "trained": trained}
    return out


def test_the_selection_rule_takes_the_best_half_b_mean_and_the_simpler_within_the_tie():
    """Over every run: the candidates' half-b means (a look before the warm-up never chosen, though its half a
    is the best); the highest wins by more than TIE; within TIE the order is moving average, trained weights,
    best look; a candidate missing on one run is not compared; the table shows every run, each recipe, and each
    recipe on the cases and seeds every recipe has finished."""
    one = _rescored_run("r1", {500: (0.99, 0.99, None, None), 1000: (0.6, 0.7, None, None), 2000: (0.5, 0.6, 0.55, 0.65)})
    two = _rescored_run("r2", {1000: (0.8, 0.8, None, None), 2000: (0.7, 0.75, 0.7, 0.74)})
    choice, means = study.rule_choice([one, two], "x_dgx")
    assert means == pytest.approx({"last trained weights": 0.695, "moving average, last step": 0.675,
                                   "best half-a look after warm-up": 0.75}, abs=1e-12)
    assert choice == "best half-a look after warm-up"
    near = _rescored_run("r3", {1000: (0.9, 0.809, None, None), 2000: (0.8, 0.8, 0.8, 0.805)})
    assert study.rule_choice([near], "x_dgx")[0] == "moving average, last step"   # 0.809 is within 0.01 of 0.8
    alone = _rescored_run("r4", {1000: (0.9, 0.7, None, None), 2000: (0.8, 0.6, 0.8, 0.695)})
    assert study.rule_choice([alone], "x_dgx")[0] == "last trained weights"   # 0.695 ties 0.7 and is simpler
    short = _rescored_run("r5", {500: (0.9, 0.9, None, None), 800: (0.8, 0.5, None, None)})   # no look after warm-up
    choice, means = study.rule_choice([one, short], "x_dgx")
    assert set(means) == {"moving average, last step"} and choice == "moving average, last step"
    assert study.rule_choice([], "x_dgx") == (None, {})
    table = study.rule_table({("anomaly1_paper", "rA"): [one], ("anomaly7_paper", "rB"): [two]}, names=("x_dgx",))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]
    assert rows == [["every run", "2", "x_dgx", "0.695", "0.675", "0.750", "best half-a look after warm-up"],
                    ["rA", "1", "x_dgx", "0.650", "0.600", "0.700", "best half-a look after warm-up"],
                    ["rB", "1", "x_dgx", "0.740", "0.750", "0.800", "best half-a look after warm-up"]]
    # recipes compared on the cases and seeds both have finished: rA's digit 7 and seed 1 have no rB partner
    seven, seed1 = dict(two, run="r_seed1"), dict(near, run="r_seed1")
    table = study.rule_table({("anomaly1_paper", "rA"): [one, seed1], ("anomaly7_paper", "rA"): [seven],
                              ("anomaly1_paper", "rB"): [two]}, names=("x_dgx",))
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]]
    assert [r[:4] for r in rows] == [["every run", "4", "x_dgx", "0.734"], ["rA", "3", "x_dgx", "0.732"],
                                     ["rB", "1", "x_dgx", "0.740"], ["rA, paired", "1", "x_dgx", "0.650"],
                                     ["rB, paired", "1", "x_dgx", "0.740"]]
    assert study.seed_of({"run": "study_normal8_default_ema_8k_seed1"}) == 1
    assert study.seed_of({"run": "study_normal8_default_ema_8k"}) == 0


def test_a_stopped_study_run_resumes_and_one_stopped_before_its_checkpoint_is_named(tmp_path, monkeypatch, capsys):
    """`study run` over four runs of a stage: two never started (their run.py commands, no --resume), one stopped
    after a checkpoint (its command with --resume, so the run keeps its name), one whose folders exist with no
    checkpoint (not started again: run.py would give it another name; one line says what to remove)."""
    started = []
    monkeypatch.setattr(study.subprocess, "run", lambda cmd, **kw: started.append(cmd) or
                        type("Done", (), {"returncode": 0})())
    root = tmp_path / "study"
    stopped = study.run_name("anomaly2_paper", "default_ema_cosine_8k", 1)
    early = study.run_name("anomaly9_paper", "default_ema_8k", 1)
    os.makedirs(root / "Checkpoint" / stopped)   # a checkpoint's loop state, as the training loop writes beside it
    (root / "Checkpoint" / stopped / "state.json").write_text("{}")
    os.makedirs(root / "results" / early)
    study.run_study("mnist.npz", 1000, "budget", str(root), 1, only_cases=["anomaly2_paper", "anomaly9_paper"],
                    only_seeds=[1])
    by_name = {cmd[cmd.index("--name") + 1]: cmd for cmd in started}
    fresh = [study.run_name("anomaly2_paper", "default_ema_8k", 1),
             study.run_name("anomaly9_paper", "default_ema_cosine_8k", 1)]
    assert sorted(by_name) == sorted(fresh + [stopped])
    assert all("--resume" not in by_name[name] for name in fresh)
    assert by_name[stopped][-1] == "--resume" and by_name[stopped].count("--resume") == 1
    assert by_name[stopped][:-1][-len(study.RECIPES["default_ema_cosine_8k"]):] == \
        study.RECIPES["default_ema_cosine_8k"]   # the recipe's own flags, as when it started
    out = capsys.readouterr().out
    assert f"[study] {early}: stopped before its first checkpoint; remove" in out and early not in by_name
