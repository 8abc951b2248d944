"""Layer: the unit a Net is built from (Caffe's Layer<Dtype>).

Life cycle, driven by Net: `check_counts` → `setup(bottom, top)` once → `reshape(bottom, top)`
before every forward → `forward(bottom, top)` → `backward(top, propagate_down, bottom)`.
Parameter diffs are *added to* (the solver clears them); bottom diffs are overwritten.
A TEST net's inference plan (minicaffe.plan) instead calls `reshape` once per input shape and
asks `bind_forward` for the forward as bound op calls.
"""
from minicaffe.errors import LayerSetupError
from minicaffe.registry import Registry

LAYERS = Registry("layer type")
_REFUSED = {}    # Caffe layer types minicaffe deliberately does not build -> why


def register_layer(type_name):
    """Class decorator: make a Layer subclass buildable from `type: "<type_name>"`."""
    return LAYERS.register(type_name)


def refuse_layer(type_name, reason):
    """Record a Caffe layer type that minicaffe does not build, and why: `create_layer` then
    raises LayerSetupError with `reason` instead of calling the type unknown."""
    _REFUSED[type_name] = reason


def _position(layer_param, field=None):
    """`path:line:col: ` of the layer (or of its `field`, when the reader recorded where that
    was written) in its prototxt file; '' for one built in code."""
    pos = getattr(layer_param, "position", None)
    if field is not None and hasattr(layer_param, "position_of"):
        pos = layer_param.position_of(field) or pos
    if not pos or not pos[0]:
        return ""
    return f"{pos[0]}:{pos[1]}:{pos[2]}: "


def create_layer(layer_param, phase="TRAIN"):
    """Instantiate the registered layer for `layer_param.type` through its class's `create`
    (Caffe's layer creator); unknown and refused types raise LayerSetupError naming the layer
    (and the known types, or the refusal's reason)."""
    if layer_param.type in _REFUSED:
        raise LayerSetupError(f"{_position(layer_param)}layer '{layer_param.name}' "
                              f"({layer_param.type}): {_REFUSED[layer_param.type]}")
    if layer_param.type not in LAYERS:
        raise LayerSetupError(f"{_position(layer_param)}layer '{layer_param.name}': "
                              f"{LAYERS.unknown_message(layer_param.type)}")
    return LAYERS.get(layer_param.type).create(layer_param, phase)


def layer_type_list():
    """Registered layer type strings, sorted (pycaffe's caffe.layer_type_list())."""
    return LAYERS.names()


class Layer:
    """Base class. Subclasses declare blob counts and implement setup/reshape/forward/backward.

    Class attributes (None = unchecked):
      exact_bottoms / min_bottoms / max_bottoms, exact_tops / min_tops / max_tops
      is_loss: top[0] is a loss; its default loss_weight is 1 (others 0).
    """

    exact_bottoms = min_bottoms = max_bottoms = None
    exact_tops = min_tops = max_tops = None
    is_loss = False

    def __init__(self, layer_param, phase="TRAIN"):
        self.layer_param = layer_param
        self.name = layer_param.name
        self.type = layer_param.type
        self.phase = phase
        self.blobs = []          # learnable (and state) blobs, in Caffe's order
        self.loss_weights = []   # one per top, filled by the Net

    @classmethod
    def create(cls, layer_param, phase="TRAIN"):
        """The layer object for `layer_param` (Caffe's creator function). Default: an instance
        of this class; the Python layer overrides it to build the user's class instead."""
        return cls(layer_param, phase)

    # -- hooks for subclasses -----------------------------------------------------------------
    def setup(self, bottom, top):
        """Read parameters and create `self.blobs` (runs once)."""

    def reshape(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def forward(self, bottom, top):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, top, propagate_down, bottom):
        """Default: nothing to propagate (data layers, Accuracy, Silence...)."""

    def param_needs_diff(self, j):
        """Whether param blob j wants a diff (the Net's `param_propagate_down`; all outside
        a Net)."""
        flags = getattr(self, "param_propagate_down", None)
        return flags is None or j >= len(flags) or bool(flags[j])

    def bind_forward(self, bottom, top, program):
        """Append this layer's forward to `program` (an ops.Program) as bound op calls, for an
        inference plan, and return True; return False (the default) to have the plan call
        `reshape` and `forward` from Python instead.

        Called right after `reshape`, whenever the plan is built; it must leave the state that
        `forward` leaves (what backward reads) and change no blob. A layer whose forward does
        nothing returns True without adding a step.
        """
        return False

    def allow_force_backward(self, bottom_index):
        """Whether force_backward may request a diff for this bottom (False for labels)."""
        return True

    # -- helpers -------------------------------------------------------------------------------
    def error(self, message, bottom=None, cls=LayerSetupError, at=None):
        """An exception naming this layer, its type and (optionally) its bottoms with shapes.

        `at=(message, field)` places it where that field of a parameter message was written
        (e.g. `at=(self.layer_param.clip_param, "min")`) instead of at the layer."""
        pos = _position(*at) if at is not None else ""
        where = f"{pos or _position(self.layer_param)}layer '{self.name}' ({self.type})"
        if bottom:
            names = list(self.layer_param.bottom)
            desc = ", ".join(
                f"'{names[i] if i < len(names) else i}' {tuple(b.shape)}" for i, b in enumerate(bottom))
            where += f" with bottoms {desc}"
        return cls(f"{where}: {message}")

    def check_counts(self, bottom, top):
        """Raise LayerSetupError when the number of bottoms/tops breaks the declared counts."""
        for kind, blobs, exact, lo, hi in (
            ("bottom", bottom, self.exact_bottoms, self.min_bottoms, self.max_bottoms),
            ("top", top, self.exact_tops, self.min_tops, self.max_tops),
        ):
            n = len(blobs)
            if exact is not None and n != exact:
                raise self.error(f"takes exactly {exact} {kind} blob(s), got {n}")
            if lo is not None and n < lo:
                raise self.error(f"takes at least {lo} {kind} blob(s), got {n}")
            if hi is not None and n > hi:
                raise self.error(f"takes at most {hi} {kind} blob(s), got {n}")

    def __repr__(self):
        return f"<{type(self).__name__} '{self.name}'>"
