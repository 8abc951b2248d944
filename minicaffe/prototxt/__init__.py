"""Caffe prototxt: a text-format reader and writer and typed net/solver specs.

Reading
    parse_net(text, path=None) -> NetParameter      read_net(path) -> NetParameter
    parse_solver(text, path=None) -> SolverParameter read_solver(path) -> SolverParameter
    parse_message("ParamSpec", text)                 any modelled message, no upgrades
Nets come back in the current form (V1 `layers` upgraded, `input:`/`input_dim:`/`input_shape`
turned into an Input layer, see `upgrade.py`); solvers with `solver_type` turned into `type`.
Malformed text raises `ParseError` (a ValueError) with `path`, `line`, `column`; its message is
`path:line:column: what is wrong` followed by the line and a caret. A field Caffe knows but
minicaffe does not implement (e.g. `window_data_param`) gives an `UnmodeledFieldWarning`; it is
kept as text in `msg.unmodeled` and written back by `to_text`.

Messages
    Classes named as in caffe.proto (NetParameter, LayerParameter, ConvolutionParameter, ...),
    built from the table in `schema.py`. Attributes are caffe.proto fields with caffe.proto
    defaults; repeated fields are lists; enums are their value names (`"MAX"`); a singular
    sub-message always reads as an instance. `msg.has(name)`, `msg.clear(name)`, `msg.copy()`,
    `==`, `repr`, keyword constructors. `msg.position` is (path, line, column) of the message;
    `msg.position_of(field)` that of one field; `error_at(msg, field, text)` builds a
    ParseError pointing there (for layers that find a bad value later).

Writing
    to_text(msg) -> str: text -> spec -> text -> spec gives an equal spec.
    `text_format.Merge(text, msg)` / `MessageToString(msg)` for code written against pycaffe's
    `google.protobuf.text_format`.

Protobuf
    from_protobuf(pb) / to_protobuf(msg, pb_class): to and from caffe_pb2 messages (the real
    protobuf classes of minicaffe.proto); upgrade_net(net) / upgrade_solver(solver) bring a
    converted message to the current form, as the readers do.

Command line
    python -m minicaffe.prototxt check FILE... | upgrade IN [OUT]  (Caffe's upgrade_*_proto_text)

Nets and solvers
    filter_net(net, phase, level=0, stages=()) -> NetParameter: Caffe's include/exclude rules.
    solver_nets(solver) -> SolverNets(train, train_source, tests, test_sources): the train and
    test NetParameters of a solver with their NetState set (Caffe's InitTrainNet/InitTestNets).
    Relative net paths (`net`, `train_net`, `test_net`) are resolved against the working
    directory first, like Caffe, then against the solver file's folder
    (`resolve_net_path(solver, field, value)`); errors name the resolved path.
"""
from minicaffe.errors import ParseError
from minicaffe.prototxt.bind import UnmodeledFieldWarning
from minicaffe.prototxt.filter import filter_net, layer_included, state_meets_rule
from minicaffe.prototxt.message import Message, message_class
from minicaffe.prototxt.reader import (parse_message, parse_net, parse_solver, read_net,
                                       read_solver)
from minicaffe.prototxt.schema import MESSAGES
from minicaffe.prototxt.solver_nets import SolverNets, resolve_net_path, solver_nets
from minicaffe.prototxt.writer import to_text
from minicaffe.prototxt.protobuf import from_protobuf, to_protobuf
from minicaffe.prototxt.upgrade import upgrade_net, upgrade_solver
from minicaffe.prototxt import text_format  # noqa: E402  (protobuf-style Merge/MessageToString)


def error_at(msg, field, text):
    """A ParseError located where `field` of message `msg` was written (or at `msg` itself,
    or nowhere if it was built in code), showing that line with a caret."""
    pos = msg.position_of(field) if field else msg.position
    if pos is None:
        return ParseError(text)
    source = msg._source
    line = source.line(pos[1]) if source is not None else None
    return ParseError(text, pos[0], pos[1], pos[2], line)


def is_protobuf(obj, type_name=None):
    """Whether `obj` is a protobuf message of package caffe (optionally of `type_name`)."""
    desc = getattr(obj, "DESCRIPTOR", None)
    full = getattr(desc, "full_name", "")
    return full.startswith("caffe.") and (type_name is None or full == f"caffe.{type_name}")


globals().update({name: message_class(name) for name in MESSAGES})

__all__ = ["ParseError", "UnmodeledFieldWarning", "Message", "message_class", "parse_message",
           "parse_net", "parse_solver", "read_net", "read_solver", "to_text", "filter_net",
           "layer_included", "state_meets_rule", "solver_nets", "SolverNets",
           "resolve_net_path", "error_at", "text_format", "from_protobuf", "to_protobuf",
           "upgrade_net", "upgrade_solver", "is_protobuf", *MESSAGES]
