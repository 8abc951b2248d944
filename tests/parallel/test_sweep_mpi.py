"""`mpirun -n 2 python -m minicaffe.sweep`: the sweep's MPI mode. With one rank per run each
rank trains its own points and the table is the local sweep's; with two ranks per run each
point trains data parallel over both, to the weights of one process with the doubled batch."""
import json

import pytest

from minicaffe import sweep
from tests.parallel.mpi_helpers import assert_same_weights, mpirun, need_mpi
from tests.parallel.test_mpi import _lenet

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _mpi():
    need_mpi()


def _sweep(solver, out, *more):
    return ["-m", "minicaffe.sweep", "--solver", solver, "--out", str(out), *more]


def _quiet(*args, **kwargs):
    pass


def test_one_rank_per_run_gives_the_local_table(tmp_path):
    solver = _lenet(tmp_path, 16, "s", 4, threshold=0.01)
    proc, _ = mpirun(2, _sweep(solver, tmp_path / "mpi", "--set", "breadth_decay=0.001,0.3"),
                     tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("# Sweep of") == 1            # world rank 0 prints the table
    mpi = json.loads((tmp_path / "mpi" / "sweep.json").read_text())
    local = sweep.run_sweep(solver, [("breadth_decay", ["0.001", "0.3"])], tmp_path / "local",
                            log=_quiet)
    assert [p["overrides"] for p in mpi["points"]] == [p["overrides"] for p in local["points"]]
    for a, b in zip(mpi["points"], local["points"]):
        assert a["conv_flops"] == b["conv_flops"] and a["flops"] == b["flops"]
        assert a["ssl_error"] == pytest.approx(b["ssl_error"], abs=1e-6)
    # both ranks trained: point 0 on rank 0, point 1 on rank 1 (its own log file)
    assert (tmp_path / "mpi" / "01_breadth_decay=0.3" / "01_breadth_decay=0.3.log").exists()
    assert (tmp_path / "mpi" / "sweep.md").read_text().startswith("# Sweep of")


def test_two_ranks_per_run_train_each_point_data_parallel(tmp_path):
    two = _lenet(tmp_path, 16, "two", 4)
    one = _lenet(tmp_path, 32, "one", 4)
    proc, _ = mpirun(2, _sweep(two, tmp_path / "mpi", "--set", "breadth_decay=0.003",
                               "--ranks-per-run", "2"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    name = "00_breadth_decay=0.003"
    assert "Data parallel: 2 replicas" in (tmp_path / "mpi" / name / f"{name}.log").read_text()
    sweep.run_sweep(one, [("breadth_decay", ["0.003"])], tmp_path / "local", log=_quiet)
    stage = f"ssl-{name}_iter_4.caffemodel"
    assert_same_weights(tmp_path / "mpi" / name / stage, tmp_path / "local" / name / stage)
    mpi = json.loads((tmp_path / "mpi" / "sweep.json").read_text())
    local = json.loads((tmp_path / "local" / "sweep.json").read_text())
    assert mpi["points"][0]["ssl_error"] == pytest.approx(local["points"][0]["ssl_error"],
                                                          abs=1e-6)


def test_ranks_that_do_not_split_into_groups_are_refused(tmp_path):
    solver = _lenet(tmp_path, 16, "s", 4)
    proc, seconds = mpirun(2, _sweep(solver, tmp_path / "o", "--set", "breadth_decay=0.1",
                                     "--ranks-per-run", "3"), tmp_path)
    assert proc.returncode == 1 and seconds < 30
    assert proc.stderr.count("2 MPI ranks do not split into groups of 3") == 2
    proc, _ = mpirun(2, _sweep(solver, tmp_path / "o", "--set", "breadth_decay=0.1",
                               "--jobs", "2"), tmp_path)
    assert proc.returncode == 1 and "--jobs is for local processes" in proc.stderr
