"""What a run records, with one schema for writer and readers: its configuration (config.json) and its
summary (summary.json, and the committed records that copy it). experiment writes them; inference, report,
sweep, tables, collect and study read them through these classes, never by key.

A configuration is four typed parts, each with its defaults beside it: DataConfig (datamanager), ModelConfig,
MachineConfig and TrainingConfig (config).
"""
import dataclasses

from source.config import RECIPE_BATCH, MachineConfig, ModelConfig, TrainingConfig
from source.datamanager import DataConfig
from source.files import portable_path

SCHEMA = 2   # 1: the flat flag dictionary of earlier versions
PARTS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig, "machine": MachineConfig}


class SchemaError(ValueError):
    """A record that this version cannot read."""


def _checked(values, what):
    """values less their schema mark; refused unless written with this version's schema."""
    if values.get("schema") != SCHEMA:
        raise SchemaError(f"a {what} of schema {values.get('schema', 1)}; this version reads schema {SCHEMA}")
    return {k: v for k, v in values.items() if k != "schema"}


def _part(cls, values):
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise SchemaError(f"{cls.__name__} has no field {sorted(unknown)}")
    return cls(**values)


class RecipeError(ValueError):
    """A sub-run made with another recipe than its sweep's: never mixed into the sweep's table."""


# what the sub-runs of one sweep may differ in: which digit and seed they run, and how a machine ran them
# (threads, XLA); the command line that started them. Everything else is the sweep's recipe.
NOT_RECIPE = {"data": ("digits",), "training": ("seed", "seeds"), "machine": ("threads", "xla")}
FLAG_OF = {"source": "--data"}   # fields whose flag is not --<field name>


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """An experiment's settings: one run, or a sweep over data.digits x the training seeds. `command` is the
    command line that made it, with portable paths."""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    machine: MachineConfig = MachineConfig()
    command: str = ""

    @classmethod
    def from_flags(cls, flags, command):
        """The RunConfig of run.py's parsed flags: each part's fields from the flags of the same name; a flag
        left None keeps its field's default (the architecture's recipe for the model's and the batch)."""
        def given(part, **fixed):
            names = {f.name for f in dataclasses.fields(part)} - set(fixed)
            return part(**{k: getattr(flags, k) for k in names if getattr(flags, k, None) is not None}, **fixed)
        source = flags.source if flags.source in ("auto", "embedded") else portable_path(flags.source)
        return cls(data=given(DataConfig, source=source), model=given(ModelConfig),
                   training=given(TrainingConfig, batch=flags.batch or RECIPE_BATCH[flags.arch]),
                   machine=given(MachineConfig), command=command)

    def digit_seeds(self):
        """The (digit, seed) pairs of the experiment, in the order a sweep runs them."""
        first = self.training.seed
        return [(d, s) for d in self.data.digits for s in range(first, first + self.training.seeds)]

    def one(self, digit, seed):
        """The configuration of the experiment's run on one digit with one seed."""
        return dataclasses.replace(self, data=dataclasses.replace(self.data, digits=(digit,)),
                                   training=dataclasses.replace(self.training, seed=seed, seeds=1))

    def with_machine(self, **changes):
        """The same experiment run another way (threads, precision): nothing it computes changes."""
        return dataclasses.replace(self, machine=dataclasses.replace(self.machine, **changes))

    def to_dict(self):
        return {"schema": SCHEMA, **{name: dataclasses.asdict(getattr(self, name)) for name in PARTS},
                "command": self.command}

    @classmethod
    def from_dict(cls, values):
        values = _checked(values, "record")
        return cls(**{name: _part(part, values[name]) for name, part in PARTS.items()}, command=values["command"])

    def recipe(self):
        """Every setting that defines the sweep's experiment, by field name: all but NOT_RECIPE."""
        return {k: v for name in PARTS for k, v in dataclasses.asdict(getattr(self, name)).items()
                if k not in NOT_RECIPE.get(name, ())}

    def check_recipe(self, sub, what):
        """Refuse sub (a sub-run's RunConfig) unless its recipe is this sweep's; the one line names each
        differing setting as its flag."""
        ours, theirs = self.recipe(), sub.recipe()
        differ = [f"{FLAG_OF.get(k, '--' + k.replace('_', '-'))} {_shown(theirs[k])} (sweep: {_shown(ours[k])})"
                  for k in ours if ours[k] != theirs[k]]
        if differ:
            raise RecipeError(f"{what} was made with another recipe than its sweep's: {', '.join(differ)}")

    def flat(self):
        """Every setting by its field name (HParams)."""
        return {k: v for name in PARTS for k, v in dataclasses.asdict(getattr(self, name)).items()}


def _shown(value):
    if value is None:
        return "unset"
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


@dataclasses.dataclass
class Summary:
    """One finished run: its configuration (one digit, one seed), the data as loaded, ADAE's test metrics and
    the baselines', the training's last epoch and development curve, timings, versions and machine."""
    name: str
    config: RunConfig
    data: dict           # source (name, path, reason), protocol, digit, image counts per split
    metrics: dict        # ADAE's: metrics.all_metrics at the threshold, anomaly_score, AUROC_per_score
    baselines: dict      # {method: {AUROC, AUPRC}}
    baseline_info: dict  # settings and seconds of each baseline
    precision: dict      # hardware.resolve_precision: requested, used, the CPU's bf16 flags
    final_epoch: dict    # solver.train's last history record (None for a run that did not train)
    dev_curve: list      # the development AUROC and reconstruction errors at log-spaced steps
    timings: dict
    versions: dict
    machine: dict
    figures: dict = dataclasses.field(default_factory=dict)   # failed figures and empty grids
    # --test-curve: the test AUROC of every score at the dev curve's steps; a diagnostic nothing reads back
    test_curve: list = dataclasses.field(default_factory=list)
    # --select best_look: the history record of the epoch end evaluated (None: the last step's weights)
    selected: dict = None

    digit = property(lambda self: self.data["digit"])
    seed = property(lambda self: self.config.training.seed)
    threshold = property(lambda self: self.metrics["threshold"])
    anomaly_score = property(lambda self: self.metrics["anomaly_score"])

    def methods(self):
        """[(method, {AUROC, AUPRC, ...})] with ADAE first, then the run's baselines."""
        return [(f"ADAE ({self.anomaly_score})", self.metrics)] + list(self.baselines.items())

    def to_dict(self):
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return dict(values, schema=SCHEMA, config=self.config.to_dict())

    @classmethod
    def from_dict(cls, values):
        values = _checked(values, "summary")
        return _part(cls, dict(values, config=RunConfig.from_dict(values["config"])))
