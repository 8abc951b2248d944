"""Apply the schema to parsed entries: typed values, positions, and errors that point at the text."""
import difflib
import math
import re
import warnings

from minicaffe.prototxt.message import _INT_RANGES, message_class
from minicaffe.prototxt.schema import MESSAGES
from minicaffe.prototxt.text import Block, ListValue, Token, excerpt
from minicaffe.prototxt.writer import render_raw_entry


class UnmodeledFieldWarning(UserWarning):
    """A field Caffe knows but minicaffe does not implement: kept as raw text, otherwise ignored."""


_KIND_WORDS = {
    "int32": "an integer (int32)", "int64": "an integer (int64)",
    "uint32": "a non-negative integer (uint32)", "uint64": "a non-negative integer (uint64)",
    "float": "a number (float)", "double": "a number (double)",
    "bool": "true or false", "string": "a quoted string", "bytes": "a quoted string (bytes)",
}
_TRUE = ("true", "True", "t", "1")
_FALSE = ("false", "False", "f", "0")
_INT_RE = re.compile(r"-?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_SPECIAL_FLOATS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}


def bind(cls, entries, source, where):
    """A `cls` message from `entries`; `where` names it in messages ("convolution_param")."""
    msg = cls()
    object.__setattr__(msg, "_source", source)
    spec = cls._spec
    seen = {}
    for entry in entries:
        f = spec.fields.get(entry.name)
        pos = (source.path, entry.token.line, entry.token.column)
        if f is None:
            if entry.name in spec.known:
                warnings.warn(UnmodeledFieldWarning(
                    f"{source.path or '<string>'}:{pos[1]}:{pos[2]}: field '{excerpt(entry.name)}' in "
                    f"{where} is a Caffe field minicaffe does not implement; "
                    "it is kept as written but ignored"), stacklevel=2)
                msg.unmodeled.append((entry.name, render_raw_entry(entry)))
                continue
            raise _unknown_field(source, entry, spec, where)
        if not f.repeated and entry.name in seen:
            first = seen[entry.name]
            raise source.error(
                f"field '{entry.name}' appears twice in {where} (first at line {first[0]}, "
                f"column {first[1]}); it is not a repeated field", entry.token.line,
                entry.token.column)
        seen.setdefault(entry.name, (entry.token.line, entry.token.column))
        msg._positions.setdefault(entry.name, pos)
        if isinstance(entry.value, ListValue):
            if not f.repeated:
                raise source.error(f"field '{entry.name}' of {where} is not repeated; "
                                   "a [list] value needs a repeated field",
                                   entry.value.open.line, entry.value.open.column)
            items = entry.value.items
        else:
            items = [entry.value]
        values = [_convert(f, item, entry, source) for item in items]
        if f.repeated:
            getattr(msg, f.name).extend(values)
            msg._has.add(f.name)
        else:
            object.__setattr__(msg, f.name, values[0])
            msg._has.add(f.name)
    return msg


def _unknown_field(source, entry, spec, where):
    names = list(spec.fields) + list(spec.known)
    msg = f"unknown field '{excerpt(entry.name)}' in {where}"
    close = difflib.get_close_matches(entry.name, names, n=1)
    if where == "layer" and entry.name in _V1_FIELDS:
        msg += f" (a V1 'layers' field; in 'layer' write {_V1_FIELDS[entry.name]})"
    elif close:
        msg += f"; did you mean '{close[0]}'?"
    elif where in _OTHER_FILE_KIND and entry.name in MESSAGES[_OTHER_FILE_KIND[where][0]].fields:
        msg += f" (is this a {_OTHER_FILE_KIND[where][1]}?)"
    return source.error(msg, entry.token.line, entry.token.column)


_V1_FIELDS = {"blobs_lr": "param { lr_mult: ... }", "weight_decay": "param { decay_mult: ... }"}
_V1_TYPE_NAMES = {"CONVOLUTION": "Convolution", "INNER_PRODUCT": "InnerProduct",
                  "POOLING": "Pooling", "RELU": "ReLU", "SOFTMAX_LOSS": "SoftmaxWithLoss",
                  "DATA": "Data", "ACCURACY": "Accuracy", "DROPOUT": "Dropout", "LRN": "LRN",
                  "SOFTMAX": "Softmax", "CONCAT": "Concat", "ELTWISE": "Eltwise"}

# A top-level field of the other kind of file: a solver read as a net or the reverse.
_OTHER_FILE_KIND = {"NetParameter": ("SolverParameter", "solver file; read it with read_solver"),
                    "SolverParameter": ("NetParameter", "net file; read it with read_net")}


def _convert(f, item, entry, source):
    if f.is_message:
        if not isinstance(item, Block):
            raise source.error(f"field '{f.name}' is a {f.kind} message: write "
                               f"'{f.name} {{ ... }}', not a value", item.line, item.column)
        sub = bind(message_class(f.kind), item.entries, source, f.name)
        sub.position = (source.path, entry.token.line, entry.token.column)
        return sub
    if isinstance(item, Block):
        raise source.error(f"field '{f.name}' takes a value ({_expected(f)}), not a "
                           "{ ... } block", item.open.line, item.open.column)
    return _scalar(f, item, source)


def _expected(f):
    if f.enum is not None:
        return f"one of {', '.join(f.enum.values)}"
    return _KIND_WORDS[f.kind]


def _wrong(f, tok, source, hint=""):
    return source.error(f"field '{f.name}' expects {_expected(f)}, got {excerpt(tok.text)}{hint}",
                        tok.line, tok.column)


def _scalar(f, tok: Token, source):
    text = tok.text
    if f.kind in ("string", "bytes"):
        if tok.kind != "string":
            hint = ""
            if tok.kind == "ident":
                # `type: CONVOLUTION` is the V1 spelling of `type: "Convolution"`.
                hint = f"; did you mean \"{_V1_TYPE_NAMES.get(text, text)}\"?"
            raise _wrong(f, tok, source, hint)
        if f.kind == "bytes":
            return tok.value
        try:
            return tok.value.decode("utf-8")
        except UnicodeDecodeError:
            raise source.error(f"field '{f.name}': string is not valid UTF-8", tok.line,
                               tok.column) from None
    if tok.kind == "string":
        raise _wrong(f, tok, source)
    if f.enum is not None:
        if tok.kind == "number" and _INT_RE.fullmatch(text):
            name = f.enum.name_of(_int(text))
            if name is not None:
                return name
        if text in f.enum.values:
            return text
        known = list(f.enum.values)
        msg = (f"unknown value '{excerpt(text)}' for field '{f.name}' ({f.enum.name}); expected one of "
               f"{', '.join(known)}")
        close = difflib.get_close_matches(text, known, n=1) or \
            [k for k in known if k.lower() == text.lower()]
        if close:
            msg += f"; did you mean '{close[0]}'?"
        raise source.error(msg, tok.line, tok.column)
    if f.kind == "bool":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _wrong(f, tok, source)
    if f.kind in ("float", "double"):
        if tok.kind == "ident":
            word = text.lstrip("-").lower()
            if word not in _SPECIAL_FLOATS:
                raise _wrong(f, tok, source)
            value = _SPECIAL_FLOATS[word]
            return -value if text.startswith("-") else value
        body = text[:-1] if text[-1] in "fF" and not text.lower().startswith(("0x", "-0x")) \
            else text
        if _INT_RE.fullmatch(body) and body.lstrip("-").lower().startswith("0x"):
            return float(_int(body))
        return float(body)
    # integer kinds
    if tok.kind != "number" or not _INT_RE.fullmatch(text):
        raise _wrong(f, tok, source)
    value = _int(text)
    if value < 0 and f.kind.startswith("u"):
        raise _wrong(f, tok, source)
    lo, hi = _INT_RANGES[f.kind]
    if not lo <= value <= hi:
        raise source.error(f"field '{f.name}': {excerpt(text)} is out of range for {f.kind} "
                           f"[{lo}, {hi}]", tok.line, tok.column)
    return value


# More decimal digits than any int64/uint64 has: out of range without converting (int() refuses
# more than 4300 digits with a bare ValueError, and takes quadratic time below that).
_MAX_DECIMAL_DIGITS = 20


def _int(text):
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body.lower().startswith("0x"):
        value = int(body, 16)
    elif len(body) > 1 and body.startswith("0"):
        value = int(body, 8)  # protobuf text format reads a leading 0 as octal
    elif len(body) > _MAX_DECIMAL_DIGITS:
        value = 10 ** _MAX_DECIMAL_DIGITS
    else:
        value = int(body)
    return -value if neg else value
