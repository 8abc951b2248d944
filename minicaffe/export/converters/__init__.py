"""Caffe layer type -> ONNX converter, one module per family of layers.

A converter is a function `convert(ctx) -> [ONNX value name per top]` registered for one or
more Caffe type strings; `ctx` is an export.context.LayerContext. To export a new layer type,
add a function to the module of its family (or a new module here) with

    @converter("MyType")
    def my_type(ctx):
        x = ctx.bottoms[0]
        return [ctx.node("Relu", [x], out=ctx.top(0))]

and a row to the random-net tests (tests/export/test_onnx_layers.py). Types that an inference
graph leaves out (data sources, losses, Accuracy, ...) are listed with `drop_layer` and a
reason; anything else without a converter is an ExportError naming the layer.
"""
from minicaffe.registry import Registry, import_submodules

CONVERTERS = Registry("ONNX converter for layer type")
#: layer type -> (kind, reason): kind "source" (its tops become graph inputs when something
#: exported reads them) or "sink" (left out; what it reads may become a graph output).
DROPPED = {}


def converter(*type_names):
    """Decorator: register `fn(ctx)` as the ONNX converter of each Caffe type in `type_names`."""
    def deco(fn):
        for name in type_names:
            CONVERTERS.register(name)(fn)
        return fn
    return deco


def drop_layer(kind, reason, *type_names):
    """Record types an inference export leaves out: kind "source" or "sink", and why."""
    assert kind in ("source", "sink"), kind
    for name in type_names:
        DROPPED[name] = (kind, reason)


import_submodules(__name__, __path__)

__all__ = ["CONVERTERS", "DROPPED", "converter", "drop_layer"]
