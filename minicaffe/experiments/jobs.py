"""Independent training runs side by side: local processes, each with its own compute threads.

    results = run_jobs(fn, [spec, ...], jobs=2, threads=1)

`fn(spec)` runs in a fresh (spawned) Python process per job slot with `threads` compute
threads (OMP/OpenBLAS and minicaffe's pool) and returns a picklable result; results come back
in the order of `specs`. On a small machine two one-thread LeNet runs finish sooner than the
same runs one after another on two threads each (the small GEMMs do not scale to two threads).

The executor is the seam for other back ends: `executor` may be any concurrent.futures
Executor (mpi4py.futures.MPIPoolExecutor runs the same specs on MPI ranks).
"""
import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import traceback


class JobError(RuntimeError):
    """A job raised; the message names the job and carries its traceback."""


def _die_with_parent(parent):
    """Linux: this worker gets SIGTERM when the process that started it dies (a `kill` of the
    experiment must not leave its training runs going as orphans)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:                            # the parent died before prctl
        os._exit(1)


def _init_worker(threads, env, parent=None):
    if parent is not None:
        _die_with_parent(parent)
    os.environ.update(env)
    from minicaffe.ops import set_num_threads  # noqa: PLC0415

    set_num_threads(threads)


def _call(fn, spec):
    try:
        return fn(spec)
    except BaseException as exc:  # noqa: BLE001 (re-raised in the parent with the job's name)
        raise JobError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}") from None


def thread_env(threads):
    """Environment variables that hold BLAS / OpenMP pools to `threads` threads."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def run_jobs(fn, specs, jobs=1, threads=1, executor=None, name=lambda spec, i: f"job {i}",
             on_done=None):
    """[fn(spec) for spec in specs], `jobs` at a time in separate processes (jobs <= 1 and no
    executor: in this process, one after another). `on_done(i, result)` is called as each job
    finishes. Raises JobError naming the first job that failed (after the others finished)."""
    specs = list(specs)
    if executor is None and jobs <= 1:
        out = []
        for i, spec in enumerate(specs):
            out.append(fn(spec))
            if on_done:
                on_done(i, out[-1])
        return out
    own = executor is None
    if own:
        ctx = multiprocessing.get_context("spawn")
        executor = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                          initializer=_init_worker,
                                          initargs=(threads, thread_env(threads),
                                                    os.getpid()))
    results, errors = [None] * len(specs), []
    try:
        futures = {executor.submit(_call, fn, spec): i for i, spec in enumerate(specs)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except Exception as exc:  # noqa: BLE001
                errors.append((i, exc))
                continue
            if on_done:
                on_done(i, results[i])
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    if errors:
        i, exc = min(errors, key=lambda e: e[0])
        raise JobError(f"{name(specs[i], i)} failed: {exc}")
    return results
