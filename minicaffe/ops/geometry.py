"""Convolution / pooling geometry shared by the lowering kernels and the layers."""
from dataclasses import dataclass
from functools import cached_property

_FIELD_MINIMUMS = (("C", 1), ("H", 1), ("W", 1), ("kh", 1), ("kw", 1), ("ph", 0), ("pw", 0),
                   ("sh", 1), ("sw", 1), ("dh", 1), ("dw", 1))


@dataclass(frozen=True)
class ConvGeometry:
    """One image's lowering: input (C, H, W), kernel (kh, kw), pad, stride, dilation.

    The lowered matrix is (C*kh*kw, oh*ow) with row index c*kh*kw + i*kw + j (Caffe's layout).
    A layer passes the same geometry on every forward, so the derived sizes, the kernels'
    tuple and the validity check are computed once per instance (cached_property writes the
    instance dict directly, which a frozen dataclass allows; equality and hashing still see
    the fields only).
    """

    C: int
    H: int
    W: int
    kh: int
    kw: int
    ph: int = 0
    pw: int = 0
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1

    @cached_property
    def oh(self):
        return (self.H + 2 * self.ph - (self.dh * (self.kh - 1) + 1)) // self.sh + 1

    @cached_property
    def ow(self):
        return (self.W + 2 * self.pw - (self.dw * (self.kw - 1) + 1)) // self.sw + 1

    @cached_property
    def rows(self):
        """K of the lowered GEMM: C*kh*kw."""
        return self.C * self.kh * self.kw

    @cached_property
    def cols(self):
        """Output pixels per image: oh*ow."""
        return self.oh * self.ow

    @cached_property
    def image_shape(self):
        """(C, H, W) of one input image."""
        return (self.C, self.H, self.W)

    @cached_property
    def native(self):
        """The fields in the order the compiled kernels take them."""
        return (self.C, self.H, self.W, self.kh, self.kw, self.ph, self.pw, self.sh, self.sw,
                self.dh, self.dw)

    @cached_property
    def problem(self):
        """Why this geometry cannot be lowered (a message without the operation's name), or
        None when every field is in range and the output is non-empty."""
        for field, low in _FIELD_MINIMUMS:
            value = getattr(self, field)
            if int(value) != value or value < low:
                return f"geom.{field} = {value}; expected an integer >= {low}"
        if self.oh < 1 or self.ow < 1:
            return (f"output would be {self.oh}x{self.ow}: the dilated kernel "
                    f"{self.dh * (self.kh - 1) + 1}x{self.dw * (self.kw - 1) + 1} does not fit "
                    f"the padded input {self.H + 2 * self.ph}x{self.W + 2 * self.pw}")
        return None
