"""Every score from a checkpoint (source.tools.rescore), on the development split only: each as the training loop
measured it, the two fixed halves of the development images, a sweep scored once, its table."""
import json
import os

import numpy as np
import pytest

from source import evaluation, experiment
from source.tools import rescore
from source.evaluation import dev_auroc_of
from source.scores import PAIRS, SCORE_NAMES
from tests.conftest import SHORT


def test_development_aurocs_match_the_loop_and_the_halves(digit1):
    """An untrained short model: every score's development AUROC (the fitted ones fitted on training normals)
    is the one a fitting look of the training loop measures; the two halves split the validation normals and
    the development anomalies into disjoint fixed parts, and each half's AUROC is that of its images."""
    model = experiment.build_model(SHORT)
    out = rescore.development_aurocs(model, digit1, halves=True)
    health = evaluation.validation_health(model, digit1, fit=True)
    assert set(out["all"]) == set(SCORE_NAMES)
    assert out["all"] == pytest.approx(health["dev_auroc_per_score"], abs=1e-12)
    parts = evaluation.development_halves(len(digit1.x_valid), len(digit1.x_dev_anomalous))
    (va, da), (vb, db) = parts["a"], parts["b"]
    assert not set(va) & set(vb) and len(va) + len(vb) == len(digit1.x_valid)
    assert not set(da) & set(db) and len(da) + len(db) == len(digit1.x_dev_anomalous)
    valid, dev = model.run_scores(digit1.x_valid), model.run_scores(digit1.x_dev_anomalous)
    for half, (iv, ia) in parts.items():
        assert out[half]["x_dgx"] == pytest.approx(dev_auroc_of(valid["x_dgx"][iv], dev["x_dgx"][ia]), abs=1e-12)
    again = evaluation.development_halves(len(digit1.x_valid), len(digit1.x_dev_anomalous))
    assert again["a"][0].tolist() == va.tolist()
    model.close()


def test_a_sweep_is_rescored_once_and_tabled(straight_sweep, embedded, tmp_path, capsys):
    """Each finished sub-run of the straight sweep gets one file with its digit, seed and a development AUROC
    per score (seed 1 alone first, asked by seed, then the one left); a further call scores nothing; the table's
    digit row is the mean ± std over the two seeds."""
    from source.rundir import RunDir
    sweep = RunDir(str(straight_sweep / "c"), str(straight_sweep / "r"), "sweep")
    out = tmp_path / "rescore"
    assert rescore.rescore_sweep(embedded, sweep, str(out), seeds=[1]) == ["normal7_seed1"]
    assert rescore.rescore_sweep(embedded, sweep, str(out)) == ["normal7_seed0"]
    assert rescore.rescore_sweep(embedded, sweep, str(out)) == []
    rows = [json.loads((out / "sweep" / f"normal7_seed{s}.json").read_text()) for s in (0, 1)]
    assert [(r["digit"], r["seed"], r["half_seed"]) for r in rows] == [(7, 0, rescore.HALF_SEED), (7, 1, rescore.HALF_SEED)]
    assert all(set(rows[0]["dev_auroc"][h]) == set(SCORE_NAMES) for h in ("all", "a", "b"))
    # each encoder layer alone: the code layer's distance is the code score, the input layer's the pixel error
    layers = rows[0]["dev_auroc_layers"]["all"]
    n_layers = len(SHORT.model.widths) + 2
    assert set(layers) == {f"{pair} L{i}" for pair in PAIRS for i in range(n_layers)}
    for pair in PAIRS:
        assert layers[f"{pair} L{n_layers - 1}"] == pytest.approx(rows[0]["dev_auroc"]["all"][f"code_{pair}"], abs=1e-9)
    assert layers["g_x_gx L0"] == pytest.approx(rows[0]["dev_auroc"]["all"]["x_gx"], abs=1e-9)
    layer_lines = rescore.layer_table(str(out / "sweep")).splitlines()
    mean_l0 = np.mean([r["dev_auroc_layers"]["all"]["d_x_dx L0"] for r in rows])
    assert layer_lines[2].startswith("| 7 | 2 |") and f"{mean_l0:.3f}" in layer_lines[2]
    # the paper's score as the sub-run's own last development look measured it
    summary = sweep.sub("normal7_seed0").read_summary()
    assert rows[0]["dev_auroc"]["all"]["x_dgx"] == pytest.approx(summary.final_epoch["dev_auroc"], abs=1e-6)
    lines = rescore.table(str(out / "sweep")).splitlines()
    values = [r["dev_auroc"]["all"]["x_dgx"] for r in rows]
    assert lines[2].split("|")[3].strip() == f"{np.mean(values):.3f} ± {np.std(values):.3f}"
    doc = tmp_path / "study.md"
    doc.write_text("a\n<!-- rescore:sweep -->\nold\n<!-- /rescore:sweep -->\n"
                   "<!-- rescore:sweep_choice -->\nold\n<!-- /rescore:sweep_choice -->\nb\n")
    assert rescore.main(["--out", str(out), "--readme", str(doc)]) == 0
    assert "old" not in doc.read_text() and lines[2] in doc.read_text()
    assert rescore.choice_table(str(out / "sweep")) in doc.read_text()
    assert os.path.basename(rows[0]["checkpoint"]).startswith("model.ckpt-")


def test_the_choice_is_made_on_half_a_and_measured_on_half_b(tmp_path):
    """Two digits, two seeds: the chosen score is the one with the best mean over digits and seeds on half a,
    even where another is best on half b or on all the images; the table marks it and shows its half-b mean;
    files without halves (written before them) are tabled but give no choice."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    values = {"a": {"x_dgx": 0.6, "sap_g_x_gx": 0.7}, "b": {"x_dgx": 0.9, "sap_g_x_gx": 0.65},
              "all": {"x_dgx": 0.75, "sap_g_x_gx": 0.68}}
    for digit in (1, 2):
        for seed in (0, 1):
            shift = 0.01 * digit + 0.02 * seed
            dev = {h: {n: v + shift for n, v in d.items()} for h, d in values.items()}
            (folder / f"anomaly{digit}_seed{seed}.json").write_text(json.dumps(
                {"digit": digit, "seed": seed, "dev_auroc": dev}))
    rows = rescore.read_rows(str(folder))
    best, a, b = rescore.choice(rows)
    assert best == "sap_g_x_gx"
    assert a["sap_g_x_gx"] == pytest.approx(0.7 + 0.015 + 0.01) and b["sap_g_x_gx"] == pytest.approx(0.65 + 0.025)
    line = next(l for l in rescore.choice_table(str(folder)).splitlines() if "sap_g_x_gx" in l)
    assert line.startswith("| **sap_g_x_gx** |") and line.endswith(f"| **{a['sap_g_x_gx']:.3f}** | {b['sap_g_x_gx']:.3f} |")
    for f in folder.iterdir():   # an older file: flat, all the development images only
        row = json.loads(f.read_text())
        f.write_text(json.dumps(dict(row, dev_auroc=row["dev_auroc"]["all"])))
    assert rescore.choice(rescore.read_rows(str(folder))) is None
    assert "x_dgx" in rescore.table(str(folder))
