"""Property tests: the reader raises only ParseError on any input (hostile numbers included);
spec -> text -> spec is exact; nets built from shipped files with hostile numbers either work
or end in a minicaffe error."""
import os
import re
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minicaffe.errors import MinicaffeError, ParseError
from minicaffe.prototxt import message_class, parse_message, parse_net, parse_solver, to_text
from minicaffe.prototxt.message import _INT_RANGES
from minicaffe.prototxt.schema import MESSAGES
from minicaffe.testing.fuzz import assert_contract, examples, fuzz_settings

# PROTOTXT_FUZZ_EXAMPLES sets the count; otherwise MINICAFFE_FUZZ_SCALE scales 300 (a long run:
# docs/RELIABILITY.md).
SETTINGS = settings(max_examples=int(os.environ.get("PROTOTXT_FUZZ_EXAMPLES", 0)) or examples(300),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.fuzz
LENET = (Path(__file__).resolve().parents[2] / "prototxt" / "lenet" /
         "lenet_train_test.prototxt").read_text()

_VOCAB = ["layer", "layers", "name", "type", "param", "lr_mult", "convolution_param",
          "kernel_size", "pool", "MAX", "include", "phase", "TRAIN", "input", "input_dim",
          "input_shape", "dim", "window_data_param", "blobs_lr", "CONVOLUTION", "solver_type",
          "ADAM", "net_param", "inf", "-", "nan", "true", "t", "{", "}", "<", ">", "[", "]",
          ":", ",", ";", "#", "\n", "'", '"', "\\", "0x1F", "010", "-3", "1e-4", ".5", "1f",
          "99999999999999999999", '"s"', "'q\\n'", '"\\x41"', '"\\400"', "@", " "]


def _only_parse_errors(parse, text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parse(text)
        except ParseError:
            pass


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_parse_error(text):
    _only_parse_errors(parse_net, text)
    _only_parse_errors(parse_solver, text)


@SETTINGS
@given(st.lists(st.sampled_from(_VOCAB), max_size=60).map(" ".join))
def test_token_soup_raises_only_parse_error(text):
    _only_parse_errors(parse_net, text)
    _only_parse_errors(parse_solver, text)


@SETTINGS
@given(st.data())
def test_mutated_real_net_raises_only_parse_error(data):
    text = LENET
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 20)))
        text = text[:i] + data.draw(st.sampled_from(["", "{", "}", ":", '"', "x", "-1", "1.5"])) \
            + text[j:]
    _only_parse_errors(parse_net, text)


# --- round trip -----------------------------------------------------------------------------
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def _value(f, depth):
    if f.is_message:
        return messages(f.kind, depth + 1)
    if f.enum is not None:
        return st.sampled_from(list(f.enum.values))
    if f.kind in ("float", "double"):
        return st.floats(allow_nan=True, allow_infinity=True)
    if f.kind == "bool":
        return st.booleans()
    if f.kind == "string":
        return _TEXT
    if f.kind == "bytes":
        return st.binary(max_size=12)
    lo, hi = _INT_RANGES[f.kind]
    return st.integers(lo, hi)


@st.composite
def messages(draw, name, depth=0):
    spec = MESSAGES[name]
    msg = message_class(name)()
    fields = [f for f in spec.fields.values() if not (f.is_message and depth >= 2)]
    if not fields:          # e.g. BlobProtoVector at depth 2: sampled_from([]) is an error
        return msg
    for f in draw(st.lists(st.sampled_from(fields), max_size=5, unique_by=lambda f: f.name)):
        if f.repeated:
            setattr(msg, f.name, draw(st.lists(_value(f, depth), min_size=1, max_size=3)))
        else:
            setattr(msg, f.name, draw(_value(f, depth)))
    return msg


@SETTINGS
@given(st.sampled_from(sorted(MESSAGES)).flatmap(lambda n: st.tuples(st.just(n), messages(n))))
def test_spec_text_spec_round_trip(case):
    name, msg = case
    text = to_text(msg)
    again = parse_message(name, text)
    assert again == msg, text
    assert to_text(again) == text


@SETTINGS
@given(messages("LayerParameter").filter(lambda layer: layer.type != "BatchNorm"))
def test_layer_inside_net_round_trips_through_parse_net(layer):
    net = message_class("NetParameter")(name="n", layer=[layer])
    assert parse_net(to_text(net)) == net


# --- hostile scalars and nets built from mutated files (minicaffe.testing.fuzz budgets) ------

_NUMBERISH = st.text(alphabet="0123456789.eE+-xXfFa_", min_size=1, max_size=400)


@fuzz_settings(300)
@given(_NUMBERISH, st.sampled_from(["base_lr", "max_iter", "momentum", "random_seed", "snapshot"]))
def test_number_like_values_raise_only_parse_error(value, field):
    _only_parse_errors(parse_solver, f"{field}: {value}")


_ROOT = Path(__file__).resolve().parents[2] / "prototxt"
_DEPLOY = [re.sub(r"dim: 64|dim: 100|dim: 10\b", "dim: 2", (_ROOT / name).read_text())
           for name in ("lenet/lenet_deploy.prototxt", "cifar10/cifar10_quick_deploy.prototxt")]
_NUMBER = re.compile(r"(?<=: )-?[0-9][0-9.e+-]*")
_HOSTILE = ["0", "1", "2", "3", "7", "-1", "-3", "0.5", "1e30", "nan", "inf", "-inf",
            "2147483647", "4294967295", "9223372036854775807", "65536"]


def _build_and_run(text):
    from minicaffe import TEST, Net

    net = Net(parse_net(text), TEST)
    for name in net.inputs:
        net.blobs[name].data[...] = 0.5
    net.forward()
    return net


@pytest.fixture
def small_memory(monkeypatch):
    """Blobs above 256 MB are refused (AllocationError) as on a small machine: a mutated dim can
    ask for tens of GB, which this shared machine should not be made to hand out."""
    from minicaffe import blob

    monkeypatch.setattr(blob, "memory_limit", lambda: 1 << 28)


@pytest.mark.filterwarnings("ignore")
@fuzz_settings(120)
@given(st.sampled_from(_DEPLOY), st.data())
def test_mutated_numbers_in_shipped_nets_build_or_raise_our_errors(small_memory, text, data):
    """Every number of a deploy net may become a hostile value; building the Net and running
    a forward pass either works or ends in a minicaffe error naming the layer. (A long run once
    grew a 6.5 GB weight blob from `dim: 65536` and was OOM-killed: the filler's whole-blob
    float64 draw took 3x the blob; it now draws a chunk at a time.)"""
    spots = [m.span() for m in _NUMBER.finditer(text)]
    for _ in range(data.draw(st.integers(1, 3))):
        start, end = data.draw(st.sampled_from(spots))
        text = text[:start] + data.draw(st.sampled_from(_HOSTILE)).ljust(end - start) + text[end:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_contract(_build_and_run, text, allowed=(MinicaffeError,), what=text)
