"""The ADAE graph: shapes, variable partition, losses against NumPy, steps, save and load, batch norm."""
import os

import numpy as np
import pytest
import tensorflow as tf

from source.neuralnet import ADAE, MachineConfig, ModelConfig
from source.scores import HIDDEN

tf1 = tf.compat.v1


def _build(arch):
    return ADAE(ModelConfig(arch=arch, objective="equilibrium", lr=1e-4, gamma=0.5, lambda_k=0.01), seed=0)


@pytest.fixture(scope="module", params=["paper", "reference"])
def model(request, tmp_path_factory):
    """One model per architecture, equilibrium objective so k_t's rule can be checked; shared by the
    tests that only read it and, through fresh_model, by those that train it. Its initial checkpoint is
    written first (model.initial)."""
    m = _build(request.param)
    m.initial = m.save(str(tmp_path_factory.mktemp("initial") / "model.ckpt"))
    yield m
    m.close()


@pytest.fixture
def fresh_model(model):
    """The module's model for a test that trains it or sets a variable, restored afterwards from its initial
    checkpoint (every variable: weights, optimizer slots, counters, k_t, batch norm's averages), so no test
    depends on another's steps."""
    yield model
    with model.graph.as_default():
        model.saver.restore(model.sess, model.initial)


def _l2(a, b):
    return np.sqrt(((a - b) ** 2).reshape(len(a), -1).sum(1))


def _values(model, variables):
    return [v.copy() for v in model.sess.run(variables)]


def _moved(before, after, variables):
    """For each kernel and batch-norm moving statistic: did it move by more than float noise? (Biases in
    front of a batch norm get no gradient but round-off, so they are left out.)"""
    return [np.abs(a - b).max() > 1e-6 for a, b, v in zip(before, after, variables)
            if "weight" in v.name or "moving" in v.name]


def _moving(model, scope):
    return [v for v in model.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
            if v.name.startswith(scope + "/") and "moving" in v.name]


def test_output_shapes(model, batch):
    """G(x), D(x), D(G(x)) live in the network's frame (paper: 32x32); what people see is each inference
    output cropped back to 28x28 and mapped to [0, 1]; every score is one number per image."""
    x_net, g_x, d_x, d_g_x = model.sess.run([model.x_net, model.g_x, model.d_x, model.d_g_x], {model.x: batch})
    size = 32 if model.arch == "paper" else 28
    for out in (x_net, g_x, d_x, d_g_x):
        assert out.shape == (8, size, size, 1)
    shown = model.reconstruct(batch)
    for name, tensor in (("G(x)", model.g_x_test), ("D(x)", model.d_x_test), ("D(G(x))", model.d_g_x_test)):
        net = model.sess.run(tensor, {model.x: batch})
        expected = np.clip((net[:, 2:-2, 2:-2] + 1) / 2, 0, 1) if model.arch == "paper" else net
        np.testing.assert_allclose(shown[name], expected, atol=1e-6)
    scores = model.run_scores(batch)
    # the pixel scores, then the hidden-layer ones the graph computes (the fitted ones wait for a fit)
    assert list(scores)[:5] == ["x_dgx", "x_dx", "x_gx", "gx_dgx", "x_dgx_rel"]
    assert list(scores)[5:] == [n for n, (kind, _) in HIDDEN.items() if kind in ("sap", "code")]
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
    # counted by hand: kernels + biases, plus batch norm's beta and gamma on every hidden layer but the first
    # (paper: widths 32, 64, 128, code 8; reference: 16/32/64 with 3x3 kernels)
    conv = {"paper": [(16, 1, 32, 0), (16, 32, 64, 1), (16, 64, 128, 1), (16, 128, 8, 0), (16, 8, 128, 1),
                      (16, 128, 64, 1), (16, 64, 32, 1), (16, 32, 1, 0)],
            "reference": [(9, 1, 16, 1), (9, 16, 16, 1), (9, 16, 32, 1), (9, 32, 32, 1), (9, 32, 64, 1),
                          (9, 64, 64, 1), (9, 64, 32, 1), (9, 32, 32, 1), (9, 32, 16, 1), (9, 16, 16, 1),
                          (9, 16, 1, 0)]}[model.arch]
    expected = sum(k * c_in * c_out + c_out + 2 * c_out * bn for k, c_in, c_out, bn in conv)
    assert model.n_params_g == model.n_params_d == expected


