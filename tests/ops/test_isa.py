"""Instruction-set dispatch of the compiled kernels: the choice at import, MINICAFFE_ISA,
set_isa, and the build's promise that nothing outside the AVX2 / AVX-512 copies uses their
registers (so the baseline path runs on any x86-64)."""
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from minicaffe import ops
from minicaffe.errors import KernelError
from minicaffe.ops import native
from minicaffe.testing.isa import isa_forced

pytestmark = pytest.mark.native


@pytest.fixture
def k():
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    before = native.get_isa()
    yield native.kernels()
    native.set_isa(before)


def _child(code, tmp_path, **env):
    """Runs `code` in a fresh interpreter (outside the source tree) with extra environment."""
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=full,
                          capture_output=True, text=True, cwd=tmp_path, check=True)


PROBE = ("import minicaffe; i = minicaffe.build_info(); "
         "print(i['isa'], i['blas_version'].split()[-2], i['tile_gemm'])")


def test_the_best_isa_is_chosen_at_import(k, tmp_path):
    out = _child(PROBE, tmp_path, MINICAFFE_ISA="")
    assert out.stdout.split()[0] == native.available_isas()[-1]
    assert "RuntimeWarning" not in out.stderr


@pytest.mark.parametrize("name", native.ISAS)
def test_minicaffe_isa_forces_one_or_warns_and_falls_back(k, tmp_path, name):
    out = _child(PROBE, tmp_path, MINICAFFE_ISA=name.upper())  # case does not matter
    isa, core, tile = out.stdout.split()
    if name in native.available_isas():
        assert isa == name and "RuntimeWarning" not in out.stderr
        assert tile == str(name != "baseline")
        flags = native._cpu_flags()
        if "scipy-openblas32" in ops.build_info()["blas_vendor"] and name != "avx512" and \
                native._OPENBLAS_CORE_FOR_ISA[name][1] <= flags:
            # our OpenBLAS copy runs kernels of the same generation
            assert core == native._OPENBLAS_CORE_FOR_ISA[name][0]
    else:  # beyond this CPU or build: a warning, and the best it runs
        assert isa == native.available_isas()[-1]
        assert f"MINICAFFE_ISA={name} ignored" in out.stderr


def test_unknown_minicaffe_isa_warns_and_uses_the_best(k, tmp_path):
    out = _child(PROBE, tmp_path, MINICAFFE_ISA="avx3")
    assert out.stdout.split()[0] == native.available_isas()[-1]
    assert ("RuntimeWarning: minicaffe: MINICAFFE_ISA=avx3 ignored (set_isa: unknown "
            "instruction set 'avx3'; expected one of baseline, avx2, avx512)") in out.stderr


def test_set_isa_switches_at_run_time(k):
    for name in native.available_isas():
        ops.set_isa(name)
        assert ops.get_isa() == name == ops.build_info()["isa"]
        assert ops.build_info()["vector_bits"] == {"baseline": 128, "avx2": 256,
                                                   "avx512": 512}[name]
    ops.set_isa("auto")
    assert ops.get_isa() == native.available_isas()[-1]


def test_set_isa_rejects_what_it_cannot_run(k):
    with pytest.raises(KernelError, match=r"^set_isa: unknown instruction set 'sse9'; expected "
                                          r"one of baseline, avx2, avx512$"):
        ops.set_isa("sse9")
    with pytest.raises(TypeError, match=r"^set_isa: name = 2; expected a str"):
        ops.set_isa(2)
    for name in set(native.ISAS) - set(native.available_isas()):
        compiled = name in ops.build_info()["isa_compiled"]
        with pytest.raises(KernelError, match=r"^set_isa: this CPU cannot run" if compiled
                           else r"^set_isa: '\w+' is not compiled into this build"):
            ops.set_isa(name)
    assert ops.get_isa() in native.available_isas()  # unchanged by the failures


def test_set_isa_without_the_kernels_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(native, "kernels", lambda: None)
    with pytest.raises(RuntimeError, match=r"^set_isa: the compiled kernels are not in use"):
        ops.set_isa("baseline")
    assert ops.get_isa() == "numpy" and ops.available_isas() == []


