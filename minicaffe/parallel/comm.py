"""MPI for the replicas: finding the launch, starting MPI, and the collectives minicaffe uses.

`launch_size()` reads the launcher's environment (Open MPI's mpirun, MPICH's / Intel MPI's
mpiexec: hydra, Slurm's srun with PMI) without starting MPI; `Comm` wraps an mpi4py
communicator: sums, maxima and broadcasts of NumPy arrays, each blocking wait guarded by the
Watchdog, and `abort(message)`, which prints the message and ends every rank (MPI_Abort).
mpi4py (and an MPI library) come with `pip install "minicaffe[mpi]"` (docs/SCALING.md).
"""
import contextlib
import os
import sys

import numpy as np

from minicaffe.errors import ParallelError

# (size variable, rank variable, local size variable) of each launcher family
_LAUNCH_ENV = (
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),  # Open MPI
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"),          # MPICH / Intel MPI (hydra), srun --mpi=pmi2
    ("PMIX_SIZE", "PMIX_RANK", "PMIX_LOCAL_SIZE"),        # other PMIx launchers
)

INSTALL_HINT = ('pip install "minicaffe[mpi]" (mpi4py and Open MPI from wheels) or install '
                "mpi4py against the cluster's MPI")


def launch_size():
    """(size, rank) the launcher announces in the environment, or None when this process was
    not started by an MPI launcher (or by one starting a single process)."""
    for size_var, rank_var, _ in _LAUNCH_ENV:
        size = os.environ.get(size_var, "")
        if size.isdigit():
            rank = os.environ.get(rank_var, "0")
            return int(size), int(rank) if rank.isdigit() else 0
    return None


def import_mpi():
    """mpi4py's MPI module (initialising MPI). Raises ParallelError naming the fix when mpi4py
    or its MPI library is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        launched = launch_size()
        how = f" (this process is rank {launched[1]} of {launched[0]})" if launched else ""
        raise ParallelError(f"data-parallel training needs mpi4py{how}: {exc}; "
                            f"{INSTALL_HINT}") from None
    except RuntimeError as exc:         # mpi4py present, its MPI library not loadable
        raise ParallelError(f"mpi4py cannot load an MPI library ({exc}); {INSTALL_HINT}") from None
    return MPI


class Comm:
    """Collectives over an mpi4py communicator for NumPy arrays, guarded by `watchdog`.

    rank, size; `allreduce(array, op="sum"|"max"|"min", what)` -> new float64/int array;
    `iallreduce(buffer)` -> request (in place, sum); `wait(requests, what)`;
    `progress(requests)`; `bcast(array, what)` (in place, from rank 0); `bcast_object(obj)`;
    `allgather_object(obj)`; `barrier()`; `abort(message, code)`.
    `what` names the wait in watchdog messages; `timeout` overrides the watchdog's default
    (None: unlimited).
    """

    def __init__(self, mpi, comm, watchdog=None):
        self.MPI = mpi
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.watchdog = watchdog
        self._ops = {"sum": mpi.SUM, "max": mpi.MAX, "min": mpi.MIN}

    def _guard(self, what, timeout="default"):
        if self.watchdog is None:
            return contextlib.nullcontext()
        return self.watchdog.guard(what, timeout)

    def allreduce(self, array, op="sum", what="an allreduce", timeout="default"):
        """Elementwise `op` of `array` over the ranks, as a new contiguous array."""
        send = np.ascontiguousarray(array)
        recv = np.empty_like(send)
        with self._guard(what, timeout):
            self.comm.Allreduce(send, recv, op=self._ops[op])
        return recv

    def allreduce_inplace(self, buffer, what="an allreduce", timeout="default"):
        """Sum `buffer` (contiguous) over the ranks in place."""
        with self._guard(what, timeout):
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        return buffer

    def iallreduce(self, buffer):
        """Start summing `buffer` (contiguous) over the ranks in place; returns the request."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def progress(self, requests):
        """Let MPI move the started operations on (MPI progresses them inside its calls)."""
        if requests:
            self.MPI.Request.Testall(requests)

    def wait(self, requests, what="a collective", timeout="default"):
        if requests:
            with self._guard(what, timeout):
                self.MPI.Request.Waitall(requests)

    def bcast(self, array, what="a broadcast", timeout="default"):
        """Rank 0's `array` into every rank's `array` (same shape and dtype everywhere)."""
        with self._guard(what, timeout):
            self.comm.Bcast(array, root=0)
        return array

    def bcast_object(self, obj, what="a broadcast", timeout="default"):
        """Rank 0's picklable `obj` (small: metadata, messages) on every rank."""
        with self._guard(what, timeout):
            return self.comm.bcast(obj, root=0)

    def allgather_object(self, obj, what="an allgather", timeout="default"):
        """[obj of rank 0, obj of rank 1, ...] on every rank."""
        with self._guard(what, timeout):
            return self.comm.allgather(obj)

    def barrier(self, what="a barrier", timeout="default"):
        with self._guard(what, timeout):
            self.comm.Barrier()

    def abort(self, message, code=1):
        """Print `message` on stderr and end every rank of the job (MPI_Abort); no return."""
        try:
            sys.stderr.write(message.rstrip("\n") + "\n")
            sys.stderr.flush()
        finally:
            self.comm.Abort(code)
            os._exit(code)              # MPI_Abort returned (it should not): leave anyway

