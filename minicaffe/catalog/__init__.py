"""The Caffe layer catalog: one module per layer type, registered by its Caffe type string."""
from minicaffe.catalog.base import LAYERS, Layer, create_layer, layer_type_list, register_layer
from minicaffe.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["LAYERS", "Layer", "create_layer", "layer_type_list", "register_layer"]
