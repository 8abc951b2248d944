"""Net: graph building (splits, in-place, filtering), loss weights, backward analysis,
parameter sharing, partial passes and error messages."""
import re

import numpy as np
import pytest

import minicaffe as caffe
from minicaffe.errors import LayerSetupError, ShapeError
from minicaffe.net import Net
from minicaffe.prototxt import parse_net

INPUT = 'layer {{ name: "in" type: "Input" top: "x" {extra_tops} input_param {{ {shapes} }} }}\n'


def make_net(body, phase=caffe.TRAIN, shapes="shape { dim: 3 dim: 4 }", extra_tops="",
             header="", **kwargs):
    text = header + INPUT.format(shapes=shapes, extra_tops=extra_tops) + body
    return Net(parse_net(text), phase, dtype=np.float64, **kwargs)


def ip(name, bottom, top, n, extra=""):
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{top}" {extra} '
            f'inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" std: 0.5 }} '
            f'bias_filler {{ type: "gaussian" std: 0.5 }} }} }}\n')


def numeric_grad_check(net, arrays, rng, step=1e-6, tol=1e-6):
    """Compare each array's diff after forward_backward with central differences of the loss."""
    for blob in net.learnable_params:
        blob.diff[...] = 0
    net.forward_backward()
    for what, blob in arrays:
        analytic = np.array(blob.diff)
        base = np.array(blob.data)
        for idx in np.ndindex(base.shape):
            blob.data[idx] = base[idx] + step
            up = net.forward_all_loss()
            blob.data[idx] = base[idx] - step
            down = net.forward_all_loss()
            blob.data[idx] = base[idx]
            numeric = (up - down) / (2 * step)
            assert abs(numeric - analytic[idx]) <= tol * max(1.0, abs(numeric)), (
                f"{what} at {idx}: analytic {analytic[idx]}, numeric {numeric}")


# -- building -----------------------------------------------------------------------------
def test_split_is_inserted_and_diffs_are_summed(rng):
    net = make_net(ip("a", "x", "a", 2) + ip("b", "x", "b", 2) +
                   'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }\n'
                   'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } } }\n'
                   'layer { name: "loss" type: "EuclideanLoss" bottom: "e" bottom: "t" top: "loss" }\n',
                   header="force_backward: true\n")
    assert "x_in_0_split" in net._layer_names
    assert net.bottom_names["a"] == ["x_in_0_split_0"] and net.bottom_names["b"] == ["x_in_0_split_1"]
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.forward_backward()
    wa, wb = net.params["a"][0].data, net.params["b"][0].data
    e = net.blobs["e"].data
    np.testing.assert_allclose(net.blobs["x"].diff, (e / 3) @ (wa + wb), rtol=1e-12)
    numeric_grad_check(net, [("x", net.blobs["x"])] + [(f"p{i}", b) for i, b in enumerate(net.learnable_params)], rng)


def test_splits_follow_a_growing_batch(rng):
    net = make_net(ip("a", "x", "a", 2) + ip("b", "x", "b", 2) +
                   'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }\n',
                   header="force_backward: true\n")
    for n in (3, 7, 2):
        net.blobs["x"].reshape(n, 4)              # pycaffe: forward(x=...) must be batch sized
        net.forward(x=rng.standard_normal((n, 4)))
        dx = net.backward(e=np.ones((n, 2)))["x"]
        w = net.params["a"][0].data + net.params["b"][0].data
        np.testing.assert_allclose(dx, np.ones((n, 2)) @ w, rtol=1e-12)


def test_in_place_layers_share_the_blob(rng):
    net = make_net(ip("a", "x", "a", 5) +
                   'layer { name: "r" type: "ReLU" bottom: "a" top: "a" }\n'
                   'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 5 } } }\n'
                   'layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "loss" }\n')
    assert list(net.blobs) == ["x", "a", "t", "loss"]
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.forward()
    assert (net.blobs["a"].data >= 0).all()
    numeric_grad_check(net, [(f"p{i}", b) for i, b in enumerate(net.learnable_params)], rng)


