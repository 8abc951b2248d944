"""Caffe's example notebooks, paraphrased as a pycaffe user writes them, on small generated data.

Each test is one notebook's workflow with `import minicaffe as caffe` in place of `import caffe`:
learning LeNet (NetSpec + LMDB + solver loop), classification (mean .binaryproto, Transformer,
Classifier), net surgery (editing params, fully convolutional conversion), brewing logistic
regression (HDF5 data) and multilabel classification with a Python data layer.
"""
import textwrap

import numpy as np
import pytest

pytest.importorskip("google.protobuf", reason="protobuf not installed (pip install 'minicaffe[pycaffe]')")

import minicaffe as caffe  # noqa: E402
from minicaffe import layers as L  # noqa: E402
from minicaffe import params as P  # noqa: E402
from minicaffe.proto import caffe_pb2  # noqa: E402



def _bars(n, rng, size=12):
    """Two classes of 1 x size x size images: horizontal (0) or vertical (1) bars, noisy."""
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 60, (n, 1, size, size))
    for img, label in zip(images, labels):
        k = rng.integers(1, size - 1)
        if label == 0:
            img[0, k - 1:k + 1, :] += 180
        else:
            img[0, :, k - 1:k + 1] += 180
    return images.clip(0, 255).astype(np.uint8), labels


# -- 01-learning-lenet -------------------------------------------------------------------------
def _write_lmdb(path, images, labels):
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, (img, label) in enumerate(zip(images, labels)):
            datum = caffe.io.array_to_datum(img, int(label))
            txn.put(f"{i:08d}".encode("ascii"), datum.SerializeToString())
    env.close()


