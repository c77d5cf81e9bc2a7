"""The command line end to end (run.py): every artifact, metrics last, no overwrites, bad input exits 2,
interrupt and resume, --test-only, seeds, the --steps budget, the flags table."""
import csv
import glob
import json
import os
import signal

import numpy as np
import pytest

import run
from source.flags import build_parser
from source.rundir import RunDir
from source.scores import SCORE_NAMES
from tests.conftest import GRIDS, SHORT, SMALL_NET, assert_same_scores, flags_under, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = ["summary.json", "scores.csv", "box_plot.png", "roc_curve.png", "pr_curve.png",
             "score_histogram.png", "loss_curves.png", "restoration/epoch_0001.png", "restoration/epoch_0002.png"]


def test_run_writes_every_artifact(e2e):
    """results/<run>/ holds summary, scores, all figures, the four grids and one restoration per epoch."""
    tmp, proc, _ = e2e
    run_dir = tmp / "results" / "embedded_normal1"
    for name in ARTIFACTS:
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["figures"]["failed"] == {}
    for grid in GRIDS:   # a grid is drawn, or stated empty when no test image falls in its category
        assert (run_dir / "grids" / f"{grid}.png").is_file() != (grid in summary["figures"]["empty_grids"]), grid
    assert set(summary["metrics"]["AUROC_per_score"]) == set(SCORE_NAMES)
    assert summary["data"]["source"]["name"] == "embedded"
    assert summary["data"]["test"] == 1000 and summary["data"]["train_normal"] == 360
    assert summary["config"]["training"]["batch"] == 64 and summary["config"]["training"]["seed"] == 0
    assert summary["versions"]["tensorflow"]
    # the training rate is the images of both epochs (2 x 360) over their summed seconds, which the
    # training stage's time includes; scoring covers the 1,000 test images
    history = json.loads((tmp / "Checkpoint" / "embedded_normal1" / "state.json").read_text())["history"]
    timings = summary["timings"]
    assert timings["training_images_per_second"] == pytest.approx(720 / sum(h["seconds"] for h in history))
    assert sum(h["seconds"] for h in history) <= timings["training"]
    assert set(timings) == {"data", "graph_build", "training", "training_images_per_second", "per_epoch_extras",
                            "scoring", "scoring_images_per_second", "baselines", "plotting"}
    rows = list(csv.DictReader(open(run_dir / "scores.csv")))
    assert len(rows) == 1000
    assert {r["anomalous"] for r in rows if r["label"] == "1"} == {"0"}
    assert {r["anomalous"] for r in rows if r["label"] != "1"} == {"1"}
    flagged = [int(r["predicted_anomalous"]) for r in rows]
    assert flagged == [int(float(r["score"]) > summary["metrics"]["threshold"]) for r in rows]
    from sklearn.metrics import roc_auc_score   # the reported AUROC is the CSV's own scores' AUROC
    assert summary["metrics"]["AUROC"] == pytest.approx(
        roc_auc_score([int(r["anomalous"]) for r in rows], [float(r["score"]) for r in rows]), abs=1e-12)
    for name in ("summary.json", "report.md"):   # the run's roots are absolute temporary folders
        assert str(tmp) not in (run_dir / name).read_text(), name
    assert "--results results" in summary["config"]["command"]


def test_run_prints_metrics_last(e2e):
    """The last lines name AUROC, AUPRC, F1 and the results folder; one line per epoch."""
    _, proc, _ = e2e
    lines = proc.stdout.strip().splitlines()
    assert "AUROC" in lines[-2] and "AUPRC" in lines[-2] and "F1" in lines[-2]
    assert "embedded_normal1" in lines[-1]
    assert "MNIST from the embedded subset" in proc.stdout and "forced with --data embedded" in proc.stdout
    assert not [line for line in (proc.stdout + proc.stderr).splitlines() if "cuInit" in line or "I0000" in line]
    assert sum(line.startswith("[train] epoch") for line in lines) == 2


def test_same_name_does_not_overwrite(own_copy, capsys):
    """A second run with the same name gets its own folders; the first stays as it was."""
    tmp, flags = own_copy
    first = (tmp / "results" / "embedded_normal1" / "scores.csv").read_bytes()
    epoch0 = list(flags)
    epoch0[epoch0.index("--epoch") + 1] = "0"
    code, _, err = run_main(capsys, *epoch0)
    assert code == 0, err[-2000:]
    assert (tmp / "results" / "embedded_normal1_2" / "summary.json").exists()
    assert (tmp / "Checkpoint" / "embedded_normal1_2").is_dir()
    assert (tmp / "results" / "embedded_normal1" / "scores.csv").read_bytes() == first


