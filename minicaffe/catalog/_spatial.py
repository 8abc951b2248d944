"""Kernel / pad / stride / dilation fields of convolution_param and pooling_param, read the way
Caffe reads them (a `_h`/`_w` pair wins over the shared field; repeated fields give one value for
both axes or one per axis)."""


def pair(layer, bottom, msg, name, default, repeated):
    """(h, w) for field `name` of `msg` (`kernel`, `pad`, `stride`, `dilation`).

    Raises the layer's LayerSetupError when both forms are given or a list has a wrong length.
    """
    field = "kernel_size" if name == "kernel" else name
    h_name, w_name = f"{name}_h", f"{name}_w"
    has_hw = hasattr(msg, h_name) and (msg.has(h_name) or msg.has(w_name))
    value = getattr(msg, field, None)
    given = (len(value) > 0) if repeated else (value is not None and msg.has(field))
    if has_hw:
        if given:
            raise layer.error(f"{field} and {h_name}/{w_name} both given; use one form", bottom)
        if not (msg.has(h_name) and msg.has(w_name)) and name == "kernel":
            raise layer.error(f"{h_name} and {w_name} must be given together", bottom)
        return int(getattr(msg, h_name)), int(getattr(msg, w_name))
    if repeated:
        if len(value) == 0:
            return default, default
        if len(value) == 1:
            return int(value[0]), int(value[0])
        if len(value) == 2:
            return int(value[0]), int(value[1])
        raise layer.error(f"{field} has {len(value)} values; 2-D layers take 1 or 2", bottom)
    if value is None:
        return default, default
    return int(value), int(value)


def conv_fields(layer, bottom, p):
    """((kh, kw), (ph, pw), (sh, sw), (dh, dw)) of a convolution_param, checked.

    Raises the layer's LayerSetupError for a missing or non-positive kernel, a non-positive
    stride or dilation, or a badly formed repeated field.
    """
    kh, kw = pair(layer, bottom, p, "kernel", 0, repeated=True)
    ph, pw = pair(layer, bottom, p, "pad", 0, repeated=True)
    sh, sw = pair(layer, bottom, p, "stride", 1, repeated=True)
    dh, dw = pair(layer, bottom, p, "dilation", 1, repeated=True)
    if kh <= 0 or kw <= 0:
        raise layer.error(f"kernel size must be positive, got kernel_h={kh}, kernel_w={kw} "
                          f"(set kernel_size)", bottom)
    if sh <= 0 or sw <= 0:
        raise layer.error(f"stride must be positive, got ({sh}, {sw})", bottom)
    if dh <= 0 or dw <= 0:
        raise layer.error(f"dilation must be positive, got ({dh}, {dw})", bottom)
    return (kh, kw), (ph, pw), (sh, sw), (dh, dw)
