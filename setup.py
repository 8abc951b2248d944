"""Build minicaffe's compiled kernels (minicaffe._kernels) with CMake.

`pip install .` / `pip install -e .` run this with build isolation; pyproject.toml lists what
the build needs (pybind11, cmake, ninja, scipy-openblas32). Environment knobs:
  MINICAFFE_BLAS=openblas-wheel (default) | mkl | system
  MINICAFFE_ISAS="baseline;avx2;avx512"  instruction sets to compile the kernels for (default:
                               all three on x86-64, baseline elsewhere); the CPU's best is
                               chosen at import, MINICAFFE_ISA forces one (docs/KERNELS.md)
  MINICAFFE_ASAN=1             AddressSanitizer build (see docs/KERNELS.md)
  MINICAFFE_BUILD_TYPE=Release | RelWithDebInfo | Debug
  MINICAFFE_CMAKE_ARGS="..."   extra arguments passed to cmake
  MINICAFFE_SKIP_KERNELS=1     install without the compiled kernels (NumPy fallback, slow)

Every build also generates minicaffe/proto/caffe_pb2.py (pycaffe's `caffe.proto.caffe_pb2`) from
minicaffe/proto/caffe.proto with the protoc of grpcio-tools (a build requirement); the generated
file is not kept in git. `python setup.py build_ext --inplace` writes it next to caffe.proto.
"""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


PROTO = ROOT / "minicaffe" / "proto" / "caffe.proto"


def generate_caffe_pb2(out_dir):
    """Run protoc (grpcio-tools) on minicaffe/proto/caffe.proto; writes out_dir/caffe_pb2.py."""
    try:
        from grpc_tools import protoc  # noqa: PLC0415  (a build requirement, see pyproject.toml)
    except ImportError as exc:
        raise RuntimeError("building minicaffe needs grpcio-tools to generate caffe_pb2.py from "
                           f"{PROTO.relative_to(ROOT)} (pip install grpcio-tools)") from exc
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={out_dir}",
                      str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit status {rc})")


class BuildPy(build_py):
    """Also generate caffe_pb2.py: into the build tree, and next to caffe.proto for an
    editable install (where the source tree is what gets imported)."""

    def run(self):
        super().run()
        generate_caffe_pb2(Path(self.build_lib) / "minicaffe" / "proto")
        if getattr(self, "editable_mode", False):
            generate_caffe_pb2(PROTO.parent)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


def _cmake_exe():
    try:
        import cmake  # noqa: PLC0415  (the pip wheel, a build requirement)

        return str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    except ImportError:
        return shutil.which("cmake") or "cmake"


def _ninja_args():
    try:
        import ninja  # noqa: PLC0415

        return ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={Path(ninja.BIN_DIR) / 'ninja'}"]
    except ImportError:
        return ["-G", "Ninja"] if shutil.which("ninja") else []


class CMakeBuild(build_ext):
    def run(self):
        if self.inplace or getattr(self, "editable_mode", False):
            generate_caffe_pb2(PROTO.parent)
        super().run()

    def build_extension(self, ext):
        import pybind11  # noqa: PLC0415

        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        out_dir = target.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        blas = os.environ.get("MINICAFFE_BLAS", "openblas-wheel")
        args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('MINICAFFE_BUILD_TYPE', 'Release')}",
            f"-DMINICAFFE_BLAS={blas}",
            f"-DMINICAFFE_ASAN={'ON' if os.environ.get('MINICAFFE_ASAN') == '1' else 'OFF'}",
        ]
        if os.environ.get("MINICAFFE_ISAS"):
            args.append(f"-DMINICAFFE_ISAS={os.environ['MINICAFFE_ISAS']}")
        if "MINICAFFE_NATIVE_ARCH" in os.environ:
            print("setup.py: MINICAFFE_NATIVE_ARCH is retired and ignored: the kernels are built "
                  "for baseline x86-64, AVX2 and AVX-512 and the CPU's best runs (MINICAFFE_ISA "
                  "forces one at run time)", file=sys.stderr)
        if blas == "openblas-wheel":
            import scipy_openblas32  # noqa: PLC0415

            args += [f"-DSCIPY_OPENBLAS_INCLUDE_DIR={scipy_openblas32.get_include_dir()}",
                     f"-DSCIPY_OPENBLAS_LIB_DIR={scipy_openblas32.get_lib_dir()}"]
        args += shlex.split(os.environ.get("MINICAFFE_CMAKE_ARGS", ""))
        cmake = _cmake_exe()
        subprocess.run([cmake, "-S", str(ROOT), "-B", str(build_dir), *_ninja_args(), *args],
                       check=True)
        subprocess.run([cmake, "--build", str(build_dir), "--parallel", "2"], check=True)
        built = sorted(out_dir.glob("_kernels*.so")) if not target.exists() else [target]
        if not built:
            raise RuntimeError(f"CMake did not produce {target}")
        if built[0] != target:
            shutil.copy2(built[0], target)


_skip = os.environ.get("MINICAFFE_SKIP_KERNELS") == "1"
setup(ext_modules=[] if _skip else [CMakeExtension("minicaffe._kernels")],
      cmdclass={"build_ext": CMakeBuild, "build_py": BuildPy})