def test_losses_match_numpy(model, batch):
    """Each loss term is the batch mean of per-image mean absolute errors; L_D and L_G combine them."""
    out = model.sess.run({"x": model.x_net, "g_x": model.g_x, "d_x": model.d_x, "d_g_x": model.d_g_x, "k": model.k,
                          "real": model.loss_d_real, "fake": model.loss_d_fake, "rec": model.loss_g_rec,
                          "loss_d": model.loss_d, "loss_g": model.loss_g}, {model.x: batch})
    x = out["x"]
    real = np.abs(x - out["d_x"]).mean()
    fake = np.abs(out["g_x"] - out["d_g_x"]).mean()
    rec = np.abs(x - out["g_x"]).mean()
    np.testing.assert_allclose([out["real"], out["fake"], out["rec"]], [real, fake, rec], rtol=1e-5)
    np.testing.assert_allclose(out["loss_d"], real - out["k"] * fake, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["loss_g"], rec + fake, rtol=1e-5)


def test_scores_match_numpy(model, batch):
    """A(x) = ||x - D(G(x))||_2 on the inference path, per image, in the network's frame; the other errors
    alike; x_dgx_rel is x_dgx over the ink of both images."""
    x, g_x, d_x, d_g_x = model.sess.run([model.x_net, model.g_x_test, model.d_x_test, model.d_g_x_test],
                                        {model.x: batch})
    scores = model.run_scores(batch)
    np.testing.assert_allclose(scores["x_dgx"], _l2(x, d_g_x), rtol=1e-4)
    np.testing.assert_allclose(scores["x_gx"], _l2(x, g_x), rtol=1e-4)
    np.testing.assert_allclose(scores["x_dx"], _l2(x, d_x), rtol=1e-4)
    np.testing.assert_allclose(scores["gx_dgx"], _l2(g_x, d_g_x), rtol=1e-4)
    # x_dgx_rel: x_dgx over the ink of x and D(G(x)) as images in [0, 1] (28x28, the input's own frame)
    d_g_x_image = model.reconstruct(batch)["D(G(x))"]
    ink = _l2(batch, 0 * batch) + _l2(d_g_x_image, 0 * d_g_x_image)
    np.testing.assert_allclose(scores["x_dgx_rel"], _l2(x, d_g_x) / ink, rtol=1e-4)


def test_paper_arch_has_a_32d_latent_and_no_pooling():
    """--arch paper: 32x32 input, strided 4x4 convolutions down to a 1x1x32 code, no pooling ops."""
    m = ADAE(ModelConfig(arch="paper", latent=32))
    shapes = {v.name: v.shape.as_list() for v in m.vars_g}
    assert shapes["generator/encoder/latent/weight:0"] == [4, 4, 128, 32]
    code = m.graph.get_tensor_by_name("generator/encoder/latent/BiasAdd:0")
    assert code.shape.as_list() == [None, 1, 1, 32]
    assert not [op for op in m.graph.get_operations() if "MaxPool" in op.type]
    m.close()


def test_paper_pixel_range_round_trip(batch):
    """Images in [0, 1] -> padded 32x32 in [-1, 1] (background -1) -> back to the same 28x28 pixels."""
    from source import neuralnet
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 28, 28, 1])
        net = neuralnet.to_network(x, "paper")
        back = neuralnet.to_image(net, "paper")
        with tf1.Session() as sess:
            x_net, x_back = sess.run([net, back], {x: batch})
    assert x_net.shape == (8, 32, 32, 1)
    np.testing.assert_allclose(x_net[:, 2:-2, 2:-2], batch * 2 - 1, atol=1e-6)
    assert (x_net[:, :2] == -1).all() and (x_net[:, :, -2:] == -1).all()
    np.testing.assert_allclose(x_back, batch, atol=1e-6)


def test_balance_follows_ds_margin(batch):
    """b = sigmoid(alpha (|G(x)-D(G(x))| - |x-D(x)|)); G's learning rate 2 b lr, D's 2 (1 - b) lr."""
    m = ADAE(ModelConfig(balance_alpha=5.0, lr=1e-3))
    b, real, fake, lr_g, lr_d = m.sess.run([m.g_lr_share, m.loss_d_real, m.loss_d_fake, m.lr_g, m.lr_d], {m.x: batch})
    m.close()
    expected = 1 / (1 + np.exp(-5.0 * (fake - real)))
    np.testing.assert_allclose(b, expected, rtol=1e-5)
    np.testing.assert_allclose([lr_g, lr_d], [2e-3 * expected, 2e-3 * (1 - expected)], rtol=1e-5)


