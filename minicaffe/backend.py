"""The array-module seam: NumPy on CPU, CuPy on GPU, chosen once per process.

Layer and solver code is written once against `xp = backend.xp_of(*arrays)`; only `ops/`
holds code that differs between the two (cuBLAS / cuSPARSE calls, raw kernels).
CuPy is imported lazily on first GPU use; if that fails the reason is kept and re-raised
by `set_mode_gpu()` so the user sees why.
"""
import numpy as np

_mode = "cpu"
_device_id = 0
_cupy = None
_cupy_error = None


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy  # noqa: PLC0415  (optional dependency)

            cupy.cuda.runtime.getDeviceCount()
            _cupy = cupy
        except Exception as exc:  # ImportError, CUDARuntimeError, ...
            _cupy_error = exc
    return _cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    return _import_cupy() is not None


def gpu_unavailable_reason():
    """Why the GPU cannot be used (str), or None when it can."""
    _import_cupy()
    return None if _cupy is not None else f"{type(_cupy_error).__name__}: {_cupy_error}"


def set_mode_cpu():
    """Run new blobs and layers on the CPU with NumPy (the default)."""
    global _mode
    _mode = "cpu"


def set_mode_gpu():
    """Run new blobs and layers on the GPU with CuPy. Raises RuntimeError naming why not."""
    global _mode
    if _import_cupy() is None:
        raise RuntimeError(f"GPU mode needs CuPy and a CUDA device: {gpu_unavailable_reason()}")
    _mode = "gpu"
    _cupy.cuda.Device(_device_id).use()


def set_device(device_id):
    """Select the CUDA device used in GPU mode (pycaffe's caffe.set_device)."""
    global _device_id
    _device_id = int(device_id)
    if _mode == "gpu":
        _cupy.cuda.Device(_device_id).use()


def mode():
    """'cpu' or 'gpu'."""
    return _mode


def xp():
    """The array module of the current mode (numpy or cupy)."""
    return _cupy if _mode == "gpu" else np


def xp_of(*arrays):
    """The array module that owns `arrays` (numpy unless one of them is a CuPy array)."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_gpu_array(a):
    return _cupy is not None and isinstance(a, _cupy.ndarray)


def asnumpy(a):
    """A NumPy view or copy of `a`, wherever it lives."""
    return _cupy.asnumpy(a) if is_gpu_array(a) else np.asarray(a)


def to_current(a):
    """`a` moved to the current mode's device (no copy when it is already there)."""
    if _mode == "gpu":
        return _cupy.asarray(a)
    return asnumpy(a)


def synchronize():
    """Wait for queued GPU work (no-op on CPU); benchmarks call this before stopping a timer."""
    if _mode == "gpu" and _cupy is not None:
        _cupy.cuda.Device().synchronize()