def lenet(lmdb, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=8, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool1, num_output=16, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=2, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def test_learning_lenet(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train_x, train_y = _bars(256, rng)
    test_x, test_y = _bars(64, rng)
    _write_lmdb(tmp_path / "train_lmdb", train_x, train_y)
    _write_lmdb(tmp_path / "test_lmdb", test_x, test_y)
    monkeypatch.chdir(tmp_path)
    with open("lenet_auto_train.prototxt", "w") as f:
        f.write(str(lenet("train_lmdb", 32)))
    with open("lenet_auto_test.prototxt", "w") as f:
        f.write(str(lenet("test_lmdb", 64)))
    with open("lenet_auto_solver.prototxt", "w") as f:
        f.write(textwrap.dedent("""\
            train_net: "lenet_auto_train.prototxt"
            test_net: "lenet_auto_test.prototxt"
            test_iter: 1
            test_interval: 500
            base_lr: 0.05
            momentum: 0.9
            weight_decay: 0.0005
            lr_policy: "inv"
            gamma: 0.0001
            power: 0.75
            display: 0
            max_iter: 10000
            snapshot: 5000
            snapshot_prefix: "lenet"
            """))
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver("lenet_auto_solver.prototxt")
    assert [(k, v.data.shape) for k, v in solver.net.blobs.items()][:3] == [
        ("data", (32, 1, 12, 12)), ("label", (32,)), ("conv1", (32, 8, 10, 10))]
    assert [(k, v[0].data.shape) for k, v in solver.net.params.items()] == [
        ("conv1", (8, 1, 3, 3)), ("fc1", (16, 200)), ("score", (2, 16))]
    solver.net.forward()
    solver.test_nets[0].forward()
    np.testing.assert_array_equal(solver.net.blobs["label"].data[:8], train_y[:8])
    np.testing.assert_allclose(solver.net.blobs["data"].data[0, 0], train_x[0, 0] / 255.0, rtol=1e-6)
    solver.step(1)
    assert np.abs(solver.net.params["conv1"][0].diff).sum() > 0

    niter, test_interval = 60, 20
    train_loss = np.zeros(niter)
    test_acc = []
    for it in range(niter):
        solver.step(1)
        train_loss[it] = solver.net.blobs["loss"].data
        if it % test_interval == 0 or it == niter - 1:
            solver.test_nets[0].forward(start="conv1")
            correct = (solver.test_nets[0].blobs["score"].data.argmax(1)
                       == solver.test_nets[0].blobs["label"].data).sum()
            test_acc.append(correct / 64.0)
    assert train_loss[-10:].mean() < 0.5 * train_loss[:5].mean()
    assert test_acc[-1] >= 0.9
    assert solver.iter == niter + 1


# -- 00-classification ---------------------------------------------------------------------------
def _deploy(num_classes=3):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 16, 16]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=6, weight_filler=dict(type="gaussian", std=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc6 = L.InnerProduct(n.pool1, num_output=8, weight_filler=dict(type="gaussian", std=0.1))
    n.fc7 = L.InnerProduct(n.fc6, num_output=num_classes, weight_filler=dict(type="gaussian", std=0.1))
    n.prob = L.Softmax(n.fc7)
    return n.to_proto()


def test_classification(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(_deploy()))
    weights = str(tmp_path / "model.caffemodel")
    caffe.Net(str(deploy), caffe.TEST).save(weights)
    # a mean file as Caffe's compute_image_mean writes it, read back the pycaffe way
    mean_image = rng.uniform(90, 130, (1, 3, 16, 16)).astype(np.float32)
    with open(tmp_path / "mean.binaryproto", "wb") as f:
        f.write(caffe.io.array_to_blobproto(mean_image).SerializeToString())
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString(open(tmp_path / "mean.binaryproto", "rb").read())
    mu = np.array(caffe.io.blobproto_to_array(blob))[0].mean(1).mean(1)
    np.testing.assert_allclose(mu, mean_image[0].mean((1, 2)), rtol=1e-6)

    net = caffe.Net(str(deploy), weights, caffe.TEST)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_mean("data", mu)
    transformer.set_raw_scale("data", 255)
    transformer.set_channel_swap("data", (2, 1, 0))
    net.blobs["data"].reshape(4, 3, 16, 16)

    paths = []
    for i in range(4):
        path = tmp_path / f"cat{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(path, quality=95)
        paths.append(str(path))
    image = caffe.io.load_image(paths[0])
    transformed = transformer.preprocess("data", image)
    net.blobs["data"].data[0] = transformed
    for i, p in enumerate(paths[1:], 1):
        net.blobs["data"].data[i] = transformer.preprocess("data", caffe.io.load_image(p))
    output = net.forward()
    output_prob = output["prob"][0]
    assert output_prob.shape == (3,) and abs(output_prob.sum() - 1) < 1e-5
    top_inds = output_prob.argsort()[::-1][:2]
    assert output_prob[top_inds[0]] >= output_prob[top_inds[1]]
    assert [(k, v.data.shape) for k, v in net.blobs.items()][-1] == ("prob", (4, 3))
    feat = net.blobs["conv1"].data[0, :6]
    assert feat.shape == (6, 14, 14) and (feat >= 0).all()             # ReLU ran in place
    # the same images through caffe.Classifier with the centre crop == the manual pipeline
    clf = caffe.Classifier(str(deploy), weights, image_dims=(16, 16), mean=mu, raw_scale=255,
                           channel_swap=(2, 1, 0))
    probs = clf.predict([caffe.io.load_image(p) for p in paths], oversample=False)
    np.testing.assert_allclose(probs, output["prob"], rtol=1e-4, atol=1e-6)
    assert clf.predict([image]).shape == (1, 3)


# -- net_surgery ------------------------------------------------------------------------------------
def test_net_surgery(tmp_path):
    rng = np.random.default_rng(2)
    # designer filters: a conv layer whose weights the script sets by hand
    conv = tmp_path / "conv.prototxt"
    conv.write_text(textwrap.dedent("""\
        name: "convolution"
        input: "data"
        input_shape { dim: 1 dim: 1 dim: 20 dim: 20 }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
          convolution_param { num_output: 3 kernel_size: 5 stride: 1
            weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0 } } }
        """))
    net = caffe.Net(str(conv), caffe.TEST)
    im = rng.uniform(0, 1, (20, 20)).astype(np.float32)
    net.blobs["data"].reshape(1, 1, *im.shape)
    net.blobs["data"].data[...] = im
    net.forward()
    assert net.blobs["conv"].data.shape == (1, 3, 16, 16)
    net.params["conv"][0].data[...] = 0
    net.params["conv"][0].data[0, 0, 2, 2] = 1                 # identity (centre tap)
    net.params["conv"][0].data[1] = 1.0 / 25                   # box blur
    net.params["conv"][1].data[...] = [0, 0, 1]                # the third filter is a bias
    net.forward()
    np.testing.assert_allclose(net.blobs["conv"].data[0, 0], im[2:-2, 2:-2], rtol=1e-6)
    box = np.mean([im[i:i + 16, j:j + 16] for i in range(5) for j in range(5)], axis=0)
    np.testing.assert_allclose(net.blobs["conv"].data[0, 1], box, rtol=1e-5)
    assert np.all(net.blobs["conv"].data[0, 2] == 1)
    net.save(str(tmp_path / "surgery.caffemodel"))

    # casting a classifier into a fully convolutional net: fc weights -> conv weights
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(str(_deploy()))
    weights = str(tmp_path / "model.caffemodel")
    net = caffe.Net(str(deploy), caffe.TEST)
    net.save(weights)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 24, 24]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=6)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n["fc6-conv"] = L.Convolution(n.pool1, kernel_size=7, num_output=8)
    n["fc7-conv"] = L.Convolution(n["fc6-conv"], kernel_size=1, num_output=3)
    n.prob = L.Softmax(n["fc7-conv"])
    full_conv = tmp_path / "deploy_full_conv.prototxt"
    full_conv.write_text(str(n.to_proto()))
    net_full_conv = caffe.Net(str(full_conv), weights, caffe.TEST)   # conv1 copied by name

    params = ["fc6", "fc7"]
    fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in params}
    params_full_conv = ["fc6-conv", "fc7-conv"]
    conv_params = {pr: (net_full_conv.params[pr][0].data, net_full_conv.params[pr][1].data)
                   for pr in params_full_conv}
    assert fc_params["fc6"][0].shape == (8, 294) and conv_params["fc6-conv"][0].shape == (8, 6, 7, 7)
    for pr, pr_conv in zip(params, params_full_conv):
        conv_params[pr_conv][0].flat = fc_params[pr][0].flat       # flat unrolls the arrays
        conv_params[pr_conv][1][...] = fc_params[pr][1]
    net_full_conv.save(str(tmp_path / "full_conv.caffemodel"))

    image = rng.uniform(0, 1, (1, 3, 24, 24)).astype(np.float32)
    out = net_full_conv.forward(data=image)
    assert out["prob"].shape == (1, 3, 5, 5)                      # a 5x5 map of classifications
    net.blobs["data"].reshape(1, 3, 16, 16)
    for y, x in ((0, 0), (2, 3), (4, 4)):
        window = image[:, :, 2 * y:2 * y + 16, 2 * x:2 * x + 16]
        np.testing.assert_allclose(net.forward(data=window)["prob"][0], out["prob"][0, :, y, x],
                                   rtol=1e-4, atol=1e-6)
    reloaded = caffe.Net(str(full_conv), str(tmp_path / "full_conv.caffemodel"), caffe.TEST)
    np.testing.assert_allclose(reloaded.forward(data=image)["prob"], out["prob"], rtol=1e-6)


