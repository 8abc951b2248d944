"""Fault tests of `python -m minicaffe.train`: killed with SIGKILL at random points while it
trains and snapshots, then resumed, again and again. No finished snapshot may be corrupt, and
the next start removes the unfinished files of the killed run. (Signals, a full disk and
divergence have their own tests: tests/test_cli.py, tests/solver/test_snapshots.py.)"""
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minicaffe import prototxt as P
from minicaffe import weights
from minicaffe.solver import get_solver, state
from minicaffe.solver.runlog import read_log

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

# A weight matrix of 2 MB makes each snapshot (weights + momentum, flushed to disk) take most of
# an iteration's time, so random kills land inside snapshot writes as well as between them.
NET = """
name: "big"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 1000 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 500 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
SOLVER = """net: "net.prototxt"
base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} display: 1
snapshot: 1 snapshot_prefix: "out/big" random_seed: 1 sparsity_report: false
"""


def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONWARNINGS"] = "ignore"
    return e


def _temps(folder):
    return [n for n in os.listdir(folder) if n.startswith(".") and state.TEMP_SUFFIX in n]


def _iter_of(path):
    return int(Path(path).stem.rsplit("_", 1)[1])


def _check_finished_snapshots(tmp_path):
    """Every visible snapshot file is complete: weights load and are finite, every state
    restores into a solver (which checks each entry) with its own iteration."""
    out = tmp_path / "out"
    param = P.read_solver(str(tmp_path / "solver.prototxt"))
    param.snapshot_prefix = str(tmp_path / "check" / "c")
    param.net = str(tmp_path / "net.prototxt")
    states = sorted(out.glob("big_iter_*.solverstate"), key=_iter_of)
    for model in out.glob("big_iter_*.caffemodel"):
        for _, _, arrays in weights.load(str(model)):
            assert all(np.isfinite(a).all() for a in arrays), model
    for st in states[-2:]:                         # the newest ones: the likeliest victims
        solver = get_solver(param)
        solver.restore(str(st))
        assert solver.iter == _iter_of(st)
    return states


def _wait_for(log, text, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in log.read_text() or proc.poll() is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"no '{text}' within {timeout} s:\n{log.read_text()[-2000:]}")


def _wait_for_a_write(folder, proc, timeout=60):
    """Return as soon as `proc` has a snapshot's temporary file open in `folder` (a write in
    progress), so that the kill lands inside a write on any machine, however fast its disk."""
    deadline = time.time() + timeout
    mine = f".{proc.pid}."
    while time.time() < deadline and proc.poll() is None:
        if folder.exists() and any(mine in n for n in _temps(folder)):
            return
    raise AssertionError("no snapshot write seen")


def test_kill_9_at_random_points_then_resume(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER.format(max_iter=10**6))
    rng = random.Random(17)
    kills_in_a_write = 0
    for round_ in range(4):
        states = sorted((tmp_path / "out").glob("big_iter_*.solverstate"), key=_iter_of) \
            if (tmp_path / "out").exists() else []
        args = ["--snapshot", str(states[-1].relative_to(tmp_path))] if states else []
        log = tmp_path / f"round{round_}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "minicaffe.train", "--solver",
                                     "solver.prototxt", *args], cwd=tmp_path, env=_env(),
                                    stderr=err)
        try:
            _wait_for(log, "Iteration", proc)
            assert proc.poll() is None, log.read_text()[-2000:]
            # the start removed the unfinished files of the run killed before
            assert all(f".{proc.pid}." in n for n in _temps(tmp_path / "out")), \
                _temps(tmp_path / "out")
            if round_ % 2:
                _wait_for_a_write(tmp_path / "out", proc)   # kill inside a snapshot write
            else:
                time.sleep(rng.uniform(0.02, 0.4))          # kill anywhere
        finally:
            proc.kill()
            proc.wait()
        kills_in_a_write += bool(_temps(tmp_path / "out"))
        _check_finished_snapshots(tmp_path)
    assert kills_in_a_write >= 1, "no kill landed inside a snapshot write"
    # a last run, resumed, finishes normally and leaves no temporary file
    states = sorted((tmp_path / "out").glob("big_iter_*.solverstate"), key=_iter_of)
    (tmp_path / "solver.prototxt").write_text(SOLVER.format(max_iter=_iter_of(states[-1]) + 2))
    r = subprocess.run([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt",
                        "--snapshot", str(states[-1].relative_to(tmp_path))], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Optimization Done." in r.stderr
    assert _temps(tmp_path / "out") == []
    # the loss-curve log survives the kills: each resumed run's section reads back (a record a
    # kill cut short is skipped, never a crash of the next start or of read_log)
    runs = read_log(str(tmp_path / "out" / "big_log.jsonl"))
    assert runs[-1][0]["resumed_from"] and runs[-1][1][0]["iter"] == _iter_of(states[-1])
