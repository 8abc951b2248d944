"""The rest of pycaffe's top-level surface (`caffe.Layer`, `caffe.Timer`, `caffe.set_random_seed`,
logging and multi-solver stubs), exported lazily by `minicaffe/__init__.py`.

Net, the solvers, `layer_type_list` and the mode switches live in the engine; this module only
adds what pycaffe's `_caffe` module has besides them.
"""
import logging
import random
import time

import numpy as np

from minicaffe import backend
from minicaffe.catalog.python import PythonLayer

#: pycaffe's `caffe.Layer`: subclass it for `type: "Python"` layers (see minicaffe.catalog.python).
Layer = PythonLayer

log_ = logging.getLogger("minicaffe")


def set_random_seed(seed):
    """Seed the generator minicaffe's fillers, Dropout and shuffling data layers draw from
    (NumPy's global generator and Python's `random`; CuPy's too when a GPU is in use), as
    Caffe::set_random_seed does and as the solver's `random_seed` does."""
    seed = int(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if backend.mode() == "gpu":
        backend.xp().random.seed(seed % 2**32)


class Timer:
    """pycaffe's caffe.Timer (Caffe's Timer): `start()`, `stop()`, `ms` (milliseconds between the
    last start and stop; reading `ms` while running stops the timer first, as Caffe does).
    `start()` while running and `stop()` while stopped do nothing. `ms` is 0 before the first
    start. Unlike Caffe's CPU timer, which truncates to whole milliseconds, `ms` keeps the
    fraction. In GPU mode the device is synchronized at start and stop."""

    def __init__(self):
        self._running = False
        self._has_run = False
        self._start = self._stop = 0.0

    @property
    def running(self):
        return self._running

    def start(self):
        if not self._running:
            backend.synchronize()
            self._start = time.perf_counter()
            self._running = True
            self._has_run = True

    def stop(self):
        if self._running:
            backend.synchronize()
            self._stop = time.perf_counter()
            self._running = False

    @property
    def ms(self):
        if not self._has_run:
            log_.warning("Timer has never been run before reading time.")
            return 0.0
        if self._running:
            self.stop()
        return (self._stop - self._start) * 1e3

    @property
    def seconds(self):
        return self.ms / 1e3


def init_log(level=0, stderr=False):
    """pycaffe's init_log(level, stderr): route minicaffe's log records (logger "minicaffe") to
    stderr from glog severity `level` on (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL)."""
    levels = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}
    logger = logging.getLogger("minicaffe")
    logger.setLevel(levels.get(int(level), logging.INFO))
    if stderr or not logger.handlers:
        if not any(getattr(h, "_minicaffe_init_log", False) for h in logger.handlers):
            handler = logging.StreamHandler()
            handler._minicaffe_init_log = True
            handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(message)s"))
            logger.addHandler(handler)


def log(message):
    """pycaffe's caffe.log(s): one INFO record on minicaffe's log."""
    logging.getLogger("minicaffe").info("%s", message)


# Multi-GPU bookkeeping of pycaffe (NCCL): minicaffe trains in one process, so the count is 1
# and the rank 0; setting them to anything else is refused rather than ignored.
def solver_count():
    return 1


def solver_rank():
    return 0


def set_solver_count(count):
    if int(count) != 1:
        raise ValueError(f"set_solver_count({count}): minicaffe runs one solver per process")


def set_solver_rank(rank):
    if int(rank) != 0:
        raise ValueError(f"set_solver_rank({rank}): minicaffe runs one solver per process")


def set_multiprocess(multiprocess):
    """Accepted for pycaffe scripts; minicaffe's Python layers run in the calling process."""


def has_nccl():
    """False: minicaffe has no NCCL build."""
    return False