def _npz(path, **override):
    rng = np.random.RandomState(0)
    arrays = {"x_train": rng.randint(0, 256, (40, 28, 28)), "y_train": np.arange(40) % 10,
              "x_test": rng.randint(0, 256, (20, 28, 28)), "y_test": np.arange(20) % 10}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


def _bad_inputs(tmp):
    blocker = tmp / "a_file"
    blocker.write_text("x")
    (tmp / "empty").mkdir()
    gz_dir = tmp / "gz"
    gz_dir.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (gz_dir / (stem + ".gz")).write_bytes(b"\x1f\x8b\x08\x00truncated")
    return {
        "batch zero": ["--batch", "0"], "batch text": ["--batch", "many"], "epoch negative": ["--epoch", "-1"],
        "lr zero": ["--lr", "0"], "lr nan": ["--lr", "nan"], "ksize zero": ["--ksize", "0"],
        "digit 10": ["--normal", "10"], "digit text": ["--anomaly", "x"],
        "two protocols": ["--normal", "1", "--anomaly", "2"],
        "missing data": ["--data", str(tmp / "nope.npz")], "folder without idx": ["--data", str(tmp / "empty")],
        "truncated gz": ["--data", str(gz_dir)],
        "npz missing keys": ["--data", _npz(tmp / "keys.npz", y_test=None)],
        "not 28x28": ["--data", _npz(tmp / "size.npz", x_train=np.zeros((40, 32, 32)))],
        "label count": ["--data", _npz(tmp / "count.npz", y_train=np.arange(39) % 10)],
        "no training images": ["--data", _npz(tmp / "nodigit.npz", y_train=np.arange(40) % 5 + 2)],
        "unwritable results": ["--results", str(blocker / "results")],
        "unwritable logdir": ["--logdir", str(blocker / "logs")],
        "bad widths": ["--widths", "32,x"], "arch": ["--arch", "big"],
        "pixels out of range": ["--no-datnorm", "--data", _npz(tmp / "range.npz")],
        "resume without name": ["--resume"], "score without name": ["--score", str(tmp / "a_file")],
        "resume and test-only": ["--name", "x", "--resume", "--test-only"],
        "resume a missing run": ["--name", "never_made", "--resume"],
        "part-of a sweep": ["--part-of", "s", "--normal", "all"],
    }


@pytest.mark.parametrize("case, phrase", [
    ("batch zero", "--batch: must be >= 1"), ("batch text", "--batch: expected int"),
    ("epoch negative", "--epoch: must be >= 0"), ("lr zero", "--lr: must be > 0"),
    ("lr nan", "--lr: expected a finite number"), ("ksize zero", "--ksize: must be >= 1"),
    ("digit 10", "expected a digit 0-9 or 'all', got '10'"), ("digit text", "expected a digit 0-9 or 'all'"),
    ("two protocols", "choose one protocol"), ("missing data", "does not exist"),
    ("folder without idx", "needs the four MNIST IDX files"), ("truncated gz", "cannot read IDX file"),
    ("npz missing keys", "lacks the arrays y_test"), ("not 28x28", "expected (N, 28, 28)"),
    ("label count", "40 images but 39 labels"), ("no training images", "leaves 0 training images"),
    ("unwritable results", "--results"), ("unwritable logdir", "--logdir"),
    ("bad widths", "comma-separated channel counts"), ("arch", "invalid choice: 'big'"),
    ("pixels out of range", "--no-datnorm needs pixels already in [0, 1]"),
    ("resume without name", "need --name of an earlier run"), ("score without name", "need --name of an earlier run"),
    ("resume and test-only", "not both"), ("resume a missing run", "no run 'never_made'"),
    ("part-of a sweep", "--part-of runs one digit and one seed")])
