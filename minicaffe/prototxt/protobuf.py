"""Conversion between minicaffe's messages and protobuf messages of the same caffe.proto schema.

    from_protobuf(pb) -> Message           any caffe_pb2 message minicaffe models
    to_protobuf(msg, pb_class) -> pb        e.g. to_protobuf(net, caffe_pb2.NetParameter)

The protobuf side is duck-typed (its DESCRIPTOR and fields), so this module needs neither the
protobuf package nor the generated caffe_pb2 until a conversion runs; `minicaffe.proto` wraps it
as `to_caffe_pb2` / `from_caffe_pb2`. Presence carries over both ways (`msg.has(f)` is
`pb.HasField(f)`), enums by value name, floats as written: a caffe.proto `float` holds float32, so
a value read from protobuf is taken at its shortest float32 spelling (0.1, not
0.10000000149011612), which is what minicaffe's reader gives for the same text. Fields minicaffe
keeps as raw text (`known` in schema.py) travel as their protobuf text. No upgrade is applied
(`upgrade_net` does that, as `read_net` does).

Raises ValueError naming the message and field for a value one side cannot hold (an enum value
minicaffe does not implement, a caffe.proto field minicaffe does not know).
"""
import numpy as np

from minicaffe.prototxt.message import Message, message_class
from minicaffe.prototxt.schema import MESSAGES

# FieldDescriptor.TYPE_* numbers (stable protobuf wire-schema constants)
_TYPE_FLOAT, _TYPE_MESSAGE, _TYPE_ENUM = 2, 11, 14


def _float32_value(value):
    """The double that minicaffe's reader would give for a float32 field holding `value`."""
    return float(str(np.float32(value)))


def from_protobuf(pb):
    """A minicaffe message equal to protobuf message `pb` (its type named as in caffe.proto)."""
    name = pb.DESCRIPTOR.name
    if name not in MESSAGES:
        raise ValueError(f"caffe_pb2.{name}: minicaffe does not model this message")
    msg = message_class(name)()
    spec = msg._spec
    for fd, value in pb.ListFields():
        f = spec.fields.get(fd.name)
        if f is None:
            if fd.name in spec.known:
                msg.unmodeled.append((fd.name, _field_text(pb, fd.name)))
                continue
            raise ValueError(f"caffe_pb2.{name}.{fd.name} is not a field minicaffe knows")
        if f.repeated:
            setattr(msg, fd.name, [_value_from(fd, v, name) for v in value])
        else:
            setattr(msg, fd.name, _value_from(fd, value, name))
    return msg


def _value_from(fd, value, owner):
    if fd.type == _TYPE_MESSAGE:
        return from_protobuf(value)
    if fd.type == _TYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(value)
        label = enum_value.name if enum_value is not None else str(value)
        f = MESSAGES[owner].fields[fd.name]
        if label not in f.enum.values:
            raise ValueError(f"caffe_pb2.{owner}.{fd.name} = {label}: minicaffe does not "
                             f"implement this value (it has {', '.join(f.enum.values)})")
        return label
    if fd.type == _TYPE_FLOAT:
        return _float32_value(value)
    return value


def _field_text(pb, field_name):
    """protobuf text of one field of `pb` (as minicaffe keeps an unmodeled field)."""
    from google.protobuf import text_format  # noqa: PLC0415  (only for unmodeled fields)

    only = type(pb)()
    only.MergeFrom(pb)
    for fd, _ in only.ListFields():
        if fd.name != field_name:
            only.ClearField(fd.name)
    return text_format.MessageToString(only)


def to_protobuf(msg, pb_class):
    """A `pb_class` instance (e.g. caffe_pb2.NetParameter) equal to minicaffe message `msg`."""
    if not isinstance(msg, Message):
        raise TypeError(f"to_protobuf expects a minicaffe message, got {type(msg).__name__}")
    pb = pb_class()
    _fill(pb, msg)
    return pb


def _fill(pb, msg):
    owner = type(msg).__name__
    fields = pb.DESCRIPTOR.fields_by_name
    for name in msg.set_fields():
        fd = fields.get(name)
        if fd is None:
            raise ValueError(f"{owner}.{name}: {pb.DESCRIPTOR.full_name} has no such field")
        f = msg._spec.fields[name]
        value = getattr(msg, name)
        if fd.type == _TYPE_MESSAGE:
            if f.repeated:
                target = getattr(pb, name)
                for item in value:
                    _fill(target.add(), item)
            else:
                sub = getattr(pb, name)
                sub.SetInParent()
                _fill(sub, value)
        elif fd.type == _TYPE_ENUM:
            numbers = [_enum_number(fd, v, owner) for v in (value if f.repeated else [value])]
            if f.repeated:
                getattr(pb, name).extend(numbers)
            else:
                setattr(pb, name, numbers[0])
        elif f.repeated:
            getattr(pb, name).extend(value)
        else:
            setattr(pb, name, value)
    if msg.unmodeled:
        from google.protobuf import text_format  # noqa: PLC0415

        for _, raw in msg.unmodeled:
            text_format.Merge(raw, pb)


def _enum_number(fd, label, owner):
    value = fd.enum_type.values_by_name.get(label)
    if value is None:
        raise ValueError(f"{owner}.{fd.name} = {label}: not a value of {fd.enum_type.full_name}")
    return value.number
