"""run.py's flags: the parser (a group per config, each default shown from where it lives), the type of each
value, and the checks between flags; a bad value or combination is a UsageError of one line. And the command
lines that continue or make again a run, a sweep or one of its sub-runs from the flags they were made with."""
import argparse
import dataclasses
import math
import os
import shlex

from source.config import (ARCH_DEFAULTS, ARCHS, INITS, LR_SCHEDULES, OBJECTIVES, PRECISIONS, RECIPE_BATCH, SELECTS,
                           SCORE_NAMES, MachineConfig, ModelConfig, TrainingConfig)
from source.datamanager import DATASETS, DEV_ANOMALIES, SPLITS, DataConfig


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser():
    p = Parser(description="Anomaly Detection with Adversarial Dual Autoencoders (ADAE) on MNIST.")
    a = p.add_argument_group("data (DataConfig)").add_argument
    a("--dataset", choices=DATASETS, default=DataConfig.dataset, help="28x28 grayscale dataset (Fashion-MNIST: Debian's files, "
      "Keras, or --data)")
    a("--data", dest="source", default=DataConfig.source, help="auto (Keras cache/download, else embedded), embedded, or a "
      "path: mnist.npz or a folder of the four MNIST IDX files")
    a("--datnorm", action=argparse.BooleanOptionalAction, default=DataConfig.datnorm, help="scale 8-bit pixels to [0, 1] (divide "
      "by 255); --no-datnorm uses data already in [0, 1]")
    a("--normal", type=digit_or_all, help=f"digit K is normal, the other nine anomalous (the default protocol, K={DataConfig.digits[0]}); "
      "'all' runs K=0..9")
    a("--anomaly", type=digit_or_all, help="digit K is anomalous, the other nine normal (the paper's protocol)")
    a("--split", choices=SPLITS, default=DataConfig.split, help="official: train on the train file's normals, test on the "
      "test file; paper: the ADAE paper's (both files' normals pooled, 80%% train, 20%% plus every anomalous image "
      f"but {DEV_ANOMALIES} development ones to test)")
    a = p.add_argument_group("model (ModelConfig; defaults marked * depend on --arch: ARCH_DEFAULTS)").add_argument
    a("--arch", choices=ARCHS, default="paper", help="paper: 32x32 in [-1, 1], strided convs to a --latent code, "
      "tanh; reference: the reference code's 28x28 pooling network with a 7x7x64 code")
    a("--widths", type=widths_list, help="paper arch: channels of the strided convolutions")
    a("--latent", type=bounded(int, 1, 4096), help="paper arch: size of the code (*)")
    a("--objective", choices=OBJECTIVES, help="paper: the literal losses (k=1); equilibrium: BEGAN's k_t on D's "
      "fake term; autoencoder: G alone (*)")
    a("--balance-alpha", "--balance", type=bounded(float, 0), help="alpha of the G/D learning-rate balancing "
      "b = sigmoid(alpha (|G(x)-D(G(x))| - |x-D(x)|)): G at 2b lr, D at 2(1-b) lr; 0 turns it off (*)")
    a("--anomaly-score", choices=SCORE_NAMES, metavar="SCORE", help="the error used as anomaly score: x_dgx "
      "||x - D(G(x))|| (the paper's), x_dx, x_gx, gx_dgx, x_dgx_rel (x_dgx over the ink ||x|| + ||D(G(x))||), or a "
      "hidden-layer score KIND_PAIR, KIND sap|code|stdsap|stdmax|nap, PAIR g_x_gx|d_x_dgx|d_x_dx (README) (*)")
    a("--gamma", type=bounded(float, 0, low_open=True), help="equilibrium target ratio of D's fake to real error (*)")
    a("--lambda-k", type=bounded(float, 0), help="learning rate of k_t (*)")
    a("--ksize", type=bounded(int, 1, 9), help="reference arch: convolution kernel size")
    a("--code-channels", type=bounded(int, 0, 64), help="reference arch: channels of an extra 7x7 code layer "
      "(0: the reference's 7x7x64 code)")
    a("--out-bias", type=bounded(float, -10, 10), help="reference arch: initial bias of the sigmoid output layer")
    a("--bn-momentum", type=bounded(float, 0, 0.9999), help="momentum of batch-norm moving averages")
    a("--init", choices=INITS, help="he: truncated normal with std sqrt(2 / fan-in), a transposed convolution's "
      "fan-in read from its input channels; dcgan: N(0, 0.02) (*)")
    a("--lr", type=bounded(float, 0, 1, low_open=True), help="Adam learning rate (*)")
    a("--beta1", type=bounded(float, 0, 0.9999), help="Adam beta1 (*)")
    a("--ema", type=bounded(float, 0, 0.99999), help="score and show with an exponential moving average of G's and "
      "D's weights of this decay (0: the trained weights, the paper's form)")
    a("--fit-images", type=bounded(int, 1), help="training normals the fitted hidden-layer scores (NAP, stdsap) "
      "are fitted on")
    a("--nap-components", type=bounded(int, 0), help="NAP: singular directions kept (0: all)")
    a("--nap-shrink", type=bounded(float, 0), help="NAP: whitening regularisation (0: RaPP's form)")
    a = p.add_argument_group("training (TrainingConfig)").add_argument
    a("--batch", type=bounded(int, 1), help="mini-batch size (*)")
    a("--epoch", type=bounded(int, 0), help="training epochs")
    a("--steps", type=bounded(int, 0), help="training iterations (D step + G step); overrides --epoch")
    a("--lr-schedule", choices=LR_SCHEDULES, help="the learning rate along the run: constant (the paper's form) or "
      "cosine decay from --lr to zero at the run's last step")
    a("--select", choices=SELECTS, help="the weights the run is evaluated with: last (the last step's, the paper's "
      "form) or best_look: the epoch end with the best development AUROC on half a of the development images, at "
      "or after iteration 1,000 (a copy of its checkpoint is kept; the report gives its AUROC on half b)")
    a("--seed", type=bounded(int, 0), help="seed of weights and batch order")
    a("--seeds", type=bounded(int, 1, 100), help="repeat each experiment with seeds seed..seed+N-1")
    a("--baselines", action="store_true", default=None, help="also fit PCA, kNN, OC-SVM, Isolation Forest and a "
      "conv autoencoder on the same images")
    a("--test-curve", action="store_true", default=None, help="also record the test AUROC along training (a "
      "marked diagnostic of the test split: shown as what a best-test-epoch reading would publish, never used)")
    a("--summary-every", type=bounded(int, 1), help="write scalar summaries every K steps")
    a("--keep-checkpoints", type=bounded(int, 1), help="checkpoints kept per run")
    a = p.add_argument_group("machine (MachineConfig) and processes").add_argument
    a("--threads", type=bounded(int, 0, 256), help="threads of TensorFlow's intra-op pool and NumPy's BLAS (0: one per core; "
      "with --jobs N, cores / N)")
    a("--xla", action="store_true", default=None, help="XLA JIT compilation of the session graph")
    a("--precision", choices=PRECISIONS, help="fp32; bf16: oneDNN automatic bfloat16 mixed precision; "
      "auto: bf16 where the CPU has AMX-BF16 or AVX512-BF16")
    a("--jobs", type=bounded(int, 1, 64), help="sweeps: sub-runs in N worker processes of cores / N threads (default "
      "2 where there are 2 cores or more, measured faster than one process of 2 threads; 1: one after another)")
    a("--verbose", action="store_true", help="show TensorFlow's start-up lines, Python warnings and debug lines")
    a = p.add_argument_group("output and actions").add_argument
    a("--logdir", default="Checkpoint", help="root of TensorBoard logs and checkpoints")
    a("--results", default="results", help="root of result folders")
    a("--name", help="run name (default: <data>_<protocol><digit>); never overwritten")
    a("--records", metavar="DIR", help="sweeps: also write each finished sub-run's summary to DIR/<name>/ "
      "(small, committable); --resume takes those records as finished sub-runs")
    a("--part-of", metavar="NAME", help="run one digit and seed as a sub-run of sweep NAME (a job-array task); "
      "python -m source.tools.collect NAME builds the sweep's table")
    a("--resume", action="store_true", help="continue run --name from its latest checkpoint up to --epoch epochs")
    a("--test-only", action="store_true", help="evaluate run --name's checkpoint without training; results go to "
      "a new folder <name>_eval")
    a("--score-images", "--score", metavar="PATH", help="score new images with run --name: a PNG/JPEG file, a folder "
      "of them, or an .npy/.npz array; writes results/<name>/score_<input>/")
    return show_defaults(p)


