"""`mpirun -n 2 python -m minicaffe.train`: two replicas train to the weights one process gets
with the doubled batch (LeNet with the SSL group terms, and a BatchNorm net with crops, mirrors
and Dropout), read disjoint slices of every epoch, resume from snapshots across replica counts,
and end the whole job within seconds, with the last snapshot intact, when a rank raises, is
killed, stops responding or is asked to stop. Small generated data; each test runs in seconds."""
import json
import re
import sys

import numpy as np
import pytest

from tests.parallel.mpi_helpers import (ROOT, assert_same_weights, mpirun, need_mpi, read_weights,
                                        solver_text, train_here, write, write_idx, write_lmdb)

pytestmark = pytest.mark.slow

LENET = """
    name: "LeNet"
    layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
      transform_param {{ scale: 0.00390625 }}
      data_param {{ source: "{train}" batch_size: {batch} backend: IDX }} }}
    layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
      transform_param {{ scale: 0.00390625 }}
      data_param {{ source: "{test}" batch_size: 20 backend: IDX }} }}
    layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
      param {{ lr_mult: 1 breadth_decay_mult: 1 kernel_shape_decay_mult: 1 }} param {{ lr_mult: 2 }}
      convolution_param {{ num_output: 20 kernel_size: 5 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
      pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
    layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
      param {{ lr_mult: 1 breadth_decay_mult: 1 kernel_shape_decay_mult: 1 }} param {{ lr_mult: 2 }}
      convolution_param {{ num_output: 50 kernel_size: 5 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
      pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
      inner_product_param {{ num_output: 500 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
    layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
      inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
      include {{ phase: TEST }} }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
    {extra}
"""

