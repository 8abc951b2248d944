"""pycaffe's net_spec: nets written as Python expressions (`caffe.NetSpec`, `caffe.layers` (L),
`caffe.params` (P), `caffe.to_proto`), producing caffe_pb2.NetParameter messages.

    from minicaffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="train_lmdb",
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type="xavier"), param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.loss = L.SoftmaxWithLoss(n.conv1, n.label)
    open("net.prototxt", "w").write(str(n.to_proto()))     # or caffe.Net(n.to_proto(), caffe.TRAIN)

`L.<Type>(*bottoms, **kwargs)` makes one layer of type `<Type>` and returns its top (a `Top`),
a tuple of `ntop` Tops, or, with `ntop=0`, the layer itself. Keyword arguments, as in pycaffe:
  ntop=k            number of tops (default 1); in_place=True: the top is the (first) bottom.
  <x>_param=dict()  any LayerParameter field ending in `param` (`param=[dict(lr_mult=1), ...]`,
                    `python_param`, `transform_param`) is assigned to the layer itself.
  anything else     goes to the layer type's own parameter message (`kernel_size` ->
                    convolution_param for Convolution; the message is found from caffe.proto's
                    `<Type>Parameter` / `<type>_param` pairs), or, when that message has no such
                    field, to the LayerParameter (`loss_weight`, `include=dict(phase=...)`,
                    `propagate_down`, `name`).
Values: dicts fill sub-messages, lists fill repeated fields, a scalar given for a repeated field
becomes a one-element list. Layer and top names come from the NetSpec attribute a Top is
assigned to; unnamed ones are `<Type><k>` (pycaffe's automatic names). `P.<Type>.<VALUE>` is
the number of an enum value of `<Type>Parameter` (`P.Pooling.MAX`, `P.Data.LMDB`).

Beyond pycaffe: Deconvolution's arguments go to `convolution_param` (pycaffe needs
`convolution_param=dict(...)` spelled out there), and a keyword that fits neither message raises
AttributeError naming the layer type, the keyword and the closest field name.
"""
import difflib
from collections import Counter, OrderedDict

from minicaffe.proto import caffe_pb2

# Types whose parameters live in a message not named after them.
_PARAM_ALIASES = {"Deconvolution": "convolution"}


def param_name_dict():
    """{layer type: parameter field stem}, e.g. {"Convolution": "convolution", "InnerProduct":
    "inner_product", "Python": "python"}: every LayerParameter field `<stem>_param` whose message
    is `<Type>Parameter`."""
    out = {}
    for fd in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if fd.name.endswith("_param") and fd.message_type is not None:
            type_name = fd.message_type.name
            if type_name.endswith("Parameter"):
                out[type_name[:-len("Parameter")]] = fd.name[:-len("_param")]
    for type_name, stem in _PARAM_ALIASES.items():
        out.setdefault(type_name, stem)
    return out


def _is_repeated(message, name):
    return hasattr(getattr(message, name), "extend")


def assign_proto(proto, name, val):
    """Assign a Python value to field `name` of protobuf message `proto`: dicts fill a
    sub-message, lists extend a repeated field (a list of dicts adds one sub-message each), a
    non-list value for a repeated field is wrapped in a list, anything else is assigned."""
    if _is_repeated(proto, name) and not isinstance(val, (list, tuple)):
        val = [val]
    if isinstance(val, (list, tuple)):
        val = list(val)
        if val and isinstance(val[0], dict):
            for item in val:
                sub = getattr(proto, name).add()
                for key, value in item.items():
                    assign_proto(sub, key, value)
        else:
            getattr(proto, name).extend(val)
    elif isinstance(val, dict):
        sub = getattr(proto, name)
        sub.SetInParent()
        for key, value in val.items():
            assign_proto(sub, key, value)
    else:
        setattr(proto, name, val)


def to_proto(*tops):
    """A caffe_pb2.NetParameter with every layer needed to compute `tops` (automatic names)."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Top:
    """One output blob of a layer (`fn`, the Function, and `n`, its top index)."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """One layer: its type, its input Tops and its keyword arguments (see the module doc).
    Raises TypeError when an input is not a Top."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, item in enumerate(inputs):
            if not isinstance(item, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(item)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        for key, value in self.params.items():
            self._assign(layer, key, value)
        layers[self] = layer

    def _assign(self, layer, key, value):
        if key.endswith("param"):
            assign_proto(layer, key, value)
            return
        stem = _param_names.get(self.type_name)
        if stem is not None and key in getattr(layer, stem + "_param").DESCRIPTOR.fields_by_name:
            assign_proto(getattr(layer, stem + "_param"), key, value)
            return
        if key in layer.DESCRIPTOR.fields_by_name:
            assign_proto(layer, key, value)
            return
        fields = list(layer.DESCRIPTOR.fields_by_name)
        where = "LayerParameter"
        if stem is not None:
            message = getattr(layer, stem + "_param").DESCRIPTOR
            fields += list(message.fields_by_name)
            where = f"{message.name} nor LayerParameter"
        hint = difflib.get_close_matches(key, fields, n=1)
        raise AttributeError(f"L.{self.type_name}({key}=...): neither {where} has a field "
                             f"'{key}'" + (f"; did you mean '{hint[0]}'?" if hint else ""))


class NetSpec:
    """Named tops: assign Tops as attributes (or items), then `to_proto()` gives the
    NetParameter of every layer needed for them, named after the attributes."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top named '{name}' (tops: "
                                 f"{', '.join(self.tops) or 'none'})") from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.__getattr__(item)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def to_proto(self):
        """caffe_pb2.NetParameter of the assigned tops (in assignment order)."""
        names = {v: k for k, v in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """The `L` pseudo-module: `L.<Type>(*bottoms, **kwargs)` specifies one layer (module doc)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        layer_fn.__name__ = name
        return layer_fn


class Parameters:
    """The `P` pseudo-module: `P.<Type>.<NAME>` is enum value NAME of caffe_pb2.<Type>Parameter."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        message = getattr(caffe_pb2, name + "Parameter", None)
        if message is None:
            raise AttributeError(f"P.{name}: caffe_pb2 has no message {name}Parameter")

        class Param:
            def __getattr__(self, param_name):
                try:
                    return getattr(message, param_name)
                except AttributeError:
                    raise AttributeError(f"P.{name}.{param_name}: {name}Parameter has no enum "
                                         f"value {param_name}") from None
        return Param()


_param_names = param_name_dict()
layers = Layers()
params = Parameters()
