"""ADAE on MNIST: parse flags, then data -> model -> solver (train, evaluate, write results)."""
import argparse
import functools
import json
import math
import os
import platform
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # keep TensorFlow's start-up chatter out of the log
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
    if not 1 <= len(values) <= 5 or min(values) < 1 or max(values) > 1024:
        raise argparse.ArgumentTypeError(f"expected 1-5 channel counts in 1..1024, got {text!r}")
    return values


# Per-architecture defaults of the flags marked (*). --arch paper takes the paper's settings (batch 64,
# Adam lr 1e-5 and beta1 0.5, the literal losses) but two: the balancing is off and the score is D's own
# error ||x - D(x)||; the README's recipe table gives the development AUROC behind both choices.
ARCH_DEFAULTS = {
    "paper": dict(batch=64, lr=1e-5, beta1=0.5, objective="paper", balance=0.0, anomaly_score="x_dx"),
    "reference": dict(batch=32, lr=1e-4, beta1=0.9, objective="equilibrium", balance=0.0, anomaly_score="x_dgx"),
}
OBJECTIVES = ("paper", "equilibrium", "autoencoder")
SCORES = ("x_dgx", "x_dx", "x_gx", "gx_dgx")
ARCHS = ("paper", "reference")
PRECISIONS = ("fp32", "bf16", "auto")


def build_parser():
    p = Parser(description="Anomaly Detection with Adversarial Dual Autoencoders (ADAE) on MNIST.")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=["mnist", "fashion_mnist"], default="mnist",
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
    g.add_argument("--latent", type=bounded(int, 1, 4096), default=32, help="paper arch: size of the code")
    g.add_argument("--objective", choices=OBJECTIVES, help="paper: the literal losses (k=1); equilibrium: "
                   "BEGAN's k_t on D's fake term; autoencoder: G alone (*)")
    g.add_argument("--balance", type=bounded(float, 0), help="alpha of the G/D learning-rate balancing "
                   "b = sigmoid(alpha (|G(x)-D(G(x))| - |x-D(x)|)): G at 2b lr, D at 2(1-b) lr; 0 turns it off (*)")
    g.add_argument("--anomaly-score", choices=SCORES, help="the error used as anomaly score: x_dgx "
                   "||x - D(G(x))|| (the paper's), x_dx, x_gx or gx_dgx (*)")
    g.add_argument("--gamma", type=bounded(float, 0, low_open=True), default=0.5,
                   help="equilibrium target ratio of D's fake to real error")
    g.add_argument("--lambda-k", type=bounded(float, 0), default=1e-3, help="learning rate of k_t")
    g.add_argument("--ksize", type=bounded(int, 1, 9), default=3, help="reference arch: convolution kernel size")
    g.add_argument("--code-channels", type=bounded(int, 0, 64), default=0,
                   help="reference arch: channels of an extra 7x7 code layer (0: the reference's 7x7x64 code)")
    g.add_argument("--out-bias", type=bounded(float, -10, 10), default=0.0,
                   help="reference arch: initial bias of the sigmoid output layer")
    g.add_argument("--bn-momentum", type=bounded(float, 0, 0.9999), default=0.9,
                   help="momentum of batch-norm moving averages")
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
    g.add_argument("--summary-every", type=bounded(int, 1), default=20, help="write scalar summaries every K steps")
    g.add_argument("--keep-checkpoints", type=bounded(int, 1), default=3, help="checkpoints kept per run")
    g.add_argument("--resume", action="store_true", help="continue run --name from its latest checkpoint "
                   "up to --epoch epochs")
    g.add_argument("--score", metavar="PATH", help="score new images with run --name: a PNG/JPEG file, a folder "
                   "of them, or an .npy/.npz array; writes results/<name>/score_<input>/")
    g.add_argument("--test-only", action="store_true", help="evaluate run --name's checkpoint without training; "
                   "results go to a new folder <name>_eval")
    g = p.add_argument_group("system")
    g.add_argument("--threads", type=bounded(int, 0, 256), default=0, help="intra-op threads (0: one per core)")
    g.add_argument("--xla", action="store_true", help="XLA JIT compilation of the session graph")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32; bf16: oneDNN automatic "
                   "bfloat16 mixed precision; auto: bf16 where the CPU has AMX-BF16 or AVX512-BF16, else fp32")
    return p


