"""The ADAE graph: generator G, discriminator D, losses, scores, optimizers, summaries, Saver."""
import numpy as np
import tensorflow as tf

from source import layers

tf1 = tf.compat.v1

OBJECTIVES = ("equilibrium", "paper", "autoencoder")
SCORES = ("x_dgx", "x_gx", "x_dx", "gx_dgx")   # score names: which two images the L2 error compares


def autoencoder(x, ksize, training, update_stats=True, bn_momentum=0.9, code_channels=0, out_bias=0.0):
    """Reference conv autoencoder: 3 levels of 16/32/64 channels, mirrored decoder, sigmoid output."""
    def conv_bn_relu(h, channels, name):
        h = layers.conv2d(h, channels, ksize, name=name)
        return layers.relu(layers.batch_norm(h, training, update_stats, bn_momentum, name=name + "_bn"))

    def deconv_bn_relu(h, channels, name):
        h = layers.conv2d_transpose(h, channels, ksize, stride=2, name=name)
        return layers.relu(layers.batch_norm(h, training, update_stats, bn_momentum, name=name + "_bn"))

    with tf1.variable_scope("encoder"):
        h = conv_bn_relu(x, 16, "conv1_1")
        h = conv_bn_relu(h, 16, "conv1_2")
        h = layers.max_pool(h, "pool1")                 # 14x14
        h = conv_bn_relu(h, 32, "conv2_1")
        h = conv_bn_relu(h, 32, "conv2_2")
        h = layers.max_pool(h, "pool2")                 # 7x7
        h = conv_bn_relu(h, 64, "conv3_1")
        h = conv_bn_relu(h, 64, "conv3_2")
        if code_channels:
            # Optional narrower code (7x7xC): the reference's 7x7x64 code is 4x the input size.
            h = conv_bn_relu(h, code_channels, "code")
    with tf1.variable_scope("decoder"):
        if code_channels:
            h = conv_bn_relu(h, 64, "uncode")
        h = deconv_bn_relu(h, 32, "deconv2")          # 14x14
        h = conv_bn_relu(h, 32, "conv2_1")
        h = deconv_bn_relu(h, 16, "deconv1")          # 28x28
        h = conv_bn_relu(h, 16, "conv1_1")
        # out_bias < 0 starts the sigmoid near MNIST's dark background instead of at 0.5 gray
        h = layers.conv2d(h, int(x.shape[-1]), ksize, name="out", bias_init=out_bias)
        return layers.sigmoid(h)


def l1_per_image(a, b):
    """Mean absolute error of each image."""
    return tf.reduce_mean(tf.abs(a - b), axis=[1, 2, 3])


def l2_per_image(a, b):
    """Euclidean distance between each pair of images."""
    return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=[1, 2, 3]))


