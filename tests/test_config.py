"""A run's typed settings (source.config): each architecture's recipe filling the model's open fields, the
choices each field may take, and the training's iteration count."""
import dataclasses

import pytest

from source.config import ARCH_DEFAULTS, ModelConfig, TrainingConfig


def test_model_config_takes_its_architectures_recipe_where_a_field_is_left_open():
    """ModelConfig() is the paper network's recipe, the reference network's fields left open take its own,
    and a field given wins."""
    assert {k: getattr(ModelConfig(), k) for k in ARCH_DEFAULTS["paper"]} == ARCH_DEFAULTS["paper"]
    assert {k: getattr(ModelConfig(arch="reference"), k) for k in ARCH_DEFAULTS["reference"]} == \
        ARCH_DEFAULTS["reference"]
    reference = ModelConfig(arch="reference", lr=3e-4)
    assert reference.lr == 3e-4 and reference.gamma == ARCH_DEFAULTS["reference"]["gamma"] == 0.5
    paper = ModelConfig(latent=32, objective="paper", init="he", gamma=0.0)
    assert (paper.latent, paper.objective, paper.init, paper.gamma) == (32, "paper", "he", 0.0)   # 0 is given
    assert (paper.lr, paper.lambda_k, paper.anomaly_score) == (2e-4, 0.01, "x_dgx")


def test_model_config_widths_become_a_tuple_of_ints_and_compare_equal():
    """Widths from a flag's list or a record's JSON list are the same config as from a tuple."""
    config = ModelConfig(widths=[8, "16"])
    assert config.widths == (8, 16) and config == ModelConfig(widths=(8, 16))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0


@pytest.mark.parametrize("field, value, message", [
    ("arch", "resnet", "arch must be one of ('paper', 'reference'), got 'resnet'"),
    ("objective", "wgan", "objective must be one of ('paper', 'equilibrium', 'autoencoder'), got 'wgan'"),
    ("anomaly_score", "x_y", "anomaly_score must be one of"),
    ("init", "glorot", "init must be one of ('he', 'dcgan'), got 'glorot'"),
    ("ema", 1.0, "ema must be a decay in [0, 1), got 1.0"),
    ("ema", -0.1, "ema must be a decay in [0, 1), got -0.1"),
])
def test_model_config_refuses_a_value_outside_its_choices(field, value, message):
    with pytest.raises(ValueError) as caught:
        ModelConfig(**{field: value})
    assert str(caught.value).startswith(message)


def test_model_config_takes_every_score_name_and_an_ema_decay_below_one():
    from source.scores import SCORE_NAMES
    assert [ModelConfig(anomaly_score=name).anomaly_score for name in SCORE_NAMES] == list(SCORE_NAMES)
    assert ModelConfig(ema=0.999).ema == 0.999


def test_training_config_refuses_an_unknown_learning_rate_schedule():
    assert TrainingConfig(lr_schedule="cosine").lr_schedule == "cosine"
    with pytest.raises(ValueError, match=r"lr_schedule must be one of \('constant', 'cosine'\), got 'linear'"):
        TrainingConfig(lr_schedule="linear")


@pytest.mark.parametrize("epoch, steps, batch, n_train, expected", [
    (2, None, 64, 360, 12),    # 360 images in batches of 64: five full batches and a partial one per epoch
    (3, None, 64, 128, 6),     # batches that divide the images: no partial batch
    (1, None, 64, 1, 1),       # one image is one batch
    (100, None, 64, 5421, 8500),
    (0, None, 64, 360, 0),
    (2, 5, 64, 360, 5),        # steps, when given, win over epochs
    (2, 0, 64, 360, 0),
])
def test_training_iterations_from_epochs_or_steps(epoch, steps, batch, n_train, expected):
    steps = TrainingConfig(epoch=epoch, steps=steps, batch=batch).total_steps(n_train)
    assert steps == expected and type(steps) is int


def test_training_config_refuses_an_unknown_selection():
    assert TrainingConfig(select="best_look").select == "best_look" and TrainingConfig().select == "last"
    with pytest.raises(ValueError, match=r"select must be one of \('last', 'best_look'\), got 'best'"):
        TrainingConfig(select="best")
