"""The hidden-layer scores (source.scores and their graph in source.neuralnet): SAP and the code distance against
NumPy on a small network's own layers, NAP against the whitened norm in NumPy (tiny singular values dropped,
truncation and shrinkage), zero for a perfect reconstruction, a fit that reads training normals only, fitted
statistics that round-trip, and --test-only that reproduces a fitted score bit for bit."""
import csv

import numpy as np
import pytest

import run
from source import experiment, scores
from source.neuralnet import ADAE, ScoreError
from source.scores import HIDDEN, PAIRS, SCORE_NAMES, Mix, Nap, StdMax, StdSap
from tests.conftest import SHORT, SMALL_NET, assert_same_scores


@pytest.fixture(scope="module")
def small():
    """The suite's small network, untrained, seed 0."""
    model = ADAE(SHORT.model, seed=0)
    yield model
    model.close()


def test_sap_and_code_are_the_layers_squared_distances(small, batch):
    """For each pair, SAP is the NumPy sum over the encoder's layers (the input's included) of each layer's
    squared distance between the image's activations and its reconstruction's, and `code` the code layer's;
    the first image's layers are those of the network's own pass (G(x)'s layers of x are G's)."""
    fetched = small.sess.run({pair: small.hidden[pair] for pair in PAIRS}, {small.x: batch})
    got = small.run_scores(batch, names=[f"{k}_{p}" for p in PAIRS for k in ("sap", "code")])
    for pair, (first, second) in fetched.items():
        assert len(first) == len(SHORT.model.widths) + 2   # input, each convolution, the code
        per_layer = np.stack([((a - b).reshape(len(batch), -1).astype(np.float64) ** 2).sum(1)
                              for a, b in zip(first, second)], 1)
        np.testing.assert_allclose(got[f"sap_{pair}"], per_layer.sum(1), rtol=1e-5)
        np.testing.assert_allclose(got[f"code_{pair}"], per_layer[:, -1], rtol=1e-5, atol=1e-12)
        assert per_layer[:, 0].min() > 0   # the input layer differs: an untrained network rebuilds nothing
    x_layers = small.sess.run(small.hidden["d_x_dgx"][0], {small.x: batch})
    np.testing.assert_array_equal(x_layers[0], small.sess.run(small.x_net, {small.x: batch}))


