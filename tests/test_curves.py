"""The figure of development and test AUROC along training (source.tools.curves): one panel per record, titled by
its recipe and case, its curves drawn at the recorded steps; a damaged or missing record refused with one
line and exit 2, no figure written."""
import json
import os

import pytest

from source import plots
from source.tools import curves
from source.config import ModelConfig, TrainingConfig
from source.datamanager import DataConfig
from source.record import RunConfig, Summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(digit, dev, test, end, final_step, protocol="anomaly", split="paper", **model):
    """A Summary of one run on `digit` whose x_dgx development (and test) AUROC along training is dev (test),
    [(step, AUROC)], and `end` at the end."""
    config = RunConfig(data=DataConfig(protocol=protocol, digits=(digit,), split=split), model=ModelConfig(**model),
                       training=TrainingConfig(steps=final_step))
    return Summary(name=f"{protocol}{digit}_seed0", config=config, data={"digit": digit},
                   metrics={"anomaly_score": "x_dgx", "threshold": 1.0, "AUROC_per_score": {"x_dgx": end}},
                   baselines={}, baseline_info={}, precision={},
                   final_epoch={"step": final_step} if final_step else None,
                   dev_curve=[{"step": s, "dev_auroc_per_score": {"x_dgx": a}} for s, a in dev],
                   test_curve=[{"step": s, "test_auroc_per_score": {"x_dgx": a}} for s, a in test],
                   timings={}, versions={}, machine={})


def written(summary, path):
    path.write_text(json.dumps(summary.to_dict()))
    return str(path)


@pytest.fixture
def drawn(monkeypatch):
    """The figures that plots closes after saving, for their axes: a list that fills as they are drawn."""
    figures, close = [], plots.plt.close
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: (figures.append(fig), close(fig)))
    return figures


def test_title_names_the_recipe_and_the_case():
    s = summary(2, [], [], 0.5, 900, objective="paper", lr=1e-5, latent=32)
    assert curves.title_of(s) == "--anomaly 2, --split paper\n--objective paper --lr 1e-05 --latent 32, 900 iterations"
    s = summary(7, [], [], 0.5, 0, protocol="normal", split="official")
    assert curves.title_of(s) == ("--normal 7, --split official\n--objective equilibrium --lr 0.0002 --latent 8, "
                                  "0 iterations")   # the default recipe, a run that did not train


def test_each_panel_draws_its_records_curves_at_their_steps(tmp_path, drawn):
    """Two records side by side: the development curve, the test curve where recorded (the second has none),
    the end value as a line, the best test value marked, log steps and AUROC from 0 to 1."""
    first = summary(1, [(10, 0.2), (100, 0.6), (1000, 0.7)], [(10, 0.3), (100, 0.8), (1000, 0.75)], 0.75, 1000)
    second = summary(2, [(10, 0.5), (200, 0.4)], [], 0.45, 200, objective="paper")
    out = tmp_path / "curves.png"
    assert curves.main([str(out), written(first, tmp_path / "a.json"), written(second, tmp_path / "b.json")]) == 0
    (fig,) = drawn
    left, right = fig.axes
    assert [ax.get_title() for ax in (left, right)] == [curves.title_of(first), curves.title_of(second)]
    assert [line.get_xydata().tolist() for line in left.lines] == \
        [[[10, 0.2], [100, 0.6], [1000, 0.7]], [[10, 0.3], [100, 0.8], [1000, 0.75]], [[0, 0.75], [1, 0.75]]]
    assert [line.get_xydata().tolist() for line in right.lines] == [[[10, 0.5], [200, 0.4]], [[0, 0.45], [1, 0.45]]]
    assert [t.get_text() for t in left.texts] == ["best test 0.800\n(step 100)", "end 0.750 "]
    assert [t.get_text() for t in right.texts] == ["end 0.450 "]
    assert all(ax.get_xscale() == "log" and ax.get_ylim() == (0, 1) for ax in (left, right))
    height, width = plots.png_size(out.read_bytes())
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and width > 1.5 * height   # one row of two panels


def test_the_readmes_figure_from_committed_records_in_two_columns(tmp_path, drawn):
    """The README's command: four committed records, --columns 2: two rows of two panels, titled by their runs
    (the paper's recipe for 20 epochs, the default for 1,000 iterations, digits 1 and 2 anomalous)."""
    records = [os.path.join(ROOT, "records", sweep, f"anomaly{digit}_seed0.json")
               for digit in (1, 2) for sweep in ("paper_recipe_paper_split", "table_anomaly_paper_split")]
    out = tmp_path / "paper_protocol_curves.png"
    assert curves.main([str(out), *records, "--columns", "2"]) == 0
    (fig,) = drawn
    paper, default = "--objective paper --lr 1e-05 --latent 32", "--objective equilibrium --lr 0.0002 --latent 8"
    assert [ax.get_title() for ax in fig.axes] == [
        f"--anomaly 1, --split paper\n{paper}, 13980 iterations",
        f"--anomaly 1, --split paper\n{default}, 1000 iterations",
        f"--anomaly 2, --split paper\n{paper}, 14180 iterations",
        f"--anomaly 2, --split paper\n{default}, 1000 iterations"]
    assert [len(ax.lines[0].get_xydata()) for ax in fig.axes] == [33, 10, 33, 10]   # the development looks
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0, 0, 1, 1]
    height, width = plots.png_size(out.read_bytes())
    assert 0.5 * width < height < width   # two rows of two panels of 4.8 x 3.6 inches


def test_a_spare_cell_of_the_grid_is_left_blank(tmp_path, drawn):
    """Three records in rows of two: the fourth cell shows no axes."""
    records = [written(summary(d, [(10, 0.5), (20, 0.6)], [], 0.6, 20), tmp_path / f"{d}.json") for d in (1, 2, 3)]
    assert curves.main([str(tmp_path / "c.png"), *records, "--columns", "2"]) == 0
    (fig,) = drawn
    assert [ax.axison for ax in fig.axes] == [True, True, True, False]


@pytest.mark.parametrize("content, says", [
    (None, "bad.json is damaged (No such file or directory)"),
    ("{\"schema\": 2, \"name\"", "bad.json is damaged ("),
    ("{\"name\": \"old\"}", "a summary of schema 1; this version reads schema 2"),   # names the schema, not the file
])
def test_a_missing_or_damaged_record_is_refused_with_one_line(tmp_path, capsys, content, says):
    good = written(summary(1, [(10, 0.5)], [], 0.5, 10), tmp_path / "good.json")
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "curves.png"
    assert curves.main([str(out), good, str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("curves: error: ") and says in err, err
    assert not out.exists()
