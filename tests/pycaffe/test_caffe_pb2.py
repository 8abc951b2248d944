"""caffe.proto.caffe_pb2: the real protobuf schema agrees with minicaffe's own, and messages
convert both ways (text_format on every shipped prototxt gives the net our reader gives)."""
import pathlib
import warnings

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe import prototxt
from minicaffe.prototxt.schema import ENUMS, MESSAGES

text_format = pytest.importorskip("google.protobuf.text_format",
                                  reason="protobuf not installed (pip install 'minicaffe[pycaffe]')")
from google.protobuf import descriptor  # noqa: E402

from minicaffe.proto import caffe_pb2, from_caffe_pb2, to_caffe_pb2  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
FD = descriptor.FieldDescriptor
_KIND = {FD.TYPE_DOUBLE: "double", FD.TYPE_FLOAT: "float", FD.TYPE_INT32: "int32",
         FD.TYPE_INT64: "int64", FD.TYPE_UINT32: "uint32", FD.TYPE_UINT64: "uint64",
         FD.TYPE_BOOL: "bool", FD.TYPE_STRING: "string", FD.TYPE_BYTES: "bytes"}


def _repeated(fd):
    # protobuf >= 6 spells it is_repeated (label is gone in 7)
    return fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == FD.LABEL_REPEATED


def _pb_message(name):
    return caffe_pb2.DESCRIPTOR.message_types_by_name[name]


def _pb_default(fd):
    if fd.type == FD.TYPE_ENUM:
        return fd.enum_type.values_by_number[fd.default_value].name
    if fd.type == FD.TYPE_FLOAT:
        return float(str(np.float32(fd.default_value)))
    return fd.default_value


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_schema_field_is_in_the_proto_with_its_kind_and_default(name):
    pb = _pb_message(name)
    spec = MESSAGES[name]
    for f in spec.fields.values():
        fd = pb.fields_by_name.get(f.name)
        assert fd is not None, f"{name}.{f.name} is missing from caffe.proto"
        where = f"{name}.{f.name} (field {fd.number})"
        assert _repeated(fd) == f.repeated, f"{where}: repeated differs"
        if f.is_message:
            assert fd.type == FD.TYPE_MESSAGE and fd.message_type.name == f.kind, where
        elif f.enum is not None:
            assert fd.type == FD.TYPE_ENUM, where
            pb_values = {v.name: v.number for v in fd.enum_type.values}
            for value, number in f.enum.values.items():
                assert pb_values.get(value) == number, \
                    f"{where}: enum value {value} = {number} here, {pb_values.get(value)} in caffe.proto"
        else:
            assert _KIND[fd.type] == f.kind, f"{where}: kind {f.kind} here, {_KIND[fd.type]} in caffe.proto"
        if not f.repeated and not f.is_message:
            assert _pb_default(fd) == f.default, \
                f"{where}: default {f.default!r} here, {_pb_default(fd)!r} in caffe.proto"


# caffe.proto enum values minicaffe refuses on purpose (the SSL fork's intel-branch direct
# convolutions): converting a message holding one raises ValueError.
REFUSED_ENUM_VALUES = {("ConvolutionParameter", "conv_mode"): {"DIRECT_SCONV", "DIRECT_DCONV"}}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_proto_field_of_a_modelled_message_is_modelled_or_known(name):
    spec = MESSAGES[name]
    for fd in _pb_message(name).fields:
        assert fd.name in spec.fields or fd.name in spec.known, \
            f"caffe.proto field {name}.{fd.name} is neither modelled nor listed as known in schema.py"
        if fd.type == FD.TYPE_ENUM and fd.name in spec.fields:
            ours = set(spec.fields[fd.name].enum.values)
            theirs = {v.name for v in fd.enum_type.values}
            assert theirs - ours <= REFUSED_ENUM_VALUES.get((name, fd.name), set()), \
                f"{name}.{fd.name}: caffe.proto values {sorted(theirs - ours)} are not modelled"