def test_d_step_changes_only_d_and_updates_k(fresh_model, batch):
    """A D step moves D's weights and batch-norm averages, leaves G alone, and applies k_t's rule."""
    model = fresh_model
    vars_g, vars_d = model.vars_g + _moving(model, "generator"), model.vars_d + _moving(model, "discriminator")
    g0, d0 = _values(model, vars_g), _values(model, vars_d)
    k0, real, fake = model.sess.run([model.k, model.loss_d_real, model.loss_d_fake], {model.x: batch})
    model.sess.run(model.step_d, {model.x: batch})
    g1, d1 = _values(model, vars_g), _values(model, vars_d)
    assert all(np.array_equal(a, b) for a, b in zip(g0, g1))
    moved = _moved(d0, d1, vars_d)
    assert len(moved) > 10 and all(moved)
    expected_k = np.clip(k0 + 0.01 * (0.5 * real - fake), 0, 1)
    np.testing.assert_allclose(model.sess.run(model.k), expected_k, rtol=1e-5, atol=1e-7)


def test_g_step_changes_only_g(fresh_model, batch):
    """A G step moves G's weights and averages and the global step, and leaves D alone."""
    model = fresh_model
    vars_g, vars_d = model.vars_g + _moving(model, "generator"), model.vars_d + _moving(model, "discriminator")
    g0, d0 = _values(model, vars_g), _values(model, vars_d)
    step0 = model.sess.run(model.global_step)
    model.sess.run(model.step_g, {model.x: batch})
    moved = _moved(g0, _values(model, vars_g), vars_g)
    assert len(moved) > 10 and all(moved)
    assert all(np.array_equal(a, b) for a, b in zip(d0, _values(model, vars_d)))
    assert model.sess.run(model.global_step) == step0 + 1


def test_inference_uses_moving_averages(model, batch):
    """A test image's score does not depend on its batch; training outputs do."""
    alone = np.concatenate([model.run_scores(batch[i:i + 1])["x_dgx"] for i in range(len(batch))])
    np.testing.assert_allclose(alone, model.run_scores(batch)["x_dgx"], rtol=1e-5)
    first = model.sess.run(model.g_x, {model.x: batch[:1]})
    together = model.sess.run(model.g_x, {model.x: batch})
    assert not np.allclose(first[0], together[0])


def test_save_then_load_gives_identical_scores(fresh_model, batch, tmp_path):
    """Scores after loading a checkpoint equal the scores when it was written."""
    model = fresh_model
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
    other = ADAE(model.config, seed=7)   # the model config alone rebuilds it: a new graph, other initial weights
    assert other.load(str(tmp_path))[0]
    for name, value in other.run_scores(batch).items():
        np.testing.assert_allclose(value, before[name], rtol=1e-6)
    other.close()


def test_paper_objective_keeps_k_at_one(batch):
    """--objective paper: L_D = real - fake with k fixed at 1 after a step."""
    m = ADAE(ModelConfig(arch="reference", objective="paper"), seed=1)
    m.sess.run(m.step_d, {m.x: batch})
    k, real, fake, loss_d = m.sess.run([m.k, m.loss_d_real, m.loss_d_fake, m.loss_d], {m.x: batch})
    m.close()
    assert k == 1.0
    np.testing.assert_allclose(loss_d, real - fake, rtol=1e-5, atol=1e-7)


def test_same_seed_same_weights_other_seed_other_weights(batch):
    """Graph- and op-level seeds make initial weights, and so scores, reproducible; another seed draws other
    weights (compared directly: an untrained DCGAN-initialised network outputs nearly the same image for
    any weights)."""
    scores, kernels = [], []
    for seed in (3, 3, 4):
        m = ADAE(seed=seed)
        scores.append(m.run_scores(batch)["x_dgx"])
        kernels.append(m.sess.run(m.vars_g[0]))
        m.close()
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert np.abs(kernels[0] - kernels[2]).mean() > 0.01


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


def test_forced_precisions_build_and_score(batch):
    """Both forced paths build a session that scores (bf16 where the kernels can: AVX-512); fp32 twice gives
    identical scores."""
    from source.hardware import kernel_flags
    runs = {}
    for precision in ("fp32", "fp32") + (("bf16",) if "avx512f" in kernel_flags() else ()):
        m = ADAE(machine=MachineConfig(precision=precision), seed=2)
        runs.setdefault(precision, []).append(m.run_scores(batch)["x_dgx"])
        assert m.precision["used"] == precision
        m.close()
    np.testing.assert_array_equal(runs["fp32"][0], runs["fp32"][1])
    if "bf16" in runs:
        assert np.isfinite(runs["bf16"][0]).all()
        np.testing.assert_allclose(runs["bf16"][0], runs["fp32"][0], rtol=0.05)


