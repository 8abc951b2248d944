"""The rest of pycaffe's surface: Net's batch helpers, HDF5 weights, callbacks, solver callbacks,
Timer, set_random_seed, version, Classifier and Detector."""
import textwrap
import time

import h5py
import numpy as np
import pytest

import minicaffe as caffe

DEPLOY = """\
name: "deploy"
input: "data"
input_shape { dim: 2 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

SIMPLE = """\
name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4 num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 } bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13 weight_filler { type: 'gaussian' std: 2.5 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""


@pytest.fixture
def deploy(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    return str(path)


def _simple(tmp_path):
    path = tmp_path / "simple.prototxt"
    path.write_text(SIMPLE)
    return str(path)


def test_forward_requires_all_inputs_batch_sized_and_returns_views(deploy, rng):
    net = caffe.Net(deploy, caffe.TEST)
    with pytest.raises(ValueError, match="do not match the net inputs"):
        net.forward(prob=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="Input is not batch sized"):
        net.forward(data=np.zeros((3, 3, 8, 8)))
    out = net.forward(data=rng.standard_normal((2, 3, 8, 8)))
    out["prob"][...] = 7                                   # the blob's own storage
    assert np.all(net.blobs["prob"].data == 7)
    net.blobs["data"].data[0, 0, 0, 0] = 42                # and blobs write through
    assert net.blobs["data"].data[0, 0, 0, 0] == 42
    with pytest.raises(ValueError, match="do not match the net outputs"):
        net.backward(ip=np.zeros((2, 5)))


def test_forward_all_and_forward_backward_all(deploy, rng):
    net = caffe.Net("force_backward: true\n" + DEPLOY, caffe.TEST)
    x = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    probs = net.forward_all(data=x)["prob"]
    assert probs.shape == (5, 5)
    for i in range(0, 5, 2):                               # batch of 2, last one padded
        chunk = x[i:i + 2] if i + 2 <= 5 else np.concatenate([x[i:], np.zeros_like(x[:1])])
        np.testing.assert_allclose(probs[i:i + 2], net.forward(data=chunk)["prob"][:len(x[i:i + 2])],
                                   rtol=1e-6)
    dy = rng.standard_normal((5, 5)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=dy, blobs=["ip"], diffs=["conv"])
    assert outs["prob"].shape == (5, 5) and outs["ip"].shape == (5, 5)
    assert diffs["data"].shape == (5, 3, 8, 8) and diffs["conv"].shape == (5, 4, 6, 6)
    net.forward(data=x[2:4])
    np.testing.assert_allclose(diffs["data"][2:4], net.backward(prob=dy[2:4])["data"], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="neither net inputs"):
        net.forward_backward_all(conv=x)


def test_save_hdf5_load_hdf5_in_caffes_layout(tmp_path):
    net = caffe.Net(_simple(tmp_path), caffe.TRAIN)
    path = str(tmp_path / "w.h5")
    net.save_hdf5(path)
    with h5py.File(path, "r") as f:
        assert sorted(f["data"]) == ["conv", "data", "ip", "loss"]       # every layer has a group
        assert sorted(f["data/conv"]) == ["0", "1"] and len(f["data/data"]) == 0
        assert f["data/ip/0"].dtype == np.float32 and f["data/ip/0"].shape == (13, 11 * 8 * 9)
    net2 = caffe.Net(_simple(tmp_path), caffe.TRAIN)
    net2.load_hdf5(path)
    for name in net.params:
        for a, b in zip(net.params[name], net2.params[name]):
            assert np.abs(a.data - b.data).sum() == 0
    net.forward()
    net.backward()
    net.save_hdf5(path, write_diff=True)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["diff/conv/0"][()], net.params["conv"][0].diff)
        del f  # noqa
    with h5py.File(path, "a") as f:
        del f["data/conv/0"]
        f["data/conv/0"] = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"w\.h5: cannot copy param 0 of layer 'conv' \(Convolution\): "
                       r"file has shape \(1, 2, 3\), net expects \(11, 2, 2, 2\)"):
        net2.load_hdf5(path)