def parse_args(argv):
    """Parse and check flags; raise UsageError with one line on a bad value."""
    args = build_parser().parse_args(argv)
    for key, value in ARCH_DEFAULTS[args.arch].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.arch == "paper" and 32 % (2 ** len(args.widths)) != 0:
        raise UsageError(f"--widths {args.widths}: 32x32 inputs allow at most 5 strided layers")
    if args.normal is not None and args.anomaly is not None:
        raise UsageError("choose one protocol: --normal K or --anomaly K, not both")
    if args.normal is None and args.anomaly is None:
        args.normal = 1
    args.protocol = "normal" if args.normal is not None else "anomaly"
    args.digits = list(range(10)) if getattr(args, args.protocol) == "all" else [getattr(args, args.protocol)]
    if args.name is not None and (not args.name or os.sep in args.name or args.name.startswith(".")):
        raise UsageError(f"--name must be a plain folder name, got {args.name!r}")
    if args.data not in ("auto", "embedded") and not os.path.exists(args.data):
        raise UsageError(f"--data {args.data} does not exist")
    for flag, root in (("--results", args.results), ("--logdir", args.logdir)):
        check_writable(flag, root)
    if args.score:
        if not args.name:
            raise UsageError("--score needs --name of a trained run")
        for path in (os.path.join(args.logdir, args.name, "config.json"),
                     os.path.join(args.results, args.name, "summary.json")):
            if not os.path.isfile(path):
                raise UsageError(f"run {args.name!r} is missing {path}")
    elif args.resume or args.test_only:
        check_existing_run(args)
    return args


ARCHITECTURE = ("arch", "widths", "latent", "ksize", "code_channels", "objective")


