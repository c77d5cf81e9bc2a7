"""TF1-style layer helpers on tf.compat.v1.get_variable (no Keras layers)."""
import math

import tensorflow as tf

tf1 = tf.compat.v1

from source.config import INITS
DCGAN_STD = 0.02
# A truncated normal cut at 2 std has a std of 0.8796 times its parameter; dividing by it gives the
# intended std (as tf's variance_scaling_initializer does).
TRUNCATED_STD = 0.87962566103423978


def weight_std(init, fan_in):
    """The std a kernel starts with: He, sqrt(2 / fan_in) (suits ReLU stacks), or DCGAN's fixed 0.02."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    return math.sqrt(2.0 / fan_in) if init == "he" else DCGAN_STD


def _kernel_init(init, fan_in):
    # The fan-in is passed explicitly: a transposed convolution's filter is [k, k, out, in], so an
    # initializer that reads it from the shape (shape[-2]) would see the output channels. No op seed:
    # each initializer derives one from the graph-level seed and its position in the graph, so weights
    # are reproducible and layers of the same shape do not start identical.
    std = weight_std(init, fan_in)
    if init == "he":
        return tf1.truncated_normal_initializer(stddev=std / TRUNCATED_STD)
    return tf1.random_normal_initializer(stddev=std)


def conv2d(x, out_channels, ksize, stride=1, name="conv", bias_init=0.0, padding="SAME", init="he"):
    """2-D convolution with bias ("SAME" keeps size / stride; "VALID" shrinks by ksize - 1)."""
    in_channels = int(x.shape[-1])
    with tf1.variable_scope(name):
        w = tf1.get_variable("weight", [ksize, ksize, in_channels, out_channels],
                             initializer=_kernel_init(init, ksize * ksize * in_channels))
        b = tf1.get_variable("bias", [out_channels], initializer=tf1.constant_initializer(bias_init))
        return tf.nn.bias_add(tf.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding=padding), b)


def conv2d_transpose(x, out_channels, ksize, stride=2, name="deconv", padding="SAME", init="he"):
    """Transposed convolution: "SAME" multiplies height and width by stride, "VALID" with stride 1
    grows a 1x1 code to ksize x ksize."""
    in_channels = int(x.shape[-1])
    with tf1.variable_scope(name):
        # the fan-in counts the input channels (the filter's last axis), not shape[-2]
        w = tf1.get_variable("weight", [ksize, ksize, out_channels, in_channels],
                             initializer=_kernel_init(init, ksize * ksize * in_channels))
        b = tf1.get_variable("bias", [out_channels], initializer=tf1.zeros_initializer())
        if padding == "SAME":
            height, width = x.shape[1] * stride, x.shape[2] * stride
        else:
            height, width = (x.shape[1] - 1) * stride + ksize, (x.shape[2] - 1) * stride + ksize
        out_shape = tf.stack([tf.shape(x)[0], height, width, out_channels])
        y = tf.nn.conv2d_transpose(x, w, out_shape, strides=[1, stride, stride, 1], padding=padding)
        y = tf.reshape(y, [-1, height, width, out_channels])
        return tf.nn.bias_add(y, b)


def batch_norm(x, training, update_stats=True, momentum=0.9, epsilon=1e-3, name="bn"):
    """Fused batch norm: batch statistics when training (a Python bool), moving averages otherwise.

    Moving-average updates go to UPDATE_OPS under the variable scope, so each optimizer
    runs the updates of its own network. A call with update_stats=False shares the
    variables but leaves the averages alone (D applied to G(x) must not mix fake
    statistics into the averages D uses at test time on the same inputs).
    """
    channels = x.shape[-1]
    with tf1.variable_scope(name, reuse=tf1.AUTO_REUSE):
        gamma = tf1.get_variable("gamma", [channels], initializer=tf1.ones_initializer())
        beta = tf1.get_variable("beta", [channels], initializer=tf1.zeros_initializer())
        moving_mean = tf1.get_variable("moving_mean", [channels], initializer=tf1.zeros_initializer(),
                                       trainable=False)
        moving_var = tf1.get_variable("moving_variance", [channels], initializer=tf1.ones_initializer(),
                                      trainable=False)

    if training:
        y, mean, var = tf1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)
        if update_stats:
            decay = 1.0 - momentum
            tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, tf1.assign_sub(moving_mean, decay * (moving_mean - mean)))
            tf1.add_to_collection(tf1.GraphKeys.UPDATE_OPS, tf1.assign_sub(moving_var, decay * (moving_var - var)))
        return y
    y, _, _ = tf1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean, variance=moving_var,
                                      epsilon=epsilon, is_training=False)
    return y


def max_pool(x, name="pool"):
    """2x2 max pooling with stride 2."""
    return tf.nn.max_pool2d(x, ksize=2, strides=2, padding="SAME", name=name)

