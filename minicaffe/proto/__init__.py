"""pycaffe's `caffe.proto`: `from minicaffe.proto import caffe_pb2` (real protobuf classes).

`caffe_pb2` is generated from `caffe.proto` (next to this file) when the package is built; it
needs the `protobuf` package (`pip install "minicaffe[pycaffe]"`). The engine reads prototxt with
its own reader (minicaffe.prototxt, file:line:col errors); caffe_pb2 is the interchange:
`to_caffe_pb2(msg)` and `from_caffe_pb2(pb)` convert NetParameter, SolverParameter, BlobProto,
Datum, ... both ways, and `caffe.Net` / the solvers accept caffe_pb2 messages directly.
"""
import os

try:
    from minicaffe.proto import caffe_pb2
except ModuleNotFoundError as exc:
    if exc.name and exc.name.split(".")[0] == "google":
        raise ImportError("minicaffe.proto.caffe_pb2 needs the protobuf package: "
                          "pip install 'minicaffe[pycaffe]' (or pip install protobuf)") from exc
    if exc.name == "minicaffe.proto.caffe_pb2":
        raise ImportError(
            "minicaffe.proto.caffe_pb2 has not been generated: it is built from "
            f"{os.path.join(os.path.dirname(__file__), 'caffe.proto')} by `pip install .` / "
            "`pip install -e .`, or in a source tree by `python setup.py build_ext --inplace` "
            "(needs grpcio-tools)") from exc
    raise
except Exception as exc:            # protobuf's runtime/gencode version check
    if type(exc).__name__ == "VersionError":
        raise ImportError(f"minicaffe.proto.caffe_pb2 was generated for a newer protobuf than "
                          f"the one installed: {exc} (pip install -U protobuf)") from exc
    raise

from minicaffe.prototxt.protobuf import from_protobuf as from_caffe_pb2  # noqa: E402


def to_caffe_pb2(msg):
    """The caffe_pb2 message equal to minicaffe message `msg` (a NetParameter, LayerParameter,
    SolverParameter, BlobProto, ... of minicaffe.prototxt). Raises ValueError for a value
    caffe.proto cannot hold."""
    from minicaffe.prototxt.protobuf import to_protobuf  # noqa: PLC0415

    return to_protobuf(msg, getattr(caffe_pb2, type(msg).__name__))


__all__ = ["caffe_pb2", "to_caffe_pb2", "from_caffe_pb2"]
