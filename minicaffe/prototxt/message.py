"""Generic message classes built from the schema table: one Python class per caffe.proto message.

A message's attributes are its caffe.proto fields. Unset scalars read as their caffe.proto
default, repeated fields as (possibly empty) lists, and singular sub-messages as an instance that
is created on first access, so `layer.convolution_param.kernel_size` always works. `has(name)` is
Caffe's `has_foo()`: a scalar was assigned, a repeated field is non-empty, a sub-message was
assigned or has something set. Enum values are their names as `str`; each message class also
carries its enums' value names as class attributes (`PoolingParameter.MAX == "MAX"`), as
pycaffe's caffe_pb2 does.
"""
import copy
import math

from minicaffe.prototxt.schema import ENUMS, MESSAGES

_INT_RANGES = {
    "int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1),
    "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
}


class Message:
    """Base of every message class. Build with keyword arguments:
    `LayerParameter(name="r", type="ReLU", bottom=["x"], top=["x"])`.

    Attributes besides the fields: `position` ((path, line, column) of the message in its file,
    None when built in code) and `unmodeled` (list of (field name, raw text) for Caffe fields
    minicaffe keeps but does not interpret; `to_text` writes them back).
    """
    _spec = None  # MessageSpec, set on each generated class

    def __init__(self, **fields):
        object.__setattr__(self, "_has", set())
        object.__setattr__(self, "_positions", {})
        object.__setattr__(self, "_source", None)
        object.__setattr__(self, "position", None)
        object.__setattr__(self, "unmodeled", [])
        for name, value in fields.items():
            setattr(self, name, value)

    # --- field access -------------------------------------------------------------------
    def __getattr__(self, name):
        # Only called for attributes not yet stored: fill in the default lazily.
        spec = type(self)._spec
        f = spec.fields.get(name) if spec is not None else None
        if f is None:
            raise AttributeError(self._unknown(name))
        if f.repeated:
            value = []
        elif f.is_message:
            value = message_class(f.kind)()
        else:
            return f.default
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name, value):
        f = type(self)._spec.fields.get(name)
        if f is None:
            if name in ("position", "unmodeled"):
                object.__setattr__(self, name, value)
                return
            raise AttributeError(self._unknown(name))
        if f.repeated:
            if isinstance(value, (str, bytes, dict, Message)) or not hasattr(value, "__iter__"):
                value = [_coerce(f, value)]
            else:  # lists, tuples, generators, numpy arrays
                value = [_coerce(f, v) for v in value]
        else:
            value = _coerce(f, value)
        object.__setattr__(self, name, value)
        self._has.add(name)

    def _unknown(self, name):
        import difflib
        msg = f"{type(self).__name__} has no field '{name}'"
        close = difflib.get_close_matches(name, list(type(self)._spec.fields), n=1)
        if close:
            msg += f"; did you mean '{close[0]}'?"
        return msg

    def has(self, name):
        """Whether `name` was set explicitly (Caffe's `has_name()`); for repeated fields,
        whether the list is non-empty."""
        f = type(self)._spec.fields.get(name)
        if f is None:
            raise AttributeError(self._unknown(name))
        if f.repeated:
            return bool(self.__dict__.get(name))
        if name in self._has:
            return True
        if f.is_message:
            sub = self.__dict__.get(name)
            return sub is not None and not sub.is_empty()
        return False

    HasField = has  # pycaffe spelling

    def clear(self, name):
        """Forget a field: it reads as its default again and `has(name)` is False."""
        if name not in type(self)._spec.fields:
            raise AttributeError(self._unknown(name))
        self.__dict__.pop(name, None)
        self._has.discard(name)
        self._positions.pop(name, None)

    ClearField = clear

    def is_empty(self):
        """True when no field is set and no unmodeled field is kept."""
        return not self.unmodeled and not any(self.has(n) for n in type(self)._spec.fields)

    def set_fields(self):
        """Names of the fields that are set, in schema order."""
        return [n for n in type(self)._spec.fields if self.has(n)]

    def position_of(self, name):
        """(path, line, column) where field `name` was written, else this message's position."""
        return self._positions.get(name, self.position)

    def copy(self):
        """A deep copy (positions included)."""
        return copy.deepcopy(self)

    def CopyFrom(self, other):
        """pycaffe spelling: make this message a copy of `other`."""
        if type(other) is not type(self):
            raise TypeError(f"CopyFrom: expected {type(self).__name__}, got {type(other).__name__}")
        dup = other.copy()
        self.__dict__.clear()
        self.__dict__.update(dup.__dict__)

    # --- comparison and display -----------------------------------------------------------
    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        names = self.set_fields()
        if names != other.set_fields() or self.unmodeled != other.unmodeled:
            return False
        return all(_values_equal(getattr(self, n), getattr(other, n)) for n in names)

    __hash__ = None

    def __repr__(self):
        parts = [f"{n}={getattr(self, n)!r}" for n in self.set_fields()]
        parts += [f"<unmodeled {n}>" for n, _ in self.unmodeled]
        return f"{type(self).__name__}({', '.join(parts)})"

    def __deepcopy__(self, memo):
        dup = type(self).__new__(type(self))
        for key, value in self.__dict__.items():
            # The source text is shared, not copied: it is read-only.
            object.__setattr__(dup, key, value if key == "_source" else copy.deepcopy(value, memo))
        return dup


def _values_equal(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True  # NaN == NaN here, so a parsed `nan` round-trips
    return a == b


def _coerce(f, value):
    """Check (and lightly convert) a value assigned from code to field `f`."""
    where = f"field '{f.name}'"
    if f.is_message:
        cls = message_class(f.kind)
        if isinstance(value, dict):
            return cls(**value)
        if not isinstance(value, cls):
            raise TypeError(f"{where} expects a {f.kind}, got {type(value).__name__}")
        return value
    if f.enum is not None:
        if isinstance(value, int) and not isinstance(value, bool):
            name = f.enum.name_of(value)
            if name is None:
                raise ValueError(f"{where}: {value} is not a {f.enum.name} value")
            return name
        if value not in f.enum.values:
            raise ValueError(f"{where}: {value!r} is not one of {', '.join(f.enum.values)}")
        return value
    if f.kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where} expects a number, got {value!r}")
        return float(value)
    if f.kind == "bool":
        if not isinstance(value, (bool, int)):
            raise TypeError(f"{where} expects a bool, got {value!r}")
        return bool(value)
    if f.kind == "string":
        if not isinstance(value, str):
            raise TypeError(f"{where} expects a str, got {value!r}")
        return value
    if f.kind == "bytes":
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"{where} expects bytes, got {value!r}")
        return bytes(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__"):  # numpy integers
            value = int(value)
        else:
            raise TypeError(f"{where} expects an integer ({f.kind}), got {value!r}")
    lo, hi = _INT_RANGES[f.kind]
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {value} is out of range for {f.kind}")
    return value


_CLASSES = {}


def message_class(name):
    """The class of caffe.proto message `name` (KeyError if minicaffe does not model it)."""
    return _CLASSES[name]


def _build_classes():
    for name, spec in MESSAGES.items():
        attrs = {"_spec": spec, "__doc__": f"caffe.proto message {name}: fields "
                 + ", ".join(spec.fields) + "."}
        for f in spec.fields.values():
            if f.enum is not None:
                for value in f.enum.values:
                    if value not in spec.fields:
                        attrs.setdefault(value, value)
        attrs["__module__"] = __name__
        # Also a module attribute, so pickle (and multiprocessing) can find the class.
        _CLASSES[name] = globals()[name] = type(name, (Message,), attrs)


_build_classes()
ENUM_TYPES = ENUMS