def test_net_callbacks_run_per_layer(tmp_path):
    net = caffe.Net(_simple(tmp_path), caffe.TRAIN)
    seen = []
    net.before_forward(lambda i: seen.append(("bf", i)))
    net.after_forward(lambda i: seen.append(("af", i)))
    net.after_backward(lambda i: seen.append(("ab", i)))
    net.forward()
    net.backward()
    n = len(net.layers)
    assert seen[:2 * n] == [x for i in range(n) for x in (("bf", i), ("af", i))]
    assert seen[2 * n:] == [("ab", i) for i in reversed(range(n))]


def test_solver_surface_callbacks_lr_apply_update_and_snapshot(tmp_path, monkeypatch):
    net_path = _simple(tmp_path)
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(textwrap.dedent(f"""\
        net: '{net_path}' test_iter: 2 test_interval: 10 base_lr: 0.01 momentum: 0.9
        weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75 display: 0
        max_iter: 20 snapshot_after_train: false snapshot_prefix: "model" """))
    monkeypatch.chdir(tmp_path)
    solver = caffe.SGDSolver(str(solver_path))
    assert isinstance(caffe.get_solver(str(solver_path)), caffe.SGDSolver)
    for n in [solver.net] + list(solver.test_nets):
        n.blobs["label"].data[...] = np.random.randint(13, size=n.blobs["label"].data.shape)
    events = []
    solver.add_callback(lambda: events.append(("start", solver.iter)),
                        lambda: events.append(("grads", solver.iter,
                                               float(np.abs(solver.net.params["ip"][0].diff).sum()))))
    assert solver.iter == 0 and solver.lr == pytest.approx(0.01)
    solver.step(2)
    assert [e[:2] for e in events] == [("start", 0), ("grads", 0), ("start", 1), ("grads", 1)]
    assert all(e[2] > 0 for e in events if e[0] == "grads")   # gradients are ready
    solver.solve()
    assert solver.iter == 20
    assert solver.lr == pytest.approx(0.01 * (1 + 0.0001 * 20) ** -0.75, rel=1e-6)
    # apply_update with a hand-set gradient: w = -lr * g (no momentum history yet for this blob)
    fresh = caffe.SGDSolver(str(solver_path))
    data = fresh.net.layers[1].blobs[0].data
    data[...] = 0
    fresh.net.layers[1].blobs[0].diff[...] = 1
    fresh.apply_update()
    np.testing.assert_allclose(data, -0.01, rtol=1e-6)
    solver.snapshot()
    assert (tmp_path / "model_iter_20.caffemodel").is_file()
    assert (tmp_path / "model_iter_20.solverstate").is_file()
    other = caffe.Net(net_path, caffe.TEST)
    solver.share_weights(other)
    assert other.params["ip"][0].data is solver.net.params["ip"][0].data or \
        np.shares_memory(other.params["ip"][0].data, solver.net.params["ip"][0].data)
    solver.param.base_lr = 0.5                            # pycaffe lets scripts change it
    assert solver.lr == pytest.approx(0.5 * (1 + 0.0001 * 20) ** -0.75, rel=1e-6)


def test_timer_semantics():
    t = caffe.Timer()
    assert t.ms == 0.0
    t.start()
    time.sleep(0.02)
    first = t.ms                                          # reading stops it
    assert 15 <= first < 1000 and not t.running
    time.sleep(0.01)
    assert t.ms == first
    t.start()
    t.start()                                             # a second start while running: no-op
    t.stop()
    t.stop()
    assert 0 <= t.ms < first


