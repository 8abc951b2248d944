"""Session: this process's place in an MPI job, and building a data-parallel solver in it.

`Session(timeout, threads)` starts MPI (mpi4py), the watchdog and the failure handling:
an exception that escapes on any rank (sys.excepthook, threading.excepthook) or a watchdog
timeout prints `rank r of P: <error>` and ends every rank with MPI_Abort, so no rank is left
waiting in a collective. Logging and Python warnings are kept to rank 0. Each rank computes
with `threads` threads (default: the machine's cores divided by the ranks on it, so P ranks on
one node do not oversubscribe it).

`session.solver(path, ...)` builds the solver on every rank under the BatchShard of this
rank (minicaffe/data/shard.py) with MPIReplicas; when any rank fails to build (a missing
file on one node...), every rank raises the same ParallelError naming the ranks and errors.
"""
import logging
import os
import random
import secrets
import sys
import threading
import traceback
import warnings

import numpy as np

from minicaffe import ops
from minicaffe.data.shard import BatchShard, batch_sharding
from minicaffe.errors import MinicaffeError, ParallelError
from minicaffe.parallel.comm import Comm, import_mpi
from minicaffe.parallel.reducer import DEFAULT_BUCKET_BYTES
from minicaffe.parallel.replicas import MPIReplicas
from minicaffe.parallel.watchdog import Watchdog

log = logging.getLogger("minicaffe.parallel")

DEFAULT_TIMEOUT = 600.0          # seconds a replica may wait for the others (MINICAFFE_MPI_TIMEOUT)

_session = None


def default_timeout():
    """MINICAFFE_MPI_TIMEOUT (seconds; 0 = never) or DEFAULT_TIMEOUT."""
    text = os.environ.get("MINICAFFE_MPI_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ParallelError(f"MINICAFFE_MPI_TIMEOUT={text!r}: expected seconds (0: no "
                            "timeout)") from None
    return value if value > 0 else None


def _threads_from_env():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(env) if env.isdigit() and int(env) > 0 else None


class Session:
    """MPI, the world communicator and the failure handling of this process (module doc).

    rank, size, local_size (ranks on this node), threads, comm (parallel.comm.Comm).
    `comm`: the mpi4py communicator of the replicas (default MPI.COMM_WORLD; the sweep's rank
    groups pass theirs, parallel/groups.py).
    Raises ParallelError when mpi4py or its MPI library is missing.
    """

    def __init__(self, timeout="default", threads=None, comm=None):
        mpi = import_mpi()
        world = mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = world.Get_rank(), world.Get_size()
        self.replicas = None
        timeout = default_timeout() if timeout == "default" else timeout
        self.watchdog = Watchdog(timeout, self._timed_out, self._where)
        self.comm = Comm(mpi, world, self.watchdog)
        local = world.Split_type(mpi.COMM_TYPE_SHARED, self.rank)
        self.local_size = local.Get_size()
        local.Free()
        self.threads = threads or _threads_from_env() or \
            max(1, (os.cpu_count() or 1) // self.local_size)
        ops.set_num_threads(min(self.threads, ops.native.MAX_THREADS))
        self._hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = self._uncaught
        threading.excepthook = self._uncaught_in_thread
        if self.rank != 0:
            logging.getLogger("minicaffe").setLevel(logging.ERROR)
            warnings.simplefilter("ignore")

    @property
    def is_root(self):
        return self.rank == 0

    def _where(self):
        it = getattr(self.replicas, "iteration", None)
        return f" (iteration {it})" if it is not None else ""

    def _timed_out(self, message):
        self.comm.abort(f"rank {self.rank} of {self.size}: {message}")

    def fail(self, exc, code=1):
        """Print `rank r of P: <error>` (with the traceback for an unexpected one) and end every
        rank of the job (MPI_Abort). No return."""
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, MinicaffeError) else str(exc)
        detail = "" if isinstance(exc, (MinicaffeError, OSError)) else \
            "\n" + "".join(traceback.format_exception(exc)).rstrip()
        self.comm.abort(f"rank {self.rank} of {self.size} failed{self._where()}: {text}; "
                        f"ending all {self.size} ranks{detail}", code)

    def _uncaught(self, exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            self.comm.abort(f"rank {self.rank} of {self.size}: interrupted; ending all "
                            f"{self.size} ranks", 130)
        self.fail(exc.with_traceback(tb))

    def _uncaught_in_thread(self, args):
        if args.exc_type is SystemExit:
            return
        self.fail(args.exc_value)

    # -- building the solver -----------------------------------------------------------------
    def agree_seed(self, param):
        """A solver without `random_seed` draws one on rank 0 for every rank (layer seeds,
        shuffles and crops must agree); returns the seed in use."""
        if param.random_seed >= 0:
            return int(param.random_seed)
        seed = self.comm.bcast_object(secrets.randbits(31) if self.is_root else None,
                                      "the seed agreement", timeout=None)
        np.random.seed(seed)
        random.seed(seed)
        log.info("random_seed is not set: every replica seeds with %d (set random_seed: %d in "
                 "the solver to repeat this run)", seed, seed)
        return seed

    def agree(self, error, what):
        """Raise ParallelError on every rank when `error` (a str or None) is set on any."""
        errors = self.comm.allgather_object(error, what, timeout=None)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            if len(failed) == self.size and len({e for _, e in failed}) == 1:
                text = failed[0][1]                   # the same error everywhere
            else:
                text = f"{what} failed on {len(failed)} of {self.size} ranks: " + \
                    "; ".join(f"rank {r}: {e}" for r, e in failed)
            exc = ParallelError(text)
            exc.collective = True
            raise exc

    def solver(self, path, weights=None, sync_batch_norm=True, bucket_bytes=DEFAULT_BUCKET_BYTES,
               overlap=True, check=False):
        """A solver from `path` (a solver file or a SolverParameter) on every rank, data
        parallel over this job; rank 0
        loads `weights` (comma-separated .caffemodel files) and the others receive them when
        training starts. Raises the same ParallelError on every rank when any cannot build."""
        from minicaffe.solver import get_solver, read_param

        solver, error = None, None
        try:
            self.agree_seed(read_param(path)[0])
            replicas = self.replicas = MPIReplicas(
                self.comm, bucket_bytes=bucket_bytes, overlap=overlap, check=check,
                sync_batch_norm=sync_batch_norm)
            shard = BatchShard(self.rank, self.size, allreduce=self._statistics_sum,
                               sync_batch_norm=sync_batch_norm)
            with batch_sharding(shard):
                solver = get_solver(path, replicas=replicas)
            if weights and self.is_root:
                for w in weights:
                    log.info("Finetuning from %s", w)
                    solver.net.copy_from(w)
                solver.runlog.info["weights"] = list(weights)
        except (MinicaffeError, OSError, KeyError) as exc:
            error = str(exc)
        self.agree(error, "building the solver")
        log.info("Data parallel: %d replicas (%d on this node, %d thread(s) each); each reads "
                 "its slice of every global batch (global batch = %d x the net's batch)",
                 self.size, self.local_size, self.threads, self.size)
        return solver

    def _statistics_sum(self, values):
        return self.comm.allreduce(values, "sum", "the BatchNorm statistics allreduce")

    def close(self):
        """Stop the watchdog and restore the exception hooks."""
        self.watchdog.close()
        sys.excepthook, threading.excepthook = self._hooks


def session(timeout="default", threads=None):
    """The process's Session, started on first use (later arguments are ignored)."""
    global _session
    if _session is None:
        _session = Session(timeout=timeout, threads=threads)
    return _session
