"""Every score from a checkpoint (source.rescore), on the development split only: each as the training loop
measured it, the two fixed halves of the development images, a sweep scored once, its table."""
import json
import os

import numpy as np
import pytest

from source import evaluation, experiment, rescore
from source.evaluation import dev_auroc_of
from source.scores import SCORE_NAMES
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
    parts = rescore.development_halves(len(digit1.x_valid), len(digit1.x_dev_anomalous))
    (va, da), (vb, db) = parts["a"], parts["b"]
    assert not set(va) & set(vb) and len(va) + len(vb) == len(digit1.x_valid)
    assert not set(da) & set(db) and len(da) + len(db) == len(digit1.x_dev_anomalous)
    valid, dev = model.run_scores(digit1.x_valid), model.run_scores(digit1.x_dev_anomalous)
    for half, (iv, ia) in parts.items():
        assert out[half]["x_dgx"] == pytest.approx(dev_auroc_of(valid["x_dgx"][iv], dev["x_dgx"][ia]), abs=1e-12)
    assert rescore.development_halves(len(digit1.x_valid), len(digit1.x_dev_anomalous))["a"][0].tolist() == va.tolist()
    model.close()


def test_a_sweep_is_rescored_once_and_tabled(straight_sweep, embedded, tmp_path, capsys):
    """Each finished sub-run of the straight sweep gets one file with its digit, seed and a development AUROC
    per score; a second call scores nothing; the table's digit row is the mean ± std over the two seeds."""
    from source.rundir import RunDir
    sweep = RunDir(str(straight_sweep / "c"), str(straight_sweep / "r"), "sweep")
    out = tmp_path / "rescore"
    assert rescore.rescore_sweep(embedded, sweep, str(out)) == ["normal7_seed0", "normal7_seed1"]
    assert rescore.rescore_sweep(embedded, sweep, str(out)) == []
    rows = [json.loads((out / "sweep" / f"normal7_seed{s}.json").read_text()) for s in (0, 1)]
    assert [(r["digit"], r["seed"]) for r in rows] == [(7, 0), (7, 1)]
    assert set(rows[0]["dev_auroc"]) == set(SCORE_NAMES)
    # the paper's score as the sub-run's own last development look measured it
    summary = sweep.sub("normal7_seed0").read_summary()
    assert rows[0]["dev_auroc"]["x_dgx"] == pytest.approx(summary.final_epoch["dev_auroc"], abs=1e-6)
    lines = rescore.table(str(out / "sweep")).splitlines()
    values = [r["dev_auroc"]["x_dgx"] for r in rows]
    assert lines[2].split("|")[3].strip() == f"{np.mean(values):.3f} ± {np.std(values):.3f}"
    doc = tmp_path / "study.md"
    doc.write_text("a\n<!-- rescore:sweep -->\nold\n<!-- /rescore:sweep -->\nb\n")
    assert rescore.main(["--out", str(out), "--readme", str(doc)]) == 0
    assert "old" not in doc.read_text() and lines[2] in doc.read_text()
    assert os.path.basename(rows[0]["checkpoint"]).startswith("model.ckpt-")
