"""What this machine's CPU offers a run: its /proc/cpuinfo fields and flags, the flags oneDNN's kernels may use,
the precision a run gets (fp32 or bfloat16), the CPU description written to a run's summary, and the thread
count of the process's NumPy and SciPy math."""
import os

from source.config import PRECISIONS

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpuinfo_field(name):
    """The first value of a /proc/cpuinfo field ("flags", "model name", "cpu MHz"); None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    return set((cpuinfo_field("flags") or "").split())


def limit_math_threads(threads):
    """Hold the BLAS and OpenMP thread pools of NumPy, SciPy and scikit-learn (the fitted scores' SVDs, the
    metrics) to `threads` (0: leave them one per core), as TensorFlow's intra-op pool is: two 1-thread runs side
    by side otherwise each start a BLAS thread per core, and an SVD of the fitted scores ran 3-15 times slower
    (docs/speed.md, "Math threads")."""
    if threads <= 0:
        return
    import importlib
    from threadpoolctl import threadpool_limits
    importlib.import_module("scipy.linalg")   # loads SciPy's own BLAS, so that the limit below holds it too
    threadpool_limits(limits=threads)


class PrecisionError(ValueError):
    """--precision bf16 where oneDNN's kernels have no bfloat16 convolution (below AVX-512)."""


# ONEDNN_MAX_CPU_ISA values (by prefix) -> the CPU flags they keep oneDNN from using
ISA_CAPS = {"SSE": ("avx512", "amx"), "AVX2": ("avx512", "amx"), "AVX": ("avx512", "amx"),
            "AVX512_CORE_BF16": ("amx",), "AVX512_CORE_VNNI": ("avx512_bf16", "amx"),
            "AVX512_CORE": ("avx512_bf16", "amx"), "AVX512_CORE_AMX": ()}


def kernel_flags(flags=None, max_isa=None):
    """The CPU flags oneDNN's kernels may use: /proc/cpuinfo's (or flags), less those ONEDNN_MAX_CPU_ISA (or
    max_isa) holds them below."""
    flags = cpu_flags() if flags is None else set(flags)
    max_isa = (os.environ.get("ONEDNN_MAX_CPU_ISA", "") if max_isa is None else max_isa).upper()
    for prefix in sorted(ISA_CAPS, key=len, reverse=True):   # the longest matching name decides
        if max_isa.startswith(prefix):
            return {f for f in flags if not f.startswith(ISA_CAPS[prefix])}
    return flags


def resolve_precision(requested, flags=None):
    """fp32 | bf16 | auto -> what runs: auto takes bf16 only where the CPU has bfloat16 hardware; a forced
    bf16 needs AVX-512 (oneDNN emulates bfloat16 there; below it a bfloat16 convolution cannot be built, so
    the run would fail at its first step): PrecisionError otherwise. flags: the kernels' CPU flags."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be fp32, bf16 or auto, got {requested!r}")
    flags = kernel_flags() if flags is None else set(flags)
    seen = sorted(flags & set(BF16_FLAGS))
    if requested == "bf16" and "avx512f" not in flags:
        raise PrecisionError("--precision bf16 needs AVX-512 kernels (oneDNN builds no bfloat16 convolution "
                             "below them) and this CPU's have none; use fp32 or auto")
    used = ("bf16" if seen else "fp32") if requested == "auto" else requested
    return {"requested": requested, "used": used, "bf16_cpu_flags": seen}


def machine():
    """The CPU a run's timings and last float bits come from: its name, cores, the vector units oneDNN picks
    kernels by."""
    cpu_name = cpuinfo_field("model name") or "unknown CPU"
    flags = cpu_flags()
    units = [name for name, flag in (("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"), ("AMX-BF16", "amx_bf16"))
             if flag in flags] or (["AVX2"] if "avx2" in flags else [])
    return {"cpu": f"{cpu_name}, {os.cpu_count()} cores, {'/'.join(units) or 'no AVX2'}"}
