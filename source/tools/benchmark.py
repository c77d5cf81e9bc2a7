"""Speed benchmark of the real ADAE graph: python -m source.tools.benchmark [--configs default convae bf16 ...].

Times a training iteration (D step + G step) and scoring on synthetic images, after warm-up,
and reports median and spread of images/s, FLOPs per image counted from the graph, the
achieved GFLOP/s and the peak resident memory. Not a test: timings on shared CPUs are noisy,
so compare configurations within one invocation.
"""
import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")   # measure what run.py runs

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from source import board  # noqa: E402
from source.config import MachineConfig, ModelConfig  # noqa: E402
from source import hardware  # noqa: E402
from source.neuralnet import ADAE  # noqa: E402

tf1 = tf.compat.v1


def _profile_flops(graph):
    opts = tf1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf1.profiler.profile(graph, options=opts).total_float_ops


def count_flops(batch, config):
    """FLOPs per image of a training iteration and of scoring, counted by tf.compat.v1.profiler.

    The profiler needs static shapes, so the networks are rebuilt on a fixed-batch placeholder.
    Training: one forward of G, D(x), D(G(x)) plus both losses' gradients, plus a second forward
    (the D step and the G step each run their own), which slightly overcounts the G step.
    """
    from source import neuralnet as nn
    network, arch = nn.network_fn(config), config.arch
    counts = {}
    for phase in ("score", "forward", "train"):
        graph = tf.Graph()
        with graph.as_default():
            tf1.set_random_seed(0)   # required when op determinism is on
            x = nn.to_network(tf1.placeholder(tf.float32, [batch, 28, 28, 1]), arch)
            training = phase != "score"
            with tf1.variable_scope("generator"):
                g_x, _ = network(x, training=training, update_stats=False)
            with tf1.variable_scope("discriminator"):
                d_g_x, _ = network(g_x, training=training, update_stats=False)
            if phase == "score":
                nn.l2_per_image(x, d_g_x)
            else:
                with tf1.variable_scope("discriminator", reuse=True):
                    d_x, _ = network(x, training=True, update_stats=False)
                loss_d = tf.reduce_mean(tf.abs(x - d_x)) - tf.reduce_mean(tf.abs(g_x - d_g_x))
                loss_g = tf.reduce_mean(tf.abs(x - g_x)) + tf.reduce_mean(tf.abs(g_x - d_g_x))
                if phase == "train":
                    tf.gradients(loss_d, tf1.trainable_variables("discriminator/"))
                    tf.gradients(loss_g, tf1.trainable_variables("generator/"))
            counts[phase] = _profile_flops(graph) / batch
    return counts["train"] + counts["forward"], counts["score"]


def time_it(fn, repeats, n_images):
    """Images/s of `repeats` timed calls of fn."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n_images / (time.perf_counter() - t))
    return rates


def stats(rates):
    """Median, min, max and relative spread of a list of rates."""
    med = float(np.median(rates))
    return {"median": med, "min": float(min(rates)), "max": float(max(rates)),
            "spread": float((max(rates) - min(rates)) / med)}


def bench_config(label, batches, score_batch, repeats, iters, config, machine, reference=False):
    """Benchmark one model configuration (reference: with the reference code's per-step trace and per-image
    scoring); returns a dict of results."""
    rng = np.random.RandomState(0)
    x = rng.rand(max(batches + [score_batch]) * 4, 28, 28, 1).astype(np.float32)
    model = ADAE(config, machine)
    out = {"label": label, "precision": model.precision, "config": {
        "model": dataclasses.asdict(config), "machine": dataclasses.asdict(machine), "reference": reference},
        "train": {}, "score": {}}
    if reference:
        import tempfile
        writer = board.writer(tempfile.mkdtemp(prefix="adae_bench_"))
        trace = tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
        traced = []
    for batch in batches:
        xb = x[:batch]

        def iteration():
            for _ in range(iters):
                if reference:   # the reference code's habit: a full trace and two summary writes per step
                    meta = tf1.RunMetadata()
                    _, summary = model.sess.run([model.step_d, model.summary_step], {model.x: xb},
                                                options=trace, run_metadata=meta)
                    traced.append(meta)
                    writer.add_run_metadata(meta, f"step{len(traced)}")
                    writer.add_summary(summary)
                    _, summary = model.sess.run([model.step_g, model.summary_step], {model.x: xb})
                    writer.add_summary(summary)
                else:
                    model.train_step(xb)
        iteration()  # warm-up: oneDNN primitives and XLA clusters are built on the first calls
        out["train"][batch] = stats(time_it(iteration, repeats, iters * batch))
    xs = x[:score_batch * 4]
    if reference:   # one sess.run per image, twice (scores, then restorations)
        xs = xs[:64]
        def score():
            for i in range(len(xs)):
                model.sess.run(model.score, {model.x: xs[i:i + 1]})
                model.sess.run(model.d_g_x_test, {model.x: xs[i:i + 1]})
    else:
        def score():
            model.run_scores(xs, score_batch, (model.anomaly_score,))
    score()
    out["score"][score_batch] = stats(time_it(score, repeats, len(xs)))
    if not reference and model.fitted:   # what a development look and the final evaluation compute: every score,
        model.fit_scores(x)              # the fitted ones fitted on these images (as on training normals)

        def score_all():
            model.run_scores(xs, score_batch)
        score_all()
        out["score_all"] = {score_batch: stats(time_it(score_all, repeats, len(xs)))}
        x_fit = rng.rand(config.fit_images, 28, 28, 1).astype(np.float32)

        def fit():   # what a look that fits adds: every fitted score fitted anew (as after training steps)
            model.forget_fitted()
            model.fit_scores(x_fit)
        fit()
        out["fit"] = {len(x_fit): stats(time_it(fit, repeats, len(x_fit)))}
    model.close()
    return out


# Each configuration is a model and a machine config; "default" is run.py's default recipe for the paper
# network. "reference" also mimics the reference code's per-step trace and per-image scoring.
CONFIGS = {
    "default": (ModelConfig(), MachineConfig()),
    "auto": (ModelConfig(), MachineConfig(precision="auto")),
    "bf16": (ModelConfig(), MachineConfig(precision="bf16")),
    "xla": (ModelConfig(), MachineConfig(xla=True)),
    "threads1": (ModelConfig(), MachineConfig(threads=1)),
    "threads1_ema": (ModelConfig(ema=0.999), MachineConfig(threads=1)),   # the long runs' moving average
    "threads1_xla": (ModelConfig(), MachineConfig(threads=1, xla=True)),
    "convae": (ModelConfig(objective="autoencoder"), MachineConfig()),
    "reference_arch": (ModelConfig(arch="reference"), MachineConfig()),
    "reference": (ModelConfig(arch="reference"), MachineConfig()),
}
REFERENCE_HABITS = {"reference"}
TABLE_BUDGET = {"steps": 1000, "batch": 64}   # the README's ten-digit tables: per digit, ADAE and ConvAE


def peak_gflops():
    """The machine's fp32 peak as far as /proc/cpuinfo tells: cores x clock x FLOPs per cycle
    (two FMA units: 32 per cycle with AVX2, 64 with AVX-512); None where it cannot be read."""
    flags = hardware.cpu_flags()
    try:
        mhz = float(hardware.cpuinfo_field("cpu MHz"))
    except (TypeError, ValueError):
        return None, {}
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 16
    cores = len(os.sched_getaffinity(0))
    return cores * mhz / 1000 * per_cycle, {"cores": cores, "mhz": mhz, "flops_per_cycle": per_cycle,
                                            "bf16_flags": sorted(flags & set(hardware.BF16_FLAGS))}


def measured_peak_gflops(precision="fp32", threads=0, n=2048, repeats=5):
    """The GFLOP/s this machine reaches on a large matrix product in the given precision, with the same
    session settings as the benchmarked graphs: the ceiling a convolution network's rate is divided by
    (a peak computed from /proc/cpuinfo is not what oneDNN reaches, and can sit below what it does)."""
    from source.neuralnet import session_config
    dtype = tf.bfloat16 if precision == "bf16" else tf.float32
    graph = tf.Graph()
    with graph.as_default():
        a = tf.cast(tf1.random_normal([n, n], seed=1), dtype)
        b = tf.cast(tf1.random_normal([n, n], seed=2), dtype)
        a, b = tf1.Variable(a), tf1.Variable(b)
        product = tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32))   # a scalar back, not n^2 values
        init = tf1.global_variables_initializer()
    with tf1.Session(graph=graph, config=session_config(threads)) as sess:
        sess.run(init)
        sess.run(product)   # warm-up
        best = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            sess.run(product)
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64], help="training batch sizes")
    p.add_argument("--score-batch", type=int, default=256, help="scoring batch size")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement")
    p.add_argument("--iters", type=int, default=5, help="training iterations per repeat")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads of the default config")
    p.add_argument("--configs", nargs="+", default=["default"], choices=sorted(CONFIGS),
                   help="configurations to compare in this run")
    p.add_argument("--output", default="bench/benchmark.json", help="JSON file to write")
    args = p.parse_args(argv)
    for name in args.configs:   # a precision these kernels cannot run (bf16 below AVX-512): one line, exit 2
        try:
            hardware.resolve_precision(CONFIGS[name][1].precision)
        except hardware.PrecisionError as err:
            p.error(f"--configs {name}: {err}")

    flops = {arch: count_flops(args.score_batch, ModelConfig(arch=arch)) for arch in ("paper", "reference")}
    estimated, cpu = peak_gflops()
    peaks = {p: measured_peak_gflops(p, args.threads) for p in ("fp32", "bf16")}
    results = []
    for name in args.configs:
        config, machine = CONFIGS[name]
        machine = dataclasses.replace(machine, threads=machine.threads or args.threads)
        results.append(bench_config(name, args.batches, args.score_batch, args.repeats, args.iters, config, machine,
                                    reference=name in REFERENCE_HABITS))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for arch, (train_flops, score_flops) in flops.items():
        print(f"FLOPs per image, {arch} arch: training iteration {train_flops / 1e9:.3f} GFLOP, "
              f"scoring {score_flops / 1e9:.4f} GFLOP")
    print(f"machine peak, measured on a {2048}x{2048} matrix product: fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s" + (f" (estimated from /proc/cpuinfo: fp32 {estimated:.0f}; {cpu})"
                                                 if estimated else ""))
    print(f"{'config':15s} {'phase':6s} {'batch':>5s} {'img/s median':>12s} {'min':>8s} {'max':>8s} "
          f"{'GFLOP/s':>8s} {'of peak':>8s}")
    for r in results:
        train_flops, score_flops = flops[r["config"]["model"]["arch"]]
        if r["config"]["model"]["objective"] == "autoencoder":   # the profiler counts are ADAE's:
            train_flops /= 3   # one network of three in training
            score_flops /= 2   # G alone where ADAE's score runs G, then D
        peak = peaks["bf16" if r["precision"]["used"] == "bf16" else "fp32"]
        # every score (score_all, shown as "all") and the fit of the fitted ones on training normals (shown as "fit",
        # its batch the images fitted on): hidden-layer passes, SVD and NumPy on top of the counted graph, no FLOPs
        for phase, shown, per_image in (("train", "train", train_flops), ("score", "score", score_flops),
                                        ("score_all", "all", None), ("fit", "fit", None)):
            for batch, s in r.get(phase, {}).items():
                line = f"{r['label']:15s} {shown:6s} {batch:5d} {s['median']:12.0f} {s['min']:8.0f} {s['max']:8.0f}"
                if per_image is not None:
                    gflops = s["median"] * per_image / 1e9
                    s["gflops"], s["fraction_of_peak"] = gflops, gflops / peak
                    line += f" {gflops:8.1f} {f'{100 * gflops / peak:7.1f}%':>8s}"
                print(line)
    projection = project_tables(results)
    for line in projection.get("lines", []):
        print(line)
    print(f"peak resident memory: {peak_mib:.0f} MiB")
    report = {"flops_per_image": flops, "results": results, "peak_memory_mib": peak_mib,
              "projection": projection, "peak_gflops": peaks, "estimated_fp32_peak_gflops": estimated,
              "host": dict(cpu, cpus=os.cpu_count(), machine=platform.machine(), tensorflow=tf.__version__)}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"written: {args.output}")
    return 0


def project_tables(results):
    """Projected training time of a ten-digit table at TABLE_BUDGET (ADAE then ConvAE per digit), from the
    median training rates of the default and convae configurations at the table's batch size."""
    rates = {r["label"]: r["train"].get(TABLE_BUDGET["batch"], {}).get("median") for r in results}
    if not rates.get("default"):
        return {"lines": [f"projection: needs --configs default (and convae) with --batches {TABLE_BUDGET['batch']}"]}
    images = TABLE_BUDGET["steps"] * TABLE_BUDGET["batch"]
    adae = images / rates["default"]
    ae = images / rates["convae"] if rates.get("convae") else adae / 3
    minutes = 10 * (adae + ae) / 60
    line = (f"projected ten-digit table at {TABLE_BUDGET['steps']} steps x batch {TABLE_BUDGET['batch']}: "
            f"{minutes:.0f} min of training (ADAE {adae:.0f} s + ConvAE {ae:.0f} s per digit; one process, "
            f"plus baselines and evaluation)")
    return {"adae_seconds_per_digit": adae, "convae_seconds_per_digit": ae, "table_minutes": minutes,
            "lines": [line]}


if __name__ == "__main__":
    sys.exit(main())
