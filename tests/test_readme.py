"""The README's examples run as written.

Every ```python and ```bash block of README.md is extracted and run, in order, in a scratch
copy of the repository's `prototxt/` with a tiny generated Fashion-MNIST in `data/`. Two things
are scaled down so the whole README runs in about a minute, and only these: every solver's
`max_iter` / `snapshot` (M -> M // 1000, so `lenet_ssl_iter_8000` becomes `lenet_ssl_iter_8`
in the solver files and in the commands alike) and the test passes (2 batches). Commands that
install, benchmark for minutes or run the full experiments are listed in SKIPPED with the
reason (each is exercised by its own test), and the pycaffe section names files of the reader's
own (an LMDB, a mean file, an image).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicaffe.experiments import datasets
from minicaffe.prototxt import read_solver, to_text
from tests.experiments.tinydata import tiny_images

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

SKIPPED = {
    "bash scripts/": "installs the package and the test dependencies (what CI itself runs)",
    "pip install": "installs the package",
    "python -m minicaffe.bench gemm": "a benchmark of minutes (tests/test_bench_cli.py)",
    "python -m pytest bench/": "the benchmark suites (bench/ has its own smoke run in CI)",
    "python -m minicaffe.experiments": "the experiments' full runs; their --quick forms run in "
                                       "tests/experiments/test_experiments.py",
}
SKIPPED_SECTIONS = {"## pycaffe": "names the reader's own files (LMDB, mean file, image)"}


def sections():
    """[(section heading, text)] of the README split at its `## ` headings."""
    parts = re.split(r"^(## .*)$", README, flags=re.M)
    out = [("", parts[0])]
    for k in range(1, len(parts), 2):
        out.append((parts[k], parts[k + 1]))
    return out


def blocks():
    """[(language, code)] of the runnable fenced blocks, in README order."""
    out = []
    for heading, text in sections():
        if any(heading.startswith(s) for s in SKIPPED_SECTIONS):
            continue
        for lang, code in re.findall(r"^```(python|bash)\n(.*?)^```", text, flags=re.M | re.S):
            out.append((lang, code))
    return out


def commands(code):
    """Shell commands of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def scaled(text):
    return re.sub(r"_iter_(\d{4,})", lambda m: f"_iter_{int(m.group(1)) // 1000}", text)


@pytest.fixture
def scratch(tmp_path):
    shutil.copytree(ROOT / "prototxt", tmp_path / "prototxt")
    for path in (tmp_path / "prototxt").rglob("*_solver.prototxt"):
        p = read_solver(str(path))
        if p.max_iter >= 1000:
            p.max_iter //= 1000
            p.snapshot = p.max_iter
        p.test_iter = [2] * max(len(p.test_iter), 1)
        p.test_interval = max(p.max_iter, 1)
        p.display = 1
        path.write_text(to_text(p))
    rng = np.random.default_rng(0)
    for split, n in (("train", 128), ("t10k", 200)):
        x, y = tiny_images(n, rng)
        datasets.write_idx(str(tmp_path / "data" / "fashion-mnist"), split, x, y)
    return tmp_path


def test_the_readme_has_the_examples_this_test_runs():
    found = blocks()
    assert sum(lang == "python" for lang, _ in found) >= 1
    cmds = [c for lang, code in found if lang == "bash" for c in commands(code)]
    for needed in ("bash scripts/main.sh", "python -m minicaffe.train --solver "
                   "prototxt/lenet/lenet_ssl_solver.prototxt", "python -m minicaffe.sweep",
                   "python -m minicaffe.plot", "python -m minicaffe.compact"):
        assert any(c.startswith(needed) for c in cmds), needed


def test_readme_examples_run_as_written(scratch):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    ran = []
    for lang, code in blocks():
        if lang == "python":
            script = scratch / f"readme_{len(ran)}.py"
            script.write_text(scaled(code))
            argv = [sys.executable, str(script)]
            r = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"README python block failed:\n{code}\n{r.stderr[-3000:]}"
            ran.append("python block")
            continue
        for cmd in commands(code):
            if any(cmd.startswith(s) for s in SKIPPED):
                continue
            cmd = scaled(cmd).replace("python -m", f"{sys.executable} -m", 1)
            r = subprocess.run(cmd, shell=True, cwd=scratch, env=env, capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, f"README command failed: {cmd}\n{r.stderr[-3000:]}"
            ran.append(cmd.split()[2] if len(cmd.split()) > 2 else cmd)
    assert len(ran) >= 9, ran
    assert (scratch / "snapshots" / "lenet" / "lenet_finetune_iter_8.caffemodel").exists()
    assert (scratch / "snapshots" / "lenet" / "lenet_ssl_curves.png").exists()
    assert (scratch / "runs" / "sweep" / "sweep.md").exists()
    assert (scratch / "lenet_ssl.onnx").exists()                # the compacted net, exported
