"""The one importer of the compiled `minicaffe._kernels` extension, and the thread controls.

If the extension cannot be imported, a RuntimeWarning says so once and every op in
`minicaffe.ops` runs its NumPy twin instead (same results, slower). Set the environment
variable MINICAFFE_NATIVE=0 to choose the NumPy path on purpose (no warning).

The kernels are compiled for several instruction sets (baseline x86-64, AVX2 + FMA, AVX-512)
and the best one the CPU runs is chosen when the extension loads. MINICAFFE_ISA=baseline|avx2|
avx512 (or auto) forces one; a name this CPU or build cannot run, or an unknown one, gives a
RuntimeWarning and the best available instead, since running it would die on an illegal
instruction. A forced lower instruction set also gives our OpenBLAS copy the matching kernels
(avx2: Haswell, baseline: Nehalem), so that the whole stack measures what a CPU without the
wider vectors would run. `set_isa(name)` switches minicaffe's own kernels later (the
BLAS keeps the kernels it loaded with) and raises for a name it cannot run.

The default build links OpenBLAS from the `scipy-openblas32` wheel. Its shared library lives in
that package's `lib/` directory, which is not on the loader's path, so it is loaded here with
RTLD_GLOBAL before the extension; the extension's DT_NEEDED entry then resolves to it by soname.
"""
import ctypes
import importlib
import os
import warnings

_kernels = None
_import_error = None
_loaded = False

# The most threads `set_num_threads` accepts (kernels/kernels.h: kMaxThreads, the same number).
# A bound, not a recommendation: libgomp could not create 100000 threads and the next
# convolution crashed; no machine this runs on needs more than a thousand.
MAX_THREADS = 1024


# AVX-512 subsets that OpenBLAS's SkylakeX kernels use.
_SKYLAKEX_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}

ISAS = ("baseline", "avx2", "avx512")
# A forced instruction set below the CPU's best: OpenBLAS kernels of a CPU that has no more
# than it, and the /proc/cpuinfo flags they need.
_OPENBLAS_CORE_FOR_ISA = {"avx2": ("Haswell", {"avx2", "fma"}),
                          "baseline": ("Nehalem", {"sse4_2"})}


def _requested_isa():
    """MINICAFFE_ISA, lower-cased; "auto" when unset or empty."""
    return os.environ.get("MINICAFFE_ISA", "").strip().lower() or "auto"


# NumPy's run-time CPU detection (CPUID, with the OS's register support checked) -> the
# /proc/cpuinfo names used here.
_NUMPY_FEATURES = {"SSE42": "sse4_2", "AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f",
                   "AVX512CD": "avx512cd", "AVX512BW": "avx512bw", "AVX512DQ": "avx512dq",
                   "AVX512VL": "avx512vl"}


def _cpu_flags():
    """The CPU's features as /proc/cpuinfo names, from what the CPU itself reports (NumPy's
    CPUID detection): /proc/cpuinfo describes the host, which an emulator (qemu-user) or a
    virtual machine may not pass on. /proc/cpuinfo only where NumPy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # noqa: PLC0415
    except ImportError:
        __cpu_features__ = None
    if __cpu_features__:
        return {name for key, name in _NUMPY_FEATURES.items() if __cpu_features__.get(key)}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _preload_openblas():
    # This OpenBLAS build picks its kernels once, when loaded (which `import scipy_openblas32`
    # already does), from OPENBLAS_CORETYPE or its own CPU detection.
    # MINICAFFE_OPENBLAS_CORETYPE chooses for minicaffe's copy alone (the variable is set only
    # while the library loads). Without it, a CPU with AVX-512 gets the SkylakeX kernels even
    # when a process-wide OPENBLAS_CORETYPE pins something older: 0.3.34 does not recognise
    # AMD Zen 5, and machine images pin Haswell for NumPy's sake, which halves our GEMM speed
    # (sgemm 2048^3, one thread: about 120 vs 240 GFLOP/s on this machine kind). Other CPUs
    # follow OPENBLAS_CORETYPE or OpenBLAS's own detection. MINICAFFE_ISA=avx2 or baseline
    # picks the Haswell or Nehalem kernels (when the CPU has what those need).
    previous = os.environ.get("OPENBLAS_CORETYPE")
    choice = os.environ.get("MINICAFFE_OPENBLAS_CORETYPE")
    flags = _cpu_flags()
    core, needs = _OPENBLAS_CORE_FOR_ISA.get(_requested_isa(), (None, None))
    if not choice and core and needs <= flags:
        choice = core
    if not choice and _SKYLAKEX_FLAGS <= flags:
        choice = "SKYLAKEX"
    if choice:
        os.environ["OPENBLAS_CORETYPE"] = choice
    try:
        try:
            import scipy_openblas32  # noqa: PLC0415  (runtime dependency of the default build)
        except ImportError:
            return
        path = os.path.join(scipy_openblas32.get_lib_dir(), "libscipy_openblas.so")
        if os.path.exists(path):
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    finally:
        if previous is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        else:
            os.environ["OPENBLAS_CORETYPE"] = previous


def _load():
    global _kernels, _import_error, _loaded
    _loaded = True
    if os.environ.get("MINICAFFE_NATIVE", "1") == "0":
        _import_error = "disabled by MINICAFFE_NATIVE=0"
        return
    # One thread pool does all the work (GEMMs are split over OpenMP with a serial OpenBLAS, see
    # kernels/blas.h), so idle workers may spin briefly instead of sleeping: waking sleeping
    # threads for each of the many short parallel regions of a training step cost more than the
    # second core gave (CIFAR-10 quick at 2 threads: 92 ms passive, 56 ms with this spin).
    # libgomp reads this when it loads (with the extension); the variable is set for that moment
    # only, and a user's OMP_WAIT_POLICY / GOMP_SPINCOUNT wins.
    wait_policy_was_set = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not wait_policy_was_set:
        os.environ["GOMP_SPINCOUNT"] = "100000"
    try:
        _preload_openblas()
        module = importlib.import_module("minicaffe._kernels")
    except (ImportError, OSError) as exc:
        _import_error = f"{type(exc).__name__}: {exc}"
        warnings.warn(
            "minicaffe: the compiled kernels (minicaffe._kernels) are not available "
            f"({_import_error}); every op falls back to NumPy and runs much slower. "
            "Build them with `pip install -e .` in the source tree.",
            RuntimeWarning, stacklevel=3)
        return
    finally:
        if not wait_policy_was_set:
            os.environ.pop("GOMP_SPINCOUNT", None)
    _kernels = module
    requested = _requested_isa()
    if requested != "auto":
        try:
            module.set_isa(requested)
        except ValueError as exc:
            warnings.warn(
                f"minicaffe: MINICAFFE_ISA={requested} ignored ({exc}); the kernels use "
                f"{module.get_isa()}, the best this CPU runs", RuntimeWarning, stacklevel=3)
    # Enter the one-pool mode (serial OpenBLAS, GEMMs split over OpenMP) with OMP_NUM_THREADS
    # (else all cores) threads, at most MAX_THREADS.
    threads = module.get_num_threads()
    if threads > MAX_THREADS:
        warnings.warn(f"minicaffe: OMP_NUM_THREADS asks for {threads} threads; using "
                      f"MAX_THREADS = {MAX_THREADS}", RuntimeWarning, stacklevel=3)
        threads = MAX_THREADS
    module.set_num_threads(threads)


def kernels():
    """The extension module, or None when it is missing or disabled (NumPy fallback)."""
    if not _loaded:
        _load()
    return _kernels


def available():
    """True when the compiled kernels are in use."""
    return kernels() is not None


def unavailable_reason():
    """Why the NumPy fallback is in use (str), or None when the extension is loaded."""
    kernels()
    return _import_error


def set_isa(name):
    """Run minicaffe's own kernels with instruction set `name` from the next call on.

    name: "baseline", "avx2", "avx512", or "auto" (the best this CPU runs). The BLAS keeps the
    kernels it loaded with (MINICAFFE_ISA at import chooses those too).
    Raises KernelError (a ValueError) for an unknown name or one this CPU or build cannot run,
    RuntimeError when the compiled kernels are not in use (NumPy fallback).
    """
    module = kernels()
    if module is None:
        raise RuntimeError(f"set_isa: the compiled kernels are not in use ({_import_error})")
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name = {name!r}; expected a str ({', '.join(ISAS)}, auto)")
    name = name.strip().lower()
    module.set_isa(module.isa_names(True)[-1] if name == "auto" else name)


def get_isa():
    """The instruction set minicaffe's kernels run with ("numpy" on the NumPy fallback)."""
    module = kernels()
    return "numpy" if module is None else module.get_isa()


