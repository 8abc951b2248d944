"""`python -m minicaffe.train`: train a net from a solver file, like `caffe train`.

    python -m minicaffe.train --solver S [--weights W[,W2] | --snapshot STATE] [--gpu N]
        [--sigint_effect stop|snapshot|none] [--sighup_effect ...] [--sigterm_effect ...]
        [--flops-target F [--flops-scope CONV|ALL] | --latency-target MS]
    mpirun -n P python -m minicaffe.train --solver S [...]     # P data-parallel replicas

--flops-target / --latency-target ask for a budget instead of lambdas (the solver fields
flops_target / flops_target_scope / latency_target, which they override; docs/SSL.md, "Budget-
driven SSL"): the solver steers the group-Lasso strengths to it, then freezes the structure and
fine-tunes; the summary's "budget" entry says how close the run came.

Logs Caffe-style lines (and the sparsity report) to stderr, shows a progress bar when stderr is
a terminal, writes snapshots, `<snapshot_prefix>_log.jsonl` (this run's curves; a resumed run
appends a marked section) and, when it ends, `<snapshot_prefix>_summary.json`. Signals, as
Caffe's `-sigint_effect` / `-sighup_effect`: by default SIGINT and SIGTERM snapshot and stop,
SIGHUP snapshots and continues. Exit status: 0 done (or stopped), 1 error, divergence or a
snapshot that could not be written (docs/RELIABILITY.md).

Started by an MPI launcher with P > 1 processes, the run is data parallel (minicaffe.parallel,
docs/SCALING.md): each process is a replica with the solver's batch, reading its slice of every
global batch of P times that; the result is the single process's with the P-times batch. Only
rank 0 logs, tests and writes snapshots; a rank that fails ends the whole job (MPI_Abort) with
`rank r of P failed: <error>`.
"""
import argparse
import logging
import signal
import sys

log = logging.getLogger("minicaffe")


class _BarHandler(logging.Handler):
    """Log lines printed above an active tqdm bar instead of through it."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def emit(self, record):
        self.bar.write(self.format(record), file=sys.stderr)


def setup_logging():
    """Caffe-like `I1121 14:55:01 message` lines on stderr."""
    root = logging.getLogger("minicaffe")
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname).1s%(asctime)s %(message)s",
                                         datefmt="%m%d %H:%M:%S"))
        root.addHandler(h)
    root.setLevel(logging.INFO)
    root.propagate = False
    return root


def gpu_id(text):
    """argparse type of --gpu: one CUDA device id (Caffe's `all` or `0,1` pick several GPUs;
    minicaffe trains on one)."""
    try:
        device = int(text)
    except ValueError:
        device = -1
    if device < 0:
        raise argparse.ArgumentTypeError(f"expected one CUDA device id such as 0, got '{text}' "
                                         "(minicaffe runs on a single GPU)")
    return device


def select_device(gpu, param=None):
    """--gpu N picks CUDA device N; otherwise a solver file that explicitly asks for GPU mode
    gets it when a GPU is there (and runs on the CPU with a warning when not)."""
    from minicaffe import backend

    if gpu is not None:
        backend.set_device(int(gpu))
        backend.set_mode_gpu()
        log.info("Using GPU %s", gpu)
    elif param is not None and param.has("solver_mode") and param.solver_mode == "GPU":
        if backend.gpu_available():
            backend.set_device(param.device_id)
            backend.set_mode_gpu()
            log.info("Using GPU %d (solver_mode: GPU)", param.device_id)
        else:
            log.warning("solver_mode: GPU but no GPU is usable (%s); running on the CPU",
                        backend.gpu_unavailable_reason())
    else:
        log.info("Use CPU.")


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.train", description=__doc__.split("\n")[0])
    ap.add_argument("--solver", "-solver", required=True, help="solver .prototxt")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--weights", "-weights", help="weights to fine-tune from (comma-separated)")
    group.add_argument("--snapshot", "-snapshot", help=".solverstate to resume from")
    ap.add_argument("--gpu", "-gpu", type=gpu_id, help="CUDA device id")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, default, what in SIGNAL_FLAGS:
        ap.add_argument(f"--{name}", f"-{name}", choices=EFFECTS, default=default,
                        help=f"what {what} does: snapshot after this iteration and stop, "
                             f"snapshot and go on, or nothing (default: {default})")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--flops-target", type=_fraction, metavar="F",
                        help="budget: fraction of the dense multiply-adds to keep (0 < F <= 1)")
    budget.add_argument("--latency-target", type=_positive, metavar="MS",
                        help="budget: ms per batch of the deploy net, from costs measured here")
    ap.add_argument("--flops-scope", choices=("CONV", "ALL"),
                    help="what --flops-target counts: the Convolutions (default) or all layers")
    mpi = ap.add_argument_group("data parallel (under mpirun; docs/SCALING.md)")
    mpi.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                     help="auto (default): data parallel when an MPI launcher started more than "
                          "one process; on: always through MPI; off: never")
    mpi.add_argument("--batch-norm", choices=("sync", "local"), default="sync",
                     help="BatchNorm at TRAIN normalises with the global batch's statistics "
                          "(sync, default: the single-process result) or each replica's own "
                          "(local, Caffe's multi-GPU way; running statistics averaged)")
    mpi.add_argument("--bucket-mb", type=float, default=4.0,
                     help="gradient bucket size in MB (default 4)")
    mpi.add_argument("--no-overlap", action="store_true",
                     help="allreduce the gradients after backward instead of during it")
    mpi.add_argument("--mpi-check", action="store_true",
                     help="debug: after every update compare a CRC of every weight and history "
                          "blob across the replicas; stop at the first that differs")
    mpi.add_argument("--mpi-timeout", type=float, default=None,
                     help="seconds a replica waits for the others before ending the job "
                          "(default MINICAFFE_MPI_TIMEOUT or 600; 0: never)")
    mpi.add_argument("--threads", type=int, default=None,
                     help="compute threads per process (default: OMP_NUM_THREADS, else the "
                          "cores divided by the processes on the node)")
    return ap


# Caffe's signal options (tools/caffe.cpp: -sigint_effect, -sighup_effect; the same three
# effects) and ours for SIGTERM, which Caffe leaves to kill the process without a snapshot.
EFFECTS = ("stop", "snapshot", "none")
SIGNAL_FLAGS = (("sigint_effect", "stop", "SIGINT (Ctrl-C)"),
                ("sighup_effect", "snapshot", "SIGHUP"),
                ("sigterm_effect", "stop", "SIGTERM (kill, batch schedulers)"))


def _fraction(text):
    """argparse type of --flops-target: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction of the dense FLOPs in (0, 1], "
                                         f"got '{text}'")
    return value


