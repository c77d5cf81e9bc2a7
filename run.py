"""ADAE on MNIST: parse flags, then wire data -> experiment (model, training, evaluation) -> results."""
import argparse
import functools
import json
import math
import os
import signal
import sys
import warnings

os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")      # same seed, same data -> same scores

EXIT_USAGE, EXIT_FAILED = 2, 1
log = functools.partial(print, flush=True)


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def digit_or_all(text):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a digit 0-9 or 'all', got {text!r}") from None
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"digit must be 0-9, got {value}")
    return value


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
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated channel counts like 32,64,128, got {text!r}") from None
    if not 1 <= len(values) <= 5 or min(values) < 1 or max(values) > 1024:   # 5 halvings take 32x32 to 1x1
        raise argparse.ArgumentTypeError(f"expected 1-5 channel counts in 1..1024, got {text!r}")
    return values


def build_parser():
    from source.datamanager import DATASETS
    from source.layers import INITS
    from source.neuralnet import ARCHS, OBJECTIVES, PRECISIONS, SCORES
    p = Parser(description="Anomaly Detection with Adversarial Dual Autoencoders (ADAE) on MNIST.")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="28x28 grayscale dataset (Fashion-MNIST: Debian's files, Keras, or --data)")
    g.add_argument("--data", default="auto", help="auto (Keras cache/download, else embedded), embedded, "
                   "or a path: mnist.npz or a folder of the four MNIST IDX files")
    g.add_argument("--datnorm", action=argparse.BooleanOptionalAction, default=True,
                   help="scale 8-bit pixels to [0, 1] (divide by 255); --no-datnorm uses data already in [0, 1]")
    g.add_argument("--normal", type=digit_or_all, help="digit K is normal, the other nine anomalous "
                   "(default protocol, K=1); 'all' runs K=0..9")
    g.add_argument("--anomaly", type=digit_or_all, help="digit K is anomalous, the other nine normal "
                   "(the paper's protocol); 'all' runs K=0..9")
    g = p.add_argument_group("model (defaults marked * depend on --arch; see ARCH_DEFAULTS)")
    g.add_argument("--arch", choices=ARCHS, default="paper",
                   help="paper: 32x32 in [-1, 1], strided convs to a --latent code, tanh (default); "
                   "reference: the reference code's 28x28 pooling network with a 7x7x64 code")
    g.add_argument("--widths", type=widths_list, default=(32, 64, 128),
                   help="paper arch: channels of the strided convolutions, comma-separated")
    g.add_argument("--latent", type=bounded(int, 1, 4096), help="paper arch: size of the code (*)")
    g.add_argument("--objective", choices=OBJECTIVES, help="paper: the literal losses (k=1); equilibrium: "
                   "BEGAN's k_t on D's fake term; autoencoder: G alone (*)")
    g.add_argument("--balance", type=bounded(float, 0), help="alpha of the G/D learning-rate balancing "
                   "b = sigmoid(alpha (|G(x)-D(G(x))| - |x-D(x)|)): G at 2b lr, D at 2(1-b) lr; 0 turns it off (*)")
    g.add_argument("--anomaly-score", choices=SCORES, help="the error used as anomaly score: x_dgx "
                   "||x - D(G(x))|| (the paper's), x_dx, x_gx or gx_dgx (*)")
    g.add_argument("--gamma", type=bounded(float, 0, low_open=True),
                   help="equilibrium target ratio of D's fake to real error (*)")
    g.add_argument("--lambda-k", type=bounded(float, 0), help="learning rate of k_t (*)")
    g.add_argument("--ksize", type=bounded(int, 1, 9), default=3, help="reference arch: convolution kernel size")
    g.add_argument("--code-channels", type=bounded(int, 0, 64), default=0,
                   help="reference arch: channels of an extra 7x7 code layer (0: the reference's 7x7x64 code)")
    g.add_argument("--out-bias", type=bounded(float, -10, 10), default=0.0,
                   help="reference arch: initial bias of the sigmoid output layer")
    g.add_argument("--bn-momentum", type=bounded(float, 0, 0.9999), default=0.9,
                   help="momentum of batch-norm moving averages")
    g.add_argument("--init", choices=INITS, help="he: truncated normal with std sqrt(2 / fan-in), the fan-in "
                   "of a transposed convolution read from its input channels; dcgan: N(0, 0.02) (*)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--batch", type=bounded(int, 1), help="mini-batch size (*)")
    g.add_argument("--epoch", type=bounded(int, 0), default=100, help="training epochs")
    g.add_argument("--steps", type=bounded(int, 0), help="training iterations (D step + G step); overrides "
                   "--epoch so data sets of different sizes get the same compute")
    g.add_argument("--lr", type=bounded(float, 0, 1, low_open=True), help="Adam learning rate (*)")
    g.add_argument("--beta1", type=bounded(float, 0, 0.9999), help="Adam beta1 (*)")
    g.add_argument("--seed", type=bounded(int, 0), default=0, help="seed of weights and batch order")
    g.add_argument("--seeds", type=bounded(int, 1, 100), default=1, help="repeat each experiment with seeds "
                   "seed..seed+N-1")
    g = p.add_argument_group("evaluation")
    g.add_argument("--baselines", action="store_true", help="also fit PCA, kNN, OC-SVM, Isolation Forest and "
                   "a conv autoencoder on the same images")
    g = p.add_argument_group("output")
    g.add_argument("--logdir", default="Checkpoint", help="root of TensorBoard logs and checkpoints")
    g.add_argument("--results", default="results", help="root of result folders")
    g.add_argument("--name", help="run name (default: <data>_<protocol><digit>); never overwritten")
    g.add_argument("--records", metavar="DIR", help="sweeps: also write each finished sub-run's summary to "
                   "DIR/<name>/ (small, committable); --resume takes those records as finished sub-runs")
    g.add_argument("--part-of", metavar="NAME", help="run one digit and seed as a sub-run of sweep NAME (a "
                   "job-array task); python -m source.collect NAME builds the sweep's table")
    g.add_argument("--summary-every", type=bounded(int, 1), default=20, help="write scalar summaries every K steps")
    g.add_argument("--keep-checkpoints", type=bounded(int, 1), default=3, help="checkpoints kept per run")
    g.add_argument("--resume", action="store_true", help="continue run --name from its latest checkpoint "
                   "up to --epoch epochs")
    g.add_argument("--score", metavar="PATH", help="score new images with run --name: a PNG/JPEG file, a folder "
                   "of them, or an .npy/.npz array; writes results/<name>/score_<input>/")
    g.add_argument("--test-only", action="store_true", help="evaluate run --name's checkpoint without training; "
                   "results go to a new folder <name>_eval")
    g = p.add_argument_group("system")
    g.add_argument("--threads", type=bounded(int, 0, 256), default=0, help="intra-op threads (0: one per core; "
                   "with --jobs N, cores / N per worker)")
    g.add_argument("--jobs", type=bounded(int, 1, 64), help="sweeps: run sub-runs in N worker processes at "
                   "once, each its own TensorFlow runtime with cores / N threads (default: 2 where there are 2 "
                   "cores or more, measured faster than one process of 2 threads; 1: one after another here)")
    g.add_argument("--xla", action="store_true", help="XLA JIT compilation of the session graph")
    g.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up lines and Python warnings")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32; bf16: oneDNN automatic "
                   "bfloat16 mixed precision; auto: bf16 where the CPU has AMX-BF16 or AVX512-BF16, else fp32")
    return p


