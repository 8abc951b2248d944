"""Message classes (constructors, has/clear, equality, repr, copies) and the writer."""
import math

import pytest

import minicaffe.prototxt as pt
from minicaffe.prototxt import (BlobShape, ConvolutionParameter, FillerParameter,
                                LayerParameter, NetParameter, ParamSpec, PoolingParameter,
                                SolverParameter, parse_message, parse_net, parse_solver, to_text)


def test_every_schema_message_is_exported():
    for name in ("NetParameter", "LayerParameter", "V1LayerParameter", "ParamSpec",
                 "BlockGroupLassoSpec", "NetStateRule", "NetState", "FillerParameter",
                 "BlobProto", "BlobProtoVector", "BlobShape", "Datum",
                 "TransformationParameter", "LossParameter", "SolverParameter",
                 "InputParameter", "DummyDataParameter", "MemoryDataParameter",
                 "DataParameter", "HDF5DataParameter", "ImageDataParameter",
                 "ConvolutionParameter", "InnerProductParameter", "PoolingParameter",
                 "ReLUParameter", "SigmoidParameter", "TanHParameter", "PowerParameter",
                 "LRNParameter", "DropoutParameter", "BatchNormParameter", "ScaleParameter",
                 "BiasParameter", "EltwiseParameter", "ConcatParameter", "SliceParameter",
                 "FlattenParameter", "ReshapeParameter", "SoftmaxParameter",
                 "AccuracyParameter"):
        assert getattr(pt, name).__name__ == name


def test_keyword_constructor_coerces_and_validates():
    conv = ConvolutionParameter(num_output=8, kernel_size=3, pad=[1, 1], bias_term=0,
                                weight_filler=FillerParameter(type="msra"), engine=2)
    assert conv.kernel_size == [3] and conv.pad == [1, 1]
    assert conv.bias_term is False and conv.engine == "CUDNN"
    assert conv.has("bias_term") and not conv.has("group")
    with pytest.raises(ValueError, match="field 'pool': 'MAXX' is not one of MAX, AVE, "
                       "STOCHASTIC"):
        PoolingParameter(pool="MAXX")
    with pytest.raises(TypeError, match=r"field 'num_output' expects an integer \(uint32\), "
                       "got 2.5"):
        ConvolutionParameter(num_output=2.5)
    with pytest.raises(ValueError, match="field 'num_output': -1 is out of range for uint32"):
        ConvolutionParameter(num_output=-1)
    with pytest.raises(AttributeError, match="ConvolutionParameter has no field 'kernal_size'; "
                       "did you mean 'kernel_size'"):
        ConvolutionParameter(kernal_size=3)
    with pytest.raises(TypeError, match="field 'weight_filler' expects a FillerParameter, got "
                       "int"):
        ConvolutionParameter(weight_filler=3)


def test_numpy_integers_are_accepted():
    np = pytest.importorskip("numpy")
    assert BlobShape(dim=list(np.array([2, 3]))).dim == [2, 3]


def test_lazy_submessage_sets_has_once_written():
    layer = LayerParameter(name="c")
    assert layer.convolution_param.num_output == 0
    assert not layer.has("convolution_param")
    layer.convolution_param.num_output = 4
    assert layer.has("convolution_param")
    assert "num_output: 4" in to_text(layer)


def test_clear_and_enum_class_constants():
    layer = LayerParameter(name="x", type="ReLU")
    layer.clear("type")
    assert layer.type == "" and not layer.has("type")
    assert PoolingParameter.MAX == "MAX" and SolverParameter.PROXIMAL == "PROXIMAL"
    assert LayerParameter.DISCONNECTED_GRPWISE == "DISCONNECTED_GRPWISE"
    assert layer.HasField("name")


