"""The ADAE graph: shapes, variable partition, losses against NumPy, steps, save/restore, batch norm."""
import os

import numpy as np
import pytest
import tensorflow as tf

from source.neuralnet import ADAE

tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def model():
    m = ADAE(seed=0, gamma=0.5, lambda_k=0.01)
    yield m
    m.close()


def _values(model, variables):
    return [v.copy() for v in model.sess.run(variables)]


def _changed(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def _moving(model, scope):
    return [v for v in model.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
            if v.name.startswith(scope + "/") and "moving" in v.name]


def test_output_shapes(model, batch):
    """G(x), D(x), D(G(x)) are images like x; every score is one number per image."""
    g_x, d_x, d_g_x = model.sess.run([model.g_x, model.d_x, model.d_g_x], {model.x: batch})
    for out in (g_x, d_x, d_g_x):
        assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 1
    scores = model.run_scores(batch)
    assert set(scores) == {"x_dgx", "x_gx", "x_dx", "gx_dgx"}
    assert all(s.shape == (8,) for s in scores.values())


def test_variables_split_by_scope(model):
    """G's and D's variables are disjoint, scoped, equal in size, and cover every trainable variable."""
    names_g = {v.name for v in model.vars_g}
    names_d = {v.name for v in model.vars_d}
    assert names_g and names_d and not names_g & names_d
    assert all(n.startswith("generator/") for n in names_g)
    assert all(n.startswith("discriminator/") for n in names_d)
    trainable = {v.name for v in model.graph.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES)}
    assert names_g | names_d == trainable
    assert model.n_params_g == model.n_params_d > 0


def test_losses_match_numpy(model, batch):
    """Each loss term is the batch mean of per-image mean absolute errors; L_D and L_G combine them."""
    x = batch
    out = model.sess.run({"g_x": model.g_x, "d_x": model.d_x, "d_g_x": model.d_g_x, "k": model.k,
                          "real": model.loss_d_real, "fake": model.loss_d_fake, "rec": model.loss_g_rec,
                          "loss_d": model.loss_d, "loss_g": model.loss_g}, {model.x: x})
    real = np.abs(x - out["d_x"]).mean()
    fake = np.abs(out["g_x"] - out["d_g_x"]).mean()
    rec = np.abs(x - out["g_x"]).mean()
    np.testing.assert_allclose([out["real"], out["fake"], out["rec"]], [real, fake, rec], rtol=1e-5)
    np.testing.assert_allclose(out["loss_d"], real - out["k"] * fake, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["loss_g"], rec + fake, rtol=1e-5)


def test_scores_match_numpy(model, batch):
    """A(x) = ||x - D(G(x))||_2 on the inference path, per image."""
    g_x, d_g_x = model.restore_images(batch)
    d_x = model.sess.run(model.d_x_test, {model.x: batch})
    scores = model.run_scores(batch)
    l2 = lambda a, b: np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(1))  # noqa: E731
    np.testing.assert_allclose(scores["x_dgx"], l2(batch, d_g_x), rtol=1e-4)
    np.testing.assert_allclose(scores["x_gx"], l2(batch, g_x), rtol=1e-4)
    np.testing.assert_allclose(scores["x_dx"], l2(batch, d_x), rtol=1e-4)
    np.testing.assert_allclose(scores["gx_dgx"], l2(g_x, d_g_x), rtol=1e-4)


def test_d_step_changes_only_d_and_updates_k(model, batch):
    """A D step moves D's weights and batch-norm averages, leaves G alone, and applies k_t's rule."""
    g0, d0 = _values(model, model.vars_g + _moving(model, "generator")), _values(
        model, model.vars_d + _moving(model, "discriminator"))
    k0, real, fake = model.sess.run([model.k, model.loss_d_real, model.loss_d_fake], {model.x: batch})
    model.sess.run(model.step_d, {model.x: batch})
    g1, d1 = _values(model, model.vars_g + _moving(model, "generator")), _values(
        model, model.vars_d + _moving(model, "discriminator"))
    assert not any(_changed(g0, g1))
    assert all(_changed(d0, d1))
    expected_k = np.clip(k0 + 0.01 * (0.5 * real - fake), 0, 1)
    np.testing.assert_allclose(model.sess.run(model.k), expected_k, rtol=1e-5, atol=1e-7)


def test_g_step_changes_only_g(model, batch):
    """A G step moves G's weights and averages and the global step, and leaves D alone."""
    g0 = _values(model, model.vars_g + _moving(model, "generator"))
    d0 = _values(model, model.vars_d + _moving(model, "discriminator"))
    step0 = model.sess.run(model.global_step)
    model.sess.run(model.step_g, {model.x: batch})
    assert all(_changed(g0, _values(model, model.vars_g + _moving(model, "generator"))))
    assert not any(_changed(d0, _values(model, model.vars_d + _moving(model, "discriminator"))))
    assert model.sess.run(model.global_step) == step0 + 1


def test_inference_uses_moving_averages(model, batch):
    """A test image's score does not depend on its batch; training outputs do."""
    alone = np.concatenate([model.run_scores(batch[i:i + 1])["x_dgx"] for i in range(len(batch))])
    np.testing.assert_allclose(alone, model.run_scores(batch)["x_dgx"], rtol=1e-5)
    first = model.sess.run(model.g_x, {model.x: batch[:1]})
    together = model.sess.run(model.g_x, {model.x: batch})
    assert not np.allclose(first[0], together[0])


def test_save_restore_gives_identical_scores(model, batch, tmp_path):
    """Scores after restoring a checkpoint equal the scores when it was written."""
    model.sess.run([model.step_d], {model.x: batch})
    model.sess.run([model.step_g], {model.x: batch})
    before = model.run_scores(batch)
    model.save(str(tmp_path / "model.ckpt"))
    for _ in range(2):
        model.sess.run(model.step_d, {model.x: batch})
        model.sess.run(model.step_g, {model.x: batch})
    assert not np.allclose(model.run_scores(batch)["x_dgx"], before["x_dgx"])
    found, _ = model.load(str(tmp_path))
    assert found
    for name, value in model.run_scores(batch).items():
        np.testing.assert_array_equal(value, before[name])


def test_paper_objective_keeps_k_at_one(batch):
    """--objective paper: L_D = real - fake with k fixed at 1 after a step."""
    m = ADAE(objective="paper", seed=1)
    m.sess.run(m.step_d, {m.x: batch})
    k, real, fake, loss_d = m.sess.run([m.k, m.loss_d_real, m.loss_d_fake, m.loss_d], {m.x: batch})
    m.close()
    assert k == 1.0
    np.testing.assert_allclose(loss_d, real - fake, rtol=1e-5, atol=1e-7)


def test_same_seed_same_weights_other_seed_other_weights(batch):
    """Graph- and op-level seeds make initial scores reproducible."""
    scores = []
    for seed in (3, 3, 4):
        m = ADAE(seed=seed)
        scores.append(m.run_scores(batch)["x_dgx"])
        m.close()
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.allclose(scores[0], scores[2])


def test_saver_keeps_only_the_last_checkpoints(batch, tmp_path):
    """keep_checkpoints=2: after four saves two checkpoints remain, the newest among them."""
    import glob
    m = ADAE(keep_checkpoints=2)
    for _ in range(4):
        m.sess.run(m.step_g, {m.x: batch})
        m.save(str(tmp_path / "model.ckpt"))
    m.close()
    kept = sorted(glob.glob(str(tmp_path / "model.ckpt-*.index")))
    assert [os.path.basename(p) for p in kept] == ["model.ckpt-3.index", "model.ckpt-4.index"]
