"""What the mpirun tests share: finding the launcher, running `mpirun -n P ...`, writing small
generated datasets and nets, and comparing snapshots."""
import struct
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minicaffe.testing import mpi

ROOT = Path(__file__).resolve().parents[2]


def need_mpi():
    """Skip (with the fix in the reason) when mpi4py or an MPI launcher is missing; CI installs
    both through the `test` extra, so there such a skip fails the run."""
    reason = mpi.missing()
    if reason:
        pytest.skip(reason)


def mpirun(n, args, cwd, timeout=120, env=None):
    """Run `mpirun -n n python <args>` in `cwd` (one thread per rank, Open MPI allowed as
    root, the replicas' watchdog at 60 s); returns (CompletedProcess, seconds)."""
    return mpi.mpirun(n, args, cwd, ROOT, timeout=timeout, env=env)


def write_idx(folder, n=64, size=12, classes=10, seed=0, name="train"):
    """IDX images (pixel [0, 0] = the record's index) and labels; returns the images path."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    labels = rng.integers(0, classes, size=n, dtype=np.uint8)
    for path, array, magic in ((f"{name}-images-idx3-ubyte", images, 0x803),
                               (f"{name}-labels-idx1-ubyte", labels, 0x801)):
        with open(Path(folder) / path, "wb") as f:
            f.write(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape))
            f.write(array.tobytes())
    return str(Path(folder) / f"{name}-images-idx3-ubyte")


def write_lmdb(folder, n=48, shape=(3, 10, 10), classes=5, seed=1):
    from minicaffe.data import LMDBWriter, encode_datum

    rng = np.random.default_rng(seed)
    path = Path(folder) / "train_lmdb"
    with LMDBWriter(str(path)) as db:
        for i in range(n):
            db.put(f"{i:08d}", encode_datum(rng.integers(0, 256, shape, dtype=np.uint8),
                                            int(rng.integers(classes))))
    return str(path)


def write(folder, name, text):
    path = Path(folder) / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def solver_text(net, prefix, max_iter, extra=""):
    return f"""
        net: "{net}"
        base_lr: 0.05 momentum: 0.9 weight_decay: 0.0005 lr_policy: "step" gamma: 0.5 stepsize: 3
        max_iter: {max_iter} display: 1 snapshot: 2 snapshot_prefix: "{prefix}"
        random_seed: 42 solver_mode: CPU
        {extra}
    """


def read_weights(path):
    from minicaffe.weights import read_caffemodel

    return {(name, j): a for name, _, arrays in read_caffemodel(path) for j, a in enumerate(arrays)}


def assert_same_weights(a, b, rtol=2e-5, atol=2e-6):
    wa, wb = read_weights(a), read_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_allclose(wa[key], wb[key], rtol=rtol, atol=atol,
                                   err_msg=f"layer '{key[0]}' blob {key[1]}: {a} vs {b}")


def train_here(solver_path, snapshot=None):
    """The single-process baseline, in this process (no interpreter start-up)."""
    from minicaffe.solver import get_solver

    solver = get_solver(solver_path)
    solver.solve(snapshot)
    for layer in solver.net.layers + [l for tn in solver.test_nets for l in tn.layers]:
        if hasattr(layer, "close"):
            layer.close()
    return solver