def _nap_numpy(train, test, keep_rtol=1e-5):
    """RaPP's NAP in plain NumPy: centre by the normals' mean, project on their right singular vectors, divide
    by the singular values, squared norm; directions of a singular value below keep_rtol of the largest dropped."""
    mean = train.mean(0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    keep = s > keep_rtol * s[0]
    return ((((test - mean) @ vt[keep].T) / s[keep]) ** 2).sum(1)


def test_nap_is_the_whitened_norm_and_drops_tiny_singular_values():
    """Synthetic differences of 6 features with two dead ones (a constant and a copy of another: zero singular
    values): NAP equals the NumPy whitened norm on the live directions, finite; truncated to 2 components it is
    the norm on the 2 largest; shrinkage lambda adds the residual over lambda and damps each coordinate."""
    rng = np.random.RandomState(0)
    train = rng.randn(40, 6) * [3.0, 1.0, 0.5, 2.0, 0.0, 1.0]
    train[:, 5] = train[:, 1]                      # a dependent feature: one more zero singular value
    test = rng.randn(7, 6)
    stats = Nap().fit(train)
    assert len(stats["singular_values"]) == 4      # 6 features, two directions without variance
    np.testing.assert_allclose(Nap().score(test, stats), _nap_numpy(train, test), rtol=1e-6)
    assert np.isfinite(Nap().score(test, stats)).all()
    truncated = Nap(components=2).fit(train)
    mean = train.mean(0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    # (a truncation far below the rank takes scikit-learn's randomized SVD in float32)
    np.testing.assert_allclose(Nap().score(test, truncated), ((((test - mean) @ vt[:2].T) / s[:2]) ** 2).sum(1),
                               rtol=1e-4)
    shrunk = Nap(components=2, shrink=0.5).fit(train)
    lam = 0.5 * np.mean(s[:2] ** 2)
    coords = (test - mean) @ vt[:2].T
    residual = ((test - mean) ** 2).sum(1) - (coords ** 2).sum(1)
    np.testing.assert_allclose(Nap().score(test, shrunk), (coords ** 2 / (s[:2] ** 2 + lam)).sum(1) + residual / lam,
                               rtol=1e-4)


def test_nap_projects_in_float32_within_1e5_of_float64_at_the_paper_networks_size():
    """15,368 features, as the paper network's pairs stack: the float32 projection's scores agree with the
    float64 formula within 1e-5 relative (truncated to 32 components, fitted on 300 normals)."""
    rng = np.random.RandomState(2)
    train = (rng.randn(300, 15368) * rng.rand(15368) * 3).astype(np.float32)
    test = (rng.randn(20, 15368) * rng.rand(15368) * 3).astype(np.float32)
    stats = Nap(components=32).fit(train)
    coords = (test.astype(np.float64) - stats["mean"]) @ stats["vectors"].astype(np.float64)
    np.testing.assert_allclose(Nap().score(test, stats), (coords ** 2 / stats["singular_values"] ** 2).sum(1),
                               rtol=1e-5)


def test_stdsap_and_stdmax_standardise_each_layer_by_the_normals_mean():
    """Each layer's distance over that layer's mean on the training normals: stdsap their sum, stdmax their
    largest; a layer large in absolute terms counts no more than a small one."""
    normals = np.array([[100.0, 1.0, 0.1], [300.0, 3.0, 0.3]])     # layer means 200, 2, 0.2
    distances = np.array([[200.0, 2.0, 0.2], [0.0, 8.0, 0.0], [400.0, 0.0, 1.0]])
    stats = StdSap().fit(normals)
    np.testing.assert_allclose(stats["layer_means"], [200.0, 2.0, 0.2])
    np.testing.assert_allclose(StdSap().score(distances, stats), [3.0, 4.0, 7.0])
    np.testing.assert_allclose(StdMax().score(distances, stats), [1.0, 4.0, 5.0])
    assert scores.fitted_score("stdmax", SHORT.model).__class__ is StdMax


def test_mix_averages_the_standardised_layers_and_the_ink_relative_error():
    """Hand values: layers (2 of them) and the ink; the relative error is the input layer's root over the ink;
    each part over its mean on the normals, half each."""
    normals = np.array([[4.0, 1.0, 2.0], [16.0, 3.0, 4.0]])        # relative 1.0 and 1.0; layer means 10, 2
    stats = Mix().fit(normals)
    np.testing.assert_allclose(stats["layer_means"], [10.0, 2.0])
    assert stats["relative_mean"] == pytest.approx(1.0)
    images = np.array([[10.0, 2.0, 2.0], [0.0, 0.0, 1.0], [36.0, 6.0, 2.0]])
    np.testing.assert_allclose(Mix().score(images, stats), [0.5 * 1.0 + 0.5 * np.sqrt(10) / 2,
                                                           0.0, 0.5 * 3.3 + 0.5 * 3.0])


def test_mix_reads_the_pairs_own_ink_relative_error(small, batch):
    """On D's pair (x, D(G(x))) the pixel half of `mix` is the graph's x_dgx_rel; on G's it is x_gx over the
    ink of x and G(x); after a fit every mix score is finite and positive."""
    layers_ink = small.sess.run({p: small.fit_inputs[p]["layers_ink"] for p in PAIRS}, {small.x: batch})
    pixel = small.run_scores(batch, names=["x_dgx_rel", "x_gx"])
    _, relative = Mix._parts(layers_ink["d_x_dgx"].astype(np.float64))
    np.testing.assert_allclose(relative, pixel["x_dgx_rel"], rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(layers_ink["g_x_gx"][:, 0]), pixel["x_gx"], rtol=1e-5)
    small.fit_scores(batch)
    mixed = small.run_scores(batch, names=[f"mix_{p}" for p in PAIRS])
    assert all(np.isfinite(v).all() and (v > 0).all() for v in mixed.values())


def test_a_perfect_reconstruction_scores_zero():
    """No difference at any layer: SAP, code and stdsap are zero; NAP is zero at the normals' mean difference."""
    distances = np.zeros((3, 5))
    for kind, weights in scores.LAYERWISE.items():
        assert (distances @ weights(5) == 0).all(), kind
    layer_stats = StdSap().fit(np.random.RandomState(0).rand(20, 5))
    assert (StdSap().score(distances, layer_stats) == 0).all()
    assert (StdMax().score(distances, layer_stats) == 0).all()
    inked = np.c_[distances, np.ones(3)]   # no difference, some ink
    assert (Mix().score(inked, Mix().fit(np.random.RandomState(0).rand(20, 6) + 0.1)) == 0).all()
    train = np.random.RandomState(1).randn(30, 8)
    stats = Nap().fit(train)
    assert Nap().score(train.mean(0, keepdims=True), stats) == pytest.approx([0.0], abs=1e-9)


def test_fitted_scores_need_statistics_of_the_weights_in_use(small, batch):
    """Before a fit a fitted score is refused by name and left out of the available ones; after a fit it is
    there; a training step drops the statistics (they were the old weights')."""
    model = ADAE(SHORT.model, seed=0)
    assert "nap_g_x_gx" not in model.available_scores()
    with pytest.raises(ScoreError, match="nap_g_x_gx"):
        model.run_scores(batch, names=["nap_g_x_gx"])
    model.fit_scores(batch)
    assert model.available_scores() == SCORE_NAMES
    assert np.isfinite(model.run_scores(batch)["nap_d_x_dgx"]).all()
    model.train_step(batch)
    assert not any(n in model.available_scores() for n, (k, _) in HIDDEN.items() if k in scores.FITTED)
    model.close()


def test_the_fit_reads_training_normals_only(embedded, tmp_path, monkeypatch):
    """A short run end to end (its epoch-end look and the evaluation fit): every image any fit reads is a
    training normal of the run, never a validation, development or test image; at most --fit-images of them,
    the same subsample each time."""
    from source.datamanager import Dataset
    from source.rundir import RunDir
    import dataclasses
    read = []
    original = ADAE.fit_scores

    def recording(self, x_normals, *args, **kwargs):
        read.append(np.array(x_normals))
        return original(self, x_normals, *args, **kwargs)
    monkeypatch.setattr(ADAE, "fit_scores", recording)
    config = dataclasses.replace(SHORT, model=dataclasses.replace(SHORT.model, fit_images=100)).one(1, 0)
    experiment.train_and_evaluate(config, embedded, {"name": "embedded", "reason": "test"},
                       RunDir(str(tmp_path / "c"), str(tmp_path / "r"), "fit"))
    data = Dataset(*embedded, normal=1)
    train = {x.tobytes() for x in data.x_train}
    others = {x.tobytes() for x in np.concatenate([data.x_valid, data.x_dev_anomalous, data.x_test])} - train
    assert read and all(len(x) == 100 for x in read)
    assert all(x.tobytes() in train and x.tobytes() not in others for xs in read for x in xs)
    assert all(np.array_equal(xs, read[0]) for xs in read)
    np.testing.assert_array_equal(read[0], scores.fit_sample(data.x_train, 100))


def test_fitted_statistics_round_trip(small, batch, tmp_path):
    """Saved beside the checkpoint of their step and loaded again: the same arrays, the same scores."""
    small.fit_scores(batch)
    before = small.run_scores(batch)
    path = small.save_fitted(str(tmp_path))
    assert path.endswith("fitted_scores-0.npz")
    stats = {n: {k: v.copy() for k, v in s.items()} for n, s in small.fit_stats.items()}
    small.forget_fitted()
    assert small.load_fitted(str(tmp_path))
    for name, fields in stats.items():
        for key, value in fields.items():
            np.testing.assert_array_equal(small.fit_stats[name][key], value)
    after = small.run_scores(batch)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_test_only_reproduces_a_fitted_score(tmp_path, capsys):
    """A short run scored with NAP on G's encoder: --test-only scores every test image as the run did, bit for
    bit (the statistics saved with the run at its last step, read back)."""
    flags = ["--data", "embedded", "--steps", "4", "--batch", "64", "--threads", "1", *SMALL_NET,
             "--anomaly-score", "nap_g_x_gx", "--results", str(tmp_path / "r"), "--logdir", str(tmp_path / "c")]
    assert run.main(flags + ["--name", "nap"]) == 0
    assert list((tmp_path / "c" / "nap").glob("fitted_scores-4.npz"))
    assert run.main(flags + ["--name", "nap", "--test-only"]) == 0
    ours = list(csv.DictReader(open(tmp_path / "r" / "nap_eval" / "scores.csv")))
    theirs = list(csv.DictReader(open(tmp_path / "r" / "nap" / "scores.csv")))
    assert [r["score"] for r in ours] == [r["score"] for r in theirs]
    assert_same_scores(tmp_path / "r" / "nap_eval" / "scores.csv", tmp_path / "r" / "nap" / "scores.csv", rel=0)


def test_a_fit_fills_in_only_the_statistics_missing(batch):
    """Statistics saved by an older version lack a fitted score this one has: a fit adds that one on the same
    training normals and leaves the saved ones as they are (later scorings of the run use the same ones)."""
    import types
    from source import evaluation
    model = ADAE(SHORT.model, seed=0)
    model.fit_scores(batch)
    saved = {n: s for n, s in model.fit_stats.items() if not n.startswith("stdmax_")}
    nap = saved["nap_g_x_gx"]
    model.fit_stats = dict(saved)   # as loaded from an older checkpoint's file
    assert "stdmax_g_x_gx" not in model.available_scores()
    evaluation.fit_scores(model, types.SimpleNamespace(x_train=batch))
    assert model.fit_stats["nap_g_x_gx"] is nap
    assert model.available_scores() == SCORE_NAMES
    np.testing.assert_allclose(model.fit_stats["stdmax_g_x_gx"]["layer_means"],
                               model.fit_stats["stdsap_g_x_gx"]["layer_means"])
    model.close()
