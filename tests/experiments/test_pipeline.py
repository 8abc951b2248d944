"""experiments.pipeline: solver overrides, stages, chains on tiny data; common.Progress; jobs."""
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from minicaffe.errors import SolverError
from minicaffe.experiments import common, datasets, jobs, pipeline

LENET = "prototxt/lenet/lenet_solver.prototxt"
SHORT = {"max_iter": 12, "test_iter": [2], "test_interval": 6, "display": 3}


def test_overrides_are_typed_by_the_field():
    p = pipeline.solver_param(LENET, {"base_lr": "0.02", "max_iter": "300", "lr_policy": "poly",
                                      "group_lasso_update": "PROXIMAL", "test_iter": "5",
                                      "stepvalue": "100:200", "sparsity_report": "false"})
    assert p.base_lr == pytest.approx(0.02) and p.max_iter == 300 and p.lr_policy == "poly"
    assert p.group_lasso_update == "PROXIMAL" and p.test_iter == [5]
    assert p.stepvalue == [100, 200] and p.sparsity_report is False
    assert p.has("net_param") and not p.has("net")
    assert [lp.name for lp in p.net_param.layer][:3] == ["data", "data", "conv1"]


@pytest.mark.parametrize("overrides, match", [
    ({"breadth_decy": "1"}, "SolverParameter has no field 'breadth_decy'; did you mean "
                            "'breadth_decay'"),
    ({"max_iter": "many"}, r"--set max_iter=many: expected a int32"),
    ({"group_lasso_update": "SIDEWAYS"}, "SIDEWAYS"),
])
def test_bad_overrides_name_the_field(overrides, match):
    with pytest.raises(SolverError, match=match):
        pipeline.solver_param(LENET, overrides)


def test_freeze_and_dataset_rewrite_the_embedded_net(tiny_data):
    ds = datasets.mnist_like(tiny_data)
    p = pipeline.solver_param(LENET, dataset=ds, freeze=True)
    modes = {lp.name: lp.connectivity_mode for lp in p.net_param.layer
             if lp.type in ("Convolution", "InnerProduct")}
    assert set(modes.values()) == {"DISCONNECTED_GRPWISE"}
    assert {lp.data_param.source for lp in p.net_param.layer if lp.type == "Data"} == \
        {ds.train, ds.test}


def test_train_stage_leaves_weights_log_summary_and_tests_at_the_end(tiny_data, tmp_path):
    ds = datasets.mnist_like(tiny_data)
    p = pipeline.solver_param(LENET, dict(SHORT, max_iter=10), dataset=ds)   # 10 % 6 != 0
    stream = io.StringIO()
    progress = common.Progress([("base", 10)], stream=stream, every=0.0)
    st = pipeline.train_stage("base", p, tmp_path, None, progress, what="tiny")
    assert st.iterations == 10 and os.path.exists(st.weights)
    assert st.weights.endswith("base_iter_10.caffemodel")
    assert 0.0 <= st.error <= 1.0 and set(st.test) == {"accuracy", "loss"}
    summary = json.load(open(st.summary))
    assert summary["last_test"]["iter"] == 10 and summary["stage"] == "base"
    out = stream.getvalue()
    assert "[1/1] base: tiny" in out and "base 10/10 it" in out and "base done in" in out
    again = pipeline.evaluate(p.net_param, st.weights, 2)
    assert again["accuracy"] == pytest.approx(st.test["accuracy"], abs=1e-6)


def test_dense_chain_continues_from_each_stage(tiny_data, tmp_path):
    ds = datasets.mnist_like(tiny_data)
    first = pipeline.train_stage("base", pipeline.solver_param(LENET, SHORT, dataset=ds),
                                 tmp_path, None)
    res = pipeline.dense_chain({"name": "ref", "out": str(tmp_path), "dataset": ds,
                                "weights": first.weights, "every": 0.0,
                                "stages": [(LENET, dict(SHORT, base_lr=0.005)),
                                           (LENET, dict(SHORT, max_iter=6))]})
    assert [s["name"] for s in res["stages"]] == ["ref-1", "ref-2"]
    assert res["iterations"] == 18 and res["weights"].endswith("ref-2_iter_6.caffemodel")
    header = json.loads(open(res["stages"][1]["log"]).readline())
    assert header["weights"] == [res["stages"][0]["weights"]]


def _square(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x * x


def _threads(_):
    from minicaffe.ops import get_num_threads
    return get_num_threads(), os.environ["OMP_NUM_THREADS"]


def test_jobs_run_in_processes_in_order_with_their_threads():
    done = []
    assert jobs.run_jobs(_square, [1, 2, 4], jobs=2, on_done=lambda i, r: done.append(i)) == \
        [1, 4, 16]
    assert sorted(done) == [0, 1, 2]
    assert jobs.run_jobs(_threads, [0, 1], jobs=2, threads=1) == [(1, "1"), (1, "1")]
    assert jobs.run_jobs(_square, [5], jobs=1) == [25]


def test_a_failing_job_is_named():
    with pytest.raises(jobs.JobError, match=r"job 1 failed: ValueError: three is not allowed"):
        jobs.run_jobs(_square, [2, 3, 4], jobs=2)


def test_progress_lines_have_stage_and_total_eta():
    t = [0.0]
    stream = io.StringIO()
    p = common.Progress([("a", 100), ("b", 300)], stream=stream, every=4.0, clock=lambda: t[0])
    cb = p.start("a", 100)
    for it in range(1, 101):
        t[0] += 0.1
        cb(it, 0.5)
    p.end("a")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/2] a: 100 iterations"
    # 10 it/s: after 100 iterations of `a`, `b` (cost 300) is 30 s away
    assert "a 100/100 it, 10.0 it/s, loss 0.5, stage ETA 0s, total ETA 30s" in lines[-2]
    assert "a done in 10s" in lines[-1]
    # a line every 4 s: at iteration 40, 6 s left of `a` and 30 s for `b`
    assert "a 40/100 it, 10.0 it/s, loss 0.5, stage ETA 6s, total ETA 36s" in lines[1]
    assert len(lines) == 5


def test_markdown_table():
    assert common.markdown_table(["a", "b"], [[1, None], ["x", 2.5]]) == \
        "| a | b |\n|---|---|\n| 1 |  |\n| x | 2.5 |"


KILLED_PARENT = """
import os, sys, time
from minicaffe.experiments import jobs

def job(path):
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    jobs.run_jobs(job, [sys.argv[1] + "-0", sys.argv[1] + "-1"], jobs=2)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_killed_parent(tmp_path):
    """`kill -9` of an experiment must not leave its training runs going as orphans."""
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "pid")], env=env)
    pids = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(pids) < 2:
            pids = [int(p.read_text()) for p in tmp_path.glob("pid-*") if p.read_text()]
            time.sleep(0.2)
        assert len(pids) == 2, "the workers did not start"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.time() + 20
    alive = pids
    while alive and time.time() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.2)
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their parent"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
