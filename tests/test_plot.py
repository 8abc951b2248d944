"""`python -m minicaffe.plot`: the curves of a solver log drawn as a PNG."""
import json

import pytest

pytest.importorskip("matplotlib")

from minicaffe import plot                                   # noqa: E402
from minicaffe import prototxt as P                          # noqa: E402
from minicaffe.solver import get_solver                      # noqa: E402

NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 1 dim: 5 dim: 5 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { breadth_decay_mult: 1 } convolution_param { num_output: 3 kernel_size: 3
    weight_filler { type: "xavier" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
"""


def train(prefix, max_iter=6, resume=None):
    sp = P.parse_solver(f'base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} '
                        'display: 2 test_iter: 1 test_interval: 3 snapshot: 3 random_seed: 1 '
                        'breadth_decay: 4 group_lasso_update: PROXIMAL')
    sp.snapshot_prefix = str(prefix)
    sp.net_param = P.parse_net(NET)
    solver = get_solver(sp)
    solver.solve(resume)
    return f"{prefix}_log.jsonl"


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_draws_the_curves_next_to_the_log(tmp_path, capsys):
    log = train(tmp_path / "ssl")
    assert plot.main([log]) == 0
    out = tmp_path / "ssl_curves.png"
    assert capsys.readouterr().out.strip() == str(out)
    assert is_png(out) and out.stat().st_size > 5000


def test_series_follow_the_records(tmp_path):
    log = train(tmp_path / "ssl")
    (curves,) = plot.stages_from_logs([log])
    records = [json.loads(x) for x in open(log)][1:]
    assert [i for i, _ in curves.train] == [r["iter"] for r in records if r["kind"] == "train"]
    assert [o["accuracy"] for _, o in curves.test] == [r["outputs"]["accuracy"] for r in records
                                                       if r["kind"] == "test"]
    last = records[-1]["sparsity"]
    total = sum(x["flops_left"] for x in last) / sum(x["flops_dense"] for x in last)
    assert curves.flops[-1][1]["total"] == pytest.approx(total)
    assert curves.flops[-1][1]["conv1"] < 1.0          # the strong row term removed filters


def test_stages_are_laid_end_to_end_and_resumes_keep_their_iterations(tmp_path):
    first = train(tmp_path / "dense")
    second = train(tmp_path / "ft", max_iter=6)
    third = train(tmp_path / "ft", max_iter=9, resume=str(tmp_path / "ft_iter_6.solverstate"))
    assert third == second
    stages = plot.stages_from_logs([first, second], labels=["dense", "fine-tune"])
    assert [s.label for s in stages] == ["dense", "fine-tune (run 1)", "fine-tune (run 2)"]
    assert [s.start for s in stages] == [0, 6, 12]
    assert stages[2].test[-1][0] == 6 + 9
    # FLOPs are fractions of the first log's dense net
    ft_rows = [json.loads(x) for x in open(second)][-1]["sparsity"]
    want = sum(x["flops_left"] for x in ft_rows) / sum(x["flops_dense"] for x in ft_rows)
    assert stages[2].flops[-1][1]["total"] == pytest.approx(want)
    out = tmp_path / "all.png"
    assert plot.main([first, second, "--label", "dense", "--label", "fine-tune", "--out",
                      str(out), "--title", "pipeline"]) == 0
    assert is_png(out)


def test_bad_input_is_named(tmp_path, capsys):
    bad = tmp_path / "bad_log.jsonl"
    bad.write_text('{"kind": "run"}\n{oops\n')
    assert plot.main([str(bad)]) == 1
    assert "bad_log.jsonl:2: not a JSON line" in capsys.readouterr().err
    empty = tmp_path / "empty_log.jsonl"
    empty.write_text("")
    assert plot.main([str(empty)]) == 1
    assert "empty_log.jsonl: no records" in capsys.readouterr().err
    assert plot.main([str(tmp_path / "missing_log.jsonl")]) == 1
    assert "missing_log.jsonl" in capsys.readouterr().err


def test_a_compacted_stage_is_measured_against_the_first_dense_net(tmp_path):
    def log(path, dense, left):
        rows = [{"layer": "conv1", "flops_dense": dense, "flops_left": left}]
        path.write_text(json.dumps({"kind": "run", "run": 1, "iter": 0}) + "\n"
                        + json.dumps({"kind": "train", "iter": 0, "loss": 1.0,
                                      "sparsity": rows}) + "\n")
        return str(path)
    first = log(tmp_path / "a_log.jsonl", 1000, 1000)
    compacted = log(tmp_path / "b_log.jsonl", 250, 250)      # a net of a quarter the size
    a, b = plot.stages_from_logs([first, compacted])
    assert a.flops[0][1]["total"] == 1.0 and b.flops[0][1]["total"] == 0.25
    assert b.flops[0][1]["conv1"] == 0.25
