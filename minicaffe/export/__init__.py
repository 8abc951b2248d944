"""Export a minicaffe net to ONNX, for ONNX Runtime, TensorRT, OpenVINO and the like.

    import minicaffe
    from minicaffe.export import to_onnx, export_onnx
    net = minicaffe.Net("deploy.prototxt", "weights.caffemodel", minicaffe.TEST)
    model = to_onnx(net)                          # an onnx.ModelProto, checked
    report = export_onnx(net, "net.onnx")         # writes the file; returns the ExportReport
    print(report)                                 # layer -> ONNX operators, what was left out

    python -m minicaffe.export onnx --model M --weights W --out net.onnx [--opset N]

Every layer type with a converter (minicaffe/export/converters/, `CONVERTERS.names()`) is
written as ONNX operators computing what minicaffe computes (Caffe's pooling borders and LRN
included; docs/EXPORT.md lists the mapping). The batch axis of every input is symbolic ("N").
Data layers, losses and Accuracy are left out with a note (their data tops become inputs, the
blobs the losses read become outputs); a layer that cannot be exported is an ExportError naming
it. Needs the `onnx` package (`pip install "minicaffe[onnx]"`, which also brings onnxruntime).
"""
from minicaffe.errors import ExportError
from minicaffe.export.converters import CONVERTERS, DROPPED, converter, drop_layer
from minicaffe.export.graph import DEFAULT_OPSET, MIN_OPSET, max_opset
from minicaffe.export.onnx_export import convert
from minicaffe.export.report import ExportReport, LayerFlops


def to_onnx(net, opset=DEFAULT_OPSET, outputs=None, dynamic_batch=True, batch_axes=None,
            batch_name="N", check=True):
    """The ONNX model (onnx.ModelProto) computing `net`'s forward pass.

    net: a minicaffe.Net (usually TEST phase, weights loaded); its current input shapes fix
    every axis but the batch. opset: ONNX opset, MIN_OPSET (13) .. max_opset() (default 17).
    outputs: blob names to output (default: the net's outputs, and the blobs its losses and
    Accuracy read). dynamic_batch: leave the batch axis free ("N"); False fixes it at the
    net's batch size. batch_axes: {input name: axis} where the batch is not axis 0 (inputs of
    RNN/LSTM are (T, N, ...): axis 1 is found by itself). check: run onnx.checker (full check).
    Raises ExportError naming a layer that cannot be exported, ImportError without onnx.
    """
    return convert(net, opset, outputs, dynamic_batch, batch_axes, batch_name, check)[0]


def export_onnx(net, path, opset=DEFAULT_OPSET, outputs=None, dynamic_batch=True,
                batch_axes=None, batch_name="N", check=True):
    """Write `net` as an ONNX file at `path` (arguments as to_onnx); returns the ExportReport
    (`report.model` is the ModelProto, `str(report)` a summary with the FLOP comparison)."""
    model, report = convert(net, opset, outputs, dynamic_batch, batch_axes, batch_name, check)
    import onnx  # noqa: PLC0415  (convert succeeded, so it is installed)

    onnx.save(model, str(path))
    report.path = str(path)
    return report


__all__ = ["CONVERTERS", "DEFAULT_OPSET", "DROPPED", "ExportError", "ExportReport",
           "LayerFlops", "MIN_OPSET", "converter", "drop_layer", "export_onnx", "max_opset",
           "to_onnx"]
