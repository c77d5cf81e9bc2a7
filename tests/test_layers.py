"""Initialisation (source.layers through both architectures): every kernel at its fan-in's scale, outputs
that start away from their limits."""
import numpy as np
import pytest

from source import layers
from source.neuralnet import ADAE, ModelConfig

ARCHS = ("paper", "reference")


def _kernels(model):
    return [v for v in model.vars_g if v.name.endswith("weight:0")]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("init", layers.INITS)
def test_every_kernel_starts_at_the_std_of_its_true_fan_in(arch, init):
    """He: sqrt(2 / (k * k * input channels)), for transposed convolutions too (filter [k, k, out, in]);
    DCGAN: 0.02. Checked on the drawn weights, within 15% (sampling noise of the smallest kernels)."""
    model = ADAE(ModelConfig(arch=arch, init=init), seed=0)
    for var, value in zip(_kernels(model), model.sess.run(_kernels(model))):
        k = value.shape[0]
        fan_in = k * k * (value.shape[3] if "deconv" in var.name or "unlatent" in var.name else value.shape[2])
        expected = np.sqrt(2.0 / fan_in) if init == "he" else 0.02
        assert value.std() == pytest.approx(expected, rel=0.15), (var.name, value.std(), expected)
    model.close()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("init", layers.INITS)
def test_initial_output_is_not_saturated(arch, init, digit1):
    """On real images the first training batch leaves under 2% of G's and D's output pixels near the
    output's limits (|tanh| > 0.96, or the sigmoid's equivalent), where the output barely learns."""
    model = ADAE(ModelConfig(arch=arch, init=init), seed=0)
    x = digit1.x_train[:64]
    for out in model.sess.run([model.g_x, model.d_x], {model.x: x}):
        distance = np.abs(out) if arch == "paper" else np.abs(2.0 * out - 1.0)
        assert (distance > 0.96).mean() < 0.02
    model.close()