def _positive(text):
    """argparse type of --latency-target: milliseconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected milliseconds > 0, got '{text}'")
    return value


def _install_signals(solver, sigint="stop", sighup="snapshot", sigterm="stop"):
    """Handle SIGINT, SIGHUP and SIGTERM with the given effects. "stop": snapshot after this
    iteration and stop (exit status 0); the same signal again stops at once without a
    snapshot. "snapshot": snapshot after this iteration and go on. "none": log and ignore."""
    def on_stop(signum, frame):
        name = signal.Signals(signum).name
        again = "press Ctrl-C again" if signum == signal.SIGINT else "send it again"
        log.info("%s: snapshotting and stopping after this iteration (%s to abort without a "
                 "snapshot)", name, again)
        solver.request("stop")
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                      else signal.SIG_DFL)

    def on_snapshot(signum, frame):
        log.info("%s: snapshotting after this iteration", signal.Signals(signum).name)
        solver.request("snapshot")

    def on_none(signum, frame):
        name = signal.Signals(signum).name
        log.info("%s ignored (--%s_effect none)", name, name.lower())

    handlers = {"stop": on_stop, "snapshot": on_snapshot, "none": on_none}
    for name, effect in (("SIGINT", sigint), ("SIGHUP", sighup), ("SIGTERM", sigterm)):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handlers[effect])


def _progress_bar(solver):
    """A tqdm bar over iterations when stderr is a terminal; returns it (or None)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bar = tqdm(total=solver.param.max_iter, initial=solver.iter, unit="it", dynamic_ncols=True,
               file=sys.stderr)
    root = logging.getLogger("minicaffe")
    fmt = root.handlers[0].formatter if root.handlers else None
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = _BarHandler(bar)
    handler.setFormatter(fmt)
    root.addHandler(handler)

    def update(it, loss):
        bar.n = it
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.refresh()

    solver.progress = update
    return bar


def _data_parallel(args):
    """Whether this run is one replica of an MPI job (--mpi, and the launcher's environment)."""
    if args.mpi == "off":
        return False
    if args.mpi == "on":
        return True
    from minicaffe.parallel import launch_size

    launched = launch_size()
    return launched is not None and launched[0] > 1


