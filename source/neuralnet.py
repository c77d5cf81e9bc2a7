"""The ADAE graph: generator G, discriminator D, losses, scores, optimizers, summaries, Saver."""
import contextlib
import functools
import glob
import logging
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from source import board, hardware, layers, scores as score_defs
from source.config import SCORE_NAMES, MachineConfig, ModelConfig
from source.scores import HIDDEN, LAYERWISE, PAIRS, PIXEL, RELATIVE

logger = logging.getLogger(__name__)
tf1 = tf.compat.v1
PAD = 2   # the paper's networks see MNIST zero-padded from 28x28 to 32x32


def reference_autoencoder(x, training, update_stats=True, encode_only=False, *, bn_momentum, ksize, code_channels,
                          out_bias, init):
    """Reference conv autoencoder: 3 levels of 16/32/64 channels, max pooling, mirrored decoder, sigmoid output.
    Returns (output, hidden): hidden is the encoder's layers, the input first and the code last (the output
    is None with encode_only)."""
    def conv_bn_relu(h, channels, name):
        h = layers.conv2d(h, channels, ksize, name=name, init=init)
        return tf.nn.relu(layers.batch_norm(h, training, update_stats, bn_momentum, name=name + "_bn"))

    def deconv_bn_relu(h, channels, name):
        h = layers.conv2d_transpose(h, channels, ksize, stride=2, name=name, init=init)
        return tf.nn.relu(layers.batch_norm(h, training, update_stats, bn_momentum, name=name + "_bn"))

    with tf1.variable_scope("encoder"):
        h = conv_bn_relu(x, 16, "conv1_1")
        h = conv_bn_relu(h, 16, "conv1_2")
        h = layers.max_pool(h, "pool1")                 # 14x14
        hidden = [x, h]
        h = conv_bn_relu(h, 32, "conv2_1")
        h = conv_bn_relu(h, 32, "conv2_2")
        h = layers.max_pool(h, "pool2")                 # 7x7
        hidden.append(h)
        h = conv_bn_relu(h, 64, "conv3_1")
        h = conv_bn_relu(h, 64, "conv3_2")
        if code_channels:
            # Optional narrower code (7x7xC): the reference's 7x7x64 code is 4x the input size.
            h = conv_bn_relu(h, code_channels, "code")
        hidden.append(h)
    if encode_only:
        return None, hidden
    with tf1.variable_scope("decoder"):
        if code_channels:
            h = conv_bn_relu(h, 64, "uncode")
        h = deconv_bn_relu(h, 32, "deconv2")          # 14x14
        h = conv_bn_relu(h, 32, "conv2_1")
        h = deconv_bn_relu(h, 16, "deconv1")          # 28x28
        h = conv_bn_relu(h, 16, "conv1_1")
        # out_bias < 0 starts the sigmoid near MNIST's dark background instead of at 0.5 gray
        h = layers.conv2d(h, int(x.shape[-1]), ksize, name="out", bias_init=out_bias, init=init)
        return tf.nn.sigmoid(h), hidden


