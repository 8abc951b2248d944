"""Datasets for the data layers: record sources, Caffe's transformer, prefetching, the data tool.

- `open_source(backend, source, ...)`: a record source for `data_param.backend`
  (`LMDB` Datum records, raw `IDX` MNIST-format files, `CIFAR10` binary batches).
- Sources: `IDXSource`, `CIFARSource`, `LMDBSource`, `HDF5Source`, `ImageListSource`.
- `DataTransformer` (transform_param), `read_mean_file` / `write_mean_file` (.binaryproto).
- `Prefetcher`: batches produced in a background thread.
- `python -m minicaffe.data get|convert|compute-mean` (see `minicaffe/data/__main__.py`).
"""
from minicaffe.data.cifar import CIFARSource
from minicaffe.data.datum import Datum, decode_datum, encode_datum
from minicaffe.data.hdf5 import HDF5Source
from minicaffe.data.idx import IDXSource, labels_path_for, read_idx
from minicaffe.data.image_list import ImageListSource
from minicaffe.data.lmdb_source import LMDBSource, LMDBWriter
from minicaffe.data.prefetch import Prefetcher
from minicaffe.data.source import ArraySource, Source
from minicaffe.data.transform import DataTransformer, read_mean_file, write_mean_file
from minicaffe.errors import DataError

BACKENDS = ("LMDB", "IDX", "CIFAR10")


def open_source(backend, source, force_color=False, force_gray=False):
    """The record source for `data_param { backend source }`; DataError for LEVELDB (not
    supported: convert to LMDB) or an unknown backend."""
    backend = str(backend).upper()
    if not source:
        raise DataError(f"data_param.source is empty (backend {backend})")
    if backend == "LMDB":
        return LMDBSource(source, force_color=force_color, force_gray=force_gray)
    if backend == "IDX":
        return IDXSource(source)
    if backend == "CIFAR10":
        return CIFARSource(source)
    if backend == "LEVELDB":
        raise DataError(f"{source}: backend LEVELDB is not supported by minicaffe; convert the data "
                        f"to LMDB (python -m minicaffe.data convert) or read the raw files with "
                        f"backend IDX / CIFAR10")
    raise DataError(f"{source}: unknown data backend '{backend}' (known: {', '.join(BACKENDS)})")


__all__ = [
    "ArraySource", "BACKENDS", "CIFARSource", "DataTransformer", "Datum", "HDF5Source",
    "IDXSource", "ImageListSource", "LMDBSource", "LMDBWriter", "Prefetcher", "Source",
    "decode_datum", "encode_datum", "labels_path_for", "open_source", "read_idx",
    "read_mean_file", "write_mean_file",
]