# -- brewing-logreg -------------------------------------------------------------------------------
def _logreg(hdf5, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(batch_size=batch_size, source=hdf5, ntop=2)
    n.ip1 = L.InnerProduct(n.data, num_output=2, weight_filler=dict(type="xavier"))
    n.accuracy = L.Accuracy(n.ip1, n.label)
    n.loss = L.SoftmaxWithLoss(n.ip1, n.label)
    return n.to_proto()


def _nonlinear(hdf5, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.HDF5Data(batch_size=batch_size, source=hdf5, ntop=2)
    n.ip1 = L.InnerProduct(n.data, num_output=40, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.ip1, num_output=2, weight_filler=dict(type="xavier"))
    n.accuracy = L.Accuracy(n.ip2, n.label)
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def test_brewing_logreg(tmp_path, monkeypatch):
    import h5py

    rng = np.random.default_rng(3)
    # four informative features out of 8, two classes (what sklearn's make_classification gives)
    X = rng.standard_normal((1200, 8)).astype(np.float32)
    w = np.array([2.0, -1.5, 1.0, 0.8, 0, 0, 0, 0])
    y = (X @ w + 0.3 * rng.standard_normal(1200) > 0).astype(np.float32)
    Xt, yt, X, y = X[:200], y[:200], X[200:], y[200:]
    monkeypatch.chdir(tmp_path)
    for name, (data, label) in {"train": (X, y), "test": (Xt, yt)}.items():
        with h5py.File(f"{name}.h5", "w") as f:
            f["data"] = data
            f["label"] = label
        with open(f"{name}.txt", "w") as f:
            f.write(f"{name}.h5\n")
    with open("logreg_auto_train.prototxt", "w") as f:
        f.write(str(_logreg("train.txt", 10)))
    with open("logreg_auto_test.prototxt", "w") as f:
        f.write(str(_logreg("test.txt", 10)))
    solver_param = caffe_pb2.SolverParameter(
        train_net="logreg_auto_train.prototxt", test_net=["logreg_auto_test.prototxt"],
        test_iter=[20], test_interval=250, base_lr=0.01, lr_policy="step", gamma=0.1,
        stepsize=500, max_iter=600, momentum=0.9, weight_decay=5e-4, display=0,
        snapshot=0, snapshot_prefix="logreg", snapshot_after_train=False)
    solver_param.solver_mode = caffe_pb2.SolverParameter.CPU
    with open("logreg_solver.prototxt", "w") as f:
        f.write(str(solver_param))
    caffe.set_mode_cpu()
    solver = caffe.get_solver("logreg_solver.prototxt")
    solver.solve()
    accuracy = 0
    test_iters = int(len(Xt) / solver.test_nets[0].blobs["data"].num)
    for _ in range(test_iters):
        solver.test_nets[0].forward()
        accuracy += solver.test_nets[0].blobs["accuracy"].data
    accuracy /= test_iters
    assert accuracy > 0.85, accuracy
    # the same recipe with a hidden layer
    with open("nonlinear_auto_train.prototxt", "w") as f:
        f.write(str(_nonlinear("train.txt", 10)))
    with open("nonlinear_auto_test.prototxt", "w") as f:
        f.write(str(_nonlinear("test.txt", 10)))
    solver_param.train_net = "nonlinear_auto_train.prototxt"
    solver_param.test_net[0] = "nonlinear_auto_test.prototxt"
    solver_param.max_iter = 300
    solver = caffe.get_solver(solver_param)
    solver.solve()
    solver.test_nets[0].forward()
    assert solver.iter == 300 and 0 <= float(solver.test_nets[0].blobs["accuracy"].data) <= 1


# -- pascal-multilabel-with-datalayer -------------------------------------------------------------
DATALAYERS = '''
import ast

import numpy as np

import minicaffe as caffe


class MultilabelDataLayerSync(caffe.Layer):
    """Loads (image, multi-hot label) batches listed in a text file, as the notebook's
    PascalMultilabelDataLayerSync does; the parameters come in param_str."""

    def setup(self, bottom, top):
        self.top_names = ["data", "label"]
        params = ast.literal_eval(self.param_str)
        for key in ("batch_size", "im_shape", "split", "root", "num_classes"):
            if key not in params:
                raise ValueError(f"param_str needs {key}")
        self.batch_size = params["batch_size"]
        self.loader = BatchLoader(params)
        top[0].reshape(self.batch_size, 3, *params["im_shape"])
        top[1].reshape(self.batch_size, params["num_classes"])

    def forward(self, bottom, top):
        for itt in range(self.batch_size):
            im, multilabel = self.loader.load_next_image()
            top[0].data[itt, ...] = im
            top[1].data[itt, ...] = multilabel

    def reshape(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


class BatchLoader:
    def __init__(self, params):
        self.root = params["root"]
        self.num_classes = params["num_classes"]
        with open(f"{self.root}/{params['split']}.txt") as f:
            self.entries = [line.split() for line in f if line.strip()]
        self._cur = 0
        self.transformer = caffe.io.Transformer({"data": (1, 3) + tuple(params["im_shape"])})
        self.transformer.set_transpose("data", (2, 0, 1))
        self.transformer.set_mean("data", np.array([0.5, 0.5, 0.5]))

    def load_next_image(self):
        if self._cur == len(self.entries):
            self._cur = 0
        name, *labels = self.entries[self._cur]
        im = caffe.io.load_image(f"{self.root}/{name}")
        multilabel = np.zeros(self.num_classes, dtype=np.float32)
        multilabel[[int(l) for l in labels]] = 1
        self._cur += 1
        return self.transformer.preprocess("data", im), multilabel
'''


def test_multilabel_with_python_data_layer(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    num_classes = 3
    lines = []
    for i in range(24):
        # class k present <=> channel k is bright in the image
        present = rng.integers(0, 2, num_classes)
        if not present.any():
            present[rng.integers(0, num_classes)] = 1
        img = rng.integers(0, 60, (10, 10, 3))
        img[..., present.astype(bool)] += 180
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / f"im{i}.png")
        lines.append(f"im{i}.png " + " ".join(str(k) for k in np.flatnonzero(present)))
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "pascal_multilabel_datalayers.py").write_text(DATALAYERS)

    n = caffe.NetSpec()
    param = dict(batch_size=8, im_shape=[10, 10], split="train", root=str(tmp_path),
                 num_classes=num_classes)
    n.data, n.label = L.Python(module="pascal_multilabel_datalayers", layer="MultilabelDataLayerSync",
                               ntop=2, param_str=str(param))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=8, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.AVE, global_pooling=True)
    n.score = L.InnerProduct(n.pool1, num_output=num_classes, weight_filler=dict(type="xavier"))
    loss_type = "SigmoidCrossEntropyLoss"
    if loss_type not in caffe.layer_type_list():        # until the catalog has it
        loss_type = "EuclideanLoss"
    n.loss = getattr(L, loss_type)(n.score, n.label)
    (tmp_path / "trainnet.prototxt").write_text(str(n.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        f'train_net: "{tmp_path / "trainnet.prototxt"}" base_lr: 0.2 lr_policy: "fixed" '
        "momentum: 0.9 display: 0 max_iter: 1000 snapshot_after_train: false")
    caffe.set_mode_cpu()
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    assert solver.net.blobs["data"].data.shape == (8, 3, 10, 10)
    assert solver.net.blobs["label"].data.shape == (8, num_classes)
    solver.step(1)
    first = float(solver.net.blobs["loss"].data)
    solver.step(80)

    def hamming_distance(gt, est):
        return sum(1 for (g, e) in zip(gt, est) if g == e) / float(len(gt))

    acc = 0.0
    for _ in range(3):
        solver.net.forward()
        gts, ests = solver.net.blobs["label"].data, solver.net.blobs["score"].data > 0
        if loss_type == "EuclideanLoss":
            ests = solver.net.blobs["score"].data > 0.5
        for gt, est in zip(gts, ests):
            acc += hamming_distance(gt, est)
    acc /= 3 * 8
    assert float(solver.net.blobs["loss"].data) < first
    assert acc > 0.8, acc
