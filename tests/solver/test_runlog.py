"""The run log: one run per log (resumes marked), summary.json at the end of solve()."""
import json

import numpy as np
import pytest

pytest.importorskip("minicaffe.net")

from minicaffe import prototxt as P                          # noqa: E402
from minicaffe.solver import get_solver                      # noqa: E402
from minicaffe.solver.runlog import read_log                 # noqa: E402

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
layer { name: "acc" type: "Accuracy" bottom: "ip1" bottom: "label" top: "acc"
  include { phase: TEST } }
"""


def make_solver(prefix, max_iter=6):
    sp = P.parse_solver(f'base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} '
                        'display: 2 test_iter: 1 test_interval: 3 snapshot: 3 random_seed: 1 '
                        'breadth_decay: 0.01')
    sp.snapshot_prefix = prefix
    sp.net_param = P.parse_net(NET)
    return get_solver(sp)


def test_a_second_fresh_run_replaces_the_log_instead_of_appending(tmp_path):
    prefix = str(tmp_path / "snaps" / "tiny")
    make_solver(prefix).solve()
    first = (tmp_path / "snaps" / "tiny_log.jsonl").read_text()
    make_solver(prefix).solve()
    runs = read_log(tmp_path / "snaps" / "tiny_log.jsonl")
    assert len(runs) == 1
    header, records = runs[0]
    assert header["kind"] == "run" and header["run"] == 1 and header["resumed_from"] is None
    assert header["net"] == "tiny" and header["iter"] == 0
    assert [r["iter"] for r in records if r["kind"] == "test"] == [0, 3, 6]
    assert len((tmp_path / "snaps" / "tiny_log.jsonl").read_text()) == len(first)


def test_a_resumed_run_appends_a_marked_section(tmp_path):
    prefix = str(tmp_path / "tiny")
    make_solver(prefix).solve()
    again = make_solver(prefix, max_iter=9)
    again.solve(prefix + "_iter_6.solverstate")
    runs = read_log(prefix + "_log.jsonl")
    assert [h["run"] for h, _ in runs] == [1, 2]
    assert runs[1][0]["resumed_from"] == prefix + "_iter_6.solverstate"
    assert runs[1][0]["iter"] == 6
    assert [r["iter"] for r in runs[1][1] if r["kind"] == "test"] == [6, 9]
    assert all(r["iter"] <= 6 for r in runs[0][1])


def test_solve_leaves_a_summary(tmp_path):
    prefix = str(tmp_path / "tiny")
    solver = make_solver(prefix)
    solver.runlog.info["weights"] = ["from.caffemodel"]
    solver.solve()
    summary = json.loads((tmp_path / "tiny_summary.json").read_text())
    assert summary["status"] == "finished" and summary["iter"] == 6 and summary["start_iter"] == 0
    assert summary["weights"] == ["from.caffemodel"]
    assert summary["last_test"]["iter"] == 6
    assert summary["last_test"]["outputs"][0]["acc"] == pytest.approx(
        solver.test_nets[0].forward()["acc"].item())
    assert summary["snapshot"] == prefix + "_iter_6.solverstate"
    assert summary["log"] == prefix + "_log.jsonl"
    assert [r["layer"] for r in summary["sparsity"]] == ["conv1", "ip1"]
    w = solver.net.params["conv1"][0].data.reshape(3, -1)
    kept = int(np.any(w != 0, axis=1).sum()) * int(np.any(w != 0, axis=0).sum())
    assert summary["flops_left"] == 2 * kept * 9 + 2 * 2 * 27
    assert summary["flops_dense"] == 2 * 3 * 9 * 9 + 2 * 2 * 27


def test_read_log_names_a_bad_line(tmp_path):
    path = tmp_path / "x_log.jsonl"
    path.write_text('{"kind": "run", "run": 1}\n{"kind": "train", "iter": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"x_log.jsonl:3: not a JSON line"):
        read_log(path)


def test_records_before_any_header_form_one_run(tmp_path):
    path = tmp_path / "old_log.jsonl"
    path.write_text('{"kind": "train", "iter": 0}\n{"kind": "test", "iter": 0}\n')
    runs = read_log(path)
    assert len(runs) == 1 and runs[0][0] == {} and len(runs[0][1]) == 2


# A record cut short: what a kill -9 or a full disk in the middle of an append leaves.
CUT = '{"kind": "train", "iter": 7, "loss": 0.69, "sparsity": [{"layer": "con'


def test_a_run_resumed_after_a_cut_record_starts_its_section_on_a_new_line(tmp_path, caplog):
    """The resumed run counted the runs by parsing every line and died on the cut one."""
    prefix = str(tmp_path / "tiny")
    make_solver(prefix).solve()
    with open(prefix + "_log.jsonl", "a") as f:
        f.write(CUT)
    again = make_solver(prefix, max_iter=9)
    again.solve(prefix + "_iter_6.solverstate")
    lines = open(prefix + "_log.jsonl").read().splitlines()
    assert CUT in lines                                   # left alone, on its own line
    with caplog.at_level("WARNING", logger="minicaffe.solver"):
        runs = read_log(prefix + "_log.jsonl")
    assert [h["run"] for h, _ in runs] == [1, 2]
    assert [r["iter"] for r in runs[1][1] if r["kind"] == "test"] == [6, 9]
    assert all(r["iter"] <= 6 for r in runs[0][1])
    n = lines.index(CUT) + 1
    assert f"tiny_log.jsonl:{n}: skipped a record cut short" in caplog.text


def test_read_log_skips_a_cut_last_record_with_a_warning(tmp_path, caplog):
    path = tmp_path / "x_log.jsonl"
    path.write_text('{"kind": "run", "run": 1}\n{"kind": "train", "iter": 0}\n' + CUT)
    with caplog.at_level("WARNING", logger="minicaffe.solver"):
        runs = read_log(path)
    assert len(runs) == 1 and runs[0][1] == [{"kind": "train", "iter": 0}]
    assert "x_log.jsonl:3: skipped a record cut short (a killed run or a full disk)" in caplog.text


def test_read_log_refuses_a_bad_line_that_is_not_a_cut_record(tmp_path):
    """Only an unterminated last line, or the line just before a resumed run's header, can be
    a record cut by a kill; a bad line anywhere else is an error naming the line."""
    from minicaffe.errors import DataError

    path = tmp_path / "x_log.jsonl"
    path.write_text('{"kind": "run", "run": 1}\n' + CUT + '\n{"kind": "train", "iter": 1}\n')
    with pytest.raises(DataError, match=r"x_log.jsonl:2: not a JSON line"):
        read_log(path)
    path.write_text('{"kind": "run", "run": 1}\n' + CUT + '\n{"kind": "run", "run": 2}\n')
    with pytest.raises(DataError, match=r"x_log.jsonl:2: not a JSON line"):
        read_log(path)                                    # a fresh run's header: not a resume
    path.write_bytes(b'{"kind": "run", "run": 1}\n\xff\xfe\n')
    with pytest.raises(DataError, match=r"x_log.jsonl:2: not UTF-8"):
        read_log(path)


def test_a_summary_that_cannot_be_written_is_a_warning(tmp_path, monkeypatch, caplog):
    """A full disk when solve() ends: the training and its last snapshot are done; the summary
    is a convenience (like the curve) and its failure used to end the run with a traceback."""
    import errno

    from minicaffe.solver import runlog

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", path)
    monkeypatch.setattr(runlog, "_write_atomic", full)
    prefix = str(tmp_path / "tiny")
    solver = make_solver(prefix)
    with caplog.at_level("WARNING", logger="minicaffe.solver"):
        assert solver.solve() is None
    assert solver.iter == 6 and (tmp_path / "tiny_iter_6.solverstate").exists()
    assert f"cannot write {prefix}_summary.json (No space left on device)" in caplog.text
    assert not (tmp_path / "tiny_summary.json").exists()
