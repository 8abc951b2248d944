"""Data-parallel training over MPI: P replicas of the net, one per process, each reading its
slice of every global batch; gradients averaged with allreduce before every update.

    mpirun -n 4 python -m minicaffe.train --solver S         # the command line (train.py)

    from minicaffe import parallel                           # a script run under mpirun
    solver = parallel.get_solver("solver.prototxt")
    solver.solve()

A P-replica run with batch B per replica is numerically the single process with batch P*B
(within float rounding): the replicas read disjoint slices of the same global batches
(minicaffe/data/shard.py), draw crops, mirrors and Dropout masks for the whole global batch,
normalise BatchNorm with the global batch's statistics, and apply the same averaged gradient
to the same weights. Only rank 0 tests, logs and writes snapshots. docs/SCALING.md has the
details, the cost model and the cluster set-up.

- `Session` / `session()`: MPI, the watchdog, the exception hooks (parallel/session.py).
- `get_solver(path, **options)`: a data-parallel solver in this job.
- `MPIReplicas` (parallel/replicas.py), `GradientReducer` (parallel/reducer.py),
  `Comm` and `launch_size()` (parallel/comm.py), `Watchdog` (parallel/watchdog.py).
- `RankGroups` (parallel/groups.py): the job split into groups of G ranks, each training one
  run at a time data parallel (the MPI mode of `python -m minicaffe.sweep`).
"""
from minicaffe.parallel.comm import Comm, launch_size
from minicaffe.parallel.groups import RankGroups
from minicaffe.parallel.reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from minicaffe.parallel.replicas import MPIReplicas
from minicaffe.parallel.session import DEFAULT_TIMEOUT, Session, session
from minicaffe.parallel.watchdog import Watchdog


def get_solver(path, weights=None, sync_batch_norm=True, bucket_bytes=DEFAULT_BUCKET_BYTES,
               overlap=True, check=False, timeout="default", threads=None):
    """The solver of `path` as one replica of a data-parallel job (this process's MPI job;
    one process alone is a job of one). See Session.solver for the arguments."""
    return session(timeout=timeout, threads=threads).solver(
        path, weights=weights, sync_batch_norm=sync_batch_norm, bucket_bytes=bucket_bytes,
        overlap=overlap, check=check)


__all__ = ["Comm", "DEFAULT_BUCKET_BYTES", "DEFAULT_TIMEOUT", "GradientReducer", "MPIReplicas",
           "RankGroups", "Session", "Watchdog", "get_solver", "launch_size", "session"]
