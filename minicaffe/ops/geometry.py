"""Convolution / pooling geometry shared by the lowering kernels and the layers."""
from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeometry:
    """One image's lowering: input (C, H, W), kernel (kh, kw), pad, stride, dilation.

    The lowered matrix is (C*kh*kw, oh*ow) with row index c*kh*kw + i*kw + j (Caffe's layout).
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

    @property
    def oh(self):
        return (self.H + 2 * self.ph - (self.dh * (self.kh - 1) + 1)) // self.sh + 1

    @property
    def ow(self):
        return (self.W + 2 * self.pw - (self.dw * (self.kw - 1) + 1)) // self.sw + 1

    @property
    def rows(self):
        """K of the lowered GEMM: C*kh*kw."""
        return self.C * self.kh * self.kw

    @property
    def cols(self):
        """Output pixels per image: oh*ow."""
        return self.oh * self.ow
