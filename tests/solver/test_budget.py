"""Budget-driven SSL (solver/budget.py): the controller reaches a FLOP budget on planted
problems without any lambda given, never goes below it by more than its tolerance, does not
oscillate (the cost only falls while it steers), resumes bit-identically from a snapshot, and
refuses bad field values naming the field."""
import json

import numpy as np
import pytest

from minicaffe import prototxt as P
from minicaffe.errors import SolverError
from minicaffe.solver import get_solver

# Two convolutions and a classifier. The label is decided by input channel 0 only, so SSL can
# drop most of conv1's filters / conv2's channels and keep fitting.
NET = """
name: "chain"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 32 dim: 3 dim: 8 dim: 8 } shape { dim: 32 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 12 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv2" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool" top: "ip1"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""

BUDGET = ('flops_target: 0.25 budget_schedule { reach_iter: 60 finetune_iter: 90 interval: 5 } ')


def make_solver(text=BUDGET, max_iter=120, prefix=None, seed=0):
    sp = P.parse_solver(f'base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} '
                        'random_seed: 1 ' + text)
    if prefix:
        sp.snapshot_prefix = prefix
    sp.net_param = P.parse_net(NET)
    solver = get_solver(sp)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 3, 8, 8))
    solver.net.blobs["data"].data[...] = x
    solver.net.blobs["label"].data[...] = (x[:, 0].mean(axis=(1, 2)) > 0).astype(float)
    return solver


def conv_share(solver):
    from minicaffe.solver.budget_flops import count

    rows = count(solver.net, "CONV")
    return sum(r["left"] for r in rows) / sum(r["dense"] for r in rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reaches_the_budget_without_lambdas_and_never_undershoots_past_the_tolerance(seed):
    solver = make_solver(seed=seed)
    assert not any(solver.param.has(f) for f in ("breadth_decay", "kernel_shape_decay",
                                                 "block_group_decay"))
    solver.step(120)
    b = solver.budget
    tol = b.tolerance
    assert b.phase == "finetune"
    share = conv_share(solver)
    assert abs(share - 0.25) <= tol + 1e-9, (share, b.trace)
    summary = b.summary()
    assert summary["within_tolerance"] and summary["final_share"] == pytest.approx(share)
    # the stated bound: the cost is never below target - tolerance at a check
    assert all(c >= 0.25 - tol - 1e-9 for _, c, _ in b.trace), b.trace
    # no oscillation: while steering, structure only goes (the ratchet), so the cost never rises
    steer = [c for it, c, _ in b.trace if b.frozen_at is None or it < b.frozen_at]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(steer, steer[1:])), steer
    # still a working classifier after the fine-tuning
    assert solver.net.forward_backward() < 0.5


def test_fine_tuning_keeps_the_structure_and_turns_the_terms_off():
    solver = make_solver()
    solver.step(120)
    frozen = {n: solver.net.params[n][0].data.copy() for n in ("conv1", "conv2")}
    assert all(t.strength == 0 for i in solver.budget._blob.values() for t in solver._terms[i])
    before = conv_share(solver)
    # a kept filter far below the solver's zero_threshold (1e-4) stays: the freeze holds the
    # structure, zero_threshold no longer applies to the controlled weights
    w2 = solver.net.params["conv2"][0].data
    kept = int(np.flatnonzero(np.abs(w2).reshape(w2.shape[0], -1).sum(axis=1))[0])
    w2[kept] = np.where(w2[kept] != 0, 1e-7, 0)
    frozen["conv2"] = w2.copy()
    solver.step(20)
    assert conv_share(solver) == before
    for n, w in frozen.items():
        now = solver.net.params[n][0].data
        np.testing.assert_array_equal(now == 0, w == 0, err_msg=n)
    assert solver.zero_threshold == pytest.approx(1e-4)


def test_the_cost_never_lags_the_schedule_by_more_than_max_lag():
    # a starting strength far too small for the schedule: lambda alone would prune late, so
    # the weakest groups are zeroed at the checks where the cost lags by more than max_lag
    solver = make_solver(BUDGET.replace('interval: 5', 'interval: 5 initial_decay: 1e-9 max_lag: 0.05'))
    solver.step(120)
    b = solver.budget
    steer = [(c, sc) for it, c, sc in b.trace if it < b.frozen_at]
    assert steer and all(c <= sc + 0.05 + 1e-9 for c, sc in steer), steer
    assert b.snapped > 0 and abs(conv_share(solver) - 0.25) <= b.tolerance + 1e-9
    assert solver.net.forward_backward() < 0.5


def test_a_collapse_within_one_interval_is_rolled_back_to_the_schedule():
    solver = make_solver()
    solver.step(20)
    b = solver.budget
    assert b.phase == "steer" and b.rollbacks == 0
    scales = b.scales.copy()
    b.scales *= 1e6                        # every group goes to zero in the next interval
    b._apply_scales()
    solver.step(5)
    it, cost, sched = b.trace[-1]
    assert it == 25 and b.rollbacks == 1
    # back to the schedule (not down to the target), with every lambda lowered by max_step
    assert sched - b.tolerance <= cost <= sched + b.tolerance, b.trace
    np.testing.assert_allclose(b.scales, scales * 1e6 / b.max_step)
    assert b.phase == "steer"


def test_snap_ranks_groups_within_their_layer_and_keeps_every_layer_connected():
    # conv2's weights a thousand times smaller than conv1's: by raw RMS every conv2 group would
    # go before any of conv1's and empty the layer
    solver = make_solver(BUDGET.replace('interval: 5', 'interval: 5 initial_decay: 1e-9'))
    solver.net.params["conv2"][0].data[...] *= 1e-3
    b = solver.budget
    b.based = True
    b.freeze()
    assert abs(conv_share(solver) - 0.25) <= b.tolerance + 1e-9
    for name in ("conv1", "conv2"):
        w = solver.net.params[name][0].data
        w2 = w.reshape(w.shape[0], -1)
        rows = (w2 != 0).any(axis=1)
        cols = (w2 != 0).any(axis=0)
        chans = (w2.reshape(w.shape[0], w.shape[1], -1) != 0).any(axis=(0, 2))
        # each layer gave up some of its own shape fibres (by raw RMS, conv1 keeps all 27 and
        # conv2 loses two thirds of its filters), and neither is emptied
        assert 0 < cols.sum() < cols.size, (name, cols)
        assert rows.sum() >= 1 and chans.sum() >= 1, name
    assert b.snapped > 0


BN_NET = NET.replace(
    'layer { name: "relu1"',
    'layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }\n'
    'layer { name: "relu1"')


def bn_solver(text, max_iter=120):
    sp = P.parse_solver(f'base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} '
                        'random_seed: 1 ' + text)
    sp.net_param = P.parse_net(BN_NET)
    solver = get_solver(sp)
    x = np.random.default_rng(0).standard_normal((32, 3, 8, 8))
    solver.net.blobs["data"].data[...] = x
    solver.net.blobs["label"].data[...] = (x[:, 0].mean(axis=(1, 2)) > 0).astype(float)
    return solver, x


def assert_statistics_of_current_weights(solver, x, passes):
    """The running statistics hold exactly `passes` forward passes of the current conv1 (the
    same input every pass, so the running mean is its channel mean)."""
    bn = solver.net.layer_dict["bn1"]
    assert float(bn.blobs[2].data[0]) == pytest.approx(sum(bn.maf ** i for i in range(passes)))
    w = solver.net.params["conv1"][0].data.astype(np.float64)
    bias = solver.net.params["conv1"][1].data.astype(np.float64)
    cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # N C 6 6 3 3
    out = np.einsum("nchwij,fcij->nfhw", cols, w) + bias[None, :, None, None]
    mean = bn.blobs[0].data / bn.blobs[2].data[0]
    np.testing.assert_allclose(mean, out.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-6)


def test_freeze_and_the_end_estimate_batch_norm_statistics_again():
    from minicaffe.solver import budget as budget_module

    solver, x = bn_solver(BUDGET)
    solver.step(90)
    b = solver.budget
    assert b.phase == "finetune" and b.frozen_at == 90
    k = budget_module.RECALIBRATE_BATCHES
    assert solver.bn_recalibration_batches == k
    assert_statistics_of_current_weights(solver, x, k)
    solver.step(30)                        # max_iter: again, for the fine-tuned weights
    assert_statistics_of_current_weights(solver, x, k)


def test_bn_recalibration_batches_is_off_by_default_and_a_field():
    plain, x = bn_solver("", max_iter=6)
    plain.step(6)
    bn = plain.net.layer_dict["bn1"]
    # Caffe's way: the running average of every training pass (6), no re-estimate
    assert float(bn.blobs[2].data[0]) == pytest.approx(sum(bn.maf ** i for i in range(6)))
    solver, x = bn_solver("bn_recalibration_batches: 3", max_iter=6)
    solver.step(6)
    assert_statistics_of_current_weights(solver, x, 3)
    with pytest.raises(SolverError, match=r"bn_recalibration_batches must be >= 0"):
        bn_solver("bn_recalibration_batches: -1")


def test_resumes_bit_identically_from_a_snapshot(tmp_path):
    a = make_solver(prefix=str(tmp_path / "a"))
    a.step(100)
    b = make_solver(prefix=str(tmp_path / "b"))
    b.step(37)                            # mid-steering, between two controller checks
    state = b.snapshot()
    c = make_solver(prefix=str(tmp_path / "c"))
    c.restore(state)
    assert np.array_equal(c.budget.scales, b.budget.scales)
    c.step(63)
    for name in ("conv1", "conv2", "ip1"):
        for pa, pc in zip(a.net.params[name], c.net.params[name]):
            np.testing.assert_array_equal(pa.data, pc.data)
    assert np.array_equal(a.budget.scales, c.budget.scales)
    assert a.budget.trace == c.budget.trace and a.budget.phase == c.budget.phase
    assert a.budget.frozen_at == c.budget.frozen_at


def test_strengths_and_the_trace_are_logged_and_summarised(tmp_path, caplog):
    solver = make_solver(BUDGET + "display: 30", prefix=str(tmp_path / "run"))
    with caplog.at_level("INFO", logger="minicaffe.solver"):
        solver.solve()
    text = caplog.text
    assert "budget steer: FLOPs" in text and "lambda scales conv1" in text
    assert "Budget: structure frozen at iteration" in text
    summary = json.loads((tmp_path / "run_summary.json").read_text())["budget"]
    assert summary["kind"] == "flops" and summary["scope"] == "CONV"
    assert summary["target"] == pytest.approx(0.25)
    assert abs(summary["gap_pp"]) <= 100 * summary["final_share"] + 100
    assert set(summary["layers"]) == {"conv1", "conv2"}
    log = [json.loads(line) for line in (tmp_path / "run_log.jsonl").read_text().splitlines()]
    assert any("budget" in r for r in log if r.get("kind") == "train")


def test_all_scope_counts_the_inner_products_too():
    solver = make_solver(BUDGET + "flops_target_scope: ALL")
    assert solver.budget.layers == ["conv1", "conv2", "ip1"]
    solver.step(100)
    assert abs(solver.budget.summary()["final_share"] - 0.25) <= solver.budget.tolerance + 1e-9


def test_given_lambdas_are_the_starting_mix():
    solver = make_solver(BUDGET + "breadth_decay: 0.002", max_iter=120)
    # the net's params carry no mults, so no term exists and the controller adds its own
    assert all(t.name.endswith("(budget)") for t in solver._terms[solver.budget._blob["conv1"]])


def test_set_budget_in_code_replaces_the_fields():
    solver = make_solver(text="", max_iter=120)
    assert solver.budget is None
    b = solver.set_budget(flops_target=0.5, scope="ALL")
    assert b.target == 0.5 and b.scope == "ALL" and solver.proximal


@pytest.mark.parametrize("text, words", [
    ("flops_target: 1.5", r"flops_target must be in \(0, 1\].*1\.5"),
    ("flops_target: -0.2", r"flops_target must be in \(0, 1\]"),
    ("latency_target: -3", r"latency_target must be > 0 ms"),
    ("flops_target: 0.3 latency_target: 2", r"flops_target and latency_target are both set"),
    ("flops_target: 0.3 budget_schedule { reach_iter: 500 }", r"reach_iter = 500 is after "
                                                                r"max_iter = 120"),
    ("flops_target: 0.3 budget_schedule { reach_iter: 50 finetune_iter: 20 }",
     r"finetune_iter = 20 comes before reach_iter = 50"),
    ("flops_target: 0.3 budget_schedule { interval: 0 }", r"budget_schedule\.interval must be >= 1"),
    ("flops_target: 0.3 budget_schedule { max_step: 1 }", r"budget_schedule\.max_step must be > 1"),
    ("flops_target: 0.3 budget_schedule { gain: 0 }", r"budget_schedule\.gain must be > 0"),
    ("flops_target: 0.3 budget_schedule { max_lag: 0 }", r"budget_schedule\.max_lag must be > 0"),
    ("flops_target: 0.3 budget_schedule { tolerance: 1.5 }",
     r"budget_schedule\.tolerance must be in \[0, 1\)"),
    ("latency_target: 2 flops_target_scope: ALL", r"flops_target_scope applies to flops_target"),
])
def test_bad_values_name_the_field(text, words):
    with pytest.raises(SolverError, match=words):
        make_solver(text)


def test_a_bad_value_in_a_file_points_at_its_line(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 10\n'
        'flops_target: 2\n')
    with pytest.raises(SolverError, match=r"solver\.prototxt:5:1: flops_target must be in"):
        get_solver(str(tmp_path / "solver.prototxt"))


def test_a_state_without_budget_is_refused_by_a_budget_solver(tmp_path):
    plain = make_solver(text="", prefix=str(tmp_path / "p"))
    plain.step(2)
    state = plain.snapshot()
    budget = make_solver(prefix=str(tmp_path / "b"))
    with pytest.raises(SolverError, match="holds no budget controller state"):
        budget.restore(state)
    assert budget.iter == 0


DUMMY_NET = NET.replace(
    '''layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 32 dim: 3 dim: 8 dim: 8 } shape { dim: 32 } } }''',
    '''layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 16 dim: 3 dim: 8 dim: 8 } shape { dim: 16 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }''')


@pytest.fixture
def cli_logging():
    """train.main sets up the 'minicaffe' logger for a terminal; put it back afterwards (later
    tests read log records through caplog)."""
    import logging

    root = logging.getLogger("minicaffe")
    saved = (list(root.handlers), root.level, root.propagate)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]


def _cli_files(tmp_path, extra=""):
    (tmp_path / "net.prototxt").write_text(DUMMY_NET)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.05\nlr_policy: "fixed"\nmomentum: 0.9\n'
        f'max_iter: 60\nrandom_seed: 2\nsnapshot_prefix: "{tmp_path / "cli"}"\n'
        'budget_schedule { reach_iter: 30 interval: 5 }\n' + extra)
    return str(tmp_path / "solver.prototxt")


def test_train_cli_flops_target_runs_to_the_budget(tmp_path, cli_logging):
    from minicaffe import train

    solver = _cli_files(tmp_path)
    assert train.main(["--solver", solver, "--flops-target", "0.4", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "cli_summary.json").read_text())["budget"]
    assert summary["target"] == pytest.approx(0.4) and summary["scope"] == "CONV"
    assert summary["within_tolerance"], summary["trace"]


def test_train_cli_refuses_bad_budget_arguments(tmp_path, capsys, cli_logging):
    from minicaffe import train

    solver = _cli_files(tmp_path)
    with pytest.raises(SystemExit) as exc:
        train.main(["--solver", solver, "--flops-target", "1.5"])
    assert exc.value.code == 2
    assert "--flops-target: expected a fraction of the dense FLOPs in (0, 1], got '1.5'" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--solver", solver, "--latency-target", "0"])
    assert "--latency-target: expected milliseconds > 0" in capsys.readouterr().err
    assert train.main(["--solver", solver, "--flops-scope", "ALL", "--no-progress"]) == 1


def test_latency_target_calibrates_once_and_caches(tmp_path, monkeypatch):
    from minicaffe import timing
    from minicaffe.solver import budget_cost

    monkeypatch.setenv("MINICAFFE_CACHE_DIR", str(tmp_path / "cache"))
    solver = make_solver("latency_target: 1000 budget_schedule { reach_iter: 20 interval: 5 }",
                         max_iter=30)
    solver.step(1)
    costs = solver.budget.costs
    assert set(costs["layers"]) == {"conv1", "conv2"}
    assert all(b > 0 and a >= 0 for a, b in costs["layers"].values())
    assert costs["dense_ms"] > costs["other_ms"] >= 0
    cache = json.loads((tmp_path / "cache" / "budget_costs.json").read_text())
    assert len(cache) == 2 and all(budget_cost.machine_key() in k for k in cache)

    def no_timing(*a, **k):
        raise AssertionError("calibrated again despite the cache")

    monkeypatch.setattr(timing, "compare_nets", no_timing)
    again = make_solver("latency_target: 1000 budget_schedule { reach_iter: 20 interval: 5 }",
                        max_iter=30)
    again.step(1)
    assert again.budget.costs["layers"] == costs["layers"]
    # a target below what the unprunable layers take is refused, naming the field
    low = make_solver("latency_target: 1e-9 budget_schedule { reach_iter: 20 interval: 5 }",
                      max_iter=30)
    with pytest.raises(SolverError, match="latency_target = 1e-09 ms is below"):
        low.step(1)


def test_latency_budget_resumes_without_measuring_again(tmp_path, monkeypatch):
    from minicaffe import timing

    monkeypatch.setenv("MINICAFFE_CACHE_DIR", str(tmp_path / "cache"))
    text = "latency_target: 1000 budget_schedule { reach_iter: 20 interval: 5 }"
    b = make_solver(text, max_iter=30, prefix=str(tmp_path / "b"))
    b.step(7)
    state = b.snapshot()
    (tmp_path / "cache" / "budget_costs.json").unlink()
    monkeypatch.setattr(timing, "compare_nets", lambda *a, **k: 1 / 0)
    c = make_solver(text, max_iter=30, prefix=str(tmp_path / "c"))
    c.restore(state)
    c.step(3)
    assert c.budget.costs == b.budget.costs


def test_subgradient_updates_are_warned_about_and_the_pipeline_uses_proximal(caplog):
    from minicaffe.experiments import pipeline

    with caplog.at_level("WARNING", logger="minicaffe.solver"):
        solver = make_solver(BUDGET + "group_lasso_update: SUBGRADIENT")
    assert not solver.proximal
    assert "SUBGRADIENT steps do not reach exact zeros" in caplog.text
    sp = P.parse_solver('base_lr: 0.05 lr_policy: "fixed" max_iter: 100 breadth_decay: 0.001 '
                        'group_lasso_update: SUBGRADIENT')
    pipeline.budget_param(sp, 0.5)
    assert not sp.has("group_lasso_update") and not sp.has("breadth_decay")
    sp.net_param = P.parse_net(NET)
    assert get_solver(sp).proximal
