"""pycaffe's `caffe.io`: blob/datum conversion, image loading and resizing, and `Transformer`.

Conversions (caffe_pb2 messages; need the `protobuf` package):
    blobproto_to_array(blob, return_diff=False)  BlobProto -> ndarray (legacy 4-D or `shape`)
    array_to_blobproto(arr, diff=None)            ndarray -> BlobProto (`shape` + float `data`)
    arraylist_to_blobprotovector_str(arrays)      -> serialized BlobProtoVector (bytes)
    blobprotovector_str_to_arraylist(data)        serialized BlobProtoVector -> [ndarray]
    array_to_datum(arr, label=None)               (C, H, W) -> Datum (uint8 -> `data`,
                                                  anything else -> `float_data`)
    datum_to_array(datum)                         Datum -> (C, H, W) uint8 or float64 array
Images (need scikit-image, as pycaffe does):
    load_image(filename, color=True)              -> float32 (H, W, 3) RGB or (H, W, 1), in [0, 1]
    resize_image(im, new_dims, interp_order=1)    (H, W, K) -> (new_h, new_w, K) float32
    oversample(images, crop_dims)                 -> (10 N, h, w, K): 4 corners + centre, then
                                                  the same 5 mirrored, per image
`Transformer({name: blob shape})` prepares (H, W, K) images for a net input and back
(`preprocess`, `deprocess`), with pycaffe's order: resize, transpose, channel swap, raw scale,
subtract mean, input scale.

pycaffe raises bare `Exception`s for bad Transformer arguments; these raise ValueError (an
Exception), naming the input and the expected shape.
"""
import numpy as np


def _caffe_pb2():
    from minicaffe.proto import caffe_pb2  # noqa: PLC0415  (protobuf is an optional extra)

    return caffe_pb2


# -- proto / datum / ndarray conversion ------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """The data (or, with `return_diff`, the diff) of a BlobProto as an ndarray.

    Shape: the legacy (num, channels, height, width) when any of those is set, else
    `blob.shape.dim` (so a blob with no shape and one value gives a 0-d array). Float64 blobs
    (`double_data` / `double_diff`) are read when the float fields are empty. Raises ValueError
    when the value count does not fit the shape."""
    values = blob.diff if return_diff else blob.data
    if not len(values):
        values = blob.double_diff if return_diff else blob.double_data
    data = np.array(values)
    if any(blob.HasField(name) for name in ("num", "channels", "height", "width")):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(list(blob.shape.dim))


def array_to_blobproto(arr, diff=None):
    """A caffe_pb2.BlobProto holding `arr` (shape in `shape.dim`, values as float32 `data`)
    and, optionally, `diff` (same shape, not checked, as pycaffe)."""
    arr = np.asarray(arr)
    blob = _caffe_pb2().BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """Serialized caffe_pb2.BlobProtoVector (bytes) of a list of arrays."""
    vec = _caffe_pb2().BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data):
    """The arrays of a serialized BlobProtoVector."""
    vec = _caffe_pb2().BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A caffe_pb2.Datum of a (C, H, W) array: uint8 arrays go to `data` as bytes, any other
    dtype to `float_data`. `label` is set only when given. Raises ValueError for another ndim."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"Incorrect array shape: a Datum holds a (C, H, W) array, got shape "
                         f"{arr.shape}")
    datum = _caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """The (C, H, W) image of a Datum (the label is `datum.label`): uint8 from `data`, float64
    from `float_data`. An `encoded` datum (a PNG/JPEG file, as `convert_imageset --encoded`
    writes) is decoded to uint8, BGR for colour, as Caffe's data layer decodes it."""
    if datum.encoded:
        from minicaffe.data.datum import decode_image  # noqa: PLC0415

        return decode_image(bytes(datum.data), "Datum")
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(
            datum.channels, datum.height, datum.width)
    return np.array(datum.float_data).astype(float).reshape(
        datum.channels, datum.height, datum.width)


