"""The speed benchmark (source.tools.benchmark), without timing anything that matters: the rates of a fake clock,
their summary, the machine's estimated peak from a given /proc/cpuinfo, FLOPs counted from the graph, the
ten-digit table's projection, a precision this CPU cannot run refused, and one tiny run of the whole report
whose numbers are checked against each other, not against a speed."""
import json
import types

import pytest

from source import hardware
from source.tools import benchmark
from source.config import MachineConfig, ModelConfig


def test_time_it_turns_each_call_into_images_per_second(monkeypatch):
    """Calls that take 0.5, 0.25 and 2 s on a fake clock, 10 images each: 20, 40 and 5 images/s."""
    durations, now = iter([0.5, 0.25, 2.0]), [100.0]

    def call():
        now[0] += next(durations)
    monkeypatch.setattr(benchmark, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    assert benchmark.time_it(call, 3, 10) == [20.0, 40.0, 5.0]


def test_stats_of_rates():
    assert benchmark.stats([120.0, 80.0, 100.0]) == {"median": 100.0, "min": 80.0, "max": 120.0, "spread": 0.4}
    assert benchmark.stats([50.0, 70.0]) == {"median": 60.0, "min": 50.0, "max": 70.0, "spread": 20.0 / 60.0}


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "fma"}, 160.0),                        # 2 cores x 2.5 GHz x 32 FLOPs a cycle
    ({"avx2", "avx512f", "avx512_bf16"}, 320.0),     # 64 a cycle with AVX-512
    ({"sse4_2"}, 80.0),
])
def test_peak_from_cpuinfo(monkeypatch, flags, expected):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(hardware, "cpuinfo_field", lambda name: {"cpu MHz": "2500.000"}.get(name))
    monkeypatch.setattr(benchmark.os, "sched_getaffinity", lambda pid: {0, 1})
    peak, cpu = benchmark.peak_gflops()
    assert peak == pytest.approx(expected)
    assert cpu == {"cores": 2, "mhz": 2500.0, "flops_per_cycle": expected / 5,
                   "bf16_flags": sorted(set(flags) & {"amx_bf16", "avx512_bf16"})}


def test_no_peak_where_cpuinfo_has_no_clock(monkeypatch):
    monkeypatch.setattr(hardware, "cpuinfo_field", lambda name: None)
    assert benchmark.peak_gflops() == (None, {})


def rates(**medians):
    """Results of configurations {label: median training images/s at batch 64}."""
    return [{"label": label, "train": {64: {"median": rate}, 32: {"median": 1.0}}} for label, rate in medians.items()]


def test_projection_of_the_ten_digit_table():
    """1,000 steps of 64 images: 100 s of ADAE at 640 images/s and 40 s of ConvAE at 1,600, ten digits: 23 min;
    without a ConvAE measurement ConvAE is taken as a third of ADAE."""
    projection = benchmark.project_tables(rates(default=640.0, convae=1600.0))
    assert (projection["adae_seconds_per_digit"], projection["convae_seconds_per_digit"]) == (100.0, 40.0)
    assert projection["table_minutes"] == pytest.approx(1400 / 60)
    assert projection["lines"] == ["projected ten-digit table at 1000 steps x batch 64: 23 min of training (ADAE "
                                   "100 s + ConvAE 40 s per digit; one process, plus baselines and evaluation)"]
    alone = benchmark.project_tables(rates(default=640.0))
    assert alone["convae_seconds_per_digit"] == pytest.approx(100 / 3)
    assert alone["table_minutes"] == pytest.approx(10 * (100 + 100 / 3) / 60)


def test_no_projection_without_the_default_config_at_the_tables_batch():
    needs = {"lines": ["projection: needs --configs default (and convae) with --batches 64"]}
    assert benchmark.project_tables(rates(convae=1600.0)) == needs
    assert benchmark.project_tables([{"label": "default", "train": {32: {"median": 500.0}}}]) == needs