def paper_autoencoder(x, training, update_stats=True, encode_only=False, *, bn_momentum, widths, latent, init):
    """The paper's autoencoder: 4x4 convolutions of stride 2 (no pooling, no dense layer) down to a
    1x1xlatent code, a mirrored transposed-convolution decoder and a tanh output in [-1, 1]. Returns (output,
    hidden): hidden is the encoder's layers, the input, each convolution's activation and the code (the
    output is None with encode_only).

    DCGAN conventions where the paper is silent: batch norm after every hidden layer but the first,
    LeakyReLU(0.2) in the encoder, ReLU in the decoder.
    """
    def bn(h, name):
        return layers.batch_norm(h, training, update_stats, bn_momentum, name=name + "_bn")

    with tf1.variable_scope("encoder"):
        h = x                                                        # 32x32
        hidden = [x]
        for i, channels in enumerate(widths):
            h = layers.conv2d(h, channels, 4, stride=2, name=f"conv{i + 1}", init=init)
            h = tf.nn.leaky_relu(h if i == 0 else bn(h, f"conv{i + 1}"), 0.2)
            hidden.append(h)
        size = int(h.shape[1])                                      # 4x4 for 32x32 and three widths
        z = layers.conv2d(h, latent, size, padding="VALID", name="latent", init=init)   # 1x1xlatent
        hidden.append(z)
    if encode_only:
        return None, hidden
    with tf1.variable_scope("decoder"):
        h = layers.conv2d_transpose(z, widths[-1], size, stride=1, padding="VALID", name="unlatent", init=init)
        h = tf.nn.relu(bn(h, "unlatent"))
        for i, channels in reversed(list(enumerate(widths[:-1]))):
            h = layers.conv2d_transpose(h, channels, 4, stride=2, name=f"deconv{i + 2}", init=init)
            h = tf.nn.relu(bn(h, f"deconv{i + 2}"))
        h = layers.conv2d_transpose(h, int(x.shape[-1]), 4, stride=2, name="deconv1", init=init)
        return tf.nn.tanh(h), hidden


def network_fn(config):
    """The autoencoder builder of a ModelConfig's architecture with its settings bound: f(x, training,
    update_stats, encode_only) -> (output, encoder layers). The builders take every setting from here:
    ModelConfig holds the only defaults."""
    if config.arch == "paper":
        return functools.partial(paper_autoencoder, bn_momentum=config.bn_momentum, widths=config.widths,
                                 latent=config.latent, init=config.init)
    return functools.partial(reference_autoencoder, bn_momentum=config.bn_momentum, ksize=config.ksize,
                             code_channels=config.code_channels, out_bias=config.out_bias, init=config.init)


def to_network(x, arch):
    """Images in [0, 1], 28x28 -> the network's input: the paper's 32x32 in [-1, 1], the reference's as is."""
    if arch == "reference":
        return x
    return tf.pad(x, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]]) * 2.0 - 1.0


# how far a [0, 1] pixel difference stretches in the network's range: an L2 error in [0, 1] units times this
# is the same error in the network's frame (the paper's zero padding adds no difference)
RANGE = {"paper": 2.0, "reference": 1.0}


def to_image(y, arch):
    """A network's output -> images in the input's 28x28 frame and [0, 1] range."""
    if arch == "reference":
        return y
    return tf.clip_by_value((y[:, PAD:-PAD, PAD:-PAD, :] + 1.0) / 2.0, 0.0, 1.0)


def l1_per_image(a, b):
    """Mean absolute error of each image."""
    return tf.reduce_mean(tf.abs(a - b), axis=[1, 2, 3])


def l2_per_image(a, b):
    """Euclidean distance between each pair of images."""
    return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=[1, 2, 3]))


FITTED_FILE = "fitted_scores-{step}.npz"   # a checkpoint's fitted-score statistics, beside it


class ScoreError(RuntimeError):
    """A fitted score asked for before its statistics were fitted or loaded for the weights in use."""