def show_defaults(parser):
    """Append each setting's default to its flag's help, read from where it lives: the config dataclasses,
    and ARCH_DEFAULTS / RECIPE_BATCH for the settings marked (*) (shown for --arch paper)."""
    defaults = {f.name: f.default for part in (DataConfig, ModelConfig, TrainingConfig, MachineConfig)
                for f in dataclasses.fields(part)}
    by_arch = dict(ARCH_DEFAULTS["paper"], batch=RECIPE_BATCH["paper"])
    defaults.update(by_arch)
    for action in parser._actions:
        value = defaults.get(action.dest)
        if action.help and value is not None and value is not False:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else value
            action.help += f" (default {text}{' with --arch paper' if action.dest in by_arch else ''})"
    return parser


def parse_args(argv):
    """Parse and check flags; raise UsageError with one line on a bad value."""
    args = build_parser().parse_args(argv)
    if args.normal is not None and args.anomaly is not None:
        raise UsageError("choose one protocol: --normal K or --anomaly K, not both")
    args.protocol = "anomaly" if args.anomaly is not None else "normal"
    digit = getattr(args, args.protocol, None)
    args.digits = tuple(range(10)) if digit == "all" else (DataConfig.digits if digit is None else (digit,))
    for flag, value in (("--name", args.name), ("--part-of", args.part_of)):
        if value is not None and (not value or os.sep in value or value.startswith(".")):
            raise UsageError(f"{flag} must be a plain folder name, got {value!r}")
    if args.part_of and (len(args.digits) > 1 or (args.seeds or 1) > 1):
        raise UsageError("--part-of runs one digit and one seed; give --normal K or --anomaly K")
    if args.part_of and (args.name or args.test_only or args.score_images):
        raise UsageError("--part-of names its sub-run itself; drop --name, --test-only and --score-images")
    if (args.resume or args.test_only or args.score_images) and not args.name and not args.part_of:
        raise UsageError("--resume, --test-only and --score-images need --name of an earlier run")
    if args.resume and args.test_only:
        raise UsageError("use --resume or --test-only, not both")
    if args.test_only and (len(args.digits) > 1 or (args.seeds or 1) > 1):
        raise UsageError("--test-only takes one run, not a sweep")
    if args.source not in ("auto", "embedded") and not os.path.exists(args.source):
        raise UsageError(f"--data {args.source} does not exist")
    return args


