"""Argument checks shared by the NumPy twins and the native facade.

Messages follow STYLE.md: the operation, the argument, the value found and the rule broken.
Wrong dtypes raise TypeError; everything else raises KernelError (a ValueError).
"""
import numpy as np

from minicaffe.errors import KernelError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(op, name, a):
    """Return `a` as a C-contiguous float32/float64 ndarray (no copy when it already is one).

    Raises TypeError for other dtypes (ints are not silently promoted: a wrong dtype is usually
    a bug upstream).
    """
    if type(a) is np.ndarray and a.dtype in FLOAT_DTYPES and a.flags.c_contiguous:
        return a  # the common case, checked cheaply (this runs on every forward)
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__cuda_array_interface__"):
            raise TypeError(f"{op}: {name} is a GPU array ({type(a).__module__}."
                            f"{type(a).__name__}); minicaffe.ops runs on the CPU only so far "
                            "(use backend.asnumpy, or CPU mode)")
        a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} has dtype {a.dtype}; expected float32 or float64")
    return np.ascontiguousarray(a)


def same_dtype(op, **arrays):
    """Raise TypeError unless every array shares one dtype; return that dtype."""
    names = list(arrays)
    first = arrays[names[0]].dtype
    for name in names[1:]:
        if arrays[name].dtype != first:
            raise TypeError(f"{op}: {name} has dtype {arrays[name].dtype} but {names[0]} has "
                            f"{first}; all operands must share one dtype")
    return first


def check_ndim(op, name, a, ndim, layout):
    if a.ndim != ndim:
        raise KernelError(f"{op}: {name} has shape {tuple(a.shape)}; expected {ndim} dimensions "
                          f"{layout}")


def output(op, out, shape, dtype, name="out"):
    """Validate a caller-supplied output (exact shape, dtype, C-contiguous) or allocate one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if type(out) is np.ndarray and out.shape == shape and out.dtype == dtype:
        flags = out.flags
        if flags.c_contiguous and flags.writeable:
            return out  # the common case, checked cheaply (this runs on every forward)
    shape = tuple(map(int, shape))
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{op}: {name} has dtype {out.dtype}; expected {np.dtype(dtype)}")
    if tuple(out.shape) != shape:
        raise KernelError(f"{op}: {name} has shape {tuple(out.shape)}; expected {shape}")
    if not out.flags.c_contiguous:
        raise KernelError(f"{op}: {name} must be C-contiguous (strides {out.strides})")
    if not out.flags.writeable:
        raise KernelError(f"{op}: {name} is read-only")
    return out


def check_geometry(op, geom):
    """Raise KernelError unless every ConvGeometry field is in range and the output is non-empty.

    The verdict is cached on the geometry: layers pass the same frozen one on every forward.
    """
    if geom.problem is not None:
        raise KernelError(f"{op}: {geom.problem}")


def index_list(op, name, idx):
    """`idx` as a C-contiguous 1-D int64 array (values unchecked: the compiled kernel checks)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.ndim != 1:
        raise KernelError(f"{op}: {name} has shape {idx.shape}; expected a 1-D index list")
    return idx


def check_index_list(op, name, idx, bound):
    """Validate a kept-index list: int64-convertible, strictly increasing, inside [0, bound).

    Messages match the compiled kernels' (kernels/checks.cc).
    """
    idx = index_list(op, name, idx)
    if idx.size:
        bad = np.flatnonzero((idx < 0) | (idx >= bound))
        if bad.size:
            raise KernelError(f"{op}: {name}[{bad[0]}] = {idx[bad[0]]}; expected indices in "
                              f"[0, {bound})")
        steps = np.diff(idx)
        if (steps <= 0).any():
            at = int(np.argmax(steps <= 0)) + 1
            raise KernelError(f"{op}: {name} is not strictly increasing at position {at} "
                              f"({idx[at - 1]} then {idx[at]})")
    return idx