def test_in_place_on_a_blob_read_elsewhere_gets_a_new_version(rng):
    # "a" feeds the in-place ReLU and the Eltwise: the split keeps the pre-ReLU values for "e"
    net = make_net(ip("a", "x", "a", 3) +
                   'layer { name: "e" type: "Eltwise" bottom: "a" bottom: "a" top: "e" eltwise_param { coeff: 1 coeff: 1 } }\n'
                   'layer { name: "r" type: "ReLU" bottom: "a" top: "a" }\n'
                   'layer { name: "s" type: "Eltwise" bottom: "a" bottom: "e" top: "s" }\n'
                   'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 3 } } }\n'
                   'layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }\n')
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.forward()
    pre = net.blobs["x"].data @ net.params["a"][0].data.T + net.params["a"][1].data
    np.testing.assert_allclose(net.blobs["s"].data, np.maximum(pre, 0) + 2 * pre, rtol=1e-12)
    numeric_grad_check(net, [(f"p{i}", b) for i, b in enumerate(net.learnable_params)], rng)


def test_outputs_inputs_and_blob_order():
    net = make_net(ip("z", "x", "z", 2) + ip("a", "x", "a", 2), extra_tops='top: "y"',
                   shapes="shape { dim: 3 dim: 4 } shape { dim: 3 }")
    assert net.inputs == ["x", "y"]
    assert net.outputs == ["a", "y", "z"]          # Caffe keeps outputs in a sorted set
    assert list(net.params) == ["z", "a"]
    assert [type(l).__name__ for l in net.layers][:2] == ["Input", "Split"]


def test_phase_and_stage_filtering():
    body = (ip("a", "x", "a", 2, 'include { phase: TRAIN }') +
            ip("a", "x", "b", 3, 'include { phase: TEST }') +
            ip("deploy_only", "x", "c", 1, 'include { stage: "deploy" }'))
    train, test = make_net(body, caffe.TRAIN), make_net(body, caffe.TEST)
    assert train.params["a"][0].shape == (2, 4) and test.params["a"][0].shape == (3, 4)
    assert "deploy_only" not in train.layer_dict
    assert "deploy_only" in make_net(body, caffe.TEST, stages=["deploy"]).layer_dict


# -- loss weights and backward analysis ---------------------------------------------------
def test_loss_weights_scale_loss_and_gradients(rng):
    body = (ip("a", "x", "a", 2) +
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } data_filler { type: "constant" value: 0.5 } } }\n'
            'layer { name: "l1" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "l1" loss_weight: 3 }\n'
            'layer { name: "l2" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "l2" loss_weight: 0.5 }\n'
            'layer { name: "aux" type: "Power" bottom: "a" top: "aux" loss_weight: 2 }\n')
    net = make_net(body)
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    loss = net.forward_all_loss()
    out = net.forward()
    a = net.blobs["a"].data
    expect = 3.5 * float(out["l1"]) + 2 * a.sum()
    assert out["l1"] == out["l2"]
    assert loss == pytest.approx(expect, rel=1e-12)
    numeric_grad_check(net, [(f"p{i}", b) for i, b in enumerate(net.learnable_params)], rng)


def test_loss_weighted_top_read_by_another_layer(rng):
    # "p" is both a loss (weight 2) and the input of a second loss: Caffe moves the weight to
    # the first output of the split it inserts; the gradient must count both uses.
    body = (ip("a", "x", "a", 2) +
            'layer { name: "p" type: "Power" bottom: "a" top: "p" loss_weight: 2 power_param { power: 2 } }\n'
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "t" top: "loss" }\n')
    net = make_net(body)
    assert net.blob_loss_weights["p_p_0_split_0"] == 2.0 and net.blob_loss_weights["p"] == 0.0
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    a = net.forward(blobs=["a"])["a"]
    assert net.loss == pytest.approx(2 * (a ** 2).sum() + (a ** 4).sum() / 6, rel=1e-12)
    numeric_grad_check(net, [(f"p{i}", b) for i, b in enumerate(net.learnable_params)], rng)


