"""python -m minicaffe.sweep: the grid of a sweep and its argument errors (the runs themselves
are exercised in tests/experiments/test_experiments.py)."""
import pytest

from minicaffe import sweep
from minicaffe.errors import SolverError


def test_parse_set():
    assert sweep.parse_set("breadth_decay=0.001,0.003, 0.01") == ("breadth_decay",
                                                                   ["0.001", "0.003", "0.01"])
    for bad in ("breadth_decay", "=1", "x=", "x=,"):
        with pytest.raises(SolverError, match="expected FIELD=VALUE"):
            sweep.parse_set(bad)


def test_grid_product_and_zip():
    sets = [("a", ["1", "2"]), ("b", ["x", "y", "z"])]
    assert len(sweep.grid(sets)) == 6
    assert sweep.grid(sets)[:2] == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"}]
    assert sweep.grid([("a", ["1", "2"]), ("b", ["x", "y"])], zipped=True) == \
        [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]
    with pytest.raises(SolverError, match="--zip needs the same number of values"):
        sweep.grid(sets, zipped=True)
    with pytest.raises(SolverError, match="names a field twice"):
        sweep.grid([("a", ["1"]), ("a", ["2"])])
    assert sweep.grid([]) == [{}]


def test_point_names_are_folder_safe_and_ordered():
    assert sweep.point_name(3, {"breadth_decay": "0.01", "lr_policy": "poly"}) == \
        "03_breadth_decay=0.01_lr_policy=poly"
    assert sweep.point_name(0, {}) == "00_base"


def test_a_misspelled_field_fails_before_any_training(tmp_path, capsys):
    rc = sweep.main(["--solver", "prototxt/lenet/lenet_ssl_solver.prototxt", "--set",
                     "breadth_decy=0.1,0.2", "--out", str(tmp_path / "s")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no field 'breadth_decy'; did you mean 'breadth_decay'" in err
    assert not (tmp_path / "s").exists()
    assert sweep.main(["--solver", "prototxt/lenet/lenet_ssl_solver.prototxt",
                       "--jobs", "0"]) == 1