def test_bf16_where_the_kernels_have_no_avx512_is_refused_before_anything_runs(monkeypatch, capsys):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(benchmark, "count_flops", lambda *a: pytest.fail("measured a refused configuration"))
    with pytest.raises(SystemExit) as caught:
        benchmark.main(["--configs", "default", "bf16"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: --configs bf16: --precision bf16 needs AVX-512 kernels (oneDNN builds no bfloat16 convolution below "
        "them) and this CPU's have none; use fp32 or auto")


SMALL = ModelConfig(widths=(8, 16), latent=4)


def test_flops_per_image_do_not_depend_on_the_batch():
    """The profiler's counts over the batch: about the same per image at batch 2 and 4 (the losses' and batch
    statistics' reductions aside); a training iteration (three network passes and their gradients, twice)
    costs more than three scorings (two passes each)."""
    train, score = benchmark.count_flops(2, SMALL)
    assert benchmark.count_flops(4, SMALL) == pytest.approx((train, score), rel=1e-2)
    assert score > 0 and train > 3 * score


def test_a_tiny_benchmark_reports_rates_flops_and_the_projection_consistently(tmp_path, monkeypatch, capsys):
    """The small network as `default` and `convae`, one timed repeat of one iteration, the FLOPs per image and
    the matrix-product peak given (100 GFLOP/s): every configuration and phase is in the JSON and the table,
    and each GFLOP/s is its median rate times the arch's FLOPs per image (a third of training and half of
    scoring for ConvAE), as a fraction of the peak."""
    monkeypatch.setitem(benchmark.CONFIGS, "default", (SMALL, MachineConfig(threads=1)))
    monkeypatch.setitem(benchmark.CONFIGS, "convae", (ModelConfig(widths=(8, 16), latent=4, objective="autoencoder"),
                                                      MachineConfig(threads=1)))
    flops = {"paper": [6e9, 4e8], "reference": [3e9, 2e8]}
    monkeypatch.setattr(benchmark, "count_flops", lambda batch, config: tuple(flops[config.arch]))
    monkeypatch.setattr(benchmark, "measured_peak_gflops", lambda precision, threads: 100.0)
    out = tmp_path / "bench" / "benchmark.json"
    assert benchmark.main(["--configs", "default", "convae", "--batches", "64", "--score-batch", "8", "--repeats", "1",
                           "--iters", "1", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [r["label"] for r in report["results"]] == ["default", "convae"]
    assert report["peak_gflops"] == {"fp32": 100.0, "bf16": 100.0} and report["flops_per_image"] == flops
    for r, (train_flops, score_flops) in zip(report["results"], ((6e9, 4e8), (2e9, 2e8))):
        for phase, per_image in (("train", train_flops), ("score", score_flops)):
            (batch, s), = r[phase].items()
            assert batch == {"train": "64", "score": "8"}[phase]
            assert s["min"] == s["median"] == s["max"] > 0 and s["spread"] == 0.0
            assert s["gflops"] == pytest.approx(s["median"] * per_image / 1e9, rel=1e-12)
            assert s["fraction_of_peak"] == pytest.approx(s["gflops"] / 100.0, rel=1e-12)
        (batch, s), = r["score_all"].items()   # every score, as a look computes them: timed, no FLOP count
        assert batch == "8" and s["min"] == s["median"] == s["max"] > 0 and "gflops" not in s
        (batch, s), = r["fit"].items()   # the fitted scores' fit on the model's fit_images: timed, no FLOP count
        assert batch == "2000" and s["min"] == s["median"] == s["max"] > 0 and "gflops" not in s
    rates = {r["label"]: r["train"]["64"]["median"] for r in report["results"]}
    assert report["projection"]["adae_seconds_per_digit"] == pytest.approx(64000 / rates["default"])
    assert report["projection"]["convae_seconds_per_digit"] == pytest.approx(64000 / rates["convae"])
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in printed if line.startswith(("default ", "convae "))] == [
        ["default", "train", "64"], ["default", "score", "8"], ["default", "all", "8"], ["default", "fit", "2000"],
        ["convae", "train", "64"], ["convae", "score", "8"], ["convae", "all", "8"], ["convae", "fit", "2000"]]
    assert report["projection"]["lines"][0] in printed and printed[-1] == f"written: {out}"
