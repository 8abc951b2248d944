"""type: "Python" layers (pycaffe's caffe.Layer), used the way pycaffe's own tests use them."""
import itertools
import sys
import textwrap

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe.errors import LayerSetupError
from minicaffe.testing.layer_case import LayerCase

MODULE = "minicaffe.testing.python_layers"


class TestPythonAffine(LayerCase):
    """A Python layer with a learnable blob (add_blob) and a param_str: gradient-checked."""
    type, param_field = "Python", "python_param"
    params = {"module": MODULE, "layer": "AffineLayer", "param_str": "{'shift': 0.5}"}
    bottom_shapes = [(2, 3, 4)]

    def reference(self, x):
        return self.param_data[0].reshape(1, 3, 1) * x + 0.5


class TestPythonEuclideanLoss(LayerCase):
    type, param_field = "Python", "python_param"
    params = {"module": MODULE, "layer": "EuclideanLossLayer"}
    bottom_shapes = [(4, 3), (4, 3)]

    def reference(self, a, b):
        return np.array([((a - b) ** 2).sum() / 4 / 2])


_counter = itertools.count()

SIMPLE = '''
import minicaffe as caffe


class SimpleLayer(caffe.Layer):
    """multiplies by ten"""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("from setup")


class ParameterLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class ParamStrLayer(caffe.Layer):
    def setup(self, bottom, top):
        try:
            self.value = float(self.param_str)
        except ValueError:
            raise ValueError("Parameter string must be a legible float")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff


class NotALayer:
    pass
'''


@pytest.fixture
def layer_module(tmp_path):
    """Writes SIMPLE as a uniquely named module next to the prototxt files (not on sys.path)."""
    name = f"pylayers_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(SIMPLE)
    yield name
    sys.modules.pop(name, None)


