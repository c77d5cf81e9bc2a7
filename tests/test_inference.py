"""Scoring new images with a trained run (source.inference, --score-images): a PNG folder gives the
evaluation's scores; unreadable inputs are one line and exit 2."""
import csv
import json

import numpy as np
import pytest

import run
from tests.conftest import run_main


def test_score_png_folder_reproduces_evaluation_scores(own_copy, embedded, capsys):
    """Test images written as PNG score as in the evaluation; colour/size are converted, junk is skipped."""
    from PIL import Image
    tmp, flags = own_copy
    folder = tmp / "pngs"
    folder.mkdir()
    x_test = embedded[2]
    for i in range(5):
        Image.fromarray(x_test[i].astype(np.uint8)).save(folder / f"test_{i}.png")
    Image.fromarray(np.zeros((56, 56, 3), np.uint8)).save(folder / "colour.png")
    (folder / "junk.png").write_bytes(b"not an image")
    code, out, err = run_main(capsys, *flags, "--name", "embedded_normal1", "--score-images", str(folder))
    assert code == 0, err[-2000:]
    assert "colour.png: RGB converted to grayscale" in out and "resized from 56x56" in out
    assert "skipped: junk.png" in out
    rows = {r["file"]: r for r in csv.DictReader(open(tmp / "results" / "embedded_normal1" / "score_pngs" /
                                                       "scores.csv"))}
    assert set(rows) == {f"test_{i}.png" for i in range(5)} | {"colour.png"}
    ref = list(csv.DictReader(open(tmp / "results" / "embedded_normal1" / "scores.csv")))
    threshold = json.loads((tmp / "results" / "embedded_normal1" / "summary.json").read_text())["metrics"]["threshold"]
    for i in range(5):
        row = rows[f"test_{i}.png"]
        assert float(row["score"]) == pytest.approx(float(ref[i]["score"]), rel=1e-4)
        assert row["verdict"] == ("anomalous" if float(row["score"]) > threshold else "normal")
        valid = np.array([float(r["valid_score"]) for r in csv.DictReader(
            open(tmp / "results" / "embedded_normal1" / "valid_scores.csv"))])
        assert float(row["valid_percentile"]) == pytest.approx(
            100.0 * (valid <= float(row["score"])).mean(), abs=0.05)   # written with one decimal
    assert (tmp / "results" / "embedded_normal1" / "score_pngs" / "most_anomalous.png").exists()


def test_score_refuses_unreadable_inputs(own_copy, capsys):
    """A folder of non-images, or an array of the wrong shape: exit 2, one line, no score folder."""
    tmp, flags = own_copy
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"junk")
    np.save(tmp / "flat.npy", np.zeros(5))
    for target in (bad, tmp / "flat.npy"):
        code = run.main(flags + ["--name", "embedded_normal1", "--score", str(target)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
    assert not [p for p in (tmp / "results" / "embedded_normal1").glob("score_*") if p.is_dir()]
