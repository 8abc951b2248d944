"""pycaffe's caffe.draw: a net's graph with pydot (Graphviz renders it).

    net = caffe_pb2.NetParameter(); text_format.Merge(open("train_val.prototxt").read(), net)
    caffe.draw.draw_net_to_file(net, "net.png", "LR", phase=caffe.TRAIN)

Layers are record-shaped nodes (name, type, kernel/stride/pad of spatial layers, optionally the
learning-rate multipliers), blobs are octagons; an in-place layer (one bottom that is its top)
is drawn in green. Functions take a caffe_pb2.NetParameter (minicaffe's own NetParameter is
converted). `get_pydot_graph` needs only pydot; `draw_net` / `draw_net_to_file` also need
a Graphviz renderer: the `dot` program when it is on PATH, else `graphviz-pure` (a pip-installable
port of dot, in the `draw` extra). Command line (pycaffe's draw_net.py):
    python -m minicaffe.draw NET.prototxt OUT.png [--rankdir LR] [--phase TRAIN|TEST|ALL]
"""
import argparse
import os
import shutil
import sys

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}


def _pydot():
    try:
        import pydot  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("caffe.draw needs pydot (pip install 'minicaffe[draw]') and, to "
                          "render, Graphviz's dot program") from exc
    return pydot


def _caffe_pb2():
    from minicaffe.proto import caffe_pb2  # noqa: PLC0415

    return caffe_pb2


def _as_caffe_pb2(net):
    from minicaffe import prototxt  # noqa: PLC0415

    if isinstance(net, prototxt.NetParameter):
        from minicaffe.proto import to_caffe_pb2  # noqa: PLC0415

        return to_caffe_pb2(net)
    return net


def get_pooling_types_dict():
    """{pool enum number: name}, e.g. {0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}."""
    desc = _caffe_pb2().PoolingParameter.PoolMethod.DESCRIPTOR
    return {v.number: name for name, v in desc.values_by_name.items()}


def get_edge_label(layer):
    """Label of a layer's top edges: the batch size of Data, num_output of (De)Convolution and
    InnerProduct, else empty."""
    if layer.type == "Data":
        return "Batch " + str(layer.data_param.batch_size)
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weight, bias) lr_mult of a Convolution, Deconvolution or InnerProduct layer (1 when not
    given). Raises ValueError for other types or more than two param specs."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    params = list(layer.param)
    if len(params) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    mults = [p.lr_mult for p in params] + [1.0] * (2 - len(params))
    return tuple(mults)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The quoted node label: name, (type[ pool method]), kernel size / stride / pad of spatial
    layers, lr multipliers when `display_lrm`; words separated by spaces for vertical layouts
    (TB, BT) and by line breaks for horizontal ones."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        if layer.type == "Pooling":
            p = layer.pooling_param
            kernel, stride, pad = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            pad = p.pad[0] if len(p.pad) else 0
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}",
                                     f"pad: {pad}"]))
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if any([lrm0, lrm1]):
            parts.append(f"lr mult: {lrm0:.1f}, {lrm1:.1f}")
    return '"%s"' % separator.join(parts)


def choose_color_by_layertype(layertype):
    """Fill colour of a layer node by type."""
    if layertype in ("Convolution", "Deconvolution"):
        return "#FF5050"
    if layertype == "Pooling":
        return "#FF9900"
    if layertype == "InnerProduct":
        return "#CC33FF"
    return "#6495ED"


def _included(layer, phase):
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not len(layer.include)
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and rule.phase != phase
    return included


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot.Dot digraph of `caffe_net` (caffe_pb2.NetParameter): layer and blob nodes,
    bottom -> layer -> top edges. `phase` (caffe.TRAIN / caffe.TEST) keeps only the layers of
    that phase (by their include / exclude phase rules); None keeps all."""
    pydot = _pydot()
    caffe_net = _as_caffe_pb2(caffe_net)
    graph = pydot.Dot(caffe_net.name if caffe_net.name else "Net", graph_type="digraph",
                      rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _included(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        node_name = f"{layer.name}_{layer.type}"
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node_name] = pydot.Node(label, **NEURON_LAYER_STYLE)
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
            nodes[node_name] = pydot.Node(label, **style)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", node_name, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top)
            edges.append((node_name, top + "_blob",
                          get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


def dot_program():
    """Path of the Graphviz renderer: `dot` on PATH, else `graphviz-pure` (on PATH or next to
    this Python). Raises FileNotFoundError saying how to install one."""
    found = shutil.which("dot") or shutil.which("graphviz-pure")
    if found is None:
        local = os.path.join(os.path.dirname(sys.executable), "graphviz-pure")
        found = local if os.access(local, os.X_OK) else None
    if found is None:
        raise FileNotFoundError("drawing needs Graphviz's dot program: apt-get install graphviz, "
                                "or pip install graphviz-pure (the 'draw' extra)")
    return found


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The drawing as bytes in format `ext` (png, svg, pdf, ...; see `dot_program`)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    return graph.create(prog=dot_program(), format=ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the drawing to `filename`, its format taken from the extension ('.raw' writes the
    dot text itself)."""
    ext = filename[filename.rfind(".") + 1:]
    with open(filename, "wb") as fid:
        fid.write(draw_net(caffe_net, rankdir, ext, phase, display_lrm))


def main(argv=None):
    """python -m minicaffe.draw NET OUT [--rankdir LR] [--phase TRAIN|TEST|ALL] [--display_lrm]"""
    parser = argparse.ArgumentParser(prog="python -m minicaffe.draw",
                                     description="Draw a network graph (pycaffe's draw_net.py).")
    parser.add_argument("input_net_proto_file")
    parser.add_argument("output_image_file")
    parser.add_argument("--rankdir", default="LR", choices=["LR", "TB", "BT", "RL"])
    parser.add_argument("--phase", default="ALL", choices=["TRAIN", "TEST", "ALL"])
    parser.add_argument("--display_lrm", action="store_true")
    args = parser.parse_args(argv)
    from google.protobuf import text_format  # noqa: PLC0415

    net = _caffe_pb2().NetParameter()
    with open(args.input_net_proto_file) as fh:
        text_format.Merge(fh.read(), net)
    phase = None if args.phase == "ALL" else {"TRAIN": 0, "TEST": 1}[args.phase]
    print(f"Drawing net to {args.output_image_file}")
    draw_net_to_file(net, args.output_image_file, args.rankdir, phase, args.display_lrm)


if __name__ == "__main__":
    main()
