"""HDF5Output layer (Caffe's HDF5OutputLayer): write two blobs to an HDF5 file."""
import weakref

import numpy as np

from minicaffe import backend
from minicaffe.catalog.base import Layer, register_layer
from minicaffe.catalog.mvn import legacy_4d


def _close(handle):
    try:
        handle.close()
    except Exception:                # the file may already be closed; nothing left to do
        pass


@register_layer("HDF5Output")
class HDF5Output(Layer):
    """Writes bottom[0] to dataset "data" and bottom[1] to dataset "label" of
    `hdf5_output_param.file_name`, created (truncated) at setup, as Caffe does.

    Each blob is written in its legacy 4-D shape (num, channels, height, width) and its own
    float type. Caffe can write one batch only (a second forward fails because the datasets
    exist); here every forward appends its rows along axis 0 and flushes, so the file holds
    all batches so far and can be read while the net is alive. No tops, no gradient.
    `close()` closes the file (also done when the layer is garbage-collected).
    Raises LayerSetupError for a missing file_name, a file that cannot be created, bottoms
    with different num or more than 4 axes, or a batch whose shape differs from the first.
    """

    exact_bottoms = 2
    exact_tops = 0

    def setup(self, bottom, top):
        p = self.layer_param.hdf5_output_param
        if not p.file_name:
            raise self.error("hdf5_output_param.file_name must be given", bottom)
        import h5py

        try:
            self._file = h5py.File(p.file_name, "w")
        except OSError as e:
            raise self.error(f"hdf5_output_param.file_name: cannot create '{p.file_name}' ({e})",
                             bottom, at=(p, "file_name")) from None
        self._finalizer = weakref.finalize(self, _close, self._file)
        self.file_name = p.file_name

    def reshape(self, bottom, top):
        data, label = legacy_4d(self, bottom[:1]), legacy_4d(self, bottom[1:])
        if data[0] != label[0]:
            raise self.error(f"data and label must have the same num: {data[0]} vs {label[0]}",
                             bottom)
        self._shapes = (data, label)

    def forward(self, bottom, top):
        for name, blob, shape in zip(("data", "label"), bottom, self._shapes):
            values = np.asarray(backend.asnumpy(blob.data)).reshape(shape)
            dset = self._file.get(name)
            if dset is None:
                self._file.create_dataset(name, data=values, maxshape=(None,) + shape[1:],
                                          chunks=True)
                continue
            if dset.shape[1:] != shape[1:]:
                raise self.error(f"dataset '{name}' holds rows of shape {dset.shape[1:]}; this "
                                 f"batch has {shape[1:]}", bottom)
            start = dset.shape[0]
            dset.resize(start + shape[0], axis=0)
            dset[start:] = values
        self._file.flush()

    def backward(self, top, propagate_down, bottom):
        pass

    def close(self):
        """Close the HDF5 file (idempotent)."""
        self._finalizer()
