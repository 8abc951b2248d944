"""Run an exported model in ONNX Runtime next to the net it came from, on the same inputs.

    result = verify(net, model, batch=3)         # random inputs; net and ONNX Runtime agree?
    result.ok, result.max_error                  # {output: max |difference|}

Used by the tests and by `python -m minicaffe.export onnx ... --verify`.
"""
from dataclasses import dataclass, field

import numpy as np

from minicaffe import backend


def load_onnxruntime():
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("verifying an export needs onnxruntime: pip install "
                          f"'minicaffe[onnx]' ({exc})") from None
    return onnxruntime


def session(model, threads=1, optimize=True):
    """An onnxruntime.InferenceSession (CPU) for a ModelProto or a file path, with `threads`
    intra-op threads (and one inter-op thread: the graph runs its nodes in order)."""
    ort = load_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@dataclass
class VerifyResult:
    """Per output: the largest absolute difference and the largest reference magnitude."""

    batch: int
    max_error: dict = field(default_factory=dict)
    max_value: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.failures

    def __str__(self):
        rows = [f"batch {self.batch}: " + ", ".join(
            f"{k}: max |diff| {v:.3g} (values up to {self.max_value[k]:.3g})"
            for k, v in self.max_error.items())]
        rows.extend(self.failures)
        return "\n".join(rows)


def random_inputs(model, batch, seed=0):
    """{input name: standard normal float32 array} with every symbolic axis set to `batch`."""
    rng = np.random.default_rng(seed)
    out = {}
    for value in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else batch
                for d in value.type.tensor_type.shape.dim]
        out[value.name] = rng.standard_normal(dims).astype(np.float32)
    return out


def run_net(net, inputs, outputs):
    """Forward `net` with `inputs` (reshaping its input blobs to their shapes) and return
    copies of the blobs named in `outputs`."""
    for name, array in inputs.items():
        net.blobs[name].reshape(array.shape)
    net.reshape()
    for name, array in inputs.items():
        net.blobs[name].data[...] = array
    net.forward()
    return {name: np.array(backend.asnumpy(net.blobs[name].data)) for name in outputs}


def verify(net, model, inputs=None, batch=None, rtol=1e-4, atol=1e-4, threads=1, seed=0):
    """Compare ONNX Runtime on `model` with `net.forward()` on the same inputs (random normal
    unless given, with the batch axis set to `batch`, default the net's). An output passes
    when |onnx - net| <= atol + rtol * |net| everywhere. The net keeps the new input shapes."""
    if inputs is None:
        if batch is None:
            first = model.graph.input[0].name
            batch = int(net.blobs[first].shape[0]) if net.blobs[first].shape else 1
        inputs = random_inputs(model, batch, seed)
    names = [o.name for o in model.graph.output]
    got = dict(zip(names, session(model, threads).run(names, inputs)))
    blobs = {name: _blob_of(net, name) for name in names}
    want = run_net(net, inputs, [b for b in blobs.values()])
    result = VerifyResult(batch=batch if batch is not None else -1)
    for name in names:
        ref, out = want[blobs[name]].astype(np.float64), np.asarray(got[name], np.float64)
        if ref.shape != out.shape:
            result.failures.append(f"output '{name}': ONNX Runtime gives shape {out.shape}, the "
                                   f"net {ref.shape}")
            continue
        diff = np.abs(out - ref)
        same_nan = np.isnan(out) & np.isnan(ref)
        diff[same_nan | (out == ref)] = 0.0
        result.max_error[name] = float(np.nanmax(diff)) if diff.size else 0.0
        result.max_value[name] = float(np.nanmax(np.abs(ref))) if ref.size else 0.0
        bad = ~(diff <= atol + rtol * np.abs(ref))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            result.failures.append(
                f"output '{name}' differs at {where}: ONNX Runtime {out[where]!r}, the net "
                f"{ref[where]!r} ({int(bad.sum())} of {bad.size} values beyond "
                f"atol {atol:g} + rtol {rtol:g})")
    return result


def _blob_of(net, name):
    """The net blob an output of the model stands for (`<blob>_out` when renamed)."""
    if name in net.blobs:
        return name
    if name.endswith("_out") and name[:-4] in net.blobs:
        return name[:-4]
    raise KeyError(f"model output '{name}' is not a blob of net '{net.name}'")
