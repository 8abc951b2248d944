"""`to_text(msg)`: protobuf text format, two-space indents, fields in schema order.

Floats are written with Python's shortest round-tripping repr (`0.1`, `1e-05`, `inf`, `nan`;
integral values without `.0`), so text -> spec -> text -> spec gives back an equal spec.
Fields kept raw (`msg.unmodeled`) are written back after the modelled ones.
"""
import math

from minicaffe.prototxt.text import Block, ListValue

_INDENT = "  "


def to_text(msg, indent=0):
    """The text of message `msg` (no enclosing braces); ends with a newline unless empty."""
    out = []
    _write(msg, indent, out)
    return "".join(out)


def _write(msg, indent, out):
    pad = _INDENT * indent
    spec = type(msg)._spec
    for name, f in spec.fields.items():
        if not msg.has(name):
            continue
        values = getattr(msg, name) if f.repeated else [getattr(msg, name)]
        for value in values:
            if f.is_message:
                out.append(f"{pad}{name} {{\n")
                _write(value, indent + 1, out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{name}: {format_scalar(f, value)}\n")
    for _, raw in msg.unmodeled:
        for line in raw.splitlines():
            out.append(pad + line + "\n")


def format_scalar(f, value):
    """One field value as text: enums by name, strings quoted and escaped."""
    if f.enum is not None:
        return value
    if f.kind == "bool":
        return "true" if value else "false"
    if f.kind in ("float", "double"):
        return format_float(value)
    if f.kind == "string":
        return quote(value.encode("utf-8"))
    if f.kind == "bytes":
        return quote(value)
    return str(value)


def format_float(value):
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


_ESCAPES = {10: "\\n", 13: "\\r", 9: "\\t", 34: '\\"', 39: "\\'", 92: "\\\\"}


def quote(data: bytes):
    """A double-quoted literal for `data`; UTF-8 text stays readable, other bytes are octal."""
    out = ['"']
    text = data.decode("utf-8", "replace")
    if text.encode("utf-8") == data:
        for ch in text:
            code = ord(ch)
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
            elif code < 32 or code == 127:
                out.append(f"\\{code:03o}")
            else:
                out.append(ch)
    else:
        for byte in data:
            if byte in _ESCAPES:
                out.append(_ESCAPES[byte])
            elif 32 <= byte < 127:
                out.append(chr(byte))
            else:
                out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def render_raw_entry(entry, indent=0):
    """Text of a parsed entry kept without a schema (an unmodeled field), in canonical form."""
    pad = _INDENT * indent
    value = entry.value
    if isinstance(value, Block):
        inner = "".join(render_raw_entry(e, indent + 1) for e in value.entries)
        return f"{pad}{entry.name} {{\n{inner}{pad}}}\n"
    if isinstance(value, ListValue):
        if any(isinstance(v, Block) for v in value.items):
            return "".join(render_raw_entry(type(entry)(entry.name, entry.token, v), indent)
                           for v in value.items)
        return f"{pad}{entry.name}: [{', '.join(_raw_scalar(v) for v in value.items)}]\n"
    return f"{pad}{entry.name}: {_raw_scalar(value)}\n"


def _raw_scalar(tok):
    return quote(tok.value) if tok.kind == "string" else tok.text