class ADAE:
    """Adversarial dual autoencoders as one static graph, built in full by the constructor, stage by stage in
    the TF1 order: inputs, networks, losses, balance, optimizers, inference and scores, summaries, Saver.

    objective: 'paper'       L_D = |X-D(X)| - |G(X)-D(G(X))|, L_G = |X-G(X)| + |G(X)-D(G(X))|
               'equilibrium' L_D = |X-D(X)| - k_t |G(X)-D(G(X))|, k_t from BEGAN's control
               'autoencoder' G alone, L_G = |X-G(X)| (the plain conv-AE baseline: no D step, scored by x_gx)
    The model is defined by a ModelConfig (see there); inputs are always 28x28 in [0, 1]; losses and scores
    are computed in the network's own frame and range. `seed` draws the initial weights; `machine` says how
    the session runs; `keep_checkpoints` how many checkpoints the Saver keeps.
    """

    def __init__(self, config=ModelConfig(), machine=MachineConfig(), seed=0, keep_checkpoints=3,
                 height=28, width=28, channels=1):
        self.config, self.objective, self.arch = config, config.objective, config.arch
        self._swapped = False   # the moving averages are in G and D (inside scoring_weights)
        self.has_d = config.objective != "autoencoder"   # the one place a model without D is decided
        self.anomaly_score = config.anomaly_score if self.has_d else "x_gx"
        network = network_fn(config)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)   # initial weights follow from it and the order of the stages
            self._inputs(height, width, channels)
            self._networks(network)
            self._losses()
            self._balance()
            self._optimizers()
            self._inference(network)
            self._summaries()
            # relative paths in the checkpoint index: a run folder copied or moved elsewhere still loads
            self.saver = tf1.train.Saver(max_to_keep=keep_checkpoints, save_relative_paths=True)
            self.init = tf.group(tf1.global_variables_initializer(), tf1.local_variables_initializer())
        self.graph.finalize()   # the training loop adds no ops
        self.n_params_g, self.n_params_d = count_params(self.vars_g), count_params(self.vars_d)
        self.sess, self.precision = open_session(self.graph, machine)
        self.sess.run(self.init)

    def _inputs(self, height, width, channels):
        """Images in [0, 1] (x) and what both networks see (x_net); the step, epoch and k_t counters."""
        self.x = tf1.placeholder(tf.float32, [None, height, width, channels], name="x")
        self.x_net = to_network(self.x, self.arch)
        self.global_step = tf1.train.get_or_create_global_step()
        self.epoch = tf1.get_variable("epoch", [], tf.int64, tf1.zeros_initializer(), trainable=False)
        self.k = tf1.get_variable("k_t", [], tf.float32, tf1.constant_initializer(
            1.0 if self.objective == "paper" else 0.0), trainable=False)

    def _networks(self, network):
        """The training path (batch statistics): G(X), D(X), and D(G(X)) with D's weights shared."""
        with tf1.variable_scope("generator"):
            self.g_x, _ = network(self.x_net, training=True)
        with tf1.variable_scope("discriminator"):
            self.d_x, _ = network(self.x_net, training=True)
        with tf1.variable_scope("discriminator", reuse=True):
            self.d_g_x, _ = network(self.g_x, training=True, update_stats=False)

    def _losses(self):
        """Each term its own tensor so it can be logged; G's adversarial term is D's fake term: G wants D to
        rebuild G(X) well."""
        self.loss_d_real = tf.reduce_mean(l1_per_image(self.x_net, self.d_x), name="loss_d_real")
        self.loss_d_fake = tf.reduce_mean(l1_per_image(self.g_x, self.d_g_x), name="loss_d_fake")
        self.loss_g_rec = tf.reduce_mean(l1_per_image(self.x_net, self.g_x), name="loss_g_rec")
        self.loss_d = tf.identity(self.loss_d_real - self.k * self.loss_d_fake, name="loss_d")
        self.loss_g = tf.identity(self.loss_g_rec + self.loss_d_fake if self.has_d else self.loss_g_rec,
                                  name="loss_g")
        self.d_ratio = self.loss_d_fake / (self.loss_d_real + 1e-8)

    def _balance(self):
        """Learning-rate balancing from this batch's losses (constants to the gradients): the gap is D's margin
        |G(X)-D(G(X))| - |X-D(X)|, the adversarial part of L_G minus that of L_D; when D is ahead (large margin)
        G speeds up and D slows down, when G is ahead the reverse."""
        margin = tf.stop_gradient(self.loss_d_fake - self.loss_d_real)
        self.g_lr_share = tf.sigmoid(self.config.balance_alpha * margin, name="g_lr_share")   # b
        # the step's learning rate, fed by the training loop from its schedule (ModelConfig.lr where nothing is
        # fed); built after the networks, so the initial weights (op seeds follow graph order) stay the same
        self.learning_rate = tf1.placeholder_with_default(np.float32(self.config.lr), [], name="learning_rate")
        self.lr_g = 2.0 * self.g_lr_share * self.learning_rate
        self.lr_d = 2.0 * (1.0 - self.g_lr_share) * self.learning_rate

    def _optimizers(self):
        """Adam over each network's own variables with its own batch-norm updates; BEGAN's k_t after D's step
        (fixed k=1 is the paper's form); the weights' moving average after G's step (--ema)."""
        config = self.config
        self.vars_g = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope="generator/")
        self.vars_d = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope="discriminator/")
        updates_g = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, scope="generator/")
        updates_d = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, scope="discriminator/")
        with tf1.variable_scope("optimizer_d"), tf.control_dependencies(updates_d):
            self.train_d = tf1.train.AdamOptimizer(self.lr_d, beta1=config.beta1).minimize(
                self.loss_d, var_list=self.vars_d)
        with tf.control_dependencies([self.train_d]):
            if self.objective == "equilibrium":
                k_next = self.k + config.lambda_k * (config.gamma * self.loss_d_real - self.loss_d_fake)
                self.update_k = tf1.assign(self.k, tf.clip_by_value(k_next, 0.0, 1.0))
            else:
                self.update_k = tf.no_op()
        self.step_d = tf.group(self.train_d, self.update_k, name="step_d")
        with tf1.variable_scope("optimizer_g"), tf.control_dependencies(updates_g):
            self.step_g = tf1.train.AdamOptimizer(self.lr_g, beta1=config.beta1).minimize(
                self.loss_g, var_list=self.vars_g, global_step=self.global_step)
        if config.ema:   # after both steps of an iteration; nothing is added without it
            self.step_g, self.use_ema, self.use_trained = moving_average(
                config.ema, self.global_step, self.step_g, self.vars_g + self.vars_d)
        self.next_epoch = tf1.assign_add(self.epoch, 1)
        # what one iteration reports (train_step): D's numbers from its step, G's from its step
        self.d_numbers = {"loss_d": self.loss_d, "loss_d_real": self.loss_d_real, "loss_d_fake": self.loss_d_fake,
                          "g_lr_share": self.g_lr_share}
        self.g_numbers = {"loss_g": self.loss_g, "loss_g_rec": self.loss_g_rec}

    def _inference(self, network):
        """The inference path (moving averages, so a test image's score does not depend on its batch), the
        anomaly scores (source.scores: pixel scores and the hidden-layer ones computed in the graph; the
        fitted ones from `fit_inputs` in run_scores), and the images shown to people (in the input's frame and
        range)."""
        with tf1.variable_scope("generator", reuse=True):
            self.g_x_test, hidden_g = network(self.x_net, training=False)
        with tf1.variable_scope("discriminator", reuse=True):
            self.d_x_test, hidden_d = network(self.x_net, training=False)
            self.d_g_x_test, _ = network(self.g_x_test, training=False)
        self.tensors = {"x": self.x_net, "G(x)": self.g_x_test, "D(x)": self.d_x_test, "D(G(x))": self.d_g_x_test}
        self.scores = {name: self._score(name) for name in PIXEL}
        # each hidden-layer pair: x's encoder layers from the passes above, the reconstruction's from one more
        # pass of the same encoder; per layer the squared distance (N, L), and all differences stacked (N, D)
        self.fit_inputs, self.hidden = {}, {}
        for pair, (net, first, second) in PAIRS.items():
            assert first == "x"
            with tf1.variable_scope("generator" if net == "G" else "discriminator", reuse=True):
                _, hidden_b = network(self.tensors[second], training=False, encode_only=True)
            hidden_a = hidden_g if net == "G" else hidden_d
            self.hidden[pair] = (hidden_a, hidden_b)
            diffs = [tf.reshape(a - b, [tf.shape(a)[0], -1]) for a, b in zip(hidden_a, hidden_b)]
            distances = tf.stack([tf.reduce_sum(tf.square(d), 1) for d in diffs], 1, name=f"layers_{pair}")
            ink = self._ink(self.x_net, self.tensors[second])[:, None]
            self.fit_inputs[pair] = {"layers": distances, "diffs": tf.concat(diffs, 1, name=f"diffs_{pair}"),
                                     "layers_ink": tf.concat([distances, ink], 1, name=f"layers_ink_{pair}")}
            for kind, weights in LAYERWISE.items():
                self.scores[f"{kind}_{pair}"] = tf.tensordot(
                    distances, tf.constant(weights(len(diffs)), tf.float32), 1, name=f"{kind}_{pair}")
        self.fitted = {name: score_defs.fitted_score(kind, self.config) for name, (kind, _) in HIDDEN.items()
                       if name not in self.scores}
        self.forget_fitted()   # statistics of the weights in use: fitted or loaded, else none
        self.score = self.scores.get(self.anomaly_score)
        shown = ("G(x)", "D(G(x))", "D(x)") if self.has_d else ("G(x)",)
        self.images = {name: to_image(self.tensors[name], self.arch) for name in shown}
        # |difference| panels show x minus the reconstruction the score uses (a hidden-layer score's second image)
        self.recon_name = PIXEL[self.anomaly_score][1] if self.anomaly_score in PIXEL else \
            PAIRS[HIDDEN[self.anomaly_score][1]][2]

    def _score(self, name):
        """One pixel score per image: the L2 error between its two images in the network's frame, over their
        ink (the L2 norms of both in [0, 1]) for the RELATIVE ones."""
        a, b = (self.tensors[k] for k in PIXEL[name])
        error = l2_per_image(a, b)
        if name not in RELATIVE:
            return error
        return error / tf.maximum(self._ink(a, b), 1e-6)

    def _ink(self, a, b):
        """The ink of two images: the sum of their L2 norms in the input's frame and range."""
        image_a, image_b = to_image(a, self.arch), to_image(b, self.arch)
        zero = tf.zeros_like(image_a)
        return l2_per_image(image_a, zero) + l2_per_image(image_b, zero)

    def _summaries(self):
        """Scalars every few steps; the epoch-level ones are fed from the solver."""
        self.summary_step = tf1.summary.merge([
            tf1.summary.scalar("loss/loss_g", self.loss_g),
            tf1.summary.scalar("loss/loss_d", self.loss_d),
            tf1.summary.scalar("loss_terms/g_rec_x_gx", self.loss_g_rec),
            tf1.summary.scalar("loss_terms/d_real_x_dx", self.loss_d_real),
            tf1.summary.scalar("loss_terms/d_fake_gx_dgx", self.loss_d_fake),
            tf1.summary.scalar("health/k_t", self.k),
            tf1.summary.scalar("health/g_lr_share_b", self.g_lr_share),
            tf1.summary.scalar("health/learning_rate", self.learning_rate),
            tf1.summary.scalar("health/d_fake_over_real", self.d_ratio),
        ])
        self.valid_scores_in = tf1.placeholder(tf.float32, [None], name="valid_scores")
        self.valid_auroc_in = tf1.placeholder(tf.float32, [], name="valid_auroc")
        self.summary_epoch = tf1.summary.merge([
            tf1.summary.scalar("valid/score_mean", tf.reduce_mean(self.valid_scores_in)),
            tf1.summary.histogram("valid/scores", self.valid_scores_in),
            tf1.summary.scalar(board.DEV_AUROC, self.valid_auroc_in),
        ])

    def close(self):
        """Release the session."""
        self.sess.close()

    def save(self, ckpt_prefix):
        """Write a checkpoint of every variable (networks, optimizers, counters); return its path."""
        with self.graph.as_default():   # Saver treats a call outside its graph as eager
            step = self.sess.run(self.global_step)
            return self.saver.save(self.sess, ckpt_prefix, global_step=step, write_meta_graph=False)

    def load(self, ckpt_dir):
        """Restore the newest checkpoint of a folder that reads whole, saying in one line which newer ones are
        damaged; return (found, path): (False, None) where the folder has none, CheckpointError where none
        reads."""
        path, damaged = find_checkpoint(ckpt_dir)
        if path is None:
            return False, None
        if damaged:
            logger.warning(f"[checkpoint] {'; '.join(f'{p} is damaged ({why})' for p, why in damaged)}: "
                           f"using {path}")
        self.restore(path)
        with self.graph.as_default():
            # the Saver deletes the oldest of these as it writes new ones (damaged ones included)
            self.saver.recover_last_checkpoints(checkpoints(ckpt_dir))
        return True, path

    def restore(self, path):
        """Restore one checkpoint (a prefix from `checkpoints`) and the fitted statistics saved for it, if any."""
        with self.graph.as_default():
            self.saver.restore(self.sess, path)
        self.load_fitted(os.path.dirname(path))

    @contextlib.contextmanager
    def scoring_weights(self, ema=True):
        """The block computes with the weights the model scores with: with ModelConfig.ema (and ema=True)
        the moving averages are swapped into G and D for the block and the trained weights back after it.
        Blocks nest: only the outermost swaps (an inner swap would keep the averages as the trained weights)."""
        swap = bool(ema and self.config.ema and not self._swapped)
        if swap:
            self.sess.run(self.use_ema)
            self._swapped = True
        try:
            yield
        finally:
            if swap:
                self.sess.run(self.use_trained)
                self._swapped = False

    def available_scores(self, ema=True):
        """The scores run_scores can compute now, in SCORE_NAMES' order: the graph's, and the fitted ones whose
        statistics belong to the scoring weights (none with the trained weights where the model scores with
        their moving average: the statistics are its)."""
        fitted_ok = not (self.config.ema and not ema)
        return tuple(n for n in SCORE_NAMES if n in self.scores or (fitted_ok and n in self.fit_stats))

    def run_scores(self, x, batch_size=1024, names=None, ema=True):
        """Score images in large batches with the inference path and the scoring weights (ema=False: the
        trained weights even where the model scores with their moving average); names: those asked (None: every
        available one). Returns {name: (N,) float64}. A fitted score without statistics: ScoreError."""
        names = self.available_scores(ema) if names is None else tuple(names)
        missing = [n for n in names if n not in self.available_scores(ema)]
        if missing:
            raise ScoreError(f"scores {missing} need statistics fitted on training normals for these weights "
                             "(fit_scores or a checkpoint's saved statistics)")
        fetch = {name: self.scores[name] for name in names if name in self.scores}
        for name in names:
            if name not in self.scores:
                kind, pair = HIDDEN[name]
                fetch[(pair, self.fitted[name].reads)] = self.fit_inputs[pair][self.fitted[name].reads]
        parts = {name: [] for name in names}
        with self.scoring_weights(ema):
            for start in range(0, len(x), batch_size):
                out = self.sess.run(fetch, {self.x: x[start:start + batch_size]})
                for name in names:
                    if name in self.scores:
                        parts[name].append(out[name])
                    else:
                        pair = HIDDEN[name][1]
                        parts[name].append(self.fitted[name].score(out[(pair, self.fitted[name].reads)],
                                                                   self.fit_stats[name]))
        return {name: np.concatenate(parts[name]).astype(np.float64) if parts[name] else np.zeros(0)
                for name in names}

    def layer_distances(self, x, pair, batch_size=1024, ema=True):
        """Per image, a hidden-layer pair's squared distance at each encoder layer, input first, code last (N, L),
        on the inference path with the scoring weights: what every hidden-layer score of the pair weighs."""
        with self.scoring_weights(ema):
            parts = [self.sess.run(self.fit_inputs[pair]["layers"], {self.x: x[start:start + batch_size]})
                     for start in range(0, len(x), batch_size)]
        return np.concatenate(parts).astype(np.float64)

    def fit_scores(self, x_normals, batch_size=512):
        """Fit the statistics of every fitted score that has none for the scoring weights (all of them after a
        training step; those a checkpoint's saved statistics lack, where it was fitted by an older version) on
        training normals x_normals; they hold until the weights change (a training step) or others are loaded.
        Returns them all {name: stats}."""
        if not len(x_normals):
            raise ScoreError("fitting the hidden-layer scores needs training normals; none were given")
        todo = {n: f for n, f in self.fitted.items() if n not in self.fit_stats}
        reads = {(HIDDEN[n][1], f.reads) for n, f in todo.items()}
        fetch = {key: self.fit_inputs[key[0]][key[1]] for key in reads}
        parts = {key: [] for key in reads}
        with self.scoring_weights():
            for start in range(0, len(x_normals), batch_size):
                out = self.sess.run(fetch, {self.x: x_normals[start:start + batch_size]})
                for key in reads:
                    parts[key].append(out[key])
        inputs = {key: np.concatenate(parts[key]) for key in reads}
        self.fit_stats.update({name: f.fit(inputs[(HIDDEN[name][1], f.reads)]) for name, f in todo.items()})
        self.fit_step = int(self.sess.run(self.global_step))
        return self.fit_stats

    def forget_fitted(self):
        """Drop the fitted statistics: they belong to weights no longer in use (a training step, a restore), so
        the next fit_scores fits every fitted score anew."""
        self.fit_stats, self.fit_step = {}, None

    def save_fitted(self, ckpt_dir):
        """Write the fitted statistics beside the checkpoint of their step; return the file's path."""
        path = os.path.join(ckpt_dir, FITTED_FILE.format(step=self.fit_step))
        arrays = {f"{name}/{key}": value for name, stats in self.fit_stats.items() for key, value in stats.items()}
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    def load_fitted(self, ckpt_dir):
        """Read the fitted statistics saved for the weights now loaded (their step); False where there are none."""
        step = int(self.sess.run(self.global_step))
        path = os.path.join(ckpt_dir, FITTED_FILE.format(step=step))
        self.forget_fitted()
        if not os.path.exists(path):
            return False
        with np.load(path, allow_pickle=False) as f:
            for key in f.files:
                name, field = key.split("/", 1)
                self.fit_stats.setdefault(name, {})[field] = f[key]
        self.fit_step = step
        return True

    def train_step(self, x, summary=False, learning_rate=None):
        """One training iteration on batch x at learning_rate (None: ModelConfig.lr): a D step (none without D),
        then a G step. Returns its numbers {name: value} (D's as 0 without D), with the G step's scalar summary
        under "summary" when asked: the one iteration the training loop, the benchmark and a sweep's projection
        all run."""
        feed = {self.x: x} if learning_rate is None else {self.x: x, self.learning_rate: learning_rate}
        self.forget_fitted()   # they were fitted for the weights this step changes
        numbers = self.sess.run({**self.d_numbers, "step": self.step_d}, feed) if self.has_d else \
            dict.fromkeys(self.d_numbers, 0.0)
        numbers.update(self.sess.run({**self.g_numbers, "step": self.step_g,
                                      **({"summary": self.summary_step} if summary else {})}, feed))
        numbers.pop("step")
        return numbers

    def reconstruct(self, x):
        """G(x), D(G(x)) and D(x) (G(x) alone for the autoencoder) as images in [0, 1], 28x28."""
        if not len(x):   # some oneDNN kernels (AVX-512) reject an empty batch: never send one
            return {name: np.zeros((0,) + tuple(t.shape[1:]), np.float32) for name, t in self.images.items()}
        with self.scoring_weights():
            return self.sess.run(self.images, {self.x: x})

    def panels(self, x):
        """Titled image columns for figures: each reconstruction, then |x - the one the score uses|."""
        images = self.reconstruct(x)
        return list(images.items()) + [(f"|x - {self.recon_name}|", np.abs(x - images[self.recon_name]))]