def parse_args(argv):
    """Parse and check flags; raise UsageError with one line on a bad value."""
    args = build_parser().parse_args(argv)
    from source.neuralnet import ARCH_DEFAULTS
    for key, value in ARCH_DEFAULTS[args.arch].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.normal is not None and args.anomaly is not None:
        raise UsageError("choose one protocol: --normal K or --anomaly K, not both")
    if args.normal is None and args.anomaly is None:
        args.normal = 1
    args.protocol = "normal" if args.normal is not None else "anomaly"
    args.digits = list(range(10)) if getattr(args, args.protocol) == "all" else [getattr(args, args.protocol)]
    for flag, value in (("--name", args.name), ("--part-of", args.part_of)):
        if value is not None and (not value or os.sep in value or value.startswith(".")):
            raise UsageError(f"{flag} must be a plain folder name, got {value!r}")
    if args.part_of and (len(args.digits) > 1 or args.seeds > 1):
        raise UsageError("--part-of runs one digit and one seed; give --normal K or --anomaly K")
    if args.part_of and (args.name or args.test_only or args.score):
        raise UsageError("--part-of names its sub-run itself; drop --name, --test-only and --score")
    if args.data not in ("auto", "embedded") and not os.path.exists(args.data):
        raise UsageError(f"--data {args.data} does not exist")
    for flag, root in (("--results", args.results), ("--logdir", args.logdir)):
        check_writable(flag, root)
    if args.score:
        from source.rundir import RunDir
        if not args.name:
            raise UsageError("--score needs --name of a trained run")
        run = RunDir(args.logdir, args.results, args.name)
        for path in (run.config_path, run.summary_path):
            if not os.path.isfile(path):
                raise UsageError(f"run {args.name!r} is missing {path}")
    elif (args.resume or args.test_only) and not args.part_of:
        check_existing_run(args)
    return args