def test_extension_numbers_are_documented_and_out_of_caffes_range():
    """minicaffe's own numbers (>= 5001) are exactly the ones the .proto header lists."""
    own = sorted(f"{m.name}.{fd.name}={fd.number}" for m in caffe_pb2.DESCRIPTOR.message_types_by_name.values()
                 for fd in m.fields if fd.number > 1002)
    assert own == ["SolverParameter.bn_recalibration_batches=5013",
                   "SolverParameter.breadth_decay=5001", "SolverParameter.budget_schedule=5012",
                   "SolverParameter.flops_target=5009", "SolverParameter.flops_target_scope=5010",
                   "SolverParameter.force_decay=5007",
                   "SolverParameter.force_iter=5008", "SolverParameter.force_type=5006",
                   "SolverParameter.group_lasso_update=5003", "SolverParameter.kernel_shape_decay=5002",
                   "SolverParameter.latency_target=5011",
                   "SolverParameter.sparsity_report=5005", "SolverParameter.zero_threshold=5004"]
    db = caffe_pb2.DataParameter.DB
    assert (db.Value("LEVELDB"), db.Value("LMDB"), db.Value("IDX"), db.Value("CIFAR10")) == (0, 1, 5001, 5002)
    assert ENUMS["DB"].values == {"LEVELDB": 0, "LMDB": 1, "IDX": 5001, "CIFAR10": 5002}


def test_bvlc_numbers_of_well_known_fields():
    """A few numbers every .caffemodel depends on (weights.py writes them without protobuf)."""
    assert _pb_message("NetParameter").fields_by_name["layer"].number == 100
    layer = _pb_message("LayerParameter").fields_by_name
    assert (layer["name"].number, layer["type"].number, layer["blobs"].number) == (1, 2, 7)
    blob = _pb_message("BlobProto").fields_by_name
    assert (blob["data"].number, blob["shape"].number, blob["double_data"].number) == (5, 7, 8)
    assert _pb_message("ParamSpec").fields_by_name["breadth_decay_mult"].number == 5
    assert layer["connectivity_mode"].number == 12
    assert _pb_message("ConvolutionParameter").fields_by_name["conv_mode"].number == 21
    assert _pb_message("SolverParameter").fields_by_name["block_group_decay"].number == 43


def _shipped(kind):
    files = sorted((ROOT / "prototxt").rglob("*.prototxt"))
    solvers = [p for p in files if "solver" in p.name]
    return solvers if kind == "solver" else [p for p in files if p not in solvers]


@pytest.mark.parametrize("path", _shipped("net"), ids=lambda p: p.name)
def test_text_format_on_a_shipped_net_gives_our_readers_net(path):
    pb = text_format.Merge(path.read_text(), caffe_pb2.NetParameter())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", prototxt.UnmodeledFieldWarning)
        ours = prototxt.read_net(path)
    assert prototxt.upgrade_net(from_caffe_pb2(pb)) == ours
    # and back: our net as protobuf is the protobuf text_format read (after the same upgrade)
    assert from_caffe_pb2(to_caffe_pb2(ours)) == ours


@pytest.mark.parametrize("path", _shipped("solver"), ids=lambda p: p.name)
def test_text_format_on_a_shipped_solver_gives_our_readers_solver(path):
    pb = text_format.Merge(path.read_text(), caffe_pb2.SolverParameter())
    ours = prototxt.read_solver(path)
    assert prototxt.upgrade_solver(from_caffe_pb2(pb)) == ours
    again = to_caffe_pb2(ours)
    assert text_format.MessageToString(again) == text_format.MessageToString(
        to_caffe_pb2(prototxt.upgrade_solver(from_caffe_pb2(pb))))


