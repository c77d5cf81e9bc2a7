"""Initialisation (source.layers through both architectures' autoencoders, as neuralnet.network_fn builds
them): every kernel at its fan-in's scale, outputs that start away from their limits."""
import numpy as np
import pytest
import tensorflow as tf

from source import layers
from source.neuralnet import ModelConfig, network_fn, to_network

tf1 = tf.compat.v1
ARCHS = ("paper", "reference")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("init", layers.INITS)
def test_kernels_start_at_their_fan_ins_scale_and_outputs_away_from_their_limits(arch, init, digit1):
    """One autoencoder of the architecture (G's and D's are two of these), alone in a graph. He: every
    kernel's std is sqrt(2 / (k * k * input channels)), for transposed convolutions too (filter [k, k, out,
    in]); DCGAN: 0.02; checked on the drawn weights, within 15% (sampling noise of the smallest kernels). On
    real images the first training batch leaves under 2% of the output pixels near the output's limits
    (|tanh| > 0.96, or the sigmoid's equivalent), where the output barely learns."""
    with tf.Graph().as_default() as graph:
        tf1.set_random_seed(0)
        x = tf1.placeholder(tf.float32, [None, 28, 28, 1])
        with tf1.variable_scope("generator"):
            out, _ = network_fn(ModelConfig(arch=arch, init=init))(to_network(x, arch), training=True)
        kernels = [v for v in tf1.trainable_variables() if v.name.endswith("weight:0")]
        init_op = tf1.global_variables_initializer()
    with tf1.Session(graph=graph) as sess:
        sess.run(init_op)
        assert len(kernels) >= 6
        for var, value in zip(kernels, sess.run(kernels)):
            k = value.shape[0]
            fan_in = k * k * (value.shape[3] if "deconv" in var.name or "unlatent" in var.name else value.shape[2])
            expected = np.sqrt(2.0 / fan_in) if init == "he" else 0.02
            assert value.std() == pytest.approx(expected, rel=0.15), (var.name, value.std(), expected)
        y = sess.run(out, {x: digit1.x_train[:64]})
    distance = np.abs(y) if arch == "paper" else np.abs(2.0 * y - 1.0)
    assert (distance > 0.96).mean() < 0.02