def test_set_random_seed_repeats_fillers_and_module_names(deploy):
    caffe.set_random_seed(7)
    a = caffe.Net(deploy, caffe.TEST).params["conv"][0].data.copy()
    caffe.set_random_seed(7)
    b = caffe.Net(deploy, caffe.TEST).params["conv"][0].data.copy()
    caffe.set_random_seed(8)
    c = caffe.Net(deploy, caffe.TEST).params["conv"][0].data.copy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert isinstance(caffe.__version__, str) and caffe.__version__.count(".") == 2
    for name in ("Net", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
                 "AdaDeltaSolver", "AdamSolver", "Timer", "Layer", "get_solver", "layer_type_list",
                 "set_random_seed", "set_mode_cpu", "set_mode_gpu", "set_device", "Classifier",
                 "Detector", "io", "NetSpec", "layers", "params", "to_proto", "init_log", "log",
                 "solver_count", "set_solver_count", "solver_rank", "set_solver_rank",
                 "set_multiprocess", "has_nccl", "TRAIN", "TEST"):
        assert getattr(caffe, name) is not None, name
    assert caffe.solver_count() == 1 and caffe.has_nccl() is False
    caffe.init_log(1)
    caffe.log("hello")
    assert {"Data", "Convolution", "InnerProduct", "Python"} <= set(caffe.layer_type_list())


def _write_images(tmp_path, n, size=(12, 10)):
    from PIL import Image

    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        path = tmp_path / f"img{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


def test_classifier_predicts_with_and_without_oversampling(tmp_path, deploy):
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install 'minicaffe[pycaffe]')")
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(deploy, caffe.TEST).save(weights)
    clf = caffe.Classifier(deploy, weights, image_dims=(10, 10), mean=np.array([0.4, 0.5, 0.6]),
                           raw_scale=255, channel_swap=(2, 1, 0), input_scale=0.01)
    images = [caffe.io.load_image(p) for p in _write_images(tmp_path, 3)]
    probs = clf.predict(images)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # the oversampled prediction is the mean over the 10 crops, computed by hand
    resized = np.stack([caffe.io.resize_image(im, (10, 10)) for im in images])
    crops = caffe.io.oversample(resized, (8, 8))
    net = caffe.Net(deploy, weights, caffe.TEST)
    t = clf.transformer
    feed = np.stack([t.preprocess("data", c) for c in crops])
    expected = net.forward_all(data=feed)["prob"].reshape(3, 10, 5).mean(1)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)
    centre = clf.predict(images, oversample=False)
    feed = np.stack([t.preprocess("data", im[1:9, 1:9]) for im in resized])
    np.testing.assert_allclose(centre, net.forward_all(data=feed)["prob"], rtol=1e-5, atol=1e-7)


def test_detector_scores_windows_with_and_without_context(tmp_path, deploy):
    pytest.importorskip("skimage", reason="scikit-image not installed (pip install 'minicaffe[pycaffe]')")
    weights = str(tmp_path / "w.caffemodel")
    caffe.Net(deploy, caffe.TEST).save(weights)
    paths = _write_images(tmp_path, 2, size=(20, 24))
    windows = [(paths[0], [np.array([0, 0, 8, 8]), np.array([4, 6, 16, 20])]),
               (paths[1], [np.array([2, 2, 18, 22])])]
    det = caffe.Detector(deploy, weights, raw_scale=255)
    out = det.detect_windows(windows)
    assert [d["filename"] for d in out] == [paths[0], paths[0], paths[1]]
    assert all(d["prediction"].shape == (5,) for d in out)
    image = caffe.io.load_image(paths[0])
    manual = caffe.Net(deploy, weights, caffe.TEST).forward_all(
        data=np.stack([det.transformer.preprocess("data", image[0:8, 0:8])] * 2))["prob"][0]
    np.testing.assert_allclose(out[0]["prediction"], manual, rtol=1e-5, atol=1e-7)
    padded = caffe.Detector(deploy, weights, raw_scale=255, mean=np.array([100.0, 110.0, 120.0]),
                            context_pad=2)
    crop = padded.crop(image, np.array([0, 0, 8, 8]))
    assert crop.shape == (8, 8, 3)
    assert np.allclose(crop[0, 0], np.array([100.0, 110.0, 120.0]) / 255)   # mean in raw space
    assert len(padded.detect_windows(windows)) == 3
    with pytest.raises(ImportError, match="selective_search_ijcv_with_python"):
        det.detect_selective_search(paths)