ARCHITECTURE = ("arch", "widths", "latent", "ksize", "code_channels", "objective")


def check_existing_run(args):
    """--resume/--test-only: the named run must exist and match the requested architecture."""
    from source.rundir import RecordDir, RunDir, portable_path
    if args.resume and args.test_only:
        raise UsageError("use --resume or --test-only, not both")
    if not args.name:
        raise UsageError("--resume and --test-only need --name of an earlier run")
    if args.test_only and (len(args.digits) > 1 or args.seeds > 1):
        raise UsageError("--test-only takes one run, not a sweep")
    run = RunDir(args.logdir, args.results, args.name)
    records = RecordDir(args.records, args.name) if args.records else None
    if os.path.isfile(run.config_path):
        stored = run.read_config()
    elif args.resume and records and records.has_config():   # a sweep resumed from committed records
        stored = records.read_config()
    else:
        raise UsageError(f"no run {args.name!r} under {args.logdir} (missing {run.config_path})")
    differ = [f"--{k.replace('_', '-')} {stored[k]} (asked {getattr(args, k)})" for k in ARCHITECTURE
              if stored.get(k) != json.loads(json.dumps(getattr(args, k)))]   # tuples are stored as lists
    if differ:
        raise UsageError(f"run {args.name!r} was made with another architecture: " + ", ".join(differ))
    if (stored.get(args.protocol) != getattr(args, args.protocol) or stored.get("data") != portable_path(args.data)
            or stored.get("dataset", "mnist") != args.dataset):
        raise UsageError(f"run {args.name!r} used --data {stored.get('data')} --{stored.get('protocol')} "
                         f"{stored.get('digit')}; pass the same data and protocol")


def check_writable(flag, root):
    """Refuse a root that cannot be created or written, without creating anything."""
    path = os.path.abspath(root)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {root} is not writable")


def import_tensorflow(verbose):
    """Import TensorFlow; unless verbose, without its C++ start-up lines (CUDA probing on a CPU machine
    reads like a failure) and Python deprecation warnings."""
    if verbose:
        import tensorflow as tf
        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)   # lines written before absl's logging starts bypass TF_CPP_MIN_LOG_LEVEL
    try:
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")
    return tf


def interrupted(signum, frame):
    """A signal outside a training loop: stop where we are; finished runs and checkpoints are on disk."""
    from source import solver
    raise solver.Interrupted(signum, None)