def test_layers_outside_the_loss_and_frozen_layers_skip_backward(rng):
    body = (ip("frozen", "x", "f", 3, 'param { lr_mult: 0 } param { lr_mult: 0 }') +
            ip("a", "f", "a", 2) + ip("side", "f", "side", 2) +
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "loss" }\n')
    net = make_net(body)
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.forward_backward()
    assert not net.params["frozen"][0].diff.any()       # nothing needs its gradient
    assert not net.params["side"][0].diff.any()         # does not reach the loss
    assert net.params["a"][0].diff.any()
    need = dict(zip(net._layer_names, net._layer_need_backward))
    assert not need["frozen"] and not need["side"] and need["a"] and need["loss"]


def test_propagate_down_false_stops_the_gradient(rng):
    body = (ip("a", "x", "a", 2) + ip("b", "a", "b", 2, "propagate_down: false") +
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "t" top: "loss" }\n')
    net = make_net(body)
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.forward_backward()
    assert net.params["b"][0].diff.any() and not net.params["a"][0].diff.any()


def test_force_backward_gives_input_diffs_without_a_loss(rng):
    body = ip("a", "x", "a", 2) + 'layer { name: "p" type: "Softmax" bottom: "a" top: "p" }\n'
    plain = make_net(body)
    forced = make_net(body, header="force_backward: true\n")
    x = rng.standard_normal((3, 4))
    for net in (plain, forced):
        net.forward(x=x)
    g = rng.standard_normal((3, 2))
    assert not plain.backward(p=g)["x"].any()
    forced.share_with(plain)
    dx = forced.backward(p=g)["x"]
    p = forced.blobs["p"].data
    da = p * (g - (g * p).sum(1, keepdims=True))
    np.testing.assert_allclose(dx, da @ forced.params["a"][0].data, rtol=1e-12)


def test_force_backward_does_not_reach_accuracy_labels():
    net = make_net(ip("a", "x", "a", 3) +
                   'layer { name: "acc" type: "Accuracy" bottom: "a" bottom: "y" top: "acc" }\n'
                   'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "a" bottom: "y" top: "loss" }\n',
                   extra_tops='top: "y"', shapes="shape { dim: 3 dim: 4 } shape { dim: 3 }",
                   header="force_backward: true\n")
    bottoms = dict(zip(net._layer_names, net._bottom_need_backward))
    assert bottoms["acc"] == [False, False] and bottoms["loss"] == [True, False]
    net.forward(x=np.ones((3, 4)), y=np.array([0, 1, 2]))
    net.backward()


# -- parameter sharing --------------------------------------------------------------------
def test_shared_params_share_storage_and_accumulate_diffs(rng):
    shared = 'param { name: "w" } param { name: "bias" }'
    body = (ip("a", "x", "a", 4, shared) + ip("b", "a", "b", 4, shared) +
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 4 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "t" top: "loss" }\n')
    net = make_net(body)
    wa, wb = net.params["a"][0], net.params["b"][0]
    assert np.shares_memory(wa.data, wb.data) and np.shares_memory(wa.diff, wb.diff)
    assert len(net.learnable_params) == 2
    assert [(i.layer_name, i.index, i.owner) for i in net.param_infos] == [
        ("a", 0, True), ("a", 1, True), ("b", 0, False), ("b", 1, False)]
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    numeric_grad_check(net, [("w", wa), ("bias", net.params["a"][1])], rng)


def test_shared_param_shape_mismatch_is_named():
    shared = 'param { name: "w" }'
    with pytest.raises(ShapeError, match=r"layer 'b' \(InnerProduct\).*param 0 named 'w' has shape \(3, 4\).*owner \(layer 'a'"):
        make_net(ip("a", "x", "a", 4, shared) + ip("b", "x", "b", 3, shared))


def test_shared_param_mult_set_only_by_the_sharer_applies_to_the_owner():
    """As in Caffe: lr_mult / decay_mult given only on the sharing layer's param is the owner's
    too (the solver reads the owner's spec); given on both, they must agree."""
    net = make_net(ip("a", "x", "a", 4, 'param { name: "w" }') +
                   ip("b", "a", "b", 4, 'param { name: "w" lr_mult: 0 decay_mult: 3 }'))
    owner = net.param_infos[0]
    assert (owner.layer_name, owner.owner, owner.spec.lr_mult, owner.spec.decay_mult) == ("a", True, 0.0, 3.0)
    with pytest.raises(ValueError, match=r"shared param 'w' has lr_mult 2.0 but its owner in layer 'a' has 0.0"):
        make_net(ip("a", "x", "a", 4, 'param { name: "w" lr_mult: 0 }') +
                 ip("b", "a", "b", 4, 'param { name: "w" lr_mult: 2 }'))


