"""Weak scaling of data-parallel training: P ranks of one thread each vs one process of one
thread, the CIFAR-10 quick net (prototxt/cifar10/cifar10_quick_train_test.prototxt, its Data
layer pointed at generated CIFAR-10 binary batches: random pixels, the real record format).

    python bench/parallel_scaling.py [--ranks 2] [--batch 100] [--iters 20] [--rounds 3]

Each round runs, one after the other (interleaved, so drifting machine load hits all alike):
  one   one process, no MPI, batch B, 1 thread            (the baseline)
  P     mpirun -n P, batch B per rank, 1 thread per rank, gradients bucketed and allreduced
        during backward (overlap)
  P/no  the same, allreduced after backward (--no-overlap), which exposes the whole
        allreduce time
  ind   P one-process runs at once, no MPI, no communication: what this machine gives P
        processes of one thread (shared caches, memory bandwidth, clock), the ceiling of P
Every run trains `--warmup` iterations untimed, then `--iters` timed iterations. Reported:
images per second (all ranks together), the weak-scaling ratio P-rank / one-process images/s
(ideal P), and the communication share: seconds a rank spends in the gradient allreduce waits
after its backward, over the iteration time (a median over the rounds). With overlap that is
the exposed part of the allreduce plus any imbalance between ranks; without overlap the whole
allreduce. The allreduce alone (the gradients' size, after a barrier, median of 20) is reported
as a share of the iteration too. bench/test_parallel_speed.py runs this under pytest-benchmark.

Run by the launcher, this file is also the worker (`worker` subcommand).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NET = ROOT / "prototxt" / "cifar10" / "cifar10_quick_train_test.prototxt"


def write_data(folder, records):
    """`records` random CIFAR-10 records as data_batch_1.bin in `folder`; returns `folder`."""
    rng = np.random.default_rng(0)
    rows = np.empty((records, 1 + 3 * 32 * 32), dtype=np.uint8)
    rows[:, 0] = rng.integers(0, 10, records)
    rows[:, 1:] = rng.integers(0, 256, (records, 3 * 32 * 32))
    Path(folder, "data_batch_1.bin").write_bytes(rows.tobytes())
    return str(folder)


def write_solver(folder, batch, data):
    """The shipped CIFAR-10 quick net and solver (no test pass, no snapshot) reading `data`
    with batch `batch`; returns the solver path."""
    text = NET.read_text().replace('"data/cifar10/cifar-10-batches-bin/test_batch.bin"',
                                   f'"{data}/data_batch_1.bin"')
    text = text.replace('"data/cifar10/cifar-10-batches-bin"', f'"{data}/data_batch_1.bin"')
    text = text.replace("batch_size: 100", f"batch_size: {batch}")
    net = Path(folder, f"cifar10_quick_b{batch}.prototxt")
    net.write_text(text)
    solver = Path(folder, f"solver_b{batch}.prototxt")
    solver.write_text(f'net: "{net}"\nbase_lr: 0.001 momentum: 0.9 weight_decay: 0.004\n'
                      'lr_policy: "fixed" max_iter: 1000000 display: 0 random_seed: 1\n'
                      f'snapshot_prefix: "{folder}/cifar10_quick" snapshot_after_train: false\n'
                      "solver_mode: CPU\n")
    return str(solver)


def worker(solver_path, warmup, iters, out, overlap):
    """Train and time; rank 0 (or the one process) writes {images_per_s, seconds, ...} to out."""
    from minicaffe import ops
    from minicaffe.parallel import launch_size

    launched = launch_size()
    if launched is not None and launched[0] > 1:
        from minicaffe import parallel

        solver = parallel.get_solver(solver_path, overlap=overlap, threads=1)
    else:
        from minicaffe.solver import get_solver

        ops.set_num_threads(1)
        solver = get_solver(solver_path)
    replicas = solver.replicas
    batch = solver.net.blobs["data"].shape[0]
    solver.step(warmup)
    stats = getattr(replicas, "stats", None)
    wait0 = stats["gradient_wait_s"] if stats else 0.0
    t0 = time.perf_counter()
    solver.step(iters)
    seconds = time.perf_counter() - t0
    wait = (stats["gradient_wait_s"] - wait0) if stats else 0.0
    waits = [wait]
    allreduce_s = 0.0
    if replicas.size > 1:
        waits = replicas.comm.allgather_object(wait)
        allreduce_s = _allreduce_seconds(replicas.comm, stats["bytes_per_iteration"])
    if replicas.is_root:
        result = {"ranks": replicas.size, "batch_per_rank": batch, "iterations": iters,
                  "seconds": seconds, "images_per_s": replicas.size * batch * iters / seconds,
                  "comm_share": statistics.mean(waits) / seconds,
                  "allreduce_share": allreduce_s * iters / seconds,
                  "gradient_bytes": stats["bytes_per_iteration"] if stats else 0,
                  "buckets": len(stats["buckets"]) if stats else 0, "overlap": overlap,
                  "threads": ops.get_num_threads()}
        Path(out).write_text(json.dumps(result))
    for layer in solver.net.layers:
        if hasattr(layer, "close"):
            layer.close()


def _allreduce_seconds(comm, nbytes, repeats=20):
    """Median seconds of one allreduce of the gradients' size, the ranks lined up by a barrier
    first: the communication alone, without the waiting for a slower rank."""
    buffer = np.ones(max(nbytes // 4, 1), dtype=np.float32)
    times = []
    for _ in range(repeats):
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce_inplace(buffer)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(ranks, solver, warmup, iters, folder, overlap=True, timeout=600):
    """One timed run (ranks == 1: one process without MPI); returns the worker's result."""
    import subprocess

    from minicaffe.testing import mpi

    out = Path(folder, f"result_{ranks}_{int(overlap)}.json")
    args = [__file__, "worker", solver, str(warmup), str(iters), str(out)]
    if not overlap:
        args.append("--no-overlap")
    env = mpi.environment(ROOT, threads=1)
    cmd = mpi.command(ranks, args) if ranks > 1 else [sys.executable] + args
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_independent(ranks, solver, warmup, iters, folder, timeout=600):
    """`ranks` one-process runs at once, no MPI: what the machine itself gives P processes of
    one thread (shared caches, memory bandwidth, clock), the ceiling of a P-rank run here.
    Returns {"images_per_s": the sum, "seconds": the longest}."""
    import subprocess

    from minicaffe.testing import mpi

    env = mpi.environment(ROOT, threads=1)
    outs = [Path(folder, f"independent_{k}.json") for k in range(ranks)]
    procs = [subprocess.Popen([sys.executable, __file__, "worker", solver, str(warmup), str(iters),
                               str(out)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for out in outs]
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"independent run: exit {proc.returncode}\n{err[-3000:]}")
    results = [json.loads(out.read_text()) for out in outs]
    return {"images_per_s": sum(r["images_per_s"] for r in results),
            "seconds": max(r["seconds"] for r in results)}


def measure(ranks=2, batch=100, iters=20, warmup=3, rounds=3, log=None):
    """Interleaved rounds of one / P (overlap) / P (no overlap); returns the summary dict:
    images/s medians, `scaling` (P-rank / one-process images/s, each round's ratio's median),
    comm shares, gradient bytes per iteration."""
    with tempfile.TemporaryDirectory() as folder:
        data = write_data(folder, max(ranks * batch * (warmup + iters), 1000))
        solver = write_solver(folder, batch, data)
        runs = {"one": [], "p": [], "p_no_overlap": [], "independent": []}
        for r in range(rounds):
            runs["one"].append(run(1, solver, warmup, iters, folder))
            runs["independent"].append(run_independent(ranks, solver, warmup, iters, folder))
            runs["p"].append(run(ranks, solver, warmup, iters, folder))
            runs["p_no_overlap"].append(run(ranks, solver, warmup, iters, folder, overlap=False))
            if log:
                log(f"round {r + 1}/{rounds}: " + ", ".join(
                    f"{k} {v[-1]['images_per_s']:.1f} img/s" for k, v in runs.items()))
    med = {k: statistics.median(x["images_per_s"] for x in v) for k, v in runs.items()}
    ratios = [p["images_per_s"] / o["images_per_s"] for p, o in zip(runs["p"], runs["one"])]
    ratios_no = [p["images_per_s"] / o["images_per_s"]
                 for p, o in zip(runs["p_no_overlap"], runs["one"])]
    ceiling = [p["images_per_s"] / o["images_per_s"]
               for p, o in zip(runs["independent"], runs["one"])]
    return {"ranks": ranks, "batch_per_rank": batch, "iterations": iters, "rounds": rounds,
            "threads_per_rank": 1, "images_per_s": med,
            "scaling": statistics.median(ratios), "scaling_rounds": ratios,
            "scaling_no_overlap": statistics.median(ratios_no),
            "scaling_independent": statistics.median(ceiling),
            "comm_share": statistics.median(x["comm_share"] for x in runs["p"]),
            "comm_share_no_overlap": statistics.median(x["comm_share"]
                                                       for x in runs["p_no_overlap"]),
            "allreduce_share": statistics.median(x["allreduce_share"] for x in runs["p"]),
            "gradient_bytes": runs["p"][0]["gradient_bytes"],
            "buckets": runs["p"][0]["buckets"], "runs": runs}


def table(s):
    """The summary as a Markdown table."""
    p = s["ranks"]
    rows = [("1 process, 1 thread", s["images_per_s"]["one"], 1.0, "-"),
            (f"{p} ranks x 1 thread, overlap", s["images_per_s"]["p"], s["scaling"],
             f"{100 * s['comm_share']:.1f}%"),
            (f"{p} ranks x 1 thread, no overlap", s["images_per_s"]["p_no_overlap"],
             s["scaling_no_overlap"], f"{100 * s['comm_share_no_overlap']:.1f}%"),
            (f"{p} independent processes x 1 thread (no MPI: this machine's ceiling)",
             s["images_per_s"]["independent"], s["scaling_independent"], "-")]
    lines = [f"CIFAR-10 quick, batch {s['batch_per_rank']} per rank (generated data), "
             f"{s['iterations']} iterations, median of {s['rounds']} interleaved rounds; "
             f"{s['gradient_bytes'] / 1e6:.3f} MB of gradients per iteration in "
             f"{s['buckets']} bucket(s); the allreduce alone (ranks lined up by a barrier) "
             f"takes {100 * s['allreduce_share']:.2f}% of an iteration, the rest of the wait "
             "is one rank waiting for the other", "",
             "| run | images/s | vs 1 process | allreduce wait / iteration |",
             "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b:.1f} | {c:.2f}x | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "worker":
        w = argparse.ArgumentParser()
        w.add_argument("solver")
        w.add_argument("warmup", type=int)
        w.add_argument("iters", type=int)
        w.add_argument("out")
        w.add_argument("--no-overlap", action="store_true")
        a = w.parse_args(argv[1:])
        worker(a.solver, a.warmup, a.iters, a.out, not a.no_overlap)
        return 0
    ap = argparse.ArgumentParser(prog="python bench/parallel_scaling.py",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the summary here too")
    a = ap.parse_args(argv)
    s = measure(a.ranks, a.batch, a.iters, a.warmup, a.rounds,
                log=lambda m: print(m, file=sys.stderr))
    if a.json:
        Path(a.json).write_text(json.dumps(s, indent=1))
    print(table(s))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