BNNET = """
    name: "BNNet"
    layer {{ name: "data" type: "Data" top: "data" top: "label"
      transform_param {{ scale: 0.0078125 mean_value: 128 crop_size: 8 mirror: true }}
      data_param {{ source: "{lmdb}" batch_size: {batch} backend: LMDB }} }}
    layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
      convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 bias_term: false
                          weight_filler {{ type: "msra" }} }} }}
    layer {{ name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }}
    layer {{ name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param {{ bias_term: true }} }}
    layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
    layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
      pooling_param {{ pool: AVE kernel_size: 2 stride: 2 }} }}
    layer {{ name: "drop1" type: "Dropout" bottom: "pool1" top: "pool1" dropout_param {{ dropout_ratio: 0.2 }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
      inner_product_param {{ num_output: 5 weight_filler {{ type: "xavier" }} }} }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""

# A Python layer that misbehaves on one rank at one forward (rank from the launcher's env).
FAULT = '''
import os
import signal

import minicaffe as caffe


def _rank():
    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


class Fault(caffe.Layer):
    """param_str 'rank:forward:kind' (kind: raise, kill, stop, term)."""

    def setup(self, bottom, top):
        rank, at, self.kind = self.param_str.split(":")
        self.armed = _rank() == int(rank)
        self.at, self.count = int(at), 0

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.count += 1
        top[0].data[...] = 0
        if not self.armed or self.count != self.at:
            return
        if self.kind == "raise":
            raise RuntimeError("injected failure in forward %d" % self.count)
        sig = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "term": signal.SIGTERM}[self.kind]
        os.kill(os.getpid(), sig)

    def backward(self, top, propagate_down, bottom):
        pass
'''


@pytest.fixture(autouse=True)
def _mpi():
    need_mpi()


def _lenet(tmp_path, batch, tag, max_iter, extra="", threshold=0):
    """LeNet with the SSL row and column terms. The zero threshold is off by default: a weight
    within float rounding of it may be zeroed in one run and not in the other (a discontinuity,
    not a difference in the computation), so runs compared weight by weight leave it at 0."""
    train = write_idx(tmp_path, n=96, size=28, name="train")
    test = write_idx(tmp_path, n=40, size=28, seed=5, name="t10k")
    net = write(tmp_path, f"lenet_{tag}.prototxt",
                LENET.format(train=train, test=test, batch=batch, extra=extra))
    return write(tmp_path, f"solver_{tag}.prototxt", solver_text(
        net, str(tmp_path / tag / "lenet"), max_iter,
        "test_iter: 2 test_interval: 3 breadth_decay: 0.001 kernel_shape_decay: 0.002 "
        f"zero_threshold: {threshold}"))


def _train_args(solver, *more):
    return ["-m", "minicaffe.train", "--solver", solver, "--no-progress", *more]


def _ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"


def test_lenet_two_ranks_equal_one_process_with_the_doubled_batch(tmp_path):
    two = _lenet(tmp_path, 16, "two", 6)
    one = _lenet(tmp_path, 32, "one", 6)
    proc, _ = mpirun(2, _train_args(two, "--mpi-check"), tmp_path)
    _ok(proc)
    train_here(one)
    for it in (2, 4, 6):
        assert_same_weights(tmp_path / "two" / f"lenet_iter_{it}.caffemodel",
                            tmp_path / "one" / f"lenet_iter_{it}.caffemodel")
    # only rank 0 logs, tests and writes; its loss is the global batch's
    log = proc.stderr
    assert log.count("Optimization Done.") == 1 and log.count("Testing net (#0)") == 3
    assert "Data parallel: 2 replicas" in log
    losses = re.findall(r"Iteration (\d+).*, loss = ([0-9.e+-]+)", log)
    base = json.loads((tmp_path / "one" / "lenet_summary.json").read_text())
    mine = json.loads((tmp_path / "two" / "lenet_summary.json").read_text())
    assert len(losses) == 7 and abs(mine["smoothed_loss"] - base["smoothed_loss"]) < 1e-4
    assert len(mine["last_test"]["outputs"]) == len(base["last_test"]["outputs"])
    for got, want in zip(mine["last_test"]["outputs"], base["last_test"]["outputs"]):
        assert got == pytest.approx(want, rel=1e-4)      # one dict per test net (pytest 9.2's
                                                        # approx takes no list of dicts)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())


def test_batch_norm_net_with_crops_mirrors_and_dropout(tmp_path):
    lmdb = write_lmdb(tmp_path)
    solvers = {}
    for tag, batch in (("two", 6), ("one", 12)):
        net = write(tmp_path, f"bn_{tag}.prototxt", BNNET.format(lmdb=lmdb, batch=batch))
        solvers[tag] = write(tmp_path, f"solver_{tag}.prototxt",
                             solver_text(net, str(tmp_path / tag / "bn"), 6))
    proc, _ = mpirun(2, _train_args(solvers["two"], "--mpi-check"), tmp_path)
    _ok(proc)
    train_here(solvers["one"])
    assert_same_weights(tmp_path / "two" / "bn_iter_6.caffemodel",
                        tmp_path / "one" / "bn_iter_6.caffemodel")
    # local BatchNorm (Caffe's multi-GPU way) is another computation, identical on every rank
    proc, _ = mpirun(2, _train_args(solvers["two"], "--mpi-check", "--batch-norm", "local"),
                     tmp_path)
    _ok(proc)
    local = read_weights(tmp_path / "two" / "bn_iter_6.caffemodel")
    sync = read_weights(tmp_path / "one" / "bn_iter_6.caffemodel")
    assert not np.allclose(local[("bn1", 1)], sync[("bn1", 1)], rtol=1e-4)


def _cifar10_quick(tmp_path, batch, tag, max_iter):
    """The shipped CIFAR-10 quick net and its SSL terms, reading generated CIFAR-10 records
    (random pixels, the real binary format) with `batch` per process."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(48, 1 + 3 * 32 * 32), dtype=np.uint8)
    rows[:, 0] %= 10
    (tmp_path / "data_batch_1.bin").write_bytes(rows.tobytes())
    text = (ROOT / "prototxt" / "cifar10" / "cifar10_quick_train_test.prototxt").read_text()
    text = text.replace('"data/cifar10/cifar-10-batches-bin/test_batch.bin"',
                        f'"{tmp_path}/data_batch_1.bin"')
    text = text.replace('"data/cifar10/cifar-10-batches-bin"', f'"{tmp_path}/data_batch_1.bin"')
    text = text.replace("batch_size: 100", f"batch_size: {batch}", 1)
    net = write(tmp_path, f"cifar_{tag}.prototxt", text)
    return write(tmp_path, f"solver_{tag}.prototxt", solver_text(
        net, str(tmp_path / tag / "cifar"), max_iter,
        "test_iter: 1 test_interval: 4 breadth_decay: 0.001 kernel_shape_decay: 0.002"))


