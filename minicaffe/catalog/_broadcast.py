"""Shape logic shared by Scale and Bias: which axes of bottom[0] a per-position parameter
spans, and the (outer, dim, inner) view that broadcasts it."""


def param_shape(layer, bottom, axis, num_axes):
    """Shape of the learnable parameter when there is one bottom:
    bottom[0].shape[axis : axis + num_axes] (num_axes -1 = to the end)."""
    shape = bottom[0].shape
    ndim = len(shape)
    if num_axes < -1:
        raise layer.error(f"num_axes must be -1 or non-negative, got {num_axes}", bottom)
    if num_axes == 0:
        return ()
    if not -ndim <= axis < ndim:
        raise layer.error(f"axis={axis} is out of range for a {ndim}-D bottom", bottom)
    start = axis % ndim
    end = ndim if num_axes == -1 else start + num_axes
    if end > ndim:
        raise layer.error(f"axis={axis} with num_axes={num_axes} runs past the {ndim} axes of the "
                          "bottom", bottom)
    return tuple(shape[start:end])


def broadcast_dims(layer, bottom, axis, operand_shape, operand_name):
    """(outer, dim, inner) such that bottom[0] viewed as (outer, dim, inner) meets the operand
    viewed as (1, dim, 1). Raises the layer's error when the shapes do not line up."""
    shape = tuple(bottom[0].shape)
    ndim = len(shape)
    k = len(operand_shape)
    if k == 0:
        start = 0
    else:
        if not -ndim <= axis < ndim:
            raise layer.error(f"axis={axis} is out of range for a {ndim}-D bottom", bottom)
        start = axis % ndim
    if shape[start:start + k] != tuple(operand_shape):
        raise layer.error(f"{operand_name} of shape {tuple(operand_shape)} must match bottom axes "
                          f"{start}..{start + k - 1} of {shape}", bottom)
    outer = 1
    for d in shape[:start]:
        outer *= d
    dim = 1
    for d in operand_shape:
        dim *= d
    inner = 1
    for d in shape[start + k:]:
        inner *= d
    return outer, dim, inner
