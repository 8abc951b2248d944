"""InfogainLoss: softmax + H-weighted log loss, H from a bottom or a .binaryproto source,
ignore_label / normalization, probability top; cross-checked with torch's log_softmax."""
import numpy as np
import pytest

from minicaffe import wire
from minicaffe.testing.layer_case import LayerCase, expect_setup_error

K = 4


def _h(rng=None):
    rng = rng or np.random.default_rng(11)
    return rng.uniform(0.0, 2.0, (K, K))


def _loss(x, label, H, axis=1, ignore=None, normalization="VALID"):
    x = np.moveaxis(x, axis, -1)
    outer_inner = x.reshape(-1, K)
    lab = label.reshape(-1)
    if axis != 1 or x.ndim > 2:     # labels run over (outer, inner) in memory order
        lab = label.reshape(x.shape[:-1]).reshape(-1)
    total, valid = 0.0, 0
    for row, lab_i in zip(outer_inner, lab):
        if ignore is not None and int(lab_i) == ignore:
            continue
        p = np.exp(row - row.max())
        p /= p.sum()
        total -= sum(H[int(lab_i), k] * np.log(max(p[k], 1e-20)) for k in range(K))
        valid += 1
    n_outer = int(np.prod(x.shape[:axis]))
    norm = {"VALID": valid, "FULL": lab.size, "BATCH_SIZE": n_outer, "NONE": 1}[normalization]
    return total / max(norm, 1)


class _InfogainCase(LayerCase):
    type = "InfogainLoss"
    gradient_bottoms = [0]

    def make_bottoms(self, rng):
        x_shape, l_shape = self.bottom_shapes[:2]
        out = [rng.standard_normal(x_shape), rng.integers(0, K, l_shape).astype(np.float64)]
        if len(self.bottom_shapes) == 3:
            shape = self.bottom_shapes[2]
            out.append(np.resize(_h(), int(np.prod(shape))).reshape(shape))
        return out


class TestInfogainLoss(_InfogainCase):
    bottom_shapes = [(5, K), (5,), (K, K)]

    def reference(self, x, label, H):
        return _loss(x, label, H)


class TestInfogainLossSpatialIgnoreProb(_InfogainCase):
    bottom_shapes = [(2, K, 3), (2, 3), (1, 1, K, K)]
    params = "loss_param { ignore_label: 2 normalization: FULL }"
    num_tops = 2
    layer_fields = {"loss_weight": [1.0, 0.0]}

    def reference(self, x, label, H):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return (_loss(x, label, H.reshape(K, K), ignore=2, normalization="FULL"),
                e / e.sum(axis=1, keepdims=True))

    def _top_weights(self, top):
        weights = super()._top_weights(top)
        weights[1][...] = 0.0               # the probability top is an output only
        return weights


class TestInfogainLossAxis(_InfogainCase):
    bottom_shapes = [(2, 3, K), (2, 3), (K, K)]
    params = "infogain_loss_param { axis: -1 } loss_param { normalization: BATCH_SIZE }"

    def reference(self, x, label, H):
        return _loss(x, label, H, axis=2, normalization="BATCH_SIZE")


class _InfogainFromFile(_InfogainCase):
    """Built by test_source_file with the path of the H file it writes."""
    bottom_shapes = [(6, K), (6,)]

    def reference(self, x, label):
        return _loss(x, label, _h())


def _write_h(path, H, legacy=True):
    path.write_bytes(wire.encode_blob_proto(H.reshape(1, 1, K, K).astype(np.float32),
                                            legacy_4d=legacy))


def test_source_file(tmp_path):
    path = tmp_path / "H.binaryproto"
    _write_h(path, _h())
    case = _InfogainFromFile()
    case.params = f'infogain_loss_param {{ source: "{path}" }}'
    case.forward_rtol = 1e-6                  # H went through float32 in the file
    case.test_forward_matches_reference()
    case.test_gradient_bottoms()


def test_identity_h_equals_softmax_with_loss(torch):
    case = TestInfogainLoss()
    rng = np.random.default_rng(0)
    x, label = rng.standard_normal((5, K)), rng.integers(0, K, 5).astype(np.float64)
    layer, bottom, top = case.build(bottom_values=[x, label, np.eye(K)])
    case.run_forward(layer, bottom, top)
    want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(label).long())
    assert float(top[0].data) == pytest.approx(want.item(), rel=1e-13)


def test_matches_torch_log_softmax(torch):
    case = TestInfogainLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True, False, False], bottom)
    x = torch.tensor(np.array(bottom[0].data), requires_grad=True)
    label = torch.tensor(np.array(bottom[1].data)).long()
    H = torch.tensor(np.array(bottom[2].data))
    loss = -(H[label] * torch.log_softmax(x, dim=1)).sum() / 5
    loss.backward()
    assert float(top[0].data) == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(bottom[0].diff, x.grad.numpy(), rtol=1e-12, atol=1e-16)


def test_missing_source_is_named():
    expect_setup_error(TestInfogainLoss, [(5, K), (5,)], "infogain_loss_param.source")


def test_unreadable_source_is_named(tmp_path):
    expect_setup_error(TestInfogainLoss, [(5, K), (5,)], "cannot read",
                       params=f'infogain_loss_param {{ source: "{tmp_path / "none.binaryproto"}" }}')


def test_wrong_h_size_is_named():
    expect_setup_error(TestInfogainLoss, [(5, K), (5,), (3, 3)], "4x4 = 16 values")


def test_relative_source_found_beside_the_prototxt(tmp_path, monkeypatch):
    from minicaffe.net import Net
    _write_h(tmp_path / "H.binaryproto", _h())
    (tmp_path / "net.prototxt").write_text(
        'input: "x" input_shape { dim: 3 dim: 4 }\n'
        'input: "y" input_shape { dim: 3 }\n'
        'layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "y" top: "loss"\n'
        '  infogain_loss_param { source: "H.binaryproto" } }\n')
    monkeypatch.chdir(tmp_path.parent)
    net = Net(str(tmp_path / "net.prototxt"), "TEST")
    net.blobs["x"].data[...] = 0.0
    net.forward()
    want = -_h().sum(axis=1)[0] * np.log(0.25)   # uniform softmax, all labels 0
    assert float(net.blobs["loss"].data) == pytest.approx(want, rel=1e-6)


def test_legacy_normalize_is_refused():
    expect_setup_error(TestInfogainLoss, [(5, K), (5,), (K, K)], "normalize is deprecated",
                       params="loss_param { normalize: true }")


def test_refuses_backward_to_labels_and_h():
    case = TestInfogainLoss()
    layer, bottom, top = case.build()
    case.run_forward(layer, bottom, top)
    with pytest.raises(ValueError, match="labels"):
        layer.backward(top, [True, True, False], bottom)
    with pytest.raises(ValueError, match="infogain matrix"):
        layer.backward(top, [True, False, True], bottom)
