"""pycaffe's caffe.Detector: classify windows (crops) of images, R-CNN style, optionally with
context padding around each window."""
import os

import numpy as np

from minicaffe import io as caffe_io
from minicaffe.net import Net
from minicaffe.phase import TEST


class Detector(Net):
    """Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None): a TEST-phase Net scoring windows.

    context_pad: pixels of the net input (assumed square) that show context around the window,
    as R-CNN's feature extraction; the padding outside the image is filled with the mean in
    raw image space (zeros without a mean).
    """

    def __init__(self, model_file, pretrained_file=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = caffe_io.Transformer({in_: self.blobs[in_].data.shape})
        self.transformer.set_transpose(in_, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(in_, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(in_, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(in_, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(in_, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Score windows: `images_windows` is [(image filename, [(ymin, xmin, ymax, xmax),
        ...]), ...]. Each window is cropped (with context), warped to the input size and run
        through the net. Returns [{'window', 'prediction' (first output's scores), 'filename'}]
        in input order."""
        images_windows = [(fname, list(windows)) for fname, windows in images_windows]
        window_inputs = []
        for image_fname, windows in images_windows:
            image = caffe_io.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        if not window_inputs:
            return []
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + tuple(self.blobs[in_].data.shape[2:]), dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        out = self.forward_all(**{in_: caffe_in})
        predictions = out[self.outputs[0]]
        detections = []
        ix = 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[ix],
                                   "filename": image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames):
        """detect_windows over Selective Search proposals, which pycaffe gets from the
        `selective_search_ijcv_with_python` package (a MATLAB program). Raises ImportError
        naming it when it is not installed; give windows to `detect_windows` instead."""
        try:
            import selective_search_ijcv_with_python as selective_search  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError(
                "detect_selective_search needs the selective_search_ijcv_with_python package "
                "(and MATLAB) to propose windows, as pycaffe's does; it is not installed. Compute "
                "windows another way and call detect_windows([(filename, windows), ...])") from exc
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im, window):
        """The (h, w, K) crop of (H, W, K) image `im` at window (ymin, xmin, ymax, xmax); with
        `context_pad`, the window is enlarged so that `context_pad` pixels of the (square) net
        input are context, clipped to the image and placed on a mean-filled canvas of the
        input size."""
        window = np.asarray(window)
        crop = im[int(window[0]):int(window[2]), int(window[1]):int(window[3])]
        if self.context_pad:
            box = window.astype(float)
            crop_size = self.blobs[self.inputs[0]].width          # assumes a square input
            scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
            half_h = (box[2] - box[0] + 1) / 2.0
            half_w = (box[3] - box[1] + 1) / 2.0
            center = (box[0] + half_h, box[1] + half_w)
            scaled_dims = scale * np.array((-half_h, -half_w, half_h, half_w))
            box = np.round(np.tile(center, 2) + scaled_dims)
            full_h = box[2] - box[0] + 1
            full_w = box[3] - box[1] + 1
            scale_h = crop_size / full_h
            scale_w = crop_size / full_w
            pad_y = int(round(max(0, -box[0]) * scale_h))        # part outside the image
            pad_x = int(round(max(0, -box[1]) * scale_w))
            im_h, im_w = im.shape[:2]
            box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
            clip_h = box[2] - box[0] + 1
            clip_w = box[3] - box[1] + 1
            if clip_h <= 0 or clip_w <= 0:
                raise ValueError(f"window {tuple(window)} lies outside the {im_h}x{im_w} image")
            crop_h = int(round(clip_h * scale_h))
            crop_w = int(round(clip_w * scale_w))
            if pad_y + crop_h > crop_size:
                crop_h = crop_size - pad_y
            if pad_x + crop_w > crop_size:
                crop_w = crop_size - pad_x
            box = box.astype(int)
            context_crop = im[box[0]:box[2], box[1]:box[3]]
            context_crop = caffe_io.resize_image(context_crop, (crop_h, crop_w))
            crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
            crop[pad_y:(pad_y + crop_h), pad_x:(pad_x + crop_w)] = context_crop
        return crop

    def configure_crop(self, context_pad):
        """Set the crop size (the input's, as H x W x K) and `context_pad`; with context, build
        the mean image in raw input space that fills the padding."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if self.context_pad:
            transpose = self.transformer.transpose.get(in_)
            channel_order = self.transformer.channel_swap.get(in_)
            raw_scale = self.transformer.raw_scale.get(in_)
            mean = self.transformer.mean.get(in_)
            if mean is not None:
                inv_transpose = [transpose[t] for t in transpose]
                crop_mean = np.broadcast_to(mean, self.blobs[in_].data.shape[1:]).copy()
                crop_mean = crop_mean.transpose(inv_transpose)
                if channel_order is not None:
                    channel_order_inverse = [list(channel_order).index(i)
                                             for i in range(crop_mean.shape[2])]
                    crop_mean = crop_mean[:, :, channel_order_inverse]
                if raw_scale is not None:
                    crop_mean /= raw_scale
                self.crop_mean = crop_mean
            else:
                self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