def test_loss_d_weighs_the_fake_term_by_k(fresh_model, batch):
    """With k_t = 0.3 (loaded into the variable), L_D = real - 0.3 fake: the adversarial term is checked
    with a non-zero weight, not only at the equilibrium fixture's k = 0."""
    model = fresh_model
    with model.graph.as_default():   # feeds the variable's initial value: no new op in the finalized graph
        model.k.load(0.3, model.sess)
    out = model.sess.run({"real": model.loss_d_real, "fake": model.loss_d_fake, "loss_d": model.loss_d},
                         {model.x: batch})
    assert out["fake"] > 0.01
    np.testing.assert_allclose(out["loss_d"], out["real"] - 0.3 * out["fake"], rtol=1e-5)


def test_batch_norm_moving_averages_follow_the_batch(batch):
    """One G step: each moving mean becomes momentum * old + (1 - momentum) * the batch mean of that layer's
    input, and each moving variance the same with the batch variance (TF's fused batch norm reports the
    unbiased variance, n / (n - 1) times the population one)."""
    model = ADAE(ModelConfig(bn_momentum=0.9, init="he"), seed=0)
    pre = model.graph.get_tensor_by_name("generator/encoder/conv2/BiasAdd:0")   # input of conv2_bn
    mean_var = [v for v in _moving(model, "generator") if "encoder/conv2_bn/" in v.name]
    before = dict(zip([v.name for v in mean_var], model.sess.run(mean_var)))
    h = model.sess.run(pre, {model.x: batch})
    model.sess.run(model.step_g, {model.x: batch})
    after = dict(zip([v.name for v in mean_var], model.sess.run(mean_var)))
    n = h.shape[0] * h.shape[1] * h.shape[2]
    batch_mean, batch_var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2)) * n / (n - 1)
    for name, stat in (("moving_mean", batch_mean), ("moving_variance", batch_var)):
        key = next(k for k in after if name in k)
        np.testing.assert_allclose(after[key], 0.9 * before[key] + 0.1 * stat, rtol=1e-4, atol=1e-6)
    model.close()


def test_ema_averages_weights_and_scores_with_them(batch, tmp_path):
    """--ema d: training is the same as without it; after each iteration every G and D weight's average
    follows a_t = d_t a_(t-1) + (1 - d_t) w_t with d_t = min(d, (1 + t) / (10 + t)) (NumPy, from the initial
    weights); scores and shown images use the averages, the trained weights are back afterwards, and a
    checkpoint keeps both."""
    small = dict(widths=(8, 16), latent=4)
    plain, averaged = ADAE(ModelConfig(**small), seed=0), ADAE(ModelConfig(**small, ema=0.5), seed=0)
    assert not [v for v in plain.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES) if "ema" in v.name]
    variables = averaged.vars_g + averaged.vars_d
    expected = _values(averaged, variables)
    for t in (1, 2, 3):
        plain.train_step(batch)
        averaged.train_step(batch)
        decay = min(0.5, (1 + t) / (10 + t))
        expected = [decay * a + (1 - decay) * w for a, w in zip(expected, _values(averaged, variables))]
    trained = _values(averaged, variables)
    for a, b in zip(trained, _values(plain, plain.vars_g + plain.vars_d)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    with averaged.scoring_weights():
        for a, e in zip(_values(averaged, variables), expected):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-7)
        by_hand = averaged.sess.run(averaged.scores["x_dgx"], {averaged.x: batch})
    for a, w in zip(_values(averaged, variables), trained):
        np.testing.assert_array_equal(a, w)
    with averaged.scoring_weights():   # nested blocks (a score inside a figure's block) swap once
        nested = averaged.run_scores(batch)["x_dgx"]
    np.testing.assert_allclose(nested, by_hand, rtol=1e-6)
    for a, w in zip(_values(averaged, variables), trained):
        np.testing.assert_array_equal(a, w)
    scores = averaged.run_scores(batch)
    np.testing.assert_allclose(scores["x_dgx"], by_hand, rtol=1e-6)
    np.testing.assert_allclose(averaged.run_scores(batch, ema=False)["x_dgx"], plain.run_scores(batch)["x_dgx"],
                               rtol=1e-5)
    # three steps move an untrained network's output little: the averages' scores differ by about 1e-3
    assert np.abs(scores["x_dgx"] - plain.run_scores(batch)["x_dgx"]).max() > 2e-4
    averaged.save(str(tmp_path / "model.ckpt"))
    again = ADAE(averaged.config, seed=5)
    assert again.load(str(tmp_path))[0]
    np.testing.assert_allclose(again.run_scores(batch)["x_dgx"], scores["x_dgx"], rtol=1e-6)
    for m in (plain, averaged, again):
        m.close()


def test_ema_must_be_a_decay():
    with pytest.raises(ValueError, match="ema"):
        ModelConfig(ema=1.0)
