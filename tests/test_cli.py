"""The `python -m minicaffe.{train,test,time}` entry points, run as subprocesses."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("minicaffe.net")

ROOT = Path(__file__).resolve().parents[1]

NET = """
name: "cli"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 1 dim: 5 dim: 5 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { breadth_decay_mult: 1 kernel_shape_decay_mult: 1 }
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip1" bottom: "label" top: "acc"
  include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
base_lr: {lr} lr_policy: "fixed" momentum: 0.9 max_iter: {max_iter} display: {display}
test_iter: 2 test_interval: 6 snapshot: {snapshot} snapshot_prefix: "out/cli"
breadth_decay: 0.001 kernel_shape_decay: 0.001 random_seed: 3
"""


def write(tmp_path, lr=0.05, max_iter=12, display=4, snapshot=5):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER.format(lr=lr, max_iter=max_iter,
                                                            display=display, snapshot=snapshot))


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONWARNINGS"] = "ignore"
    return e


def run(tmp_path, module, *args):
    return subprocess.run([sys.executable, "-m", f"minicaffe.{module}", *args], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=120)


def test_train_writes_snapshots_log_and_report(tmp_path):
    write(tmp_path)
    r = run(tmp_path, "train", "--solver", "solver.prototxt")
    assert r.returncode == 0, r.stderr
    for line in ("Iteration 0, Testing net (#0)", "Test net output #0: acc = ",
                 "Iteration 4 (", "Train net output #0: loss = ", "sparsity conv1",
                 "flops left", "Optimization Done."):
        assert line in r.stderr, line
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["cli_iter_10.caffemodel", "cli_iter_10.solverstate", "cli_iter_12.caffemodel",
                     "cli_iter_12.solverstate", "cli_iter_5.caffemodel", "cli_iter_5.solverstate",
                     "cli_log.jsonl", "cli_summary.json"]


def test_resume_from_snapshot_is_identical(tmp_path):
    write(tmp_path)
    assert run(tmp_path, "train", "--solver", "solver.prototxt").returncode == 0
    straight = (tmp_path / "out" / "cli_iter_12.caffemodel").read_bytes()
    (tmp_path / "out" / "cli_iter_12.caffemodel").unlink()
    r = run(tmp_path, "train", "-solver", "solver.prototxt",
            "-snapshot", "out/cli_iter_5.solverstate")
    assert r.returncode == 0, r.stderr
    assert "Restoring previous solver status from out/cli_iter_5.solverstate" in r.stderr
    assert (tmp_path / "out" / "cli_iter_12.caffemodel").read_bytes() == straight


def test_finetune_from_weights_and_score_and_time(tmp_path):
    write(tmp_path)
    assert run(tmp_path, "train", "--solver", "solver.prototxt").returncode == 0
    r = run(tmp_path, "train", "--solver", "solver.prototxt", "--weights",
            "out/cli_iter_12.caffemodel")
    assert r.returncode == 0 and "Finetuning from out/cli_iter_12.caffemodel" in r.stderr
    r = run(tmp_path, "test", "--model", "net.prototxt", "--weights", "out/cli_iter_12.caffemodel",
            "--iterations", "3")
    assert r.returncode == 0, r.stderr
    assert "Batch 2, acc = 1" in r.stderr and "\nI" in r.stderr and "acc = 1" in r.stderr
    assert "Loss: " in r.stderr
    r = run(tmp_path, "time", "--model", "net.prototxt", "--iterations", "2")
    assert r.returncode == 0, r.stderr
    for text in ("conv1\tforward: ", "conv1\tbackward: ", "Average Forward-Backward: "):
        assert text in r.stderr


def test_divergence_names_the_layer_and_a_snapshot_that_resumes(tmp_path):
    """The snapshot named is the newest whose weights and loss were finite (the one written
    just before the divergence holds weights whose loss is not); training resumes from it."""
    import re

    write(tmp_path, lr=1e4, snapshot=1, display=1, max_iter=60)
    r = run(tmp_path, "train", "--solver", "solver.prototxt")
    assert r.returncode == 1
    assert "first non-finite output: layer 'ip1' top 'ip1'" in r.stderr
    assert "loss = nan" in r.stderr or "loss = inf" in r.stderr
    m = re.search(r"Iteration (\d+): loss = .*; snapshot out/cli_iter_(\d+)\.solverstate holds "
                  r"these weights \(finite, but their loss is not\)\. Last good snapshot \(finite "
                  r"weights and loss\): (out/cli_iter_(\d+)\.solverstate)", r.stderr)
    assert m, r.stderr
    assert m.group(1) == m.group(2) and int(m.group(4)) == int(m.group(1)) - 1
    named, it = m.group(3), int(m.group(4))
    write(tmp_path, lr=1e-4, snapshot=0, display=1, max_iter=it + 2)
    r = run(tmp_path, "train", "--solver", "solver.prototxt", "--snapshot", named)
    assert r.returncode == 0, r.stderr
    assert f"Iteration {it}, loss = " in r.stderr


def test_divergence_before_any_good_snapshot_says_so(tmp_path):
    write(tmp_path, lr=1e30, snapshot=1, display=1)
    r = run(tmp_path, "train", "--solver", "solver.prototxt")
    assert r.returncode == 1
    assert "No snapshot of this run had finite weights and loss." in r.stderr


def test_errors_are_one_line_messages(tmp_path):
    r = run(tmp_path, "train", "--solver", "missing.prototxt")
    assert r.returncode == 1 and "missing.prototxt" in r.stderr and "Traceback" not in r.stderr
    r = run(tmp_path, "train")
    assert r.returncode == 2 and "--solver" in r.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_sigint_snapshots_and_stops(tmp_path):
    write(tmp_path, max_iter=10**6, display=50, snapshot=0)
    proc = subprocess.Popen([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt"],
                            cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 60
    for line in proc.stderr:
        seen.append(line)
        if "Iteration 100 (" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    text = "".join(seen) + rest
    assert proc.returncode == 0, text
    assert "Optimization stopped early." in text
    states = list((tmp_path / "out").glob("cli_iter_*.solverstate"))
    assert len(states) == 1
    it = int(states[0].stem.split("_")[-1])
    assert 100 <= it < 10**6
    assert (tmp_path / "out" / f"cli_iter_{it}.caffemodel").exists()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_snapshots_and_stops_like_sigint(tmp_path):
    """SIGTERM (what schedulers and `kill` send) killed the run without a snapshot."""
    write(tmp_path, max_iter=10**6, display=50, snapshot=0)
    proc = subprocess.Popen([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt"],
                            cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.time() + 60
    for line in proc.stderr:
        seen.append(line)
        if "Iteration 100 (" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    text = "".join(seen) + rest
    assert proc.returncode == 0, text
    assert "SIGTERM: snapshotting and stopping" in text and "Optimization stopped early." in text
    states = list((tmp_path / "out").glob("cli_iter_*.solverstate"))
    assert len(states) == 1
    it = int(states[0].stem.split("_")[-1])
    assert 100 <= it < 10**6
    assert (tmp_path / "out" / f"cli_iter_{it}.caffemodel").exists()
    # resumable: a second run picks it up and runs to a max_iter just past it
    write(tmp_path, max_iter=it + 1, display=1, snapshot=0)
    r = run(tmp_path, "train", "--solver", "solver.prototxt", "--snapshot",
            f"out/cli_iter_{it}.solverstate")
    assert r.returncode == 0, r.stderr


def test_a_full_disk_while_snapshotting_is_a_clear_error(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the snapshot write fails with EFBIG."""
    import resource

    write(tmp_path, max_iter=12, snapshot=5)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))

    r = subprocess.run([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt"],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120,
                       preexec_fn=limit)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert ("snapshot of iteration 5 to out/cli_iter_5.caffemodel failed: [Errno 27] File too "
            "large; nothing of it was kept, no earlier snapshot of this run") in r.stderr
    assert not [p for p in (tmp_path / "out").iterdir() if "iter" in p.name]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_sighup_snapshots_and_continues(tmp_path):
    write(tmp_path, max_iter=10**6, display=50, snapshot=0)
    proc = subprocess.Popen([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt"],
                            cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True)
    sent = []
    deadline = time.time() + 60
    for line in proc.stderr:
        if ("Iteration 100 (" in line and not sent) or time.time() > deadline:
            proc.send_signal(signal.SIGHUP)
            sent.append("hup")
        if "Snapshotting solver state" in line and sent == ["hup"]:
            sent.append("seen")
        if "Iteration 300 (" in line and "seen" in sent:
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    states = sorted(int(p.stem.split("_")[-1]) for p in (tmp_path / "out").glob("*.solverstate"))
    assert len(states) == 2 and 100 <= states[0] < 300 <= states[1]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_signal_effects_are_chosen_as_in_caffe(tmp_path):
    """Caffe's -sigint_effect / -sighup_effect (and ours for SIGTERM), each effect once:
    SIGINT snapshots and goes on, SIGHUP is ignored, SIGTERM snapshots and stops."""
    write(tmp_path, max_iter=10**6, display=50, snapshot=0)
    proc = subprocess.Popen([sys.executable, "-m", "minicaffe.train", "--solver", "solver.prototxt",
                             "-sigint_effect", "snapshot", "--sighup_effect", "none"],
                            cwd=tmp_path, env=env(), stderr=subprocess.PIPE, text=True)
    steps = [("Iteration 100 (", signal.SIGINT),
             ("Snapshotting solver state", signal.SIGHUP),
             ("SIGHUP ignored (--sighup_effect none)", None),
             ("Iteration ", signal.SIGTERM)]
    seen = []
    deadline = time.time() + 90
    for line in proc.stderr:
        seen.append(line)
        if steps and steps[0][0] in line:
            _, sig = steps.pop(0)
            if sig is not None:
                proc.send_signal(sig)
            if not steps:
                break
        if time.time() > deadline:
            proc.kill()
            break
    _, rest = proc.communicate(timeout=60)
    text = "".join(seen) + rest
    assert proc.returncode == 0 and not steps, text[-3000:]
    assert "SIGINT: snapshotting after this iteration" in text
    assert "SIGTERM: snapshotting and stopping" in text and "Optimization stopped early." in text
    states = sorted(int(p.stem.split("_")[-1]) for p in (tmp_path / "out").glob("*.solverstate"))
    assert len(states) == 2 and 100 <= states[0] < states[1] < 10**6, states


def test_an_unknown_signal_effect_is_a_usage_error(tmp_path):
    write(tmp_path)
    r = run(tmp_path, "train", "--solver", "solver.prototxt", "--sigint_effect", "pause")
    assert r.returncode == 2
    assert "--sigint_effect" in r.stderr and "'stop', 'snapshot', 'none'" in r.stderr


def test_gpu_flag_without_a_gpu_is_a_clear_error(tmp_path):
    from minicaffe import backend
    if backend.gpu_available():
        pytest.skip("a GPU is present")
    write(tmp_path)
    r = run(tmp_path, "train", "--solver", "solver.prototxt", "--gpu", "0")
    assert r.returncode == 1 and "GPU mode needs CuPy" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("module, args", [
    ("time", ["--model", "net.prototxt"]),
    ("test", ["--model", "net.prototxt", "--weights", "none.caffemodel"]),
])
def test_gpu_flag_without_a_gpu_is_a_clear_error_in_test_and_time(tmp_path, module, args):
    from minicaffe import backend
    if backend.gpu_available():
        pytest.skip("a GPU is present")
    write(tmp_path)
    r = run(tmp_path, module, *args, "--gpu", "0")
    assert r.returncode == 1 and "GPU mode needs CuPy" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("module, args", [
    ("train", ["--solver", "solver.prototxt"]),
    ("time", ["--model", "net.prototxt"]),
])
def test_gpu_flag_that_is_not_one_device_id_is_a_usage_error(tmp_path, module, args):
    # Caffe's `-gpu all` / `-gpu 0,1` select several GPUs; minicaffe runs on one.
    write(tmp_path)
    for value in ("all", "0,1"):
        r = run(tmp_path, module, *args, "--gpu", value)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert "--gpu" in r.stderr and "one CUDA device id" in r.stderr, r.stderr
