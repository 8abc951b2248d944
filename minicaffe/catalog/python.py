"""Python: a layer written in Python by the user, pycaffe's `caffe.Layer` (type "Python").

    layer { name: "data" type: "Python" top: "data" top: "label"
            python_param { module: "my_layers" layer: "MyDataLayer" param_str: "{'batch': 8}" } }

`python_param { module layer param_str share_in_parallel }`: `module` is imported by name (a
dotted name works), from `sys.path` first and then from the folder of the prototxt file that
declares the layer (what a pycaffe user gets by running next to the file); `layer` names a
subclass of `caffe.Layer` (this class) in it. As Caffe's layer factory does, the class is
instantiated with the LayerParameter; `self.param_str` (the string, as written) and
`self.phase` (0 = TRAIN, 1 = TEST, pycaffe's numbering) are set before `setup` runs.

The subclass implements pycaffe's four methods on lists of Blobs:
    setup(bottom, top)                     once; read self.param_str, create self.blobs
    reshape(bottom, top)                   before every forward: top[i].reshape(*shape)
    forward(bottom, top)                   top[i].data[...] = f(bottom[j].data)
    backward(top, propagate_down, bottom)  bottom[i].diff[...] = ...; add to self.blobs[k].diff
`self.blobs` is a list with pycaffe's `add_blob(*shape)` (a float32 Blob, learnable: the solver
updates it, snapshots save it, `param { lr_mult }` applies). A Python layer has no loss unless
the prototxt gives `loss_weight` (as in Caffe). Blob counts are not checked: the layer decides.

Errors: a missing or broken module, a missing class, or a class that is not a `caffe.Layer`
subclass raise LayerSetupError naming the prototxt file:line:col, the layer and the module; an
import failure is also an ImportError (PythonLayerImportError). Exceptions raised inside the
user's methods propagate unchanged, as in pycaffe.
"""
import importlib
import os
import sys

from minicaffe.blob import Blob
from minicaffe.catalog.base import Layer, _position, register_layer
from minicaffe.errors import LayerSetupError
from minicaffe.phase import phase_id


class PythonLayerImportError(LayerSetupError, ImportError):
    """The module of a Python layer could not be imported (a ValueError and an ImportError)."""


class BlobVec(list):
    """pycaffe's BlobVec: a list of Blobs with `add_blob(*shape)`."""

    def add_blob(self, *shape):
        """Append a new zero float32 Blob of `shape` (`add_blob(2, 3)` or `add_blob((2, 3))`)."""
        if len(shape) == 1 and not isinstance(shape[0], int) and hasattr(shape[0], "__iter__"):
            shape = tuple(shape[0])
        self.append(Blob(tuple(int(d) for d in shape)))


@register_layer("Python")
class PythonLayer(Layer):
    """Base class of user layers in Python (exported as `caffe.Layer`); see the module doc.

    Construct only through a net (or `create_layer`): `PythonLayer.create` imports the class
    named in `python_param` and instantiates it with the LayerParameter.
    """

    def __init__(self, layer_param, phase="TRAIN"):
        super().__init__(layer_param, phase)
        self.blobs = BlobVec()
        self.param_str = layer_param.python_param.param_str
        self.phase = phase_id(phase)

    @classmethod
    def create(cls, layer_param, phase="TRAIN"):
        """The user's layer object for `layer_param` (its python_param names module and class)."""
        user_class = _resolve(layer_param)
        layer = user_class(layer_param)
        if not isinstance(getattr(layer, "blobs", None), BlobVec):
            # a subclass __init__ that did not call the base class's: give it the base state
            PythonLayer.__init__(layer, layer_param, phase)
        # what Caffe's PythonLayer::LayerSetUp assigns just before calling setup()
        layer.param_str = layer_param.python_param.param_str
        layer.phase = phase_id(phase)
        return layer

    def setup(self, bottom, top):
        """Override to read `self.param_str` and create `self.blobs`; the default does nothing."""

    def reshape(self, bottom, top):
        raise NotImplementedError(
            f"Python layer '{self.name}' ({_qualname(self)}) does not define reshape(bottom, top)")

    def forward(self, bottom, top):
        raise NotImplementedError(
            f"Python layer '{self.name}' ({_qualname(self)}) does not define forward(bottom, top)")

    def backward(self, top, propagate_down, bottom):
        raise NotImplementedError(
            f"Python layer '{self.name}' ({_qualname(self)}) is asked for gradients but does not "
            "define backward(top, propagate_down, bottom) (a data layer may define it as `pass`)")


def _qualname(obj):
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _where(layer_param):
    return f"{_position(layer_param)}layer '{layer_param.name}' (Python)"


def _resolve(layer_param):
    """The caffe.Layer subclass named by `layer_param.python_param`."""
    pp = layer_param.python_param
    if not pp.module or not pp.layer:
        raise LayerSetupError(f"{_where(layer_param)}: python_param needs both `module` and "
                              f"`layer` (got module: '{pp.module}', layer: '{pp.layer}')")
    module = _import(pp.module, layer_param)
    found = getattr(module, pp.layer, None)
    if found is None:
        classes = sorted(n for n, v in vars(module).items()
                         if isinstance(v, type) and issubclass(v, PythonLayer) and v is not PythonLayer)
        raise LayerSetupError(
            f"{_where(layer_param)}: module '{pp.module}' ({getattr(module, '__file__', '?')}) has "
            f"no layer class '{pp.layer}' (caffe.Layer subclasses there: "
            f"{', '.join(classes) or 'none'})")
    if not (isinstance(found, type) and issubclass(found, PythonLayer)):
        raise LayerSetupError(
            f"{_where(layer_param)}: '{pp.module}.{pp.layer}' is not a subclass of caffe.Layer "
            f"(import minicaffe as caffe; class {pp.layer}(caffe.Layer): ...)")
    return found


def _prototxt_folder(layer_param):
    pos = getattr(layer_param, "position", None)
    if pos and pos[0]:
        return os.path.dirname(os.path.abspath(pos[0]))
    return None


def _missing_itself(exc, name):
    """Whether ModuleNotFoundError `exc` is about `name` (or a package above it), not about
    something the module itself imports."""
    missing = getattr(exc, "name", None)
    return missing is not None and (name == missing or name.startswith(missing + "."))


def _import(name, layer_param):
    folder = _prototxt_folder(layer_param)
    searched = "sys.path" + (f" and {folder}" if folder else "")
    try:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if folder is None or not _missing_itself(exc, name) or folder in sys.path:
                raise
        sys.path.insert(0, folder)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(name)
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
    except Exception as exc:  # noqa: BLE001  (any failure while importing user code)
        if isinstance(exc, ModuleNotFoundError) and _missing_itself(exc, name):
            what = f"no module named '{name}' (searched {searched})"
        else:
            what = f"importing it failed: {type(exc).__name__}: {exc}"
        raise PythonLayerImportError(
            f"{_where(layer_param)}: cannot import python_param module '{name}': {what}") from exc