@pytest.mark.parametrize("name", native.ISAS)
def test_each_isa_gives_the_same_products(k, name, rng):
    """One conv forward, compacted forward and CSR product per instruction set against float64
    NumPy (the sweeps run under every instruction set through the `engine` fixture)."""
    with isa_forced(name):
        g = ops.ConvGeometry(24, 13, 13, 3, 3, 1, 1)
        x = rng.standard_normal((3, 24, 13, 13)).astype(np.float32)
        w = rng.standard_normal((40, g.rows)).astype(np.float32)
        w[::3] = 0
        w[:, ::2] = 0
        cols = ops.im2col_batch(x, g).astype(np.float64)
        want = w.astype(np.float64) @ cols
        for weights in (ops.DenseWeights(w), ops.CompactWeights(w), ops.CSRWeights(w)):
            got = ops.conv_forward(x, g, weights)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---- the build: which code uses which registers ---------------------------------------------

_HEADER = re.compile(r"^[0-9a-f]+ <(.*)>:$")
# Registers and encodings beyond each instruction set: VEX/EVEX instructions (mnemonics
# starting with "v") are AVX and later; zmm, opmask registers k0-k7, xmm/ymm 16-31 and
# EVEX decorations ({k1}, {1to16}) are AVX-512.
_AVX = re.compile(r"^v")
_AVX512 = re.compile(r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b|\{")


def _functions(path):
    """{function name: [instruction text]} of a shared object, from objdump."""
    dump = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(path)],
                          capture_output=True, text=True, check=True).stdout
    code, name = defaultdict(list), None
    for line in dump.splitlines():
        head = _HEADER.match(line)
        if head:
            name = head.group(1)
            continue
        fields = line.split("\t")
        if name is not None and len(fields) >= 2:
            # drop the "<symbol+offset>" that objdump appends to jump and call targets
            code[name].append(re.sub(r"\s*<.*$", "", fields[1]).strip())
    return code


@pytest.fixture(scope="module")
def disassembly():
    if shutil.which("objdump") is None:
        pytest.skip("objdump not found (binutils): cannot read the module's instructions")
    if not native.available():
        pytest.skip(f"minicaffe._kernels not built: {native.unavailable_reason()}")
    return _functions(native.kernels().__file__)


def test_only_the_avx_copies_use_avx_registers(disassembly):
    """Everything outside mc::avx2 / mc::avx512 (bindings, checks, the baseline kernels, the
    standard library's out-of-line templates) is baseline x86-64, and mc::avx2 never uses
    AVX-512: a shared std:: function compiled for a wider instruction set would crash older
    CPUs from the baseline path (kernels/isa.h says how the build prevents it)."""
    if not any("mc::baseline::" in name for name in disassembly):
        pytest.fail("no mc::baseline:: symbols in the module: was it stripped? (the build keeps "
                    "local symbols so that this check can run)")
    wrong = []
    for name, code in disassembly.items():
        if "mc::avx512::" in name:
            continue
        avx2 = "mc::avx2::" in name
        for ins in code:
            if (_AVX512.search(ins) if avx2 else _AVX.match(ins)):
                wrong.append(f"{name}: {ins}")
                break
    assert not wrong, "instructions beyond their instruction set:\n" + "\n".join(wrong[:20])


@pytest.mark.parametrize("name,register", [("avx2", "%ymm"), ("avx512", "%zmm")])
def test_each_copy_is_compiled_for_its_instruction_set(disassembly, name, register):
    """The target pragma took effect: the CSR kernel and the lowering of each copy use that
    instruction set's vectors."""
    if name not in ops.build_info()["isa_compiled"]:
        pytest.skip(f"{name} kernels not compiled into this build (another architecture, or "
                    "MINICAFFE_ISAS left them out)")
    for kernel in ("csrmm<float>", "im2col_rows<float>"):
        bodies = [code for fn, code in disassembly.items() if f"mc::{name}::" in fn and kernel in fn]
        assert bodies, f"no mc::{name}:: {kernel} in the module"
        assert any(register in ins for code in bodies for ins in code), \
            f"mc::{name}:: {kernel} uses no {register} registers"