def test_param_infos_carry_spec_and_group():
    body = ('layer { name: "in2" type: "Input" top: "im" input_param { shape { dim: 1 dim: 4 dim: 5 dim: 5 } } }\n'
            'layer { name: "c" type: "Convolution" bottom: "im" top: "c" param { lr_mult: 1 decay_mult: 1 } '
            'param { lr_mult: 2 decay_mult: 0 } convolution_param { num_output: 4 kernel_size: 3 group: 2 } }\n')
    infos = make_net(body).param_infos
    assert [(i.layer_type, i.group, i.spec.lr_mult, i.spec.decay_mult) for i in infos] == [
        ("Convolution", 2, 1.0, 1.0), ("Convolution", 2, 2.0, 0.0)]


# -- passes -------------------------------------------------------------------------------
def test_forward_backward_adds_into_param_diffs_and_clear_resets(rng):
    body = (ip("a", "x", "a", 2) +
            'layer { name: "t" type: "DummyData" top: "t" dummy_data_param { shape { dim: 3 dim: 2 } } }\n'
            'layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "loss" }\n')
    net = make_net(body)
    net.blobs["x"].data[...] = rng.standard_normal((3, 4))
    net.clear_param_diffs()
    net.forward_backward()
    once = np.array(net.params["a"][0].diff)
    net.forward_backward()
    np.testing.assert_allclose(net.params["a"][0].diff, 2 * once)
    net.clear_param_diffs()
    assert not net.params["a"][0].diff.any()


def test_forward_from_to_and_returned_blobs(rng):
    net = make_net(ip("a", "x", "a", 2) + 'layer { name: "r" type: "ReLU" bottom: "a" top: "r" }\n' +
                   ip("b", "r", "b", 2))
    x = rng.standard_normal((3, 4))
    out = net.forward(x=x, end="a")
    assert list(out) == ["a"]
    net.blobs["a"].data[...] = -1.0
    out = net.forward(start="r", blobs=["r"])
    assert list(out) == ["b", "r"] and not out["r"].any()
    np.testing.assert_allclose(out["b"], np.broadcast_to(net.params["b"][1].data, (3, 2)))


def test_first_nonfinite_output_names_the_layer():
    net = make_net(ip("a", "x", "a", 2) + 'layer { name: "r" type: "ReLU" bottom: "a" top: "r" }\n')
    net.forward(x=np.ones((3, 4)))
    assert net.first_nonfinite_output() is None
    net.params["a"][0].data[...] = 1e308                  # overflows to inf in "a"
    with np.errstate(all="ignore"):
        net.forward()
    assert net.first_nonfinite_output() == ("a", "a")


def test_share_with_reads_the_other_nets_weights(rng):
    body = ip("a", "x", "a", 2)
    train, test = make_net(body, caffe.TRAIN), make_net(body, caffe.TEST)
    test.share_with(train)
    train.params["a"][0].data[...] = 3.0
    assert (test.params["a"][0].data == 3.0).all()
    other = make_net(ip("a", "x", "a", 5))
    with pytest.raises(ShapeError, match="layer 'a'.*shape"):
        other.share_with(train)


def test_input_values_persist_and_new_batch_shapes_flow_through(rng):
    net = make_net(ip("a", "x", "a", 2))
    x = rng.standard_normal((3, 4))
    net.blobs["x"].data[...] = x
    first = np.array(net.forward()["a"])
    np.testing.assert_allclose(net.forward()["a"], first)
    with pytest.raises(ShapeError, match=r"Input is not batch sized: 'x' got an array of shape "
                       r"\(7, 4\), the blob has shape \(3, 4\)"):
        net.forward(x=rng.standard_normal((7, 4)))          # pycaffe refuses it too
    net.blobs["x"].reshape(7, 4)
    out = net.forward(x=rng.standard_normal((7, 4)))
    assert out["a"].shape == (7, 2)