def test_cifar10_quick_two_ranks_equal_one_process_with_the_doubled_batch(tmp_path):
    two = _cifar10_quick(tmp_path, 8, "two", 4)
    one = _cifar10_quick(tmp_path, 16, "one", 4)
    proc, _ = mpirun(2, _train_args(two, "--mpi-check"), tmp_path)
    _ok(proc)
    train_here(one)
    for it in (2, 4):
        assert_same_weights(tmp_path / "two" / f"cifar_iter_{it}.caffemodel",
                            tmp_path / "one" / f"cifar_iter_{it}.caffemodel")


SHARDS = '''
import json
import sys

import numpy as np
from mpi4py import MPI

from minicaffe import parallel

solver = parallel.get_solver(sys.argv[1])
ids = []
for _ in range(int(sys.argv[2])):
    solver.net.forward()
    ids += np.rint(solver.net.blobs["data"].data[:, 0, 0, 0] * 256).astype(int).tolist()
every = MPI.COMM_WORLD.gather(ids, root=0)
if MPI.COMM_WORLD.rank == 0:
    with open(sys.argv[3], "w") as f:
        json.dump(every, f)
'''


def test_every_epoch_is_split_without_duplicates(tmp_path):
    """3 replicas of batch 4 over 48 records: each epoch (4 global batches) reads every record
    once, each replica a different quarter of each global batch."""
    train = write_idx(tmp_path, n=48, size=6)
    net = write(tmp_path, "net.prototxt", f"""
        layer {{ name: "d" type: "Data" top: "data" top: "label"
          transform_param {{ scale: 0.00390625 }}
          data_param {{ source: "{train}" batch_size: 4 backend: IDX }} }}
        layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
          inner_product_param {{ num_output: 10 }} }}
        layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
    """)
    solver = write(tmp_path, "solver.prototxt", solver_text(net, "s", 1))
    script = write(tmp_path, "shards.py", SHARDS)
    proc, _ = mpirun(3, [script, solver, "8", "ids.json"], tmp_path)
    _ok(proc)
    every = json.loads((tmp_path / "ids.json").read_text())
    assert len(every) == 3
    for epoch in range(2):
        seen = [i for ids in every for i in ids[epoch * 16:(epoch + 1) * 16]]
        assert sorted(seen) == list(range(48)), f"epoch {epoch}"
    for r, ids in enumerate(every):          # rank r: records 12k + 4r .. 12k + 4r + 3
        assert ids[:4] == [4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3]


def _faulty_lenet(tmp_path, fault, max_iter=8):
    (tmp_path / "faulty.py").write_text(FAULT)
    extra = (f'layer {{ name: "fault" type: "Python" top: "fault" include {{ phase: TRAIN }} '
             f'python_param {{ module: "faulty" layer: "Fault" param_str: "{fault}" }} }}\n'
             'layer { name: "silence" type: "Silence" bottom: "fault" include { phase: TRAIN } }')
    return _lenet(tmp_path, 8, "f", max_iter, extra=extra, threshold=0.002)