class CheckpointError(ValueError):
    """A run whose checkpoints all fail to read (cut short, emptied, missing a file): one line naming them."""


def checkpoints(ckpt_dir):
    """The Saver's checkpoint prefixes in a folder, oldest step first, from the files themselves (the Saver's
    own list, the file `checkpoint`, may be the damaged one)."""
    found = set()
    for name in os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []:
        match = re.fullmatch(r"(.+-(\d+))\.(index|data-\d{5}-of-\d{5})", name)
        if match:
            found.add((int(match[2]), os.path.join(ckpt_dir, match[1])))
    return [path for _, path in sorted(found)]


def copy_checkpoint(prefix, folder):
    """Make folder hold one checkpoint: a copy of the files of prefix (its index and data), written whole beside
    it first and then swapped in for the old copy; returns the copy's prefix."""
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for path in glob.glob(glob.escape(prefix) + ".*"):
        shutil.copy2(path, tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return os.path.join(folder, os.path.basename(prefix))


def checkpoint_damage(path):
    """Why the checkpoint at path cannot be restored (its index or a tensor's bytes unreadable), or None: every
    tensor is read, so a data file cut short or emptied shows here, not halfway through a restore."""
    try:
        reader = tf1.train.NewCheckpointReader(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:   # TensorFlow's reader turns its errors into IndexError, ValueError, OpError ...
        message = getattr(err, "message", None) or str(err)
        return message.strip().splitlines()[0] if message.strip() else type(err).__name__
    return None


def find_checkpoint(ckpt_dir):
    """(the newest checkpoint of a folder that reads whole, [(newer damaged checkpoint, why)]); (None, [])
    where the folder has none; CheckpointError, naming the newest and why, where none reads."""
    damaged = []
    for path in reversed(checkpoints(ckpt_dir)):
        why = checkpoint_damage(path)
        if why is None:
            return path, damaged
        damaged.append((path, why))
    if damaged:
        older = f" (and {len(damaged) - 1} older checkpoints: none reads)" if len(damaged) > 1 else ""
        raise CheckpointError(f"checkpoint {damaged[0][0]} is damaged ({damaged[0][1]}){older}; the run cannot "
                              "continue or be evaluated from it: start it again under a new --name")
    return None, []


def moving_average(decay, global_step, step, variables):
    """An exponential moving average of the variables, updated after `step`: returns (the step with the
    update, an op that swaps the averages in, an op that swaps the trained values back). The trained values
    wait in local variables, which the Saver does not write."""
    ema = tf1.train.ExponentialMovingAverage(decay, num_updates=global_step, name="ema")
    with tf.control_dependencies([step]):
        step_with_update = tf.group(ema.apply(variables), name="step_g_ema")
    with tf1.variable_scope("ema_trained_copy"):
        copies = [tf1.get_variable(v.op.name.replace("/", "_"), v.shape, v.dtype, tf1.zeros_initializer(),
                                   trainable=False, collections=[tf1.GraphKeys.LOCAL_VARIABLES]) for v in variables]
    keep = tf.group(*[c.assign(v) for c, v in zip(copies, variables)])
    with tf.control_dependencies([keep]):
        use_ema = tf.group(*[v.assign(ema.average(v)) for v in variables], name="use_ema")
    use_trained = tf.group(*[v.assign(c) for c, v in zip(copies, variables)], name="use_trained")
    return step_with_update, use_ema, use_trained


def count_params(variables):
    """Number of scalar parameters in a variable list."""
    return int(sum(np.prod(v.shape.as_list()) for v in variables))


def open_session(graph, machine):
    """A session on the graph as the MachineConfig says (its threads hold NumPy's math too), and the precision
    it runs at."""
    precision = hardware.resolve_precision(machine.precision)
    hardware.limit_math_threads(machine.threads)
    return tf1.Session(graph=graph, config=session_config(machine.threads, machine.xla,
                                                          precision["used"] == "bf16")), precision


def session_config(threads=0, xla=False, bf16=False):
    """Session options: thread pools (0 = one per core), optional XLA JIT and oneDNN bfloat16 (whether this CPU
    can run it: hardware.resolve_precision)."""
    config = tf1.ConfigProto()
    config.intra_op_parallelism_threads = threads
    config.inter_op_parallelism_threads = 2 if threads == 0 else max(1, min(2, threads))
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    if bf16:
        from tensorflow.core.protobuf import rewriter_config_pb2
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config