def test_equality_repr_and_copy():
    a = ParamSpec(lr_mult=2, name="w")
    b = ParamSpec(name="w", lr_mult=2.0)
    assert a == b and repr(a) == "ParamSpec(name='w', lr_mult=2.0)"
    assert a != ParamSpec(name="w", lr_mult=2, decay_mult=1)  # explicit default differs
    c = a.copy()
    c.lr_mult = 3
    assert a.lr_mult == 2
    layer = LayerParameter(param=[a])
    layer2 = LayerParameter()
    layer2.CopyFrom(layer)
    assert layer2 == layer and layer2.param[0] is not a
    assert (NetParameter() == 3) is False


def test_writer_format():
    net = parse_net('name: "n" layer { name: "c" type: "Convolution" bottom: "d" top: "c" '
                    'param { lr_mult: 1 } convolution_param { num_output: 20 kernel_size: 5 '
                    'weight_filler { type: "gaussian" std: 0.01 } } '
                    'include { phase: TRAIN } }')
    assert to_text(net) == '''name: "n"
layer {
  name: "c"
  type: "Convolution"
  bottom: "d"
  top: "c"
  param {
    lr_mult: 1
  }
  include {
    phase: TRAIN
  }
  convolution_param {
    num_output: 20
    kernel_size: 5
    weight_filler {
      type: "gaussian"
      std: 0.01
    }
  }
}
'''


@pytest.mark.parametrize("value,text", [(0.1, "0.1"), (1e-05, "1e-05"), (2.0, "2"),
                                        (-0.5, "-0.5"), (1e20, "1e+20"), (math.inf, "inf"),
                                        (-math.inf, "-inf"), (math.nan, "nan")])
def test_float_writing(value, text):
    assert to_text(FillerParameter(std=value)) == f"std: {text}\n"


def test_string_escapes_round_trip():
    tricky = 'a"b\'c\\d\ne\tf\x01g\u00e9'
    layer = LayerParameter(name=tricky)
    text = to_text(layer)
    assert text == 'name: "a\\"b\\\'c\\\\d\\ne\\tf\\001g\u00e9"\n'
    assert parse_net(f"layer {{ {text} }}").layer[0].name == tricky


def test_bytes_written_as_octal():
    datum = parse_message("Datum", r'data: "\000\377A"')
    assert to_text(datum) == 'data: "\\000\\377A"\n'


def test_solver_round_trip_with_inline_net():
    solver = parse_solver('net_param { layer { name: "a" } } base_lr: 0.01 test_iter: [1, 2] '
                          'group_lasso_update: PROXIMAL zero_threshold: 1e-4')
    again = parse_solver(to_text(solver))
    assert again == solver and again.zero_threshold == 1e-4


def test_unmodeled_fields_are_written_back(recwarn):
    text = 'layer {\n  name: "w"\n  window_data_param {\n    source: "x"\n  }\n}\n'
    net = parse_net(text)
    assert to_text(net) == text
    assert parse_net(to_text(net)) == net


def test_messages_pickle_for_worker_processes():
    import pickle

    net = parse_net('layer { name: "c" convolution_param { kernel_size: 3 } }', "n.prototxt")
    again = pickle.loads(pickle.dumps(net))
    assert again == net and again.layer[0].position == ("n.prototxt", 1, 1)


def test_text_format_merge_parse_and_message_to_string():
    from minicaffe.prototxt import text_format

    solver = SolverParameter(base_lr=0.1, test_iter=[1])
    assert text_format.Merge("test_iter: 2 max_iter: 5", solver) is solver
    assert (solver.base_lr, solver.test_iter, solver.max_iter) == (0.1, [1, 2], 5)
    text_format.Parse("max_iter: 7", solver)
    assert not solver.has("base_lr") and solver.test_iter == [] and solver.max_iter == 7
    assert text_format.MessageToString(solver) == "max_iter: 7\n"
    with pytest.raises(pt.ParseError, match="unknown field 'max_itr' in SolverParameter"):
        text_format.Merge("max_itr: 1", solver)