def test_round_trip_keeps_presence_enums_ssl_fields_and_float32_spelling():
    text = """
    name: "t"
    layer { name: "c" type: "Convolution" bottom: "x" top: "y" connectivity_mode: DISCONNECTED_GRPWISE
      param { lr_mult: 1 breadth_decay_mult: 0.3 block_group_lasso { xdimen: 2 ydimen: 4 } }
      param { lr_mult: 2 decay_mult: 0 }
      convolution_param { num_output: 4 kernel_size: 3 conv_mode: LOWERED_CCNMM
                          weight_filler { type: "gaussian" std: 0.01 } bias_filler { } } }
    """
    ours = prototxt.parse_message("NetParameter", text)
    pb = to_caffe_pb2(ours)
    layer = pb.layer[0]
    assert layer.connectivity_mode == caffe_pb2.LayerParameter.DISCONNECTED_GRPWISE
    assert layer.convolution_param.conv_mode == caffe_pb2.ConvolutionParameter.LOWERED_CCNMM
    assert layer.param[0].block_group_lasso[0].ydimen == 4
    assert layer.convolution_param.HasField("bias_filler") and not layer.HasField("pooling_param")
    assert not layer.param[0].HasField("decay_mult") and layer.param[1].HasField("decay_mult")
    back = from_caffe_pb2(pb)
    assert back == ours
    assert back.layer[0].convolution_param.weight_filler.std == 0.01      # not 0.009999999776
    assert back.layer[0].param[0].breadth_decay_mult == 0.3
    # binary round trip through protobuf itself
    again = caffe_pb2.NetParameter()
    again.ParseFromString(pb.SerializeToString())
    assert from_caffe_pb2(again) == ours


def test_solver_extensions_round_trip():
    s = prototxt.parse_solver('net: "n.prototxt" base_lr: 0.01 lr_policy: "fixed" '
                              'breadth_decay: 0.001 kernel_shape_decay: 0.002 block_group_decay: 0.5 '
                              'group_lasso_update: PROXIMAL zero_threshold: 0.0001 sparsity_report: false '
                              'layer_wise_reduce: false weights: "a.caffemodel"')
    pb = to_caffe_pb2(s)
    assert pb.group_lasso_update == caffe_pb2.SolverParameter.PROXIMAL
    assert pb.HasField("zero_threshold") and not pb.sparsity_report and not pb.layer_wise_reduce
    assert list(pb.weights) == ["a.caffemodel"]
    assert from_caffe_pb2(pb) == s


def test_unmodeled_known_field_travels_as_text():
    pb = caffe_pb2.LayerParameter(name="w", type="WindowData")
    pb.window_data_param.source = "windows.txt"
    pb.window_data_param.fg_threshold = 0.6
    ours = from_caffe_pb2(pb)
    assert [name for name, _ in ours.unmodeled] == ["window_data_param"]
    assert to_caffe_pb2(ours) == pb


def test_refused_values_and_unknown_messages_raise():
    pb = caffe_pb2.ConvolutionParameter(num_output=1, conv_mode=caffe_pb2.ConvolutionParameter.DIRECT_SCONV)
    with pytest.raises(ValueError, match="conv_mode = DIRECT_SCONV"):
        from_caffe_pb2(pb)
    with pytest.raises(ValueError, match="WindowDataParameter"):
        from_caffe_pb2(caffe_pb2.WindowDataParameter())


def test_net_and_solver_accept_caffe_pb2_messages(tmp_path):
    pb = caffe_pb2.NetParameter(name="pb")
    data = pb.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[2, 3])
    ip = pb.layer.add(name="ip", type="InnerProduct", bottom=["data"], top=["ip"])
    ip.inner_product_param.num_output = 4
    ip.inner_product_param.weight_filler.type = "xavier"
    net = caffe.Net(pb, caffe.TEST)
    assert net.blobs["ip"].data.shape == (2, 4) and net.params["ip"][0].data.shape == (4, 3)
    # V1 layers in a protobuf net are upgraded, as the reader upgrades them
    v1 = caffe_pb2.NetParameter(input=["data"], input_dim=[1, 3, 1, 1])
    v1.layers.add(name="r", type=caffe_pb2.V1LayerParameter.RELU, bottom=["data"], top=["data"])
    assert [l.type for l in caffe.Net(v1, caffe.TEST).layers] == ["Input", "ReLU"]

    solver = caffe_pb2.SolverParameter(net_param=pb, base_lr=0.1, lr_policy="fixed", max_iter=1)
    solver.solver_type = caffe_pb2.SolverParameter.ADAM
    s = caffe.get_solver(solver)
    assert type(s).__name__ == "AdamSolver" and s.net.params["ip"][0].data.shape == (4, 3)


def test_mean_binaryproto_reads_with_caffe_pb2(tmp_path):
    """A mean file written by minicaffe's data tool parses with caffe_pb2 (pycaffe's recipe)."""
    from minicaffe import wire

    mean = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(wire.encode_blob_proto(mean, legacy_4d=True))
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString(path.read_bytes())
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), mean)
