"""minicaffe: a small Caffe-style engine for Structured Sparsity Learning.

Use it like pycaffe: `import minicaffe as caffe; net = caffe.Net("deploy.prototxt",
"weights.caffemodel", caffe.TEST)`. Submodules load lazily so `import minicaffe` stays cheap.

pycaffe's modules are here under their pycaffe names: `caffe.io`, `caffe.proto.caffe_pb2`,
`caffe.draw`, `caffe.net_spec` (whose `layers`, `params`, `NetSpec`, `to_proto` are also top-level
names, so `from minicaffe import layers as L, params as P` works), `caffe.classifier`,
`caffe.detector`. The layer implementations are `minicaffe.catalog`.
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
    "Blob": "minicaffe.blob",
    # the pycaffe facade
    "Layer": "minicaffe.pycaffe",
    "Timer": "minicaffe.pycaffe",
    "set_random_seed": "minicaffe.pycaffe",
    "init_log": "minicaffe.pycaffe",
    "log": "minicaffe.pycaffe",
    "solver_count": "minicaffe.pycaffe",
    "set_solver_count": "minicaffe.pycaffe",
    "solver_rank": "minicaffe.pycaffe",
    "set_solver_rank": "minicaffe.pycaffe",
    "set_multiprocess": "minicaffe.pycaffe",
    "has_nccl": "minicaffe.pycaffe",
    "layers": "minicaffe.net_spec",
    "params": "minicaffe.net_spec",
    "NetSpec": "minicaffe.net_spec",
    "to_proto": "minicaffe.net_spec",
    "Classifier": "minicaffe.classifier",
    "Detector": "minicaffe.detector",
}

# pycaffe's submodules, importable as attributes (`caffe.io.load_image`, `caffe.proto.caffe_pb2`),
# and minicaffe.export (`caffe.export.to_onnx(net)`)
_SUBMODULES = ("io", "proto", "draw", "net_spec", "classifier", "detector", "export")

__all__ = ["TRAIN", "TEST", *_EXPORTS]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"minicaffe.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'minicaffe' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
