"""The solver on the real Net: pycaffe's surface, SSL terms on conv/IP weights, report, resume."""
import numpy as np
import pytest

pytest.importorskip("minicaffe.net")

from minicaffe import prototxt as P                          # noqa: E402
from minicaffe.solver import SGDSolver, get_solver           # noqa: E402
from minicaffe.solver import report                          # noqa: E402

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 8 dim: 2 dim: 6 dim: 6 } shape { dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { breadth_decay_mult: 1 kernel_shape_decay_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  param { kernel_shape_decay_mult: 1 }
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""


def make_solver(text="", **fields):
    sp = P.parse_solver('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 max_iter: 20 '
                        'random_seed: 1 ' + text)
    for k, v in fields.items():
        setattr(sp, k, v)
    sp.net_param = P.parse_net(NET)
    solver = get_solver(sp)
    rng = np.random.default_rng(0)
    solver.net.blobs["data"].data[...] = rng.standard_normal((8, 2, 6, 6))
    solver.net.blobs["label"].data[...] = rng.integers(0, 3, 8)
    return solver


def test_input_blobs_set_by_a_script_stay_and_loss_falls():
    solver = make_solver()
    assert isinstance(solver, SGDSolver)
    data = solver.net.blobs["data"].data.copy()
    first = solver.net.forward_backward()
    solver.net.clear_param_diffs()
    solver.step(15)
    np.testing.assert_array_equal(solver.net.blobs["data"].data, data)
    assert solver.iter == 15
    assert solver.net.forward_backward() < 0.2 * first


def test_proximal_group_terms_zero_conv_rows_and_ip_columns():
    solver = make_solver('breadth_decay: 0.8 kernel_shape_decay: 0.4 group_lasso_update: PROXIMAL')
    solver.step(20)
    rows = {r["layer"]: r for r in report.layer_sparsity(solver.net)}
    assert 0 < rows["conv1"]["row_sparsity"] < 1 and 0 < rows["conv1"]["column_sparsity"] < 1
    assert 0 < rows["ip1"]["column_sparsity"] < 1
    assert rows["ip1"]["row_sparsity"] == 0            # no breadth term on ip1
    assert solver.net.forward_backward() < 0.1          # still fits the batch
    # conv biases (lr_mult 2, no group term) stay dense
    w = solver.net.params["conv1"][0].data
    assert not w.reshape(4, -1).any(axis=1).all()


def test_report_counts_zero_rows_columns_and_flops():
    solver = make_solver()
    w = solver.net.params["conv1"][0].data
    w[...] = 1.0
    w[1] = 0                   # a filter
    w[:, 1] = 0                # a whole input channel: 9 columns
    w[:, 0, 0, 0] = 0          # one more shape fibre
    solver.net.forward()
    rows = {r["layer"]: r for r in report.layer_sparsity(solver.net)}
    c = rows["conv1"]
    assert (c["filters_left"], c["filters"], c["channels_left"], c["channels"]) == (3, 4, 1, 2)
    assert c["row_sparsity"] == 0.25 and c["column_sparsity"] == 10 / 18
    assert c["element_sparsity"] == pytest.approx(48 / 72)
    assert c["flops_dense"] == 2 * 4 * 18 * 16 and c["flops_left"] == 2 * 3 * 8 * 16
    assert not c["all_zero"]
    lines = report.format_table(list(rows.values()))
    assert any("conv1" in ln and "filters 3/4" in ln and "channels 1/2" in ln for ln in lines)
    assert "total" in lines[-1]


def test_restore_continues_bit_identically(tmp_path):
    prefix = str(tmp_path / "tiny")
    a = make_solver('breadth_decay: 0.01', snapshot_prefix=prefix)
    a.step(10)
    b = make_solver('breadth_decay: 0.01', snapshot_prefix=prefix)
    b.step(4)
    state = b.snapshot()
    c = make_solver('breadth_decay: 0.01', snapshot_prefix=prefix)
    c.restore(state)
    c.step(6)
    for name in ("conv1", "ip1"):
        for pa, pc in zip(a.net.params[name], c.net.params[name]):
            np.testing.assert_array_equal(pa.data, pc.data)


def test_sparsity_curve_file_next_to_snapshots(tmp_path):
    import json
    prefix = str(tmp_path / "snaps" / "tiny")
    solver = make_solver("display: 5", snapshot_prefix=prefix)
    solver.step(10)
    lines = (tmp_path / "snaps" / "tiny_log.jsonl").read_text().splitlines()
    header, *records = [json.loads(x) for x in lines]
    assert header["kind"] == "run" and header["run"] == 1 and header["iter"] == 0
    assert [r["iter"] for r in records] == [0, 5]
    assert records[0]["kind"] == "train" and "loss" in records[0]
    assert [s["layer"] for s in records[1]["sparsity"]] == ["conv1", "ip1"]
