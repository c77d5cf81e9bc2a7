"""The CPU a run meets (source.hardware): /proc/cpuinfo's fields and flags, the flags oneDNN's kernels may use, the
precision a run gets, and the CPU description a summary records."""
import io

import pytest

from source import hardware
from source.hardware import PrecisionError, kernel_flags, machine, resolve_precision

AVX2_HOST = "processor\t: 0\nmodel name\t: AMD EPYC 7B12\ncpu MHz\t\t: 2249.998\nflags\t\t: fpu sse2 avx2 fma\n\n"
AMX_HOST = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n")


@pytest.fixture
def cpuinfo(monkeypatch):
    """cpuinfo(text): /proc/cpuinfo reads as text (None: cannot be read), with no ONEDNN_MAX_CPU_ISA cap."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)

    def fake(text):
        def open_(path, *args, **kwargs):
            assert path == "/proc/cpuinfo"
            if text is None:
                raise PermissionError(13, "Permission denied", path)
            return io.StringIO(text)
        monkeypatch.setattr(hardware, "open", open_, raising=False)
    return fake


def test_cpuinfo_fields_and_flags(cpuinfo):
    """A field's first value (colons after the first kept), the flags as a set; None and no flags where
    /proc/cpuinfo cannot be read."""
    cpuinfo(AVX2_HOST + "model name\t: second socket\n")
    assert hardware.cpuinfo_field("model name") == "AMD EPYC 7B12"
    assert hardware.cpuinfo_field("cpu MHz") == "2249.998" and hardware.cpuinfo_field("bogomips") is None
    assert hardware.cpu_flags() == {"fpu", "sse2", "avx2", "fma"}
    cpuinfo(None)
    assert hardware.cpuinfo_field("model name") is None and hardware.cpu_flags() == set()


@pytest.mark.parametrize("requested, flags, used", [
    ("auto", {"avx2", "fma"}, "fp32"), ("auto", {"avx512f", "amx_bf16"}, "bf16"),
    ("auto", {"avx512_bf16"}, "bf16"), ("fp32", {"amx_bf16"}, "fp32"), ("bf16", {"avx512f"}, "bf16"), ("bf16", {"avx2"}, None)])
def test_precision_choice(requested, flags, used):
    """auto takes bfloat16 only where the CPU has AMX-BF16 or AVX512-BF16; fp32 is forced, and bf16 where the
    kernels have AVX-512 (below it oneDNN builds no bfloat16 convolution: a one-line PrecisionError)."""
    if used is None:
        with pytest.raises(PrecisionError, match="needs AVX-512"):
            resolve_precision(requested, flags)
        return
    out = resolve_precision(requested, flags)
    assert out["used"] == used and out["requested"] == requested
    assert out["bf16_cpu_flags"] == sorted(flags & {"amx_bf16", "avx512_bf16"})


def test_precision_from_this_cpus_flags(cpuinfo, monkeypatch):
    """Without flags given, the precision follows /proc/cpuinfo as the kernels see it: an AVX2 host runs fp32
    for auto and refuses bf16; an AMX host runs bf16 for auto and forced, fp32 where asked; an AMX host held at
    AVX2 by ONEDNN_MAX_CPU_ISA is an AVX2 host. An unknown precision is a ValueError."""
    cpuinfo(AVX2_HOST)
    assert resolve_precision("auto") == {"requested": "auto", "used": "fp32", "bf16_cpu_flags": []}
    assert resolve_precision("fp32")["used"] == "fp32"
    with pytest.raises(PrecisionError, match="use fp32 or auto"):
        resolve_precision("bf16")
    cpuinfo(AMX_HOST)
    assert resolve_precision("auto") == {"requested": "auto", "used": "bf16",
                                         "bf16_cpu_flags": ["amx_bf16", "avx512_bf16"]}
    assert resolve_precision("bf16")["used"] == "bf16" and resolve_precision("fp32")["used"] == "fp32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert resolve_precision("auto")["used"] == "fp32"
    with pytest.raises(PrecisionError):
        resolve_precision("bf16")
    with pytest.raises(ValueError, match="fp32, bf16 or auto"):
        resolve_precision("fp16")


def test_oneDNN_isa_cap_hides_the_flags_above_it():
    """ONEDNN_MAX_CPU_ISA=AVX2 (how the AVX2-only host's kernels are reproduced here) leaves no AVX-512 or AMX
    flag; AVX512_CORE keeps AVX-512 but not its bfloat16; no cap, or an AMX one, keeps every flag."""
    flags = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert kernel_flags(flags, "AVX2") == {"avx2"} and kernel_flags(flags, "avx2_vnni") == {"avx2"}
    assert kernel_flags(flags, "AVX512_CORE") == {"avx2", "avx512f"}
    assert kernel_flags(flags, "AVX512_CORE_BF16") == {"avx2", "avx512f", "avx512_bf16"}
    assert kernel_flags(flags, "") == kernel_flags(flags, "AVX512_CORE_AMX") == flags


def test_machine_names_the_cpu_its_cores_and_vector_units(cpuinfo, monkeypatch):
    """The summary's CPU line: name, cores, and the vector units oneDNN picks kernels by (the CPU's own flags,
    not those a cap leaves the kernels); what cannot be read is said so."""
    monkeypatch.setattr(hardware.os, "cpu_count", lambda: 8)
    cpuinfo(AVX2_HOST)
    assert machine() == {"cpu": "AMD EPYC 7B12, 8 cores, AVX2"}
    cpuinfo(AMX_HOST)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert machine() == {"cpu": "Intel(R) Xeon(R) Platinum 8480+, 8 cores, AVX-512/AVX512-BF16/AMX-BF16"}
    cpuinfo("flags\t\t: fpu sse2\n")
    assert machine() == {"cpu": "unknown CPU, 8 cores, no AVX2"}
    cpuinfo(None)
    assert machine() == {"cpu": "unknown CPU, 8 cores, no AVX2"}


def test_a_sessions_threads_hold_numpys_and_scipys_math_pools_too():
    """A session opened with threads=1 holds every BLAS and OpenMP pool of the process (NumPy's, SciPy's own
    OpenBLAS, scikit-learn's OpenMP) to one thread, from whatever they held; threads=0 leaves them as they are."""
    import importlib
    from threadpoolctl import threadpool_info, threadpool_limits

    from source.config import MachineConfig
    from source.neuralnet import open_session
    from source.tf_setup import import_tensorflow
    tf1 = import_tensorflow().compat.v1
    importlib.import_module("scipy.linalg")   # its BLAS loaded: the check sees every pool the scores use
    with threadpool_limits(limits=2):   # the pools as a process on two cores starts them; restored on leaving
        before = [pool["num_threads"] for pool in threadpool_info()]
        assert len(before) >= 2 and max(before) == 2
        hardware.limit_math_threads(0)
        assert [pool["num_threads"] for pool in threadpool_info()] == before
        session, _ = open_session(tf1.Graph(), MachineConfig(threads=1))
        session.close()
        pools = threadpool_info()
        assert {pool["user_api"] for pool in pools} >= {"blas"}
        assert [pool["num_threads"] for pool in pools] == [1] * len(pools), pools
