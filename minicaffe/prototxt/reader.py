"""Entry points: text or files -> NetParameter / SolverParameter (upgraded to the current form)."""
import os

from minicaffe.errors import ParseError
from minicaffe.prototxt.bind import bind
from minicaffe.prototxt.message import message_class
from minicaffe.prototxt.text import Source, parse_entries
from minicaffe.prototxt.upgrade import upgrade_net, upgrade_solver


def parse_message(type_name, text, path=None):
    """Any modelled message from text, without upgrades (e.g. `parse_message("ParamSpec", s)`)."""
    if isinstance(text, bytes):
        text = _decode(text, path)
    source = Source(text, path)
    msg = bind(message_class(type_name), parse_entries(source), source, type_name)
    msg.position = (path, 1, 1)
    return msg


def parse_net(text, path=None):
    """NetParameter from prototxt text, upgraded (V1 layers, net inputs); ParseError if bad."""
    return upgrade_net(parse_message("NetParameter", text, path))


def parse_solver(text, path=None):
    """SolverParameter from prototxt text, upgraded (solver_type); ParseError if bad."""
    return upgrade_solver(parse_message("SolverParameter", text, path))


def read_net(path):
    """NetParameter from a .prototxt file (see parse_net)."""
    return parse_net(_read(path), os.fspath(path))


def read_solver(path):
    """SolverParameter from a solver .prototxt file (see parse_solver); remembers `path` so
    relative net paths can fall back to the solver's folder (see `solver_nets`)."""
    return parse_solver(_read(path), os.fspath(path))


def _read(path):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ParseError(f"cannot read prototxt file '{os.fspath(path)}': "
                         f"{exc.strerror or exc}") from None
    return _decode(data, os.fspath(path))


def _decode(data, path):
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ParseError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); is this a binary "
                         "file?", path, line, column) from None
