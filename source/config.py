"""The typed settings of a run, without TensorFlow (so the modules that only read records start fast):
ModelConfig and MachineConfig (what the ADAE graph computes, and how it runs here), TrainingConfig (how it
trains), and the choices each field may take. DataConfig stays with the data (source.datamanager); all four
are bundled in source.record.RunConfig."""
import dataclasses

import numpy as np

from source.scores import SCORE_NAMES  # noqa: F401  (every score's name, pixel and hidden-layer)

INITS = ("he", "dcgan")   # kernel initialisations (source.layers)
OBJECTIVES = ("paper", "equilibrium", "autoencoder")
PRECISIONS = ("fp32", "bf16", "auto")
ARCHS = ("paper", "reference")
# the learning rate over a run: constant (the paper's form) or cosine decay from --lr to zero at the last step
LR_SCHEDULES = ("constant", "cosine")
# the weights a run is evaluated with: the last step's (the paper's form), or the epoch-end checkpoint with the best
# development AUROC on half a of the development images at or after the warm-up (source.solver.best_look)
SELECTS = ("last", "best_look")
SELECT_WARM_UP = 1000   # no look before this iteration is chosen: an untrained network can score well by counting ink
# Each architecture's default recipe: the flags marked (*) in run.py. The paper network's is the recipe the
# README's study chose on the development AUROC: BEGAN's equilibrium control of D's fake term (gamma 1,
# lambda_k 0.01), lr 2e-4, DCGAN initialisation, an 8-d code, and the paper's score ||x - D(G(x))||. The
# paper's own settings are `--objective paper --lr 1e-5 --init he --latent 32`.
ARCH_DEFAULTS = {
    "paper": dict(lr=2e-4, beta1=0.5, objective="equilibrium", gamma=1.0, lambda_k=0.01, balance_alpha=0.0,
                  init="dcgan", latent=8, anomaly_score="x_dgx"),
    "reference": dict(lr=1e-4, beta1=0.9, objective="equilibrium", gamma=0.5, lambda_k=1e-3, balance_alpha=0.0,
                      init="he", latent=32, anomaly_score="x_dgx"),
}
RECIPE_BATCH = {"paper": 64, "reference": 32}   # the mini-batch each recipe was chosen with (training's default)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model: the graph (network, objective, optimizer) and its anomaly score, so
    `ADAE(config)` rebuilds a trained model from its summary. Fields left None take the architecture's
    recipe from ARCH_DEFAULTS: ModelConfig() is the paper network's default recipe.

    balance_alpha: alpha of the learning-rate balancing b = sigmoid(alpha (|G(X)-D(G(X))| - |X-D(X)|)):
                   G learns at 2 b lr and D at 2 (1 - b) lr; 0 turns it off (b = 1/2, both at lr).
    ema:           0 scores with the trained weights (the paper's form); a decay in (0, 1) scores (and shows)
                   with an exponential moving average of G's and D's weights instead, warmed up as TF's
                   ExponentialMovingAverage does with num_updates (decay min(ema, (1 + t) / (10 + t)) at step t).
    fit_images:    training normals (a fixed subsample) the fitted hidden-layer scores are fitted on.
    nap_components, nap_shrink: NAP's whitening (source.scores.Nap): the largest singular directions kept
                   (0: all, RaPP's form; 128 keeps the fit to seconds and its saved statistics to 8 MB per pair
                   on the paper network) and its regularisation (0: none, RaPP's form).
    """
    arch: str = "paper"
    widths: tuple = (32, 64, 128)
    latent: int = None
    ksize: int = 3
    code_channels: int = 0
    out_bias: float = 0.0
    bn_momentum: float = 0.9
    init: str = None
    objective: str = None
    anomaly_score: str = None
    lr: float = None
    beta1: float = None
    balance_alpha: float = None
    gamma: float = None
    lambda_k: float = None
    ema: float = 0.0
    fit_images: int = 2000
    nap_components: int = 128
    nap_shrink: float = 0.0

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        for key, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        for name, value, allowed in (("objective", self.objective, OBJECTIVES),
                                     ("anomaly_score", self.anomaly_score, SCORE_NAMES),
                                     ("init", self.init, INITS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be a decay in [0, 1), got {self.ema!r}")


@dataclasses.dataclass(frozen=True)
class MachineConfig:
    """How a model runs on this machine, never what it computes: intra-op threads (0: one per core), XLA JIT,
    and the arithmetic precision (fp32 | bf16 | auto)."""
    threads: int = 0
    xla: bool = False
    precision: str = "fp32"


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How a run trains: `steps` iterations (a D step and a G step on one mini-batch of `batch`) when given,
    else `epoch` epochs; `seed` draws the initial weights and orders the batches, and `seeds` repeats each
    experiment with seeds seed..seed+N-1; TensorBoard scalars every `summary_every` steps; the last
    `keep_checkpoints` checkpoints kept; `lr_schedule`: the learning rate along the run (LR_SCHEDULES: the
    model's lr throughout, or TensorFlow's cosine decay of it to zero at the run's last step, so a schedule is
    defined by the budget); `select`: the weights the run is evaluated with (SELECTS: the last step's, or the
    best look's on half a of the development images); `baselines`: also fit the classic detectors and train ConvAE;
    `test_curve`: also record the test AUROC wherever the development AUROC is measured, a diagnostic that
    nothing reads back (see test_split_diagnostic)."""
    epoch: int = 100
    steps: int = None
    batch: int = RECIPE_BATCH["paper"]
    seed: int = 0
    seeds: int = 1
    summary_every: int = 20
    keep_checkpoints: int = 3
    lr_schedule: str = "constant"
    select: str = "last"
    baselines: bool = False
    test_curve: bool = False

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.select not in SELECTS:
            raise ValueError(f"select must be one of {SELECTS}, got {self.select!r}")

    def total_steps(self, n_train):
        """Training iterations of a run on n_train images."""
        return self.steps if self.steps is not None else self.epoch * int(np.ceil(n_train / self.batch))