# -- errors -------------------------------------------------------------------------------
def test_unknown_bottom_lists_available_blobs():
    with pytest.raises(LayerSetupError, match=r"unknown bottom 'y' of layer 'a' \(InnerProduct\); blobs available: 'x'"):
        make_net(ip("a", "y", "a", 2))


def test_top_produced_twice():
    with pytest.raises(LayerSetupError, match="top 'a' is already produced"):
        make_net(ip("a", "x", "a", 2) + ip("b", "x", "a", 2))


def test_duplicate_layer_name():
    with pytest.raises(LayerSetupError, match="layer 'a' .*duplicate layer name"):
        make_net(ip("a", "x", "a", 2) + ip("a", "x", "b", 2))


def test_loss_layer_without_label():
    with pytest.raises(LayerSetupError, match=r"layer 'loss' \(SoftmaxWithLoss\) with bottoms 'x' \(3, 4\): loss layer without label"):
        make_net('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" top: "loss" }')


def test_loss_weight_count_and_too_many_param_specs():
    with pytest.raises(LayerSetupError, match="loss_weight must be given once per top"):
        make_net(ip("a", "x", "a", 2, "loss_weight: 1 loss_weight: 2"))
    with pytest.raises(LayerSetupError, match="3 param"):
        make_net(ip("a", "x", "a", 2, "param {} param {} param {}"))


def test_wrong_shaped_diff_and_unknown_layer_names():
    net = make_net(ip("a", "x", "a", 2))
    net.forward(x=np.ones((3, 4)))
    with pytest.raises(ShapeError, match=r"Diff is not batch sized: 'a' got an array of shape "
                       r"\(2, 2\), the blob has shape \(3, 2\)"):
        net.backward(a=np.ones((2, 2)))
    with pytest.raises(ShapeError, match=r"blob 'a' has shape \(3, 2\), got an array of shape \(3, 5\)"):
        net.backward(a=np.ones((3, 5)))
    with pytest.raises(ValueError, match="start='nope' is not a layer"):
        net.forward(start="nope")


def test_phase_is_required():
    with pytest.raises(TypeError, match="phase"):
        Net(parse_net(INPUT.format(shapes="shape { dim: 1 }", extra_tops="")))


def test_layer_errors_start_with_the_layer_position_in_its_file(tmp_path):
    # STYLE: path:line:col travels from the parser to the exception, layer checks included.
    head = ('layer { name: "in" type: "Input" top: "x"\n'
            '        input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n')
    path = tmp_path / "bad.prototxt"
    path.write_text(head + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "y" }\n')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3:1: layer 'c': unknown"):
        Net(str(path), caffe.TEST)
    path.write_text(head + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y"\n'
                           '        convolution_param { num_output: 4 kernel_size: 3 group: 2 } }\n')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3:1: layer 'c' \(Convolution\)"):
        Net(str(path), caffe.TEST)


@pytest.mark.parametrize("dims, size", [
    ((100000, 1000, 1000, 1), r"400\.0 GB"),
    ((1000000,) * 4, r"4e\+24 bytes"),
])
def test_huge_input_dim_names_the_layer_top_and_size(dims, size):
    """A huge input_dim used to give a bare MemoryError."""
    text = 'name: "n" input: "data" ' + " ".join(f"input_dim: {d}" for d in dims)
    with pytest.raises(LayerSetupError, match=rf"layer 'input' \(Input\): blob "
                                              rf"'data': shape {re.escape(str(dims))} of "
                                              rf"float32 needs {size}"):
        Net(parse_net(text), caffe.TEST)


def test_a_forward_that_grows_a_blob_past_memory_names_the_layer():
    net = make_net(ip("ip", "x", "y", 10**6))
    net.blobs["x"].reshape(10**6, 4)
    with pytest.raises(LayerSetupError, match=r"layer 'ip' \(InnerProduct\) with bottoms 'x' "
                                              r"\(1000000, 4\): blob 'y': shape "
                                              r"\(1000000, 1000000\) of float64 needs 8000\.0 GB"):
        net.forward()