def main(argv=None):
    args = _parser().parse_args(argv)
    setup_logging()
    if _data_parallel(args):
        return _main_parallel(args)
    from minicaffe.errors import DivergenceError, MinicaffeError
    from minicaffe.prototxt import read_solver
    from minicaffe.solver import get_solver

    bar = None
    try:
        param = read_solver(args.solver)
        select_device(args.gpu, param)
        log.info("Initializing solver from parameters: %s", args.solver)
        solver = get_solver(args.solver)
        if args.flops_scope and not (args.flops_target or solver.param.flops_target):
            raise MinicaffeError("--flops-scope needs a FLOPs budget (--flops-target or the "
                                 "solver's flops_target)")
        if args.flops_target or args.latency_target or args.flops_scope:
            solver.set_budget(flops_target=args.flops_target,
                              latency_target=args.latency_target, scope=args.flops_scope)
        if args.weights:
            for w in args.weights.split(","):
                log.info("Finetuning from %s", w)
                solver.net.copy_from(w)
            for tn in solver.test_nets:
                tn.share_with(solver.net)
            solver.runlog.info["weights"] = args.weights.split(",")
        _install_signals(solver, args.sigint_effect, args.sighup_effect, args.sigterm_effect)
        if not args.no_progress:
            bar = _progress_bar(solver)
        solver.solve(args.snapshot)
    except DivergenceError as exc:
        log.error("%s", exc)
        return 1
    except (MinicaffeError, OSError, KeyError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted twice: stopped without a snapshot")
        return 130
    finally:
        if bar is not None:
            bar.close()
    return 0



def _budget_under_mpi(args):
    """What asks for a budget in this run (a flag or a solver field), or '' when nothing does."""
    asked = [flag for flag, value in (("--flops-target", args.flops_target),
                                      ("--latency-target", args.latency_target),
                                      ("--flops-scope", args.flops_scope)) if value]
    if not asked:
        from minicaffe.errors import MinicaffeError
        from minicaffe.prototxt import read_solver
        try:
            param = read_solver(args.solver)
        except (MinicaffeError, OSError):
            return ""                    # reported by the replicas, once, as any bad solver file
        asked = [f"{args.solver}: {field}" for field in ("flops_target", "latency_target")
                 if getattr(param, field)]
    return ", ".join(asked)


def _main_parallel(args):
    """main() for one replica of an MPI job: the same steps, with failures ending every rank."""
    from minicaffe.errors import DivergenceError, MinicaffeError, ParallelError
    from minicaffe import parallel

    budget = _budget_under_mpi(args)
    if budget:
        log.error("%s with data parallelism: the budget controller steers one process's solver "
                  "and is not run across replicas yet; train with it in one process (without "
                  "mpirun, or --mpi off), then resume or fine-tune under mpirun", budget)
        return 1
    if args.gpu is not None:
        log.error("--gpu with data parallelism: the replicas run on the CPU (one process per "
                  "core or socket; docs/SCALING.md)")
        return 1
    try:
        timeout = "default" if args.mpi_timeout is None else \
            (args.mpi_timeout if args.mpi_timeout > 0 else None)
        session = parallel.session(timeout=timeout, threads=args.threads)
    except ParallelError as exc:
        log.error("%s", exc)
        return 1
    bar = None
    try:
        log.info("Initializing solver from parameters: %s", args.solver)
        log.info("Use CPU.")
        solver = session.solver(args.solver, weights=args.weights.split(",") if args.weights else None,
                                sync_batch_norm=args.batch_norm == "sync",
                                bucket_bytes=int(args.bucket_mb * (1 << 20)),
                                overlap=not args.no_overlap, check=args.mpi_check)
        _install_signals(solver, args.sigint_effect, args.sighup_effect, args.sigterm_effect)
        if session.is_root and not args.no_progress:
            bar = _progress_bar(solver)
        solver.solve(args.snapshot)
    except (DivergenceError, MinicaffeError) as exc:
        # Raised on every rank alike (a decision on averaged values, or agreed by all): each
        # rank stops by itself; rank 0 says why.
        if not (isinstance(exc, DivergenceError) or getattr(exc, "collective", False)):
            session.fail(exc)
        if session.is_root:
            log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        session.comm.abort(f"rank {session.rank} of {session.size}: interrupted twice: stopped "
                           "without a snapshot", 130)
    except BaseException as exc:         # noqa: BLE001  (any failure must end every rank)
        session.fail(exc)
    finally:
        if bar is not None:
            bar.close()
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