def test_bad_input_exits_2_with_one_line(case, phrase, tmp_path, capsys):
    """Each user mistake: exit status 2, one line on stderr that says what to fix, nothing written."""
    flags = _bad_inputs(tmp_path)[case]
    out_flags = ["--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]
    code = run.main(out_flags + flags)   # later flags win, so the unwritable cases override the roots
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("run.py: error:"), err
    assert phrase in err, err
    if case.startswith("unwritable"):
        assert "is not writable" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_bf16_on_kernels_without_avx512_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    """--precision bf16 where oneDNN's kernels stop below AVX-512 (here held there by ONEDNN_MAX_CPU_ISA, as
    on the AVX2-only host): one line and exit 2 before anything is written, not a failed first step."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    code = run.main(["--data", "embedded", "--precision", "bf16", "--epoch", "1",
                     "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--precision bf16 needs AVX-512" in err, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_interrupt_then_resume_matches_uninterrupted_run(e2e, tmp_path, monkeypatch, capsys, signal_on_call):
    """SIGINT inside the second epoch (at its development evaluation of step 10): a checkpoint of that step,
    the resume command, exit 130, no scores; resuming ends with the e2e run's scores."""
    from source import evaluation
    tmp, _, flags = e2e
    named = flags_under(flags, tmp_path) + ["--name", "interrupted"]
    signal_on_call(evaluation, "validation_health", signal.SIGINT, 2)
    assert run.main(named) == 130
    err = capsys.readouterr().err
    assert "checkpoint" in err and "model.ckpt-10" in err and "--resume" in err and "--name interrupted" in err
    assert not (tmp_path / "results" / "interrupted" / "scores.csv").exists()
    monkeypatch.undo()
    assert run.main(named + ["--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    import tensorflow as tf
    steps = [event.step for path in sorted(glob.glob(str(tmp_path / "Checkpoint" / "interrupted" / "events.*")))
             for event in tf.compat.v1.train.summary_iterator(path)
             if any(v.tag == "loss/loss_g" for v in event.summary.value)]
    assert steps == sorted(set(steps)), "TensorBoard steps repeat or overlap after the resume"
    ours = [r["score"] for r in csv.DictReader(open(tmp_path / "results" / "interrupted" / "scores.csv"))]
    ref = [r["score"] for r in csv.DictReader(open(tmp / "results" / "embedded_normal1" / "scores.csv"))]
    np.testing.assert_allclose(np.array(ours, float), np.array(ref, float), rtol=1e-5)


def test_test_only_reproduces_scores_and_refuses_other_architecture(own_copy, capsys):
    """--test-only re-scores the final checkpoint identically (from a copied run folder: checkpoints are
    found by relative path); another --ksize is refused with exit 2."""
    tmp, flags = own_copy
    code, _, err = run_main(capsys, *flags, "--name", "embedded_normal1", "--test-only")
    assert code == 0, err[-2000:]
    assert_same_scores(tmp / "results" / "embedded_normal1_eval" / "scores.csv",
                       tmp / "results" / "embedded_normal1" / "scores.csv")
    code, _, err = run_main(capsys, *flags, "--name", "embedded_normal1", "--test-only", "--ksize", "5")
    assert code == 2 and "architecture" in err and len(err.strip().splitlines()) == 1


def test_same_seed_same_results_other_seed_other_scores_and_the_score_changes_no_training(tmp_path):
    """Three-step runs of the small network: seed 0 reported with x_dgx and again with --anomaly-score x_dgx_rel
    ends with the same losses, the same validation health and the same test AUROC of every score (the flag
    only chooses the score that is reported and thresholded; a record of either holds the other's result),
    and scores the same test images; seed 1 scores them otherwise (He init: an untrained DCGAN-init network
    outputs its zero bias to float precision whatever the seed). Byte-identical scores.csv of one seed run twice:
    tests/test_experiment.py::test_test_curve_is_recorded_and_read_by_nothing."""
    outs, summaries = [], []
    for seed, name, score in (("0", "a", "x_dgx"), ("0", "b", "x_dgx_rel"), ("1", "c", "x_dgx")):
        code = run.main(["--steps", "3", "--batch", "64", "--data", "embedded", "--seed", seed, "--name", name,
                         "--anomaly-score", score, "--init", "he", *SMALL_NET,
                         "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
        assert code == 0
        outs.append(list(csv.DictReader(open(tmp_path / "r" / name / "scores.csv"))))
        summaries.append(json.loads((tmp_path / "r" / name / "summary.json").read_text()))
    x_dgx, rel = summaries[:2]
    # the same seed in one process: the same numbers, bit for bit, whichever score is reported
    assert rel["metrics"]["AUROC_per_score"] == x_dgx["metrics"]["AUROC_per_score"]
    trained = ("loss", "k_t", "g_lr_share", "rec_", "dev_auroc_per_score")
    same = [{k: v for k, v in s["final_epoch"].items() if k.startswith(trained)} for s in (x_dgx, rel)]
    assert len(same[0]) >= 10 and same[1] == same[0]
    assert [(r["index"], r["label"]) for r in outs[1]] == [(r["index"], r["label"]) for r in outs[0]]
    assert rel["metrics"]["anomaly_score"] == "x_dgx_rel"
    assert rel["metrics"]["AUROC"] == rel["metrics"]["AUROC_per_score"]["x_dgx_rel"]
    assert [r["score"] for r in outs[2]] != [r["score"] for r in outs[0]]


def test_non_finite_loss_stops_with_step_and_checkpoint(digit1, tmp_path):
    """A NaN in the data makes the loss NaN: training stops naming the step and the last checkpoint."""
    import copy
    from source import solver
    from source.neuralnet import ADAE
    from source.stops import TrainingError
    data = copy.copy(digit1)
    data.x_train = digit1.x_train.copy()
    data.x_train[:] = np.nan
    model = ADAE(SHORT.model)
    with pytest.raises(TrainingError, match="non-finite loss at step 1.*last good checkpoint: none"):
        solver.train(model, data, RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "nan"),
                     solver.TrainingConfig(epoch=1))
    model.close()


def test_steps_budget_overrides_epochs(digit1, tmp_path):
    """steps=8 on 360 images in batches of 64 (6 per epoch): two epochs, the second stopped after 2 batches."""
    from source import solver
    from source.neuralnet import ADAE
    model = ADAE(SHORT.model, seed=0)
    history = solver.train(model, digit1, RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "steps"),
                           solver.TrainingConfig(epoch=100, steps=8, batch=64)).history
    assert [h["step"] for h in history] == [6, 8] and [h["epoch"] for h in history] == [1, 2]
    assert model.sess.run(model.global_step) == 8
    # the short last epoch's rate counts its own 128 images (2 batches of 64), not an epoch's 360
    assert history[1]["images_per_second"] * history[1]["seconds"] == pytest.approx(128)
    model.close()


def test_flags_table_lists_every_flag_of_the_parser():
    """docs/flags.md's table names each of run.py's flags (aliases aside) and no flag the parser lacks;
    --help shows each config field's default from the dataclasses."""
    import re
    with open(os.path.join(ROOT, "docs", "flags.md")) as f:
        table = [line for line in f if line.startswith("|")]
    documented = set()
    for line in table:
        for cell in re.findall(r"`([^`]*)`", line):
            documented.update(re.findall(r"--[a-z][a-z0-9-]*", cell))
    parser = build_parser()
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings and a.option_strings[0] != "-h"}
    aliases = {s for a in parser._actions for s in a.option_strings[1:] if s.startswith("--")}
    assert flags - documented == set()
    assert documented - flags - aliases == set()
    helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert helps["--epoch"].endswith("(default 100)") and helps["--latent"].endswith("(default 8 with --arch paper)")


def test_cli_anomaly_protocol(tmp_path):
    """--anomaly 3 through the command line: nine normal digits, digit 3's test images are the anomalies."""
    code = run.main(["--anomaly", "3", "--epoch", "0", "--data", "embedded", *SMALL_NET,
                     "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")])
    assert code == 0
    summary = json.loads((tmp_path / "r" / "embedded_anomaly3" / "summary.json").read_text())
    assert summary["data"]["normal_digits"] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert summary["data"]["test_anomalous"] == 100 and summary["data"]["train_normal"] == 3240
    rows = list(csv.DictReader(open(tmp_path / "r" / "embedded_anomaly3" / "scores.csv")))
    assert {r["anomalous"] for r in rows if r["label"] == "3"} == {"1"}
    assert {r["anomalous"] for r in rows if r["label"] != "3"} == {"0"}


def test_cosine_schedule_resumed_continues_the_same_schedule(tmp_path, monkeypatch, capsys, signal_on_call):
    """--lr-schedule cosine, 12 steps of the small network: interrupted at the look of step 10 and resumed, the
    run feeds every step the rate the schedule gives it (TensorBoard's health/learning_rate at each step) and
    ends with the straight run's scores."""
    import tensorflow as tf
    from source import evaluation, solver
    flags = ["--data", "embedded", "--steps", "12", "--batch", "64", "--lr-schedule", "cosine", "--summary-every",
             "1", "--threads", "1", *SMALL_NET, "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]
    assert run.main(flags + ["--name", "straight"]) == 0
    signal_on_call(evaluation, "validation_health", signal.SIGINT, 2)   # the second look: step 10, inside epoch 2
    assert run.main(flags + ["--name", "stopped"]) == 130
    monkeypatch.undo()
    assert run.main(flags + ["--name", "stopped", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    expected = solver.learning_rates("cosine", 2e-4, 12)
    for name in ("straight", "stopped"):
        fed = {event.step: tf.make_ndarray(v.tensor) if v.HasField("tensor") else v.simple_value
               for path in sorted(glob.glob(str(tmp_path / "c" / name / "events.*")))
               for event in tf.compat.v1.train.summary_iterator(path)
               for v in event.summary.value if v.tag == "health/learning_rate"}
        assert sorted(fed) == list(range(12)), name
        np.testing.assert_array_equal(np.array([fed[s] for s in range(12)], np.float32), expected)
    assert_same_scores(tmp_path / "r" / "stopped" / "scores.csv", tmp_path / "r" / "straight" / "scores.csv")


# a run with two checkpoints (2 steps an epoch, 2 epochs: model.ckpt-2 and -4) for the damaged-checkpoint tests
CHECKPOINTED = ["--data", "embedded", "--batch", "180", "--init", "he", "--threads", "1", *SMALL_NET]


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """The run "tr" of CHECKPOINTED for 2 epochs; its root."""
    root = tmp_path_factory.mktemp("checkpointed")
    assert run.main(CHECKPOINTED + ["--epoch", "2", "--name", "tr"] + _roots(root)) == 0
    return root


def _roots(root):
    return ["--results", str(root / "r"), "--logdir", str(root / "c")]


@pytest.fixture
def damaged(checkpointed, tmp_path):
    """A copy of the checkpointed run; damaged(prefix, how) cuts a checkpoint's data file to 100 bytes
    ("truncated"), empties it ("emptied") or deletes its index ("no index")."""
    import shutil
    for part in ("r", "c"):
        shutil.copytree(checkpointed / part, tmp_path / part)

    def damage(prefix, how):
        folder = tmp_path / "c" / "tr"
        data = folder / f"{prefix}.data-00000-of-00001"
        if how == "no index":
            os.remove(folder / f"{prefix}.index")
        else:
            data.write_bytes(data.read_bytes()[:100 if how == "truncated" else 0])
    damage.root = tmp_path
    return damage


def _files(folder):
    """{relative path: bytes} of every file under folder."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, names in os.walk(folder) for f in names}


def test_resume_past_a_truncated_checkpoint_continues_from_the_older_one(damaged, capsys):
    """The newest checkpoint's data cut to 100 bytes: --resume says so in one line, continues from model.ckpt-2
    with the loop state written with it, and ends with the scores of a run of 3 epochs straight through."""
    damaged("model.ckpt-4", "truncated")
    root = damaged.root
    code, out, err = run_main(capsys, *CHECKPOINTED, "--epoch", "3", "--name", "tr", "--resume", *_roots(root))
    assert code == 0, err[-2000:]
    ckpt = root / "c" / "tr"
    said = [line for line in out.splitlines() if "damaged" in line]
    assert said == [f"[checkpoint] {ckpt / 'model.ckpt-4'} is damaged (Read less bytes than requested): "
                    f"using {ckpt / 'model.ckpt-2'}"], out
    assert f"resumed from {ckpt / 'model.ckpt-2'} at epoch 2, step 2" in out
    history = json.loads((ckpt / "state.json").read_text())["history"]
    assert [(h["epoch"], h["step"]) for h in history] == [(1, 2), (2, 4), (3, 6)]
    assert run.main(CHECKPOINTED + ["--epoch", "3", "--name", "straight"] + _roots(root)) == 0
    assert_same_scores(root / "r" / "tr" / "scores.csv", root / "r" / "straight" / "scores.csv")


def test_test_only_past_an_emptied_checkpoint_evaluates_the_older_one(damaged, capsys):
    """The newest checkpoint's data emptied: --test-only names it, evaluates model.ckpt-2, and its summary
    reports that checkpoint's epoch (1, step 2), not the damaged one's."""
    damaged("model.ckpt-4", "emptied")
    root = damaged.root
    code, out, err = run_main(capsys, *CHECKPOINTED, "--name", "tr", "--test-only", *_roots(root))
    assert code == 0, err[-2000:]
    assert "model.ckpt-4 is damaged" in out and f"using {root / 'c' / 'tr' / 'model.ckpt-2'}" in out
    summary = json.loads((root / "r" / "tr_eval" / "summary.json").read_text())
    assert (summary["final_epoch"]["epoch"], summary["final_epoch"]["step"]) == (1, 2)


def test_score_images_past_a_missing_index_uses_the_older_checkpoint(damaged, embedded, capsys):
    """The newest checkpoint's index deleted: --score-images names it and scores with model.ckpt-2."""
    root = damaged.root
    np.save(root / "five.npy", embedded[2][:5])
    damaged("model.ckpt-4", "no index")
    code, out, err = run_main(capsys, *CHECKPOINTED, "--name", "tr", "--score-images", str(root / "five.npy"),
                              *_roots(root))
    assert code == 0, err[-2000:]
    assert "model.ckpt-4 is damaged" in out and f"scored with {root / 'c' / 'tr' / 'model.ckpt-2'}" in out
    assert len(list(csv.DictReader(open(root / "r" / "tr" / "score_five" / "scores.csv")))) == 5


@pytest.mark.parametrize("action", ["--resume", "--test-only", "--score-images"])
def test_no_checkpoint_that_reads_exits_2_and_writes_nothing(action, damaged, embedded, capsys):
    """Both checkpoints damaged (one cut short, one emptied): one line naming the newest, exit 2, and not one
    file written or changed under either root (no <name>_eval, no score folder)."""
    root = damaged.root
    np.save(root / "five.npy", embedded[2][:5])
    damaged("model.ckpt-4", "truncated")
    damaged("model.ckpt-2", "emptied")
    before = {part: _files(root / part) for part in ("r", "c")}
    flags = {"--resume": ["--epoch", "3", "--resume"], "--test-only": ["--test-only"],
             "--score-images": ["--score-images", str(root / "five.npy")]}[action]
    code, _, err = run_main(capsys, *CHECKPOINTED, "--name", "tr", *flags, *_roots(root))
    assert code == 2
    assert err.strip().splitlines() == [
        f"run.py: error: checkpoint {root / 'c' / 'tr' / 'model.ckpt-4'} is damaged (Read less bytes than "
        "requested) (and 1 older checkpoints: none reads); the run cannot continue or be evaluated from it: "
        "start it again under a new --name"]
    assert {part: _files(root / part) for part in ("r", "c")} == before


def test_resume_from_an_older_checkpoint_without_its_loop_state_is_refused(damaged, capsys):
    """A run of an earlier version kept the loop state of its newest checkpoint only: resuming from an older
    one would continue another epoch's batch order, so it is refused in one line, exit 2."""
    damaged("model.ckpt-4", "truncated")
    root = damaged.root
    os.remove(root / "c" / "tr" / "model.ckpt-2.state.json")
    code, _, err = run_main(capsys, *CHECKPOINTED, "--epoch", "3", "--name", "tr", "--resume", *_roots(root))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{root / 'c' / 'tr' / 'model.ckpt-2'} has no loop state of its own" in err
    assert "is that of model.ckpt-4" in err


def test_a_disk_that_fills_during_a_run_is_one_line_and_keeps_what_was_written(tmp_path, monkeypatch, capsys):
    """Every write failing with ENOSPC from report.md on (as a disk that fills): one line naming the file, exit 1;
    summary.json and scores.csv, written before, stay whole, and no temporary file is left."""
    import errno
    from source import report
    full, real_fsync, real_report = [], os.fsync, report.run_report

    def fsync(fd):
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    def run_report(*args, **kwargs):
        full.append(1)
        return real_report(*args, **kwargs)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(report, "run_report", run_report)
    code, _, err = run_main(capsys, "--data", "embedded", "--epoch", "0", *SMALL_NET, "--name", "full",
                            "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c"))
    folder = tmp_path / "r" / "full"
    assert code == 1 and err.strip().splitlines() == [
        f"run.py: error: cannot write {folder / 'report.md'}: No space left on device"], err
    assert json.loads((folder / "summary.json").read_text())["name"] == "full"
    assert len(list(csv.DictReader(open(folder / "scores.csv")))) == 1000
    assert not (folder / "report.md").exists() and not list(folder.glob("*.tmp"))