# -- pre-processing ------------------------------------------------------------------------------
class Transformer:
    """Format (H', W', K) images for a net input and back (pycaffe's caffe.io.Transformer).

    inputs: {input name: blob shape (N, K, H, W)}, e.g. `{"data": net.blobs["data"].data.shape}`.
    Each `set_*` configures one input; `preprocess(name, image)` returns (K, H, W) float32.
    """

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise ValueError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_, data):
        """(H', W', K) image -> (K, H, W) float32 net input: convert to float32, resize to the
        input's (H, W) when needed, transpose, swap channels, `* raw_scale`, `- mean`,
        `* input_scale` (each step only when configured)."""
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=False)
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = tuple(self.inputs[in_][2:])
        if tuple(caffe_in.shape[:2]) != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        """Invert `preprocess` (except the resize): (K, H, W) or (1, K, H, W) -> (H, W, K)."""
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        """Axis order applied to the image, e.g. (2, 0, 1) turns (H, W, K) into (K, H, W).
        Raises ValueError unless `order` has one entry per input axis after the batch axis."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError(f"Transpose order needs to have the same number of dimensions as "
                             f"the input: {len(self.inputs[in_]) - 1} for '{in_}' "
                             f"{tuple(self.inputs[in_])}, got {tuple(order)}")
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """Channel order taken after the transpose, e.g. (2, 1, 0) for RGB -> BGR. Raises
        ValueError unless `order` has one entry per input channel."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError(f"Channel swap needs to have the same number of dimensions as the "
                             f"input channels: {self.inputs[in_][1]} for '{in_}', got "
                             f"{tuple(order)}")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Multiply the raw image by `scale` (255 for models trained on [0, 255] pixels, since
        load_image gives [0, 1]); applied before the mean is subtracted."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Mean to subtract: a (K,) per-channel mean, or a (K, H', W') / (H', W') mean image
        (resized to the input's (H, W) when its size differs). Raises ValueError for a mean
        whose channels do not match the input."""
        self._check_input(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError(f"Mean channels incompatible with input: {ms[0]} values for "
                                 f"'{in_}' with {self.inputs[in_][1]} channels")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError(f"Mean shape invalid: expected (K,), (H, W) or (K, H, W), got "
                                 f"{mean.shape}")
            if tuple(ms) != tuple(self.inputs[in_][1:]):
                in_shape = tuple(self.inputs[in_][1:])
                if ms[0] != in_shape[0]:
                    raise ValueError(f"Mean channels incompatible with input: mean {mean.shape}, "
                                     f"input '{in_}' {in_shape}")
                m_min, m_max = mean.min(), mean.max()
                normal_mean = (mean - m_min) / (m_max - m_min)
                mean = resize_image(normal_mean.reshape(ms).transpose((1, 2, 0)),
                                    in_shape[1:]).transpose((2, 0, 1)) * (m_max - m_min) + m_min
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Multiply the preprocessed input by `scale`, after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale


# -- image IO -------------------------------------------------------------------------------------
def _skimage():
    try:
        import skimage  # noqa: PLC0415
        import skimage.io  # noqa: PLC0415,F401
        import skimage.transform  # noqa: PLC0415,F401
    except ImportError as exc:
        raise ImportError("caffe.io's image functions need scikit-image, as pycaffe's do: "
                          "pip install 'minicaffe[pycaffe]' (or pip install scikit-image)") from exc
    return skimage


def load_image(filename, color=True):
    """An image file as float32 in [0, 1]: (H, W, 3) RGB when `color` (greyscale files are
    repeated over 3 channels, an alpha channel is dropped), else (H, W, 1) intensity.
    Raises FileNotFoundError / OSError when the file cannot be read."""
    skimage = _skimage()
    img = skimage.img_as_float(skimage.io.imread(filename, as_gray=not color)).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def resize_image(im, new_dims, interp_order=1):
    """(H, W, K) -> (new_dims[0], new_dims[1], K) float32, interpolation order `interp_order`
    (1 = bilinear). One- and three-channel images go through scikit-image's `resize` on the
    image scaled to [0, 1] (and back); other channel counts through scipy's `zoom`; a constant
    image stays that constant."""
    im = np.asarray(im)
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] == 1 or im.shape[-1] == 3:
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            skimage = _skimage()
            im_std = (im - im_min) / (im_max - im_min)
            resized_std = skimage.transform.resize(im_std, new_dims, order=interp_order,
                                                   mode="constant")
            resized_im = resized_std * (im_max - im_min) + im_min
        else:
            ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            ret.fill(im_min)
            return ret
    else:
        from scipy.ndimage import zoom  # noqa: PLC0415

        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized_im = zoom(im, scale + (1,), order=interp_order)
    return resized_im.astype(np.float32)


def oversample(images, crop_dims):
    """Ten crops per image: the four corners (top-left, top-right, bottom-left, bottom-right),
    the centre, then those five mirrored left-right.

    images: sequence of (H, W, K) arrays of one size; crop_dims: (h, w).
    Returns (10 * N, h, w, K) float32, image by image."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    # the centre box, truncated to integers as an int array assignment does
    crops_ix[4] = np.tile(im_center, (1, 2))[0] + np.concatenate([-crop_dims / 2.0,
                                                                  crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]),
                     dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops
