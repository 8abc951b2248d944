"""Snapshot files: a truncated, foreign or malformed .solverstate is a SolverError naming the
file, and a failed restore leaves the solver as it was."""
import os
import zipfile

import numpy as np
import pytest

from minicaffe import prototxt as P
from minicaffe.errors import SolverError
from minicaffe.solver import get_solver

NET = """
name: "lsq"
layer { name: "data" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def make_solver(prefix, text=""):
    sp = P.parse_solver(f'base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 max_iter: 50 '
                        f'random_seed: 3 snapshot_prefix: "{prefix}" ' + text)
    sp.net_param = P.parse_net(NET)
    solver = get_solver(sp)
    rng = np.random.default_rng(0)
    solver.net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    solver.net.blobs["t"].data[...] = rng.standard_normal((4, 2))
    return solver


@pytest.fixture
def snapshot(tmp_path):
    solver = make_solver(str(tmp_path / "lsq"))
    solver.step(3)
    return solver.snapshot()


def _fresh_state(solver):
    return ([b.data.copy() for b in solver.net.learnable_params],
            [h.copy() for hist in solver.history for h in hist], solver.iter)


def _assert_unchanged(solver, before):
    weights, history, it = before
    assert solver.iter == it
    for b, w in zip(solver.net.learnable_params, weights):
        np.testing.assert_array_equal(b.data, w)
    for h, w in zip((h for hist in solver.history for h in hist), history):
        np.testing.assert_array_equal(h, w)


def test_a_solverstate_cut_at_any_byte_is_a_solver_error(tmp_path, snapshot):
    full = open(snapshot, "rb").read()
    cut_path = tmp_path / "cut.solverstate"
    solver = make_solver(str(tmp_path / "other"))
    before = _fresh_state(solver)
    for cut in sorted(set(range(0, len(full), max(1, len(full) // 150))) | {len(full) - 1}):
        cut_path.write_bytes(full[:cut])
        with pytest.raises(SolverError, match=r"cut\.solverstate"):
            solver.restore(str(cut_path))
        _assert_unchanged(solver, before)


def _rewrite(src, dst, change):
    """Copy the .npz `src` to `dst` with `change(dict of arrays)` applied."""
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.keys()}
    change(arrays)
    with open(dst, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("iter"), r"missing 'iter'"),
    (lambda a: a.pop("history_0_0"), r"missing 'history_0_0'"),
    (lambda a: a.update(iter=np.array("ten")), r"'iter' is a <U3 array of shape \(\); expected "
                                               r"an integer"),
    (lambda a: a.update(iter=np.array([1, 2])), r"'iter' is a int64 array of shape \(2,\)"),
    (lambda a: a.update(iter=np.array(-4)), r"'iter' = -4; expected >= 0"),
    (lambda a: a.update(rng_keys=np.arange(3, dtype=np.uint32)),
     r"'rng_keys' has shape \(3,\); expected \(624,\)"),
    (lambda a: a.update(history_0_0=np.zeros((5, 5))),
     r"history of layer 'ip' param 0 \(2, 3\) has shape \(5, 5\)"),
    (lambda a: a.update(history_0_0=np.array(["a", "b"])), r"'history_0_0' is a <U1 array"),
    (lambda a: a.update(learned_net=np.array(["a", "b"])), r"'learned_net' is a <U1 array of "
                                                           r"shape \(2,\); expected a string"),
    (lambda a: a.update(mask_ids=np.array([0]), masks_built=np.array(True)), r"missing 'mask_0'"),
    (lambda a: a.update(mask_ids=np.array([7]), masks_built=np.array(True)),
     r"mask for param 7; the net has 2"),
    (lambda a: a.update(smoothed_losses=np.array(["x"])), r"'smoothed_losses' is a <U1 array"),
])
def test_a_malformed_solverstate_names_the_file_and_the_entry(tmp_path, snapshot, change, words):
    bad = tmp_path / "bad.solverstate"
    _rewrite(snapshot, bad, change)
    solver = make_solver(str(tmp_path / "other"))
    before = _fresh_state(solver)
    with pytest.raises(SolverError, match=rf"solver state '.*bad\.solverstate': {words}"):
        solver.restore(str(bad))
    _assert_unchanged(solver, before)


def test_a_foreign_npz_is_not_a_solverstate(tmp_path):
    path = tmp_path / "foreign.solverstate"
    np.savez(open(path, "wb"), a=np.ones(2))
    solver = make_solver(str(tmp_path / "x"))
    with pytest.raises(SolverError, match=r"solver state '.*foreign\.solverstate': missing "
                                          r"'\w+'; not a minicaffe \.solverstate"):
        solver.restore(str(path))


@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04garbage", b"\x93NUMPY\x01\x00"])
def test_garbage_is_not_a_solverstate(tmp_path, content):
    path = tmp_path / "junk.solverstate"
    path.write_bytes(content)
    with pytest.raises(SolverError, match=r"solver state '.*junk\.solverstate'"):
        make_solver(str(tmp_path / "x")).restore(str(path))


def test_a_caffemodel_given_as_state_is_refused(tmp_path, snapshot):
    solver = make_solver(str(tmp_path / "x"))
    model = snapshot.replace(".solverstate", ".caffemodel")
    with pytest.raises(SolverError, match=r"solver state '.*\.caffemodel': not a minicaffe "
                                          r"\.solverstate"):
        solver.restore(model)


def test_pickled_objects_are_refused(tmp_path, snapshot):
    bad = tmp_path / "evil.solverstate"
    _rewrite(snapshot, bad, lambda a: a.update(iter=np.array([{"x": 1}], dtype=object)))
    with pytest.raises(SolverError, match=r"evil\.solverstate"):
        make_solver(str(tmp_path / "x")).restore(str(bad))


def test_a_corrupt_weights_file_beside_the_state_leaves_the_solver_as_it_was(tmp_path, snapshot):
    model = snapshot.replace(".solverstate", ".caffemodel")
    data = open(model, "rb").read()
    open(model, "wb").write(data[:-7])
    solver = make_solver(str(tmp_path / "x"))
    before = _fresh_state(solver)
    with pytest.raises(SolverError, match=r"solver state '.*lsq_iter_3\.solverstate': weights "
                                          r"file .*lsq_iter_3\.caffemodel.*cut short"):
        solver.restore(snapshot)
    _assert_unchanged(solver, before)


def test_a_good_snapshot_still_restores(tmp_path, snapshot):
    solver = make_solver(str(tmp_path / "x"))
    solver.restore(snapshot)
    assert solver.iter == 3
    assert zipfile.is_zipfile(snapshot) and os.path.exists(snapshot)