def available_isas():
    """Instruction sets this build has and this CPU runs, lowest first ([] on the fallback)."""
    module = kernels()
    return [] if module is None else list(module.isa_names(True))


def set_num_threads(n):
    """Use `n` threads in BLAS calls and in minicaffe's OpenMP kernels (1 <= n <= MAX_THREADS).

    Sets OpenBLAS/MKL and OpenMP of the extension, and NumPy's own BLAS pool (the fallback path),
    so neither pool oversubscribes the other. Without a call the count comes from
    OMP_NUM_THREADS (else the number of cores; more than MAX_THREADS is cut to it with a warning).
    Raises ValueError for anything else, leaving the count as it was.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"set_num_threads: n = {n!r}; expected an integer >= 1")
    if n > MAX_THREADS:
        raise ValueError(f"set_num_threads: n = {n!r}; expected an integer from 1 to "
                         f"{MAX_THREADS} (MAX_THREADS)")
    n = int(n)
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    threadpool_limits(limits=n)
    module = kernels()
    if module is not None:
        module.set_num_threads(n)
    global _fallback_threads
    _fallback_threads = n


_fallback_threads = None


def get_num_threads():
    """Threads the kernels use now (OpenMP max threads of the extension, else NumPy BLAS's)."""
    module = kernels()
    if module is not None:
        return int(module.get_num_threads())
    if _fallback_threads is not None:
        return _fallback_threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.split(",")[0].strip().isdigit():
        return int(env.split(",")[0])
    return os.cpu_count() or 1


def build_info():
    """A dict describing the kernels in use.

    blas_vendor, blas_version, threads, blas_threads; isa: the instruction set the kernels run
    with ("baseline", "avx2", "avx512"; "numpy" on the fallback), isa_available: those this
    build has and this CPU runs, isa_compiled: those this build has, vector_bits: the active
    one's vector width; openmp: OpenMP version ("" without); compiled: False on the NumPy
    fallback (the BLAS fields then describe NumPy's BLAS); tile_gemm: convolution forwards use
    the active instruction set's own GEMM where it applies (MINICAFFE_TILE_GEMM=0 turns it off).
    """
    module = kernels()
    if module is not None:
        info = dict(module.build_info())
        info["threads"] = get_num_threads()
        info["compiled"] = True
        return info
    vendor, version = "numpy", "unknown"
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            vendor, version = blas[0].get("internal_api", vendor), blas[0].get("version", version)
    except Exception:  # noqa: BLE001  (informational only)
        pass
    return {"blas_vendor": vendor, "blas_version": str(version), "threads": get_num_threads(),
            "isa": "numpy", "isa_available": [], "isa_compiled": [], "vector_bits": 0,
            "openmp": "", "compiled": False, "tile_gemm": False}
