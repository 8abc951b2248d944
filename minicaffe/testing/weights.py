"""Random weights for a whole net, scaled so that activations stay of order 1 through deep nets
(used by the export tests and benchmarks, where all-zero deploy weights would compare nothing).
"""
import numpy as np


def randomize_weights(net, seed=0):
    """Fill every parameter blob of `net` in place: weights N(0, 1/fan_in) (fan_in: the product
    of all axes but the first), biases and other 1-D blobs N(0, 0.1^2); BatchNorm's statistics
    a mean N(0, 0.1^2), a variance U(0.5, 1.5) and a scale factor of 1 (times both sums, so
    the layer divides them out); PReLU slopes U(0, 0.5); Parameter blobs N(0, 1)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        blobs = layer.blobs
        if not blobs:
            continue
        if layer.type == "BatchNorm":
            factor = rng.uniform(0.5, 2.0)
            c = blobs[0].count
            blobs[0].data[...] = rng.normal(0, 0.1, c) * factor
            blobs[1].data[...] = rng.uniform(0.5, 1.5, c) * factor
            blobs[2].data[...] = factor
            continue
        for j, blob in enumerate(blobs):
            shape = tuple(blob.shape)
            if layer.type == "PReLU":
                value = rng.uniform(0.0, 0.5, shape)
            elif layer.type == "Parameter":
                value = rng.standard_normal(shape)
            elif len(shape) >= 2 and layer.type not in ("Scale", "Bias"):
                fan_in = int(np.prod(shape[1:]))
                if layer.type == "Deconvolution":
                    fan_in = int(shape[0] * np.prod(shape[2:]))
                if layer.type == "InnerProduct" and layer.layer_param.inner_product_param.transpose:
                    fan_in = shape[0]
                value = rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))
            elif layer.type == "Scale" and j == 0:
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0, 0.1, shape)
            blob.data[...] = value
        if hasattr(layer, "refresh_weights"):
            layer.refresh_weights()
    return net
