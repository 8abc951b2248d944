"""pycaffe's solver surface: caffe.get_solver(path) dispatching on `type`, the solver classes."""
import numpy as np
import pytest

pytest.importorskip("minicaffe.net")

import minicaffe as caffe                       # noqa: E402
from minicaffe.errors import SolverError       # noqa: E402

NET = """
layer { name: "data" type: "Input" top: "x" top: "y"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "p"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "y" top: "loss" }
"""


@pytest.mark.parametrize("type_,cls", [("SGD", "SGDSolver"), ("Nesterov", "NesterovSolver"),
                                       ("AdaGrad", "AdaGradSolver"), ("RMSProp", "RMSPropSolver"),
                                       ("AdaDelta", "AdaDeltaSolver"), ("Adam", "AdamSolver")])
def test_get_solver_from_file(tmp_path, type_, cls):
    (tmp_path / "net.prototxt").write_text(NET)
    momentum = {"SGD": 0.9, "Nesterov": 0.9, "AdaDelta": 0.95, "Adam": 0.9}.get(type_, 0)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "net.prototxt" type: "{type_}" base_lr: 0.01 lr_policy: "fixed" '
                    f'momentum: {momentum} max_iter: 3 snapshot_prefix: "{tmp_path}/s"')
    solver = caffe.get_solver(str(path))       # net path found next to the solver file
    assert type(solver) is getattr(caffe, cls)
    rng = np.random.default_rng(0)
    solver.net.blobs["x"].data[...] = rng.standard_normal((4, 3))
    solver.net.blobs["y"].data[...] = rng.standard_normal((4, 2))
    before = solver.net.params["fc"][0].data.copy()
    solver.step(2)
    assert solver.iter == 2
    assert not np.array_equal(solver.net.params["fc"][0].data, before)
    solver.solve()
    assert solver.iter == 3 and (tmp_path / "s_iter_3.caffemodel").exists()
    same = getattr(caffe, cls)(str(path))
    assert type(same) is type(solver) and same.test_nets == []


def test_unknown_type_is_a_clear_error(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "net.prototxt" type: "Adamm" base_lr: 0.01 lr_policy: "fixed"')
    with pytest.raises(SolverError, match="unknown solver type 'Adamm'.*did you mean 'Adam'"):
        caffe.get_solver(str(path))