def _net_file(tmp_path, body, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def _three_simple(tmp_path, module):
    return _net_file(tmp_path, f"""\
        name: 'pythonnet' force_backward: true
        input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
        layer {{ type: 'Python' name: 'one' bottom: 'data' top: 'one'
          python_param {{ module: '{module}' layer: 'SimpleLayer' }} }}
        layer {{ type: 'Python' name: 'two' bottom: 'one' top: 'two'
          python_param {{ module: '{module}' layer: 'SimpleLayer' }} }}
        layer {{ type: 'Python' name: 'three' bottom: 'two' top: 'three'
          python_param {{ module: '{module}' layer: 'SimpleLayer' }} }}""")


def test_forward_backward_reshape(tmp_path, layer_module):
    net = caffe.Net(_three_simple(tmp_path, layer_module), caffe.TRAIN)
    assert "Python" in caffe.layer_type_list()
    assert layer_module not in sys.path and str(tmp_path) not in sys.path   # found in the folder
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.all(net.blobs["three"].data == 10 ** 3 * 8)
    net.blobs["three"].diff[...] = 7
    net.backward()
    assert np.all(net.blobs["data"].diff == 10 ** 3 * 7)
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    assert all(blob.data.shape == (4, 4, 4, 4) for blob in net.blobs.values())
    assert isinstance(net.layers[1], caffe.Layer) and net.layers[1].type == "Python"


def test_exception_in_setup_propagates(tmp_path, layer_module):
    path = _net_file(tmp_path, f"""\
        input: 'data' input_shape {{ dim: 1 }}
        layer {{ type: 'Python' name: 'layer' bottom: 'data' top: 'top'
          python_param {{ module: '{layer_module}' layer: 'ExceptionLayer' }} }}""")
    with pytest.raises(RuntimeError, match="from setup"):
        caffe.Net(path, caffe.TEST)


def test_parameter_blob_learns_saves_and_shares(tmp_path, layer_module):
    path = _net_file(tmp_path, f"""\
        name: 'pythonnet' force_backward: true
        input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
        layer {{ type: 'Python' name: 'layer' bottom: 'data' top: 'top'
          python_param {{ module: '{layer_module}' layer: 'ParameterLayer' }} }}""")
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert list(net.params) == ["layer"] and net.params["layer"][0].data[0] == 1
    weights = str(tmp_path / "p.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1
    net2 = caffe.Net(path, caffe.TRAIN)
    net2.share_with(net)
    assert net2.layers[1].blobs[0].data[0] == 1
    net.layers[1].blobs[0].data[0] = 5
    assert net2.layers[1].blobs[0].data[0] == 5          # shared storage, not a copy


def test_phase_and_param_str(tmp_path, layer_module):
    path = _net_file(tmp_path, f"""\
        layer {{ type: 'Python' name: 'layer' top: 'phase'
          python_param {{ module: '{MODULE}' layer: 'PhaseLayer' }} }}""")
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(path, phase)
        assert net.forward()["phase"] == phase and net.layers[0].phase == phase
    path = _net_file(tmp_path, f"""\
        force_backward: true
        input: 'data' input_shape {{ dim: 10 dim: 9 dim: 8 }}
        layer {{ type: 'Python' name: 'mul10' bottom: 'data' top: 'mul10'
          python_param {{ module: '{layer_module}' layer: 'ParamStrLayer' param_str: '10' }} }}
        layer {{ type: 'Python' name: 'mul2' bottom: 'mul10' top: 'mul2'
          python_param {{ module: '{layer_module}' layer: 'ParamStrLayer' param_str: '2' }} }}""",
                    name="param.prototxt")
    net = caffe.Net(path, caffe.TRAIN)
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.all(net.blobs["mul2"].data == 2 * 10 * 8)
    net.blobs["mul2"].diff[...] = 7
    net.backward()
    assert np.all(net.blobs["data"].diff == 2 * 10 * 7)
    assert net.layers[1].param_str == "10"


def test_python_loss_layer_with_loss_weight_trains(tmp_path):
    """A Python loss (loss_weight: 1) and a Python layer with a learnable blob under SGD."""
    net_path = _net_file(tmp_path, f"""\
        name: 'fit'
        layer {{ name: 'data' type: 'DummyData' top: 'x' top: 'y'
          dummy_data_param {{ shape {{ dim: 8 dim: 3 }} shape {{ dim: 8 dim: 3 }}
                              data_filler {{ type: 'gaussian' }} data_filler {{ type: 'constant' value: 1 }} }} }}
        layer {{ name: 'affine' type: 'Python' bottom: 'x' top: 'ax'
          python_param {{ module: '{MODULE}' layer: 'AffineLayer' }} param {{ lr_mult: 2 }} }}
        layer {{ name: 'loss' type: 'Python' bottom: 'ax' bottom: 'y' top: 'loss' loss_weight: 1
          python_param {{ module: '{MODULE}' layer: 'EuclideanLossLayer' }} }}""")
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'net: "{net_path}" base_lr: 0.05 lr_policy: "fixed" max_iter: 3 '
                           'display: 0 snapshot_after_train: false')
    solver = caffe.SGDSolver(str(solver_path))
    net = solver.net
    x, y = net.blobs["x"].data, net.blobs["y"].data
    net.forward()
    expected = ((x - y) ** 2).sum() / 8 / 2                # scale starts at 1
    assert net.blobs["loss"].data[0] == pytest.approx(expected, rel=1e-5)
    assert net.blob_loss_weights["loss"] == 1
    before = net.params["affine"][0].data.copy()
    solver.step(1)
    grad = ((before.reshape(1, 3) * x - y) * x).sum(axis=0) / 8
    np.testing.assert_allclose(net.params["affine"][0].data, before - 0.05 * 2 * grad, rtol=1e-4)


@pytest.mark.parametrize("python_param, match", [
    ("module: 'no_such_module_xyz' layer: 'L'",
     r"net\.prototxt:2:1: layer 'bad' \(Python\): cannot import python_param module "
     r"'no_such_module_xyz': no module named 'no_such_module_xyz' \(searched sys\.path and "),
    (f"module: '{MODULE}' layer: 'Missing'",
     r"net\.prototxt:2:1: layer 'bad' \(Python\): module '.*python_layers' .* has no layer class "
     r"'Missing' \(caffe\.Layer subclasses there: AffineLayer, EuclideanLossLayer, PhaseLayer\)"),
    ("layer: 'L'", r"python_param needs both `module` and `layer`"),
])
def test_import_errors_name_the_file_line_layer_and_module(tmp_path, python_param, match):
    path = _net_file(tmp_path, f"""\
        input: 'data' input_shape {{ dim: 1 }}
        layer {{ type: 'Python' name: 'bad' bottom: 'data' top: 'top' python_param {{ {python_param} }} }}""")
    with pytest.raises(LayerSetupError, match=match):
        caffe.Net(path, caffe.TEST)


def test_a_broken_module_is_reported_as_an_import_error(tmp_path, layer_module):
    name = f"broken_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text("import numpy\nimport not_installed_dependency_q\n")
    path = _net_file(tmp_path, f"""\
        input: 'data' input_shape {{ dim: 1 }}
        layer {{ type: 'Python' name: 'bad' bottom: 'data' top: 'top'
          python_param {{ module: '{name}' layer: 'L' }} }}""")
    with pytest.raises(ImportError, match=r"cannot import python_param module '%s': importing it "
                       r"failed: ModuleNotFoundError: No module named 'not_installed_dependency_q'" % name):
        caffe.Net(path, caffe.TEST)
    sys.modules.pop(name, None)
    path = _net_file(tmp_path, f"""\
        input: 'data' input_shape {{ dim: 1 }}
        layer {{ type: 'Python' name: 'bad' bottom: 'data' top: 'top'
          python_param {{ module: '{layer_module}' layer: 'NotALayer' }} }}""", name="n2.prototxt")
    with pytest.raises(LayerSetupError, match=r"n2\.prototxt:2:1: .*'%s\.NotALayer' is not a "
                       r"subclass of caffe\.Layer" % layer_module):
        caffe.Net(path, caffe.TEST)


def test_a_layer_without_backward_says_so_when_gradients_are_needed(tmp_path):
    name = f"nobackward_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""\
        import minicaffe as caffe
        class Double(caffe.Layer):
            def reshape(self, bottom, top):
                top[0].reshape(*bottom[0].shape)
            def forward(self, bottom, top):
                top[0].data[...] = 2 * bottom[0].data
        """))
    path = _net_file(tmp_path, f"""\
        force_backward: true
        input: 'data' input_shape {{ dim: 2 }}
        layer {{ type: 'Python' name: 'double' bottom: 'data' top: 'top'
          python_param {{ module: '{name}' layer: 'Double' }} }}""")
    net = caffe.Net(path, caffe.TEST)
    assert net.forward(data=np.array([1.0, 2.0]))["top"].tolist() == [2.0, 4.0]
    with pytest.raises(NotImplementedError, match=r"'double' \(%s\.Double\) .* backward" % name):
        net.backward()
    sys.modules.pop(name, None)
