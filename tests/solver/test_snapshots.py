"""Snapshots under faults, in process: divergence (only finite snapshots are written, the one
named resumes with a finite loss), umask, stale temp files, a full disk."""
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minicaffe import prototxt as P
from minicaffe import weights
from minicaffe.errors import DivergenceError, SnapshotError
from minicaffe.solver import get_solver, state

ROOT = Path(__file__).resolve().parents[2]

NET = """
name: "lsq"
layer { name: "data" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 8 dim: 6 } shape { dim: 8 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def make_solver(prefix, base_lr=0.01, snapshot=1):
    sp = P.parse_solver(f'base_lr: {base_lr} lr_policy: "fixed" momentum: 0.9 max_iter: 400 '
                        f'random_seed: 3 snapshot: {snapshot} snapshot_prefix: "{prefix}" '
                        'sparsity_report: false')
    sp.net_param = P.parse_net(NET)
    solver = get_solver(sp)
    rng = np.random.default_rng(0)
    solver.net.blobs["x"].data[...] = rng.standard_normal((8, 6)) * 3
    solver.net.blobs["t"].data[...] = rng.standard_normal((8, 2))
    return solver


def _finite(path):
    return all(np.isfinite(a).all() for _, _, arrays in weights.load(path) for a in arrays)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # overflow on the way to inf
@pytest.mark.parametrize("lr", [0.05, 0.1, 0.3, 3.0, 1e4, 1e30])
def test_divergence_names_a_snapshot_that_resumes_with_a_finite_loss(tmp_path, lr):
    """The "last good snapshot" named after a divergence used to be the newest one written,
    which could hold inf weights or weights whose very next loss was inf."""
    prefix = str(tmp_path / "lsq")
    solver = make_solver(prefix, base_lr=lr)
    with pytest.raises(DivergenceError) as err:
        solver.solve()
    message = str(err.value)
    written = sorted(tmp_path.glob("lsq_iter_*.caffemodel"))
    assert written, message
    for path in written:                                   # never a non-finite snapshot
        assert _finite(str(path)), path
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    m = re.search(r"Last good snapshot \(finite weights and loss\): (\S+\.solverstate)", message)
    if m is None:
        # Diverged before any snapshot's loss was seen finite: the message says so.
        assert "No snapshot of this run had finite weights and loss" in message, message
        return
    named = m.group(1)
    resumed = make_solver(str(tmp_path / "again"), base_lr=lr)
    resumed.restore(named)
    assert _finite(named.replace(".solverstate", ".caffemodel"))
    assert math.isfinite(resumed.net.forward_backward())
    # it is the newest such snapshot: every later one gives a non-finite loss at once
    it = resumed.iter
    for path in written:
        later = int(path.stem.rsplit("_", 1)[1])
        if later > it:
            probe = make_solver(str(tmp_path / "probe"), base_lr=lr)
            probe.restore(str(path).replace(".caffemodel", ".solverstate"))
            assert not math.isfinite(probe.net.forward_backward()), path


def test_a_snapshot_with_non_finite_weights_is_refused(tmp_path):
    solver = make_solver(str(tmp_path / "lsq"), snapshot=2)
    solver.step(3)
    good = str(tmp_path / "lsq_iter_2.solverstate")     # iteration 2's loss was finite at it
    solver.net.params["ip2"][0].data[0, 1] = np.inf
    with pytest.raises(DivergenceError, match=r"Iteration 3: layer 'ip2' param 0 \(2, 5\) holds "
                                              r"non-finite values; snapshot .*lsq_iter_3 not "
                                              r"written\. Last good snapshot \(finite weights and "
                                              rf"loss\): {re.escape(good)}"):
        solver.snapshot()
    assert not (tmp_path / "lsq_iter_3.caffemodel").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_snapshots_follow_the_umask(tmp_path, umask):
    """Snapshots were created 0600 (mkstemp) whatever the umask."""
    solver = make_solver(str(tmp_path / "lsq"))
    old = os.umask(umask)
    try:
        path = solver.snapshot()
    finally:
        os.umask(old)
    for p in (path, path.replace(".solverstate", ".caffemodel")):
        assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask, (p, oct(os.stat(p).st_mode))


def test_stale_temp_files_of_ours_are_removed_at_the_next_start(tmp_path):
    dead = 2**22 + 12345                                   # above pid_max: never alive
    ours = [f".lsq_iter_7.{dead}.minicaffe-tmp.caffemodel",
            f".lsq_iter_7.{dead}.minicaffe-tmp.solverstate"]
    kept = [f".lsq_iter_7.{os.getppid()}.minicaffe-tmp.caffemodel",  # a live writer's
            ".other_iter_7.999.minicaffe-tmp.caffemodel",            # another prefix
            ".lsq_iter_7.caffemodel.tmp", "notes.txt"]
    for name in ours + kept:
        (tmp_path / name).write_bytes(b"partial")
    make_solver(str(tmp_path / "lsq"))
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_an_interrupted_write_keeps_the_previous_snapshot_and_is_cleaned_later(tmp_path):
    """The process is killed (SIGKILL) in the middle of writing a snapshot."""
    child = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT / "tests" / "solver")!r})
        from test_snapshots import make_solver
        solver = make_solver({str(tmp_path / "lsq")!r})
        solver.step(2)
        real = np.savez
        def dying(f, **arrays):
            f.write(b"PK\\x03\\x04 half a zip")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        np.savez = dying
        solver.step(1)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == -9, out.stderr[-2000:]
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if ".minicaffe-tmp." in n], names
    assert "lsq_iter_3.solverstate" not in names
    make_solver(str(tmp_path / "lsq"))                     # the next start
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.startswith(".")], names
    resumed = make_solver(str(tmp_path / "again"))
    resumed.restore(str(tmp_path / "lsq_iter_2.solverstate"))
    assert resumed.iter == 2


@pytest.mark.parametrize("limit", [200, 2000])
def test_a_full_disk_is_a_clear_error_and_the_previous_snapshot_stays(tmp_path, limit):
    """RLIMIT_FSIZE in a child process stands in for a full disk (writes fail with EFBIG, as
    they would with ENOSPC); the first snapshot was written before the limit."""
    child = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT / "tests" / "solver")!r})
        from test_snapshots import make_solver
        from minicaffe.errors import SnapshotError
        solver = make_solver({str(tmp_path / "lsq")!r}, snapshot=0)
        solver.step(2)
        solver.snapshot()
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        solver.step(1)
        try:
            solver.snapshot()
        except SnapshotError as e:
            print("SnapshotError:", e)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"SnapshotError: snapshot of iteration 3 to .*lsq_iter_3\.(caffemodel|"
                     r"solverstate) failed: \[Errno 27\] File too large; nothing of it was kept, "
                     r"the previous snapshot .*lsq_iter_2\.solverstate is intact", out.stdout), \
        out.stdout + out.stderr
    assert sorted(os.listdir(tmp_path)) == ["lsq_iter_2.caffemodel", "lsq_iter_2.solverstate"]
    resumed = make_solver(str(tmp_path / "again"))
    resumed.restore(str(tmp_path / "lsq_iter_2.solverstate"))
    assert resumed.iter == 2


def test_snapshot_error_is_an_os_error_and_ours():
    assert issubclass(SnapshotError, OSError)
    assert state.TEMP_SUFFIX == ".minicaffe-tmp"
