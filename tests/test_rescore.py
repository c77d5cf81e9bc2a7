"""Other anomaly scores from a checkpoint (source.rescore), on the development split only: the paper's score
as the training loop measured it, the ink-normalised ones against NumPy, a sweep scored once, its table."""
import json
import os

import numpy as np
import pytest

from source import experiment, rescore, solver
from source.solver import dev_auroc_of
from tests.conftest import SHORT


def test_development_aurocs_match_the_loop_and_numpy(digit1):
    """An untrained short model: x_dgx's development AUROC is the one validation_health measures; the
    ink-normalised scores are the model's x_dgx over the L2 norms of x and D(G(x)) in [0, 1]."""
    model = experiment.build_model(SHORT)
    out = rescore.development_aurocs(model, digit1)
    health = solver.validation_health(model, digit1)
    assert out["x_dgx"] == health["dev_auroc_per_score"]["x_dgx"]
    assert out["x_dx"] == health["dev_auroc_per_score"]["x_dx"]

    def relative(x):
        s = model.run_scores(x)["x_dgx"]
        dgx = model.reconstruct(x)["D(G(x))"]
        return s / (np.linalg.norm(x.reshape(len(x), -1), axis=1) + np.linalg.norm(dgx.reshape(len(x), -1), axis=1))
    expected = dev_auroc_of(relative(digit1.x_valid), relative(digit1.x_dev_anomalous))
    assert out["x_dgx / (‖x‖ + ‖D(G(x))‖)"] == pytest.approx(expected, abs=1e-9)
    ink = dev_auroc_of(-np.linalg.norm(digit1.x_valid.reshape(len(digit1.x_valid), -1), axis=1),
                       -np.linalg.norm(digit1.x_dev_anomalous.reshape(len(digit1.x_dev_anomalous), -1), axis=1))
    assert out["−‖x‖, ink alone"] == pytest.approx(ink, abs=1e-9)
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
    assert set(rows[0]["dev_auroc"]) == set(rescore.RESCORES)
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
