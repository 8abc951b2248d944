"""minicaffe: a small Caffe-style engine for Structured Sparsity Learning.

Use it like pycaffe: `import minicaffe as caffe; net = caffe.Net("deploy.prototxt",
"weights.caffemodel", caffe.TEST)`. Submodules load lazily so `import minicaffe` stays cheap.
"""
import importlib

from minicaffe.phase import TEST, TRAIN

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Net": "minicaffe.net",
    "get_solver": "minicaffe.solver",
    "Solver": "minicaffe.solver",
    "SGDSolver": "minicaffe.solver",
    "NesterovSolver": "minicaffe.solver",
    "AdaGradSolver": "minicaffe.solver",
    "RMSPropSolver": "minicaffe.solver",
    "AdaDeltaSolver": "minicaffe.solver",
    "AdamSolver": "minicaffe.solver",
    "set_mode_cpu": "minicaffe.backend",
    "set_mode_gpu": "minicaffe.backend",
    "set_device": "minicaffe.backend",
    "set_num_threads": "minicaffe.ops.native",
    "get_num_threads": "minicaffe.ops.native",
    "build_info": "minicaffe.ops.native",
    "layer_type_list": "minicaffe.catalog",
    "Layer": "minicaffe.catalog",
    "Blob": "minicaffe.blob",
}

__all__ = ["TRAIN", "TEST", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'minicaffe' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
