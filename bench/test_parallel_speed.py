"""Weak scaling of data-parallel training (issue target: 2 ranks of one thread at least 1.8x
the images/s of one process of one thread, CIFAR-10 quick net; generated data) and the
communication share of an iteration. bench/parallel_scaling.py does the work; see its doc.

    pytest bench/test_parallel_speed.py            # 3 interleaved rounds, batch 100, 20 iterations
    python bench/parallel_scaling.py --rounds 5    # the same as a table

Under --benchmark-disable (CI's smoke run) one round of 2 tiny iterations checks that the
runs work and report sane figures.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import parallel_scaling  # noqa: E402

from minicaffe.testing import mpi  # noqa: E402


def test_weak_scaling_cifar10_quick(benchmark):
    reason = mpi.missing()
    if reason:
        pytest.skip(reason)
    if benchmark.disabled:                 # --benchmark-disable: run once, check, time nothing
        s = parallel_scaling.measure(ranks=2, batch=10, iters=2, warmup=1, rounds=1)
    else:
        s = benchmark.pedantic(parallel_scaling.measure, kwargs={"log": print},
                               rounds=1, iterations=1)
        benchmark.extra_info.update({k: v for k, v in s.items() if k != "runs"})
        print("\n" + parallel_scaling.table(s))
    assert s["gradient_bytes"] == 4 * 145578            # CIFAR-10 quick's learnable floats
    assert all(v > 0 for v in s["images_per_s"].values())
    assert 0 <= s["comm_share"] < 1 and 0 <= s["comm_share_no_overlap"] < 1
    assert s["scaling_independent"] > 0 and s["images_per_s"]["independent"] > 0
    assert 0 < s["allreduce_share"] < 1
