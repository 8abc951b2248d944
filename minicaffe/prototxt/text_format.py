"""`google.protobuf.text_format` spellings for code ported from pycaffe:

    from minicaffe.prototxt import text_format, NetParameter
    net = text_format.Merge(open("deploy.prototxt").read(), NetParameter())
    text = text_format.MessageToString(net)

Parsing goes through the same reader (positions, errors, warnings) without Caffe's upgrades, as
protobuf's own text_format does; use `read_net` / `parse_net` for upgraded nets.
"""
from minicaffe.prototxt.bind import bind
from minicaffe.prototxt.text import Source, parse_entries
from minicaffe.prototxt.writer import to_text


def Merge(text, message):  # noqa: N802 (protobuf's name)
    """Parse `text` into `message`: repeated fields are appended to, singular fields (sub-
    messages included, unlike protobuf's recursive merge) replaced; returns `message`.
    ParseError on malformed text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    source = Source(text)
    parsed = bind(type(message), parse_entries(source), source, type(message).__name__)
    for name, f in type(message)._spec.fields.items():
        if not parsed.has(name):
            continue
        if f.repeated:
            getattr(message, name).extend(getattr(parsed, name))
        else:
            setattr(message, name, getattr(parsed, name))
        message._positions.setdefault(name, parsed.position_of(name))
    message.unmodeled.extend(parsed.unmodeled)
    object.__setattr__(message, "_source", source)
    return message


def Parse(text, message):  # noqa: N802
    """Like Merge, but `message` is cleared first."""
    for name in list(type(message)._spec.fields):
        message.clear(name)
    message.unmodeled.clear()
    return Merge(text, message)


def MessageToString(message):  # noqa: N802
    """The message as text (see `to_text`)."""
    return to_text(message)