def check_existing_run(args):
    """--resume/--test-only: the named run must exist and match the requested architecture."""
    if args.resume and args.test_only:
        raise UsageError("use --resume or --test-only, not both")
    if not args.name:
        raise UsageError("--resume and --test-only need --name of an earlier run")
    if args.test_only and (len(args.digits) > 1 or args.seeds > 1):
        raise UsageError("--test-only takes one run, not a sweep")
    config_path = os.path.join(args.logdir, args.name, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"no run {args.name!r} under {args.logdir} (missing {config_path})")
    with open(config_path) as f:
        stored = json.load(f)
    differ = [f"--{k.replace('_', '-')} {stored[k]} (asked {getattr(args, k)})" for k in ARCHITECTURE
              if stored.get(k) != json.loads(json.dumps(getattr(args, k)))]   # tuples are stored as lists
    if differ:
        raise UsageError(f"run {args.name!r} was made with another architecture: " + ", ".join(differ))
    if (stored.get(args.protocol) != getattr(args, args.protocol) or stored.get("data") != args.data
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


def unique_name(name, roots):
    """name, name_2, name_3, ...: the first that exists under none of the roots."""
    candidate, n = name, 1
    while any(os.path.exists(os.path.join(r, candidate)) for r in roots):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def run_config(args, name, digit=None, seed=None):
    """The flags of a run (or of a sweep, digit and seed None) as stored in config.json."""
    config = {k: v for k, v in vars(args).items() if k not in ("digits", "resume", "test_only")}
    config.update(digit=digit, seed=seed, name=name)
    return config


def finished_summary(args, run_name):
    """The summary of a sweep's sub-run that finished earlier, else None."""
    path = os.path.join(args.results, run_name, "summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def has_checkpoint(args, run_name):
    """True when a sub-run of a sweep stopped after writing a checkpoint."""
    return os.path.isfile(os.path.join(args.logdir, run_name, "state.json"))


def run_experiment(args, arrays, source, digit, seed, name, resume=False, test_only=False):
    """Train ADAE on one protocol and seed, evaluate it (and baselines) and write results/<name>."""
    import numpy as np
    import tensorflow as tf

    from source import baselines, datamanager, metrics, solver
    from source.neuralnet import ADAE

    timings = {}
    t = time.time()
    kwargs = {args.protocol: digit}
    data = datamanager.Dataset(*arrays, datnorm=args.datnorm, source=source, **kwargs)
    timings["data"] = time.time() - t
    ckpt_dir = os.path.join(args.logdir, name)
    config = run_config(args, name, digit, seed)
    if test_only:
        results_dir = os.path.join(args.results, unique_name(name + "_eval", [args.results]))
    else:
        results_dir = os.path.join(args.results, name)
    os.makedirs(results_dir, exist_ok=resume or args.resume)   # args.resume: a sweep's sub-run begun earlier
    if not (resume or test_only):
        os.makedirs(ckpt_dir, exist_ok=args.resume)   # a sweep's sub-run stopped before its first checkpoint
        solver.write_json(config, os.path.join(ckpt_dir, "config.json"))

    t = time.time()
    model_kwargs = dict(arch=args.arch, widths=args.widths, latent=args.latent, ksize=args.ksize, lr=args.lr,
                        beta1=args.beta1, balance=args.balance, gamma=args.gamma, lambda_k=args.lambda_k,
                        bn_momentum=args.bn_momentum, code_channels=args.code_channels, out_bias=args.out_bias,
                        score_name=args.anomaly_score, seed=seed, keep_checkpoints=args.keep_checkpoints,
                        threads=args.threads, xla=args.xla, precision=args.precision)
    model = ADAE(objective=args.objective, **model_kwargs)
    timings["graph_build"] = time.time() - t
    log(f"[model] {args.arch} arch, {args.objective} objective, score {model.score_name}; parameters G {model.n_params_g:,}  D {model.n_params_d:,}")
    log(f"[data] {data.protocol} {digit}: {data.counts()}")

    t = time.time()
    train_kwargs = dict(epochs=args.epoch, steps=args.steps, batch_size=args.batch, seed=seed,
                        summary_every=args.summary_every)
    if test_only:
        found, path = model.load(ckpt_dir)
        if not found:
            raise solver.TrainingError(f"run {name!r} has no checkpoint in {ckpt_dir}")
        log(f"[test] evaluating {path}")
        with open(os.path.join(ckpt_dir, "state.json")) as f:
            history = json.load(f)["history"]
    else:
        history = solver.train(model, data, ckpt_dir, results_dir, resume=resume, log=log, **train_kwargs)
    timings["training"] = time.time() - t
    trained = sum(h["images_per_second"] * h["seconds"] for h in history)
    timings["training_images_per_second"] = trained / max(1e-9, sum(h["seconds"] for h in history)) if history else 0.0
    timings["per_epoch_extras"] = sum(h.get("extra_seconds", 0.0) for h in history)

    class_names = datamanager.CLASS_NAMES[args.dataset]
    result, eval_timings = solver.evaluate(model, data, results_dir, history, class_names=class_names, log=log)
    timings.update(eval_timings)
    model.close()

    baseline_results, baseline_info = {}, {}
    if args.baselines:
        t = time.time()
        scores, seconds = baselines.classic_scores(data.x_train, data.x_test, seed)
        t_ae = time.time()
        ae = ADAE(objective="autoencoder", **model_kwargs)
        ae_dir = os.path.join(ckpt_dir, "conv_ae")
        solver.train(ae, data, ae_dir, os.path.join(results_dir, "conv_ae"), log=lambda line: None,
                     resume=os.path.isfile(os.path.join(ae_dir, "state.json")), **train_kwargs)
        scores["ConvAE"] = ae.run_scores(data.x_test, names=("x_gx",))["x_gx"]
        ae.close()
        seconds["ConvAE"] = time.time() - t_ae
        baseline_results = {m: metrics.ranking_metrics(data.anomalous_test, s) for m, s in scores.items()}
        baseline_info = {"settings": dict(baselines.settings(len(data.x_train)),
                                          ConvAE={"note": "G alone, same architecture and budget"}),
                         "seconds": seconds}
        from source import plots
        bars = {"ADAE": result["AUROC"], **{m: r["AUROC"] for m, r in baseline_results.items()}}
        plots.bar_chart(bars, None, os.path.join(results_dir, "baselines.png"),
                        f"{data.protocol} {class_names[digit]}: test AUROC")
        timings["baselines"] = time.time() - t

    summary = {
        "name": name, "metrics": result, "threshold": result["threshold"], "baselines": baseline_results,
        "baseline_info": baseline_info,
        "data": {"source": source, "protocol": data.protocol, "digit": digit, **data.counts()},
        "config": config, "model": model.config, "seed": seed, "precision": model.precision,
        "parameters": {"G": model.n_params_g, "D": model.n_params_d},
        "final_epoch": history[-1] if history else None, "timings": timings,
        "versions": {"tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    solver.write_json(summary, os.path.join(results_dir, "summary.json"))
    if baseline_results:
        log(f"[baselines] {'method':16s} AUROC   AUPRC")
        for m, r in [("ADAE", result)] + list(baseline_results.items()):
            log(f"[baselines] {m:16s} {r['AUROC']:.4f}  {r['AUPRC']:.4f}")
    log(f"[test] AUROC {result['AUROC']:.4f}  AUPRC {result['AUPRC']:.4f}  "
        f"F1 {result['F1']:.4f} (threshold {result['threshold']:.4f})")
    log(f"[test] results: {results_dir}")
    return summary


def score_new_images(args):
    """--score: score new images with a trained run's checkpoint, threshold and validation scores."""
    import numpy as np

    from source import datamanager, inference, plots, solver
    from source.neuralnet import ADAE

    with open(os.path.join(args.results, args.name, "summary.json")) as f:
        summary = json.load(f)
    try:
        names, pixels, notes, skipped = inference.read_inputs(args.score)
        is_array = inference.is_array_path(args.score)
        # files are 8-bit; arrays are scaled the way the run scaled its data
        x = datamanager.scale(pixels, summary["config"]["datnorm"]) if is_array else (pixels / 255.0)[..., None]
    except datamanager.DataError as err:
        raise UsageError(str(err)) from None
    for line in notes:
        log(f"[score] note: {line}")
    for line in skipped:
        log(f"[score] skipped: {line}")
    model = ADAE(**summary["model"])
    found, path = model.load(os.path.join(args.logdir, args.name))
    if not found:
        raise UsageError(f"run {args.name!r} has no checkpoint")
    score = model.run_scores(x.astype(np.float32), names=(model.score_name,))[model.score_name]
    with open(os.path.join(args.results, args.name, "valid_scores.csv")) as f:
        valid = np.array([float(line) for line in f.read().split()[1:]])
    threshold = summary["threshold"]
    percentile = inference.percentile_of(score, valid)
    stem = os.path.splitext(os.path.basename(os.path.normpath(args.score)))[0] or "input"
    run_root = os.path.join(args.results, args.name)
    out_dir = os.path.join(run_root, unique_name(f"score_{stem}", [run_root]))
    os.makedirs(out_dir)
    solver.write_csv([[n, repr(float(s)), f"{p:.1f}", "anomalous" if s > threshold else "normal"]
                      for n, s, p in zip(names, score, percentile)],
                     ["file" if not is_array else "index", "score", "valid_percentile", "verdict"],
                     os.path.join(out_dir, "scores.csv"))
    top = np.argsort(-score)[:16]
    recon = model.restore_images(x[top].astype(np.float32))[1]
    plots.save_image(plots.sample_grid(x[top], recon), os.path.join(out_dir, "most_anomalous.png"))
    model.close()
    flagged = int((score > threshold).sum())
    log(f"[score] {len(score)} images scored with {path}; {flagged} above the threshold {threshold:.4f}")
    log(f"[score] results: {out_dir}")
    return 0


def interrupted(signum, frame):
    """A signal outside a training loop: stop where we are; finished runs and checkpoints are on disk."""
    from source import solver
    raise solver.Interrupted(signum, None)


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.score:
            return score_new_images(args)
        from source import datamanager
        try:
            arrays, source = datamanager.load_data(args.data, args.dataset, log=log)
            for digit in args.digits:      # a protocol that leaves no training images fails before any run
                datamanager.Dataset(*arrays, datnorm=args.datnorm, **{args.protocol: digit})
        except datamanager.DataError as err:
            raise UsageError(str(err)) from None
    except UsageError as err:
        print(f"run.py: error: {err}", file=sys.stderr)
        return EXIT_USAGE

    from source import solver, sweep
    default = f"{'embedded' if source['name'] == 'embedded' else args.dataset}_{args.protocol}"
    default += "all" if len(args.digits) > 1 else str(args.digits[0])
    resuming = args.resume or args.test_only
    name = args.name if resuming else unique_name(args.name or default, [args.results, args.logdir])
    sweeping = len(args.digits) > 1 or args.seeds > 1
    # a signal outside a training loop (which checkpoints first) stops the run or sweep where it is
    previous = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if sweeping and not args.resume:
            os.makedirs(os.path.join(args.logdir, name))
            solver.write_json(run_config(args, name), os.path.join(args.logdir, name, "config.json"))
        runs = [(digit, seed) for digit in args.digits for seed in range(args.seed, args.seed + args.seeds)]
        rows, t_start, trained = [], time.time(), 0
        for done, (digit, seed) in enumerate(runs):
            run_name = os.path.join(name, f"{args.protocol}{digit}_seed{seed}") if sweeping else name
            summary = finished_summary(args, run_name) if sweeping and args.resume else None
            if summary is None:
                resume = args.resume and (not sweeping or has_checkpoint(args, run_name))
                summary = run_experiment(args, arrays, source, digit, seed, run_name, resume, args.test_only)
                trained += 1
            elif sweeping:
                log(f"[sweep] {run_name}: finished earlier, kept")
            methods = {"ADAE": summary["metrics"], **summary["baselines"]}
            rows += [{"protocol": args.protocol, "digit": digit, "seed": seed, "method": m,
                      "AUROC": r["AUROC"], "AUPRC": r["AUPRC"]} for m, r in methods.items()]
            if sweeping:
                left = (time.time() - t_start) / max(1, trained) * (len(runs) - done - 1)
                log(f"[sweep] {done + 1}/{len(runs)} runs done; about {left / 60:.0f} min left")
        if sweeping:
            tab = sweep.write(rows, os.path.join(args.results, name), args.protocol,
                              datamanager.CLASS_NAMES[args.dataset])
            for method, per_class in tab.items():
                log(f"[sweep] {method:16s} mean AUROC {sum(v[0] for v in per_class.values()) / len(per_class):.4f}")
            log(f"[sweep] results: {os.path.join(args.results, name)}")
    except solver.Interrupted as err:
        argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--resume"]
        if "--name" not in argv:
            argv += ["--name", name]
        command = " ".join(["python", "run.py"] + argv + ["--resume"])
        saved = f"checkpoint {err.checkpoint}; " if err.checkpoint else ""
        print(f"run.py: interrupted; {saved}resume with: {command}", file=sys.stderr)
        return 128 + err.signum
    except solver.TrainingError as err:
        print(f"run.py: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
