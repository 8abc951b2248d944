"""Forcing one instruction set of the compiled kernels inside a test (pytest).

    with isa_forced("avx2"):      # skips the test where the CPU or the build lacks it
        ...

The kernels are compiled for baseline x86-64, AVX2 + FMA and AVX-512 and the best one the CPU
runs is active (minicaffe.ops.native); tests use this to run every instruction set this
machine can. Skip reasons start with "CPU lacks <isa>" or "<isa> kernels not compiled", the
forms the CI allow-list accepts.
"""
import contextlib

import pytest

from minicaffe.ops import native


def use_isa(name):
    """Make instruction set `name` active, or skip the test saying why it cannot run here.

    The caller restores the previous one (see isa_forced).
    """
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    if name not in native.available_isas():
        if name in native.build_info()["isa_compiled"]:
            pytest.skip(f"CPU lacks {name}: its kernels are compiled in but cannot run here")
        pytest.skip(f"{name} kernels not compiled into this build (another architecture, or "
                    "MINICAFFE_ISAS left them out)")
    native.set_isa(name)


@contextlib.contextmanager
def isa_forced(name):
    """Runs the body with instruction set `name` active (or skips), then restores the one
    active before."""
    # the module itself: a test may hide it (monkeypatching native.kernels) before this ends
    module = native.kernels()
    before = module.get_isa() if module is not None else None
    use_isa(name)
    try:
        yield name
    finally:
        module.set_isa(before)