def digit_or_all(text):
    if text == "all":
        return "all"
    if not text.isdigit() or not 0 <= int(text) <= 9:
        raise argparse.ArgumentTypeError(f"expected a digit 0-9 or 'all', got {text!r}")
    return int(text)


def bounded(kind, low=None, high=None, low_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value
    return parse


def widths_list(text):
    values = [int(v) for v in text.split(",") if v.strip().isdigit()]
    if len(values) != len(text.split(",")) or not 1 <= len(values) <= 5 or min(values) < 1 or max(values) > 1024:
        raise argparse.ArgumentTypeError(f"expected 1-5 comma-separated channel counts in 1..1024 like 32,64,128, "
                                         f"got {text!r}")   # 5 halvings take 32x32 to 1x1
    return tuple(values)


# --- command lines that continue or make again a run, a sweep or one of its sub-runs ---

# flags that choose a sweep's sub-runs, name it or size its processes, with the values each takes
SWEEP_FLAGS = {"--normal": 1, "--anomaly": 1, "--seed": 1, "--seeds": 1, "--jobs": 1, "--name": 1, "--threads": 1,
               "--resume": 0}


def _drop(argv, flags):
    """argv less the given flags ({flag: how many values follow it}) and their values."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=")[0] in flags:
            skip = flags[arg] if "=" not in arg else 0
        else:
            out.append(arg)
    return out


def part_argv(argv):
    """A sweep's flags less SWEEP_FLAGS: what each worker's `run.py --part-of` shares."""
    return _drop(argv, SWEEP_FLAGS)


def resume_command(argv, name):
    """The command line that continues run (or sweep) `name`: its folder's name, not the --name asked, which an
    earlier run may have taken (then name is <name>_2)."""
    argv = _drop(argv, {"--resume": 0} if "--part-of" in argv else {"--resume": 0, "--name": 1})
    return " ".join(["python", "run.py"] + argv + ([] if "--part-of" in argv else ["--name", name]) + ["--resume"])


def sub_run_command(command, sweep, protocol, digit, seed, records=True):
    """The job-array command line that continues, or makes again, one sub-run of a sweep, from the command
    line a sweep or one of its tasks was made with ("python run.py ..."; "..." for the flags when unknown);
    records=False drops --records (a sub-run with a record would be kept from it, not evaluated again)."""
    argv = shlex.split(command)[2:] if command.startswith("python run.py") else ["..."]
    drop = {"--part-of": 1} if records else {"--part-of": 1, "--records": 1}
    return " ".join(["python", "run.py"] + _drop(part_argv(argv), drop)
                    + [f"--{protocol}", str(digit), "--seed", str(seed), "--part-of", sweep, "--resume"])