def resume_command(argv, name):
    """The command line that continues this run or sweep."""
    argv = [a for a in argv if a != "--resume"]
    if "--name" not in argv and "--part-of" not in argv:
        argv += ["--name", name]
    return " ".join(["python", "run.py"] + argv + ["--resume"])


SWEEP_FLAGS = {"--normal": 1, "--anomaly": 1, "--seed": 1, "--seeds": 1, "--jobs": 1, "--name": 1, "--threads": 1,
               "--resume": 0}


def part_argv(argv):
    """A sweep's flags less those that choose its sub-runs, name it or size its processes: what each
    worker's `run.py --part-of` shares."""
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg.split("=")[0] in SWEEP_FLAGS:
            skip = SWEEP_FLAGS[arg] if "=" not in arg else 0
        else:
            out.append(arg)
    return out


def fail(error, status):
    """The one-line error every failure prints; returns the exit status."""
    print(f"run.py: error: {error}", file=sys.stderr)
    return status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    import_tensorflow("--verbose" in argv)
    from source import datamanager, experiment, inference, solver
    from source.rundir import RunDir, portable_command, portable_path, unique_name
    try:
        args = parse_args(argv)
        if args.score:
            return inference.score_new_images(RunDir(args.logdir, args.results, args.name), args.score, log=log)
        arrays, source = datamanager.load_data(args.data, args.dataset, log=log)
        for x in (arrays[0], arrays[2]):
            datamanager.check_pixels(x, args.datnorm)
        for digit in args.digits:      # a protocol that leaves no training images fails before any run
            datamanager.check_protocol(arrays[1], arrays[3], **{args.protocol: digit})
    except (UsageError, datamanager.DataError) as err:
        return fail(err, EXIT_USAGE)

    default = f"{'embedded' if source['name'] == 'embedded' else args.dataset}_{args.protocol}"
    default += "all" if len(args.digits) > 1 else str(args.digits[0])
    if args.test_only:
        load_from = RunDir(args.logdir, args.results, args.name)
        name = unique_name(args.name + "_eval", [args.results, args.logdir])
        run = RunDir(args.logdir, args.results, name)
    elif args.part_of:
        load_from = None
        name = experiment.sub_name(args.protocol, args.digits[0], args.seed)
        run = RunDir(args.logdir, args.results, args.part_of).sub(name)
        if os.path.exists(run.results) and not args.resume:
            return fail(f"sub-run {name} of {args.part_of} exists; add --resume to continue it", EXIT_USAGE)
    else:
        load_from = None
        name = args.name if args.resume else unique_name(args.name or default, [args.results, args.logdir])
        run = RunDir(args.logdir, args.results, name)
    config = {k: v for k, v in vars(args).items() if k not in ("resume", "test_only", "score")}
    for key in ("data", "logdir", "results", "records"):   # records carry no folder of this machine
        if config[key] not in (None, "auto", "embedded"):
            config[key] = portable_path(config[key])
    config["command"] = "python run.py " + portable_command(argv)
    # a signal outside a training loop (which checkpoints first) stops the run or sweep where it is
    previous = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        jobs = args.jobs or min(2, os.cpu_count() or 1)
        if jobs > 1 and len(args.digits) * args.seeds > 1:   # --part-of is always one sub-run
            threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
            experiment.run_all_in_processes(config, arrays, run, part_argv(argv), jobs, threads, args.resume,
                                            args.records, log)
        else:
            experiment.run_all(config, arrays, source, run, resume=args.resume and (not args.part_of or run.has_state()),
                               load_from=load_from, records_root=args.records, log=log)
    except solver.Interrupted as err:
        saved = f"checkpoint {err.checkpoint}; " if err.checkpoint else ""
        print(f"run.py: interrupted; {saved}resume with: {resume_command(argv, name)}", file=sys.stderr)
        return 128 + err.signum
    except solver.TrainingError as err:
        return fail(err, EXIT_FAILED)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
