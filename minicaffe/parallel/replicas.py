"""MPIReplicas: the solver's replica hooks (solver/replicas.py) over MPI.

Per iteration every replica runs forward/backward on its slice of the global batch; the
gradient buckets are allreduced (overlapping backward, parallel/reducer.py) and averaged, the
loss is averaged in the same small allreduce that agrees on stop/snapshot requests, and every
replica applies the same update to the same weights, so weights, history, SSL group terms,
thresholds and masks stay identical without being sent again. Only rank 0 tests, logs and
writes snapshots and run logs.

State is broadcast from rank 0 once, when training starts and after a restore: weights
(BatchNorm statistics included), the solver's history, iteration, learning-rate step, smoothed
losses, connectivity masks and NumPy's global RNG. `check=True` (debug) compares a CRC-32 of
every learnable blob and its history across the replicas after every update and stops with the
first blob that differs.
"""
import logging
import time
import zlib

import numpy as np

from minicaffe import backend
from minicaffe.errors import MinicaffeError, ParallelError, SolverError
from minicaffe.parallel.reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from minicaffe.solver.replicas import Replicas

log = logging.getLogger("minicaffe.parallel")

_ACTIONS = (None, "snapshot", "stop")           # a request's code is its index


class MPIReplicas(Replicas):
    """Replica `comm.rank` of `comm.size` (see the module doc).

    bucket_bytes / overlap: gradient buckets (parallel/reducer.py); check: the per-iteration
    CRC comparison; sync_batch_norm: BatchNorm uses the global batch's statistics (set by the
    BatchShard the nets were built under); otherwise their running statistics are averaged.
    Attributes after training: `stats` (iterations, seconds, seconds waiting for gradients,
    bytes per iteration, buckets).
    """

    def __init__(self, comm, bucket_bytes=DEFAULT_BUCKET_BYTES, overlap=True, check=False,
                 sync_batch_norm=True):
        self.comm = comm
        self.rank, self.size = comm.rank, comm.size
        self.bucket_bytes, self.overlap, self.check = bucket_bytes, overlap, check
        self.sync_batch_norm = sync_batch_norm
        self.reducer = None
        self._synced = False
        self._agreed = None
        self._bn_blobs = []
        self._root_was_busy = False     # the root tested or wrote a snapshot since the last wait
        self.iteration = None           # for watchdog messages
        self.stats = {"iterations": 0, "seconds": 0.0, "gradient_wait_s": 0.0,
                      "bytes_per_iteration": 0, "buckets": []}
        self._t_iter = None

    # -- set-up ----------------------------------------------------------------------------
    def attach(self, solver):
        net = solver.net
        self.reducer = GradientReducer(self.comm, net, self.bucket_bytes, self.overlap)
        self.stats["bytes_per_iteration"] = self.reducer.nbytes
        self.stats["buckets"] = self.reducer.buckets
        if not self.sync_batch_norm:
            self._bn_blobs = [b for layer in net.layers if layer.type == "BatchNorm"
                              for b in layer.blobs]
        # As Caffe's multi-GPU solvers do: the allreduce is armed by a solver callback.
        solver.add_callback(lambda: self._start_iteration(solver), lambda: None)

    def _start_iteration(self, solver):
        self.iteration = solver.iter
        self.reducer.arm(solver.param.iter_size)
        self._t_iter = time.perf_counter()

    def restore(self, solver, load):
        """Rank 0 reads the .solverstate; the others get its state when training begins.
        A failed read raises the same SolverError on every rank."""
        error = None
        if self.is_root:
            try:
                load()
            except (MinicaffeError, OSError) as exc:
                error = str(exc)
        error = self.comm.bcast_object(error, "the restore of a snapshot", timeout=None)
        if error is not None:
            exc = SolverError(error)
            exc.collective = True
            raise exc
        self._synced = False

    def begin(self, solver):
        if not self._synced:
            self.broadcast_state(solver)
            self._synced = True

    def broadcast_state(self, solver):
        """Make every replica's solver state rank 0's (see the module doc)."""
        comm = self.comm
        meta = None
        if self.is_root:
            masks = solver._masks
            meta = {"iter": solver.iter, "current_step": solver.current_step,
                    "losses": list(solver._losses), "smoothed_loss": solver.smoothed_loss,
                    "masks": None if masks is None else
                    {i: (tuple(m.shape)) for i, m in masks.items()},
                    "rng": np.random.get_state(), "last_snapshot": solver.last_snapshot,
                    "unconfirmed": solver._unconfirmed}
        meta = comm.bcast_object(meta, "the broadcast of rank 0's state", timeout=None)
        arrays = [b.data for b in solver._params] + [h for hist in solver.history for h in hist]
        for a in arrays:
            host = np.ascontiguousarray(backend.asnumpy(a))
            comm.bcast(host, "the broadcast of rank 0's weights", timeout=None)
            if not self.is_root:
                a[...] = backend.to_current(host)
        if meta["masks"] is None:
            masks = None
        else:
            masks = {}
            for i, shape in sorted(meta["masks"].items()):
                m = (np.ascontiguousarray(backend.asnumpy(solver._masks[i]), dtype=np.uint8)
                     if self.is_root else np.empty(shape, dtype=np.uint8))
                comm.bcast(m, "the broadcast of rank 0's masks", timeout=None)
                masks[i] = backend.to_current(m.astype(bool))
        if not self.is_root:
            solver.iter, solver.current_step = meta["iter"], meta["current_step"]
            solver._losses.clear()
            solver._losses.extend(meta["losses"])
            solver.smoothed_loss = meta["smoothed_loss"]
            solver._masks = masks
            solver.last_snapshot, solver._unconfirmed = meta["last_snapshot"], meta["unconfirmed"]
            np.random.set_state(meta["rng"])
        for tn in solver.test_nets:
            tn.share_with(solver.net)

    # -- per iteration ---------------------------------------------------------------------
    def _timeout(self):
        """The watchdog limit of the next wait: none right after the root wrote a snapshot
        (which may take long while the others wait), else the default."""
        busy, self._root_was_busy = self._root_was_busy, False
        return None if busy else "default"

    def reduce(self, solver, loss):
        self.stats["gradient_wait_s"] += self.reducer.finish(self._timeout())
        if self._bn_blobs:
            self._average_data(self._bn_blobs, "the BatchNorm statistics allreduce")
        request = _ACTIONS.index(solver._requested)
        solver._requested = None                # in flight: agreed below
        flags = np.zeros(3, dtype=np.float64)
        flags[0] = loss
        if request:
            flags[request] = 1
        total = self.comm.allreduce(flags, "sum", "the loss allreduce")
        self._agreed = _ACTIONS[2] if total[2] > 0 else _ACTIONS[1] if total[1] > 0 else None
        return float(total[0] / self.size)

    def _average_data(self, blobs, what):
        flat = np.concatenate([backend.asnumpy(b.data).astype(np.float64).ravel()
                               for b in blobs])
        flat = self.comm.allreduce(flat, "sum", what) / self.size
        offset = 0
        for b in blobs:
            part = flat[offset:offset + b.count].reshape(b.data.shape)
            b.data[...] = backend.to_current(part.astype(b.data.dtype))
            offset += b.count

    def mean(self, arrays):
        arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
        if not arrays:
            return arrays
        flat = np.concatenate([a.ravel() for a in arrays])
        flat = self.comm.allreduce(flat, "sum", "the outputs allreduce", self._timeout()) / self.size
        out, offset = [], 0
        for a in arrays:
            out.append(flat[offset:offset + a.size].reshape(a.shape))
            offset += a.size
        return out

    def after_test(self, solver):
        # Test nets may draw from NumPy's global RNG (DummyData, Python layers): the replicas
        # continue from the root's state, as the one process would.
        state = self.comm.bcast_object(np.random.get_state() if self.is_root else None,
                                       "a wait for rank 0's test pass", timeout=None)
        if not self.is_root:
            np.random.set_state(state)
        flags = np.zeros(3, dtype=np.float64)
        request = _ACTIONS.index(solver._requested)
        solver._requested = None
        if request:
            flags[request] = 1
        total = self.comm.allreduce(flags, "sum", "the request agreement")
        self._agreed = _ACTIONS[2] if total[2] > 0 else _ACTIONS[1] if total[1] > 0 else None

    def agree(self, solver):
        action, self._agreed = self._agreed, None
        if action is not None:
            self._root_was_busy = True          # the root writes a snapshot now
        return action

    def updated(self, solver):
        p = solver.param
        if p.snapshot and (solver.iter + 1) % p.snapshot == 0:
            self._root_was_busy = True
        self.stats["iterations"] += 1
        now = time.perf_counter()
        if self._t_iter is not None:
            self.stats["seconds"] += now - self._t_iter
        self._t_iter = now
        if self.check:
            self.compare(solver)

    def compare(self, solver):
        """Raise ParallelError (on every rank) unless every learnable blob and its history is
        bit-identical on all replicas; names the first blob that differs and the ranks."""
        sums = [zlib.crc32(np.ascontiguousarray(backend.asnumpy(b.data)).view(np.uint8))
                for b in solver._params]
        sums += [zlib.crc32(np.ascontiguousarray(backend.asnumpy(h)).view(np.uint8))
                 for hist in solver.history for h in hist]
        every = self.comm.allgather_object(sums, "the replica check")
        n = len(solver._params)
        for k, values in enumerate(zip(*every)):
            if len(set(values)) > 1:
                differ = [r for r, v in enumerate(values) if v != values[0]]
                i = k if k < n else (k - n) // solver.history_count
                what = "weights" if k < n else "solver history"
                exc = ParallelError(
                    f"iteration {solver.iter}: the replicas' {what} differ: "
                    f"{solver._blob_name(i)} on rank(s) {differ} is not rank 0's "
                    "(nondeterministic layer, or a layer that reads per-rank state?)")
                exc.collective = True
                raise exc

    def finish(self, solver):
        s = self.stats
        if not self.is_root or not s["iterations"]:
            return
        per = s["seconds"] / s["iterations"]
        wait = s["gradient_wait_s"] / s["iterations"]
        log.info("Data parallel: %d replicas, %.3g MB of gradients allreduced per iteration in "
                 "%d bucket(s)%s; %.4g s per iteration, %.1f%% of it waiting for the gradient "
                 "allreduce", self.size, s["bytes_per_iteration"] / 1e6, len(s["buckets"]),
                 " overlapped with backward" if self.overlap else "", per,
                 100.0 * wait / per if per else 0.0)