def _assert_snapshot_intact(tmp_path, it):
    from minicaffe.solver import get_solver

    state = tmp_path / "f" / f"lenet_iter_{it}.solverstate"
    assert state.exists() and not list((tmp_path / "f").glob(".*minicaffe-tmp*"))
    solver = get_solver(str(tmp_path / "solver_f.prototxt"))
    solver.restore(str(state))
    assert solver.iter == it


@pytest.mark.parametrize("kind", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_within_seconds(tmp_path, kind):
    """Rank 1 fails in the forward of iteration 5 (after the snapshot of iteration 4)."""
    solver = _faulty_lenet(tmp_path, f"1:6:{kind}")
    proc, seconds = mpirun(2, _train_args(solver), tmp_path, timeout=90)
    assert proc.returncode != 0
    assert seconds < 30, f"took {seconds:.0f} s"
    err = proc.stdout + proc.stderr
    if kind == "raise":
        assert "rank 1 of 2 failed (iteration 5): RuntimeError: injected failure in forward 6" in err
        assert "Traceback" in err
    else:
        assert re.search(r"rank 1 .*(signal 9|Killed)", err, re.S), err[-3000:]
    _assert_snapshot_intact(tmp_path, 4)


def test_a_rank_that_stops_answering_is_caught_by_the_watchdog(tmp_path):
    """Rank 1 is stopped (SIGSTOP, as a hung process): mpirun sees nothing, rank 0's watchdog
    ends the job after MINICAFFE_MPI_TIMEOUT seconds."""
    solver = _faulty_lenet(tmp_path, "1:6:stop")
    proc, seconds = mpirun(2, _train_args(solver), tmp_path, timeout=90,
                           env={"MINICAFFE_MPI_TIMEOUT": "3"})
    assert proc.returncode != 0 and seconds < 40
    err = proc.stdout + proc.stderr
    assert re.search(r"rank 0 of 2: no answer from the other replicas for \d+ s in the gradient "
                     r"allreduce \(iteration 5\)", err), err[-3000:]
    _assert_snapshot_intact(tmp_path, 4)


def test_sigterm_on_one_rank_stops_every_rank_with_a_snapshot(tmp_path):
    """Also: with the SSL terms and a zero threshold that zeroes many weights, the replicas
    stay bit-identical (--mpi-check compares them after every update)."""
    solver = _faulty_lenet(tmp_path, "1:4:term", max_iter=20)
    proc, _ = mpirun(2, _train_args(solver, "--mpi-check"), tmp_path)
    _ok(proc)
    assert "Optimization stopped early." in proc.stderr
    _assert_snapshot_intact(tmp_path, 4)       # iteration 3's forward: stop after it, at 4
    assert not (tmp_path / "f" / "lenet_iter_6.solverstate").exists()
    w = read_weights(tmp_path / "f" / "lenet_iter_4.caffemodel")
    assert (w[("conv2", 0)] == 0).sum() > 100, "the zero threshold acted"


def test_resume_with_another_replica_count(tmp_path):
    """A snapshot written by 2 replicas, resumed by 1 process with the doubled batch, and one
    written by 1 process, resumed by 2 replicas, both end where the one process resumed from
    its own snapshot ends (a resumed run starts its data from the beginning, as Caffe's)."""
    one = _lenet(tmp_path, 32, "one", 2)
    train_here(one)                                     # one process: 0 -> 2
    ref = _lenet(tmp_path, 32, "ref", 6)
    train_here(ref, snapshot=str(tmp_path / "one" / "lenet_iter_2.solverstate"))   # 2 -> 6
    two = _lenet(tmp_path, 16, "two", 2)
    proc, _ = mpirun(2, _train_args(two), tmp_path)     # two replicas: 0 -> 2
    _ok(proc)
    mixed = _lenet(tmp_path, 32, "mixed", 6)            # their snapshot, one process: 2 -> 6
    train_here(mixed, snapshot=str(tmp_path / "two" / "lenet_iter_2.solverstate"))
    assert_same_weights(tmp_path / "mixed" / "lenet_iter_6.caffemodel",
                        tmp_path / "ref" / "lenet_iter_6.caffemodel")
    back = _lenet(tmp_path, 16, "back", 6)              # one process's snapshot, two replicas
    proc, _ = mpirun(2, _train_args(back, "--mpi-check", "--snapshot",
                                    str(tmp_path / "one" / "lenet_iter_2.solverstate")), tmp_path)
    _ok(proc)
    assert "Restoring previous solver status" in proc.stderr
    assert_same_weights(tmp_path / "back" / "lenet_iter_6.caffemodel",
                        tmp_path / "ref" / "lenet_iter_6.caffemodel")
    runs = [json.loads(line) for line in (tmp_path / "back" / "lenet_log.jsonl").read_text()
            .splitlines()]
    assert runs[0]["kind"] == "run" and runs[0]["iter"] == 2 and runs[0]["resumed_from"]
    proc, _ = mpirun(2, _train_args(back, "--snapshot", "nothing.solverstate"), tmp_path)
    assert proc.returncode == 1 and proc.stderr.count("does not exist") == 1, proc.stderr
    assert "MPI_ABORT" not in proc.stderr


def test_a_configuration_error_is_reported_once(tmp_path):
    """The same error on every rank (here a missing data file) is one message and a clean exit
    status 1; a snapshot that cannot be restored likewise."""
    net = write(tmp_path, "net.prototxt", """
        layer { name: "d" type: "Data" top: "data" top: "label"
          data_param { source: "missing-images-idx3-ubyte" batch_size: 4 backend: IDX } }
    """)
    solver = write(tmp_path, "solver.prototxt", solver_text(net, "s", 1))
    proc, seconds = mpirun(2, _train_args(solver), tmp_path)
    assert proc.returncode == 1 and seconds < 30
    assert proc.stderr.count("missing-images-idx3-ubyte: no such file") == 1, proc.stderr
    assert "MPI_ABORT" not in proc.stderr


def test_without_mpi_the_launch_is_refused_clearly(tmp_path, monkeypatch):
    """Started by mpirun (its environment) where mpi4py cannot be imported: a clear error, not
    P independent trainings writing the same snapshots."""
    import subprocess

    solver = write(tmp_path, "solver.prototxt", solver_text("net.prototxt", "s", 1))
    (tmp_path / "mpi4py").mkdir()
    (tmp_path / "mpi4py" / "__init__.py").write_text("raise ImportError('no MPI here')\n")
    env = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", "PYTHONPATH":
           f"{tmp_path}:{__import__('tests.parallel.mpi_helpers').parallel.mpi_helpers.ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "minicaffe.train", "--solver", solver],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "needs mpi4py (this process is rank 0 of 2)" in proc.stderr
    assert 'pip install "minicaffe[mpi]"' in proc.stderr


@pytest.mark.parametrize("flags, extra, named", [
    (["--flops-target", "0.25"], "", "--flops-target"),
    (["--latency-target", "5"], "", "--latency-target"),
    ([], "flops_target: 0.25", "solver.prototxt: flops_target"),
])
def test_a_budget_is_refused_under_data_parallelism(tmp_path, flags, extra, named):
    """The budget controller steers one process's solver: asked for under mpirun (a flag or the
    solver's field) the run stops at once with a message naming what asked, instead of every
    replica training with the budget silently dropped."""
    import subprocess

    solver = write(tmp_path, "solver.prototxt", solver_text("net.prototxt", "s", 1, extra))
    proc = subprocess.run([sys.executable, "-m", "minicaffe.train", "--solver", solver,
                           "--mpi", "on", *flags], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**__import__("os").environ,
                                                      "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert f"{named} with data parallelism" in proc.stderr, proc.stderr
    assert not (tmp_path / "s_iter_1.caffemodel").exists()