class ADAE:
    """Adversarial dual autoencoders as one static graph, built in full by the constructor.

    objective: 'paper'       L_D = |X-D(X)| - |G(X)-D(G(X))|, L_G = |X-G(X)| + |G(X)-D(G(X))|
               'equilibrium' L_D = |X-D(X)| - k_t |G(X)-D(G(X))|, k_t from BEGAN's control
               'autoencoder' G alone, L_G = |X-G(X)| (the plain conv-AE baseline; D unused)
    """

    def __init__(self, height=28, width=28, channels=1, ksize=3, lr=1e-4, beta1=0.9,
                 objective="equilibrium", gamma=0.5, lambda_k=1e-3, bn_momentum=0.9,
                 code_channels=0, out_bias=0.0, seed=0, keep_checkpoints=3, threads=0, xla=False, bf16=False):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}")
        self.objective = objective
        self.score_name = "x_gx" if objective == "autoencoder" else "x_dgx"
        self.config = dict(height=height, width=width, channels=channels, ksize=ksize, lr=lr, beta1=beta1,
                           objective=objective, gamma=gamma, lambda_k=lambda_k, bn_momentum=bn_momentum,
                           code_channels=code_channels, out_bias=out_bias)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            net = dict(ksize=ksize, bn_momentum=bn_momentum, code_channels=code_channels, out_bias=out_bias)

            # inputs
            self.x = tf1.placeholder(tf.float32, [None, height, width, channels], name="x")
            self.global_step = tf1.train.get_or_create_global_step()
            self.epoch = tf1.get_variable("epoch", [], tf.int64, tf1.zeros_initializer(), trainable=False)
            self.k = tf1.get_variable("k_t", [], tf.float32, tf1.constant_initializer(
                1.0 if objective == "paper" else 0.0), trainable=False)

            # networks, training path (batch statistics); D sees X and G(X) with shared weights
            with tf1.variable_scope("generator"):
                self.g_x = autoencoder(self.x, training=True, **net)
            with tf1.variable_scope("discriminator"):
                self.d_x = autoencoder(self.x, training=True, **net)
            with tf1.variable_scope("discriminator", reuse=True):
                self.d_g_x = autoencoder(self.g_x, training=True, update_stats=False, **net)

            # losses: each term its own tensor so it can be logged
            self.loss_d_real = tf.reduce_mean(l1_per_image(self.x, self.d_x), name="loss_d_real")
            self.loss_d_fake = tf.reduce_mean(l1_per_image(self.g_x, self.d_g_x), name="loss_d_fake")
            self.loss_g_rec = tf.reduce_mean(l1_per_image(self.x, self.g_x), name="loss_g_rec")
            self.loss_g_adv = self.loss_d_fake
            self.loss_d = tf.identity(self.loss_d_real - self.k * self.loss_d_fake, name="loss_d")
            if objective == "autoencoder":
                self.loss_g = tf.identity(self.loss_g_rec, name="loss_g")
            else:
                self.loss_g = tf.identity(self.loss_g_rec + self.loss_g_adv, name="loss_g")
            self.d_ratio = self.loss_d_fake / (self.loss_d_real + 1e-8)

            # optimizers: each over its own scope's variables, with its own batch-norm updates
            self.vars_g = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope="generator/")
            self.vars_d = tf1.get_collection(tf1.GraphKeys.TRAINABLE_VARIABLES, scope="discriminator/")
            updates_g = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, scope="generator/")
            updates_d = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS, scope="discriminator/")
            with tf1.variable_scope("optimizer_d"), tf.control_dependencies(updates_d):
                self.train_d = tf1.train.AdamOptimizer(lr, beta1=beta1).minimize(self.loss_d, var_list=self.vars_d)
            with tf.control_dependencies([self.train_d]):
                # BEGAN's equilibrium control, from this step's losses; fixed k=1 is the paper's form
                if objective == "equilibrium":
                    k_next = self.k + lambda_k * (gamma * self.loss_d_real - self.loss_d_fake)
                    self.update_k = tf1.assign(self.k, tf.clip_by_value(k_next, 0.0, 1.0))
                else:
                    self.update_k = tf.no_op()
            self.step_d = tf.group(self.train_d, self.update_k, name="step_d")
            with tf1.variable_scope("optimizer_g"), tf.control_dependencies(updates_g):
                self.step_g = tf1.train.AdamOptimizer(lr, beta1=beta1).minimize(
                    self.loss_g, var_list=self.vars_g, global_step=self.global_step)
            self.next_epoch = tf1.assign_add(self.epoch, 1)

            # inference path: moving averages, so a test image's score does not depend on its batch
            with tf1.variable_scope("generator", reuse=True):
                self.g_x_test = autoencoder(self.x, training=False, **net)
            with tf1.variable_scope("discriminator", reuse=True):
                self.d_x_test = autoencoder(self.x, training=False, **net)
                self.d_g_x_test = autoencoder(self.g_x_test, training=False, **net)
            # A(x) = ||x - D(G(x))||_2 is the paper's score; the others are for analysis
            self.scores = {
                "x_dgx": l2_per_image(self.x, self.d_g_x_test),
                "x_gx": l2_per_image(self.x, self.g_x_test),
                "x_dx": l2_per_image(self.x, self.d_x_test),
                "gx_dgx": l2_per_image(self.g_x_test, self.d_g_x_test),
            }
            self.score = self.scores[self.score_name]
            # the image the score compares x with: D(G(x)), or G(x) for the plain autoencoder
            self.recon_test = self.g_x_test if objective == "autoencoder" else self.d_g_x_test

            # summaries: scalars every few steps, epoch-level ones fed from the solver
            self.summary_step = tf1.summary.merge([
                tf1.summary.scalar("loss/loss_g", self.loss_g),
                tf1.summary.scalar("loss/loss_d", self.loss_d),
                tf1.summary.scalar("loss_terms/g_rec_x_gx", self.loss_g_rec),
                tf1.summary.scalar("loss_terms/g_adv_gx_dgx", self.loss_g_adv),
                tf1.summary.scalar("loss_terms/d_real_x_dx", self.loss_d_real),
                tf1.summary.scalar("loss_terms/d_fake_gx_dgx", self.loss_d_fake),
                tf1.summary.scalar("health/k_t", self.k),
                tf1.summary.scalar("health/d_fake_over_real", self.d_ratio),
            ])
            self.valid_scores_in = tf1.placeholder(tf.float32, [None], name="valid_scores")
            self.valid_auroc_in = tf1.placeholder(tf.float32, [], name="valid_auroc")
            self.restoration_in = tf1.placeholder(tf.uint8, [1, None, None, 1], name="restoration")
            self.summary_epoch = tf1.summary.merge([
                tf1.summary.scalar("valid/score_mean", tf.reduce_mean(self.valid_scores_in)),
                tf1.summary.histogram("valid/scores", self.valid_scores_in),
                tf1.summary.scalar("valid/auroc_dev", self.valid_auroc_in),
                tf1.summary.image("restoration/x_gx_dgx_diff", self.restoration_in),
            ])

            self.saver = tf1.train.Saver(max_to_keep=keep_checkpoints)
            self.init = tf1.global_variables_initializer()
            self.n_params_g = count_params(self.vars_g)
            self.n_params_d = count_params(self.vars_d)
        self.graph.finalize()   # the training loop adds no ops
        self.sess = tf1.Session(graph=self.graph, config=session_config(threads, xla, bf16))
        self.sess.run(self.init)

    def close(self):
        """Release the session."""
        self.sess.close()

    def save(self, ckpt_prefix):
        """Write a checkpoint of every variable (networks, optimizers, counters); return its path."""
        with self.graph.as_default():   # Saver treats a call outside its graph as eager
            step = self.sess.run(self.global_step)
            return self.saver.save(self.sess, ckpt_prefix, global_step=step, write_meta_graph=False)

    def load(self, ckpt_dir):
        """Restore the newest checkpoint of a folder; return (found, path)."""
        state = tf1.train.get_checkpoint_state(ckpt_dir)
        if not state or not state.model_checkpoint_path:
            return False, None
        with self.graph.as_default():
            self.saver.restore(self.sess, state.model_checkpoint_path)
            self.saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        return True, state.model_checkpoint_path

    def run_scores(self, x, batch_size=1024, names=SCORES):
        """Score images in large batches with the inference path; returns {name: (N,) float64}."""
        fetch = {name: self.scores[name] for name in names}
        parts = {name: [] for name in names}
        for start in range(0, len(x), batch_size):
            out = self.sess.run(fetch, {self.x: x[start:start + batch_size]})
            for name in names:
                parts[name].append(out[name])
        return {name: np.concatenate(parts[name]).astype(np.float64) if parts[name] else np.zeros(0)
                for name in names}

    def restore_images(self, x):
        """Inference-path G(x) and the reconstruction the score uses (D(G(x)) for ADAE) for a few images."""
        return self.sess.run([self.g_x_test, self.recon_test], {self.x: x})


def count_params(variables):
    """Number of scalar parameters in a variable list."""
    return int(sum(np.prod(v.shape.as_list()) for v in variables))


def session_config(threads=0, xla=False, bf16=False):
    """Session options: thread pools (0 = one per core), optional XLA JIT and oneDNN bfloat16."""
    config = tf1.ConfigProto()
    config.intra_op_parallelism_threads = threads
    config.inter_op_parallelism_threads = 2 if threads == 0 else max(1, min(2, threads))
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    if bf16:
        from tensorflow.core.protobuf import rewriter_config_pb2
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config
