"""`python -m minicaffe.bench gemm`: its engines compute the right products, its timing loop
alternates engines as documented, and the command writes the JSON rows the docs quote."""
import json

import numpy as np
import pytest

from minicaffe import bench, ops

TINY = bench.ConvLayer("tiny", 4, 7, 3, 1, 1, 8, 0.25, 0.5, 0.6)  # M=8 K=36 N=49


def test_ssl_weights_remove_whole_rows_and_columns(rng):
    w = bench.ssl_weights(TINY, rng)
    assert (~w.any(axis=1)).sum() == 2 and (~w.any(axis=0)).sum() == 18
    compact = ops.CompactWeights(w)
    assert compact.ideal_speedup == pytest.approx(8 * 36 / (6 * 18))


def test_l1_weights_zero_the_requested_fraction(rng):
    w = bench.l1_weights(TINY, rng)
    assert (w == 0).sum() == round(0.6 * w.size)


@pytest.mark.parametrize("batch", [1, 3])
def test_every_engine_computes_its_product(batch, rng):
    """Each engine's check reads that engine's own output: it fails before the engine runs
    (even after every other engine ran) and passes after, whatever ran in between."""
    torch = bench._torch()
    engines, ideal = bench.layer_engines(TINY, batch, rng, torch)
    assert {"dense", "compact", "dense-gemm", "compact-gemm", "csr-ours", "csr-scipy"} <= set(
        engines)
    assert not ops.native.available() or {"sgemm-ours", "sgemm-blas"} <= set(engines)
    assert torch is None or {"torch-conv2d", "csr-torch"} <= set(engines)
    for fn, check in engines.values():
        with pytest.raises(AssertionError):
            check()                        # this engine has not run: nothing to pass on
        fn()
        check()  # raises when this engine's result differs from the NumPy reference
    for _fn, check in engines.values():
        check()                            # no engine overwrote another's result
    assert ideal["compact"] == pytest.approx(8 * 36 / (6 * 18))


@pytest.mark.parametrize("idle", ["dense", "compact", "dense-gemm", "compact-gemm", "csr-ours",
                                  "csr-scipy"]
                         + (["sgemm-ours", "sgemm-blas"] if ops.native.available() else []))
def test_an_engine_that_does_nothing_fails_its_check(idle):
    """Every other engine computed its (partly identical) product; the idle one still fails."""
    engines, _ = bench.layer_engines(TINY, 1, np.random.default_rng(7), bench._torch())
    for name, (fn, _check) in engines.items():
        if name != idle:
            fn()
    with pytest.raises(AssertionError):
        engines[idle][1]()


def test_check_fails_on_a_wrong_result(rng):
    engines, _ = bench.layer_engines(TINY, 1, rng)
    engines["dense"][0]()
    with pytest.raises(AssertionError):
        engines["compact"][1]()  # the dense result is not the compacted weights' product


class FakeClock:
    """Each engine call advances time by that engine's cost; the timer reads it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_interleaved_alternates_engines_and_takes_medians():
    clock, calls = FakeClock(), []

    def engine(name, cost):
        def fn():
            calls.append(name)
            clock.now += cost
        return fn, lambda: None

    medians = bench.time_interleaved({"a": engine("a", 2.0), "b": engine("b", 0.5)},
                                     min_rounds=3, max_rounds=3, budget_s=0.0, clock=clock,
                                     burst=2)
    assert medians == {"a": 2.0, "b": 0.5}
    # one checked call each, then per round: one untimed call and a burst of two, a then b
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + \
        ["b"] * 3


@pytest.fixture
def restore_threads():
    """The command sets minicaffe's (and torch's) thread count; later tests keep theirs."""
    torch = bench._torch()
    before = ops.get_num_threads(), torch.get_num_threads() if torch else None
    yield
    ops.set_num_threads(before[0])
    if torch:
        torch.set_num_threads(before[1])


def test_command_writes_the_documented_rows(tmp_path, capsys, restore_threads):
    out = tmp_path / "gemm.json"
    assert bench.main(["gemm", "--quick", "--batch", "1", "--layer", "conv4",
                       "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conv4" in printed and "compact forward / dense forward" in printed
    assert "mean conv4; target >= 95%" in printed
    assert ", 1 thread(s); BLAS:" in printed          # the run's count, not the default
    doc = json.loads(out.read_text())
    assert doc["build_info"]["threads"] == 1
    rows = doc["rows"]
    assert rows[0]["layer"] == "sgemm1024" and rows[0]["gflops"] > 0
    by_engine = {r["engine"]: r for r in rows if r["layer"] == "conv4"}
    assert {"dense", "compact", "csr-ours", "csr-scipy"} <= set(by_engine)
    for r in rows:
        assert set(r) >= {"layer", "engine", "threads", "batch", "seconds", "speedup_vs_dense",
                          "ideal_speedup"}
        assert r["threads"] == 1 and r["batch"] == 1 and r["seconds"] > 0
    assert by_engine["dense"]["speedup_vs_dense"] == 1.0
    conv4 = bench.ALEXNET[3]
    kept = round((1 - conv4.row_sparsity) * conv4.M), conv4.geom.rows - round(
        conv4.col_sparsity * conv4.geom.rows)
    assert by_engine["compact"]["ideal_speedup"] == pytest.approx(
        conv4.M * conv4.geom.rows / (kept[0] * kept[1]))
    compact = by_engine["compact"]
    assert compact["speedup_vs_dense"] == pytest.approx(
        by_engine["dense"]["seconds"] / compact["seconds"])


@pytest.mark.parametrize("argv,message", [
    (["gemm", "--threads", "0"], "--threads 0: expected >= 1"),
    (["gemm", "--threads", "2", "--clock", "cpu"], "use it with --threads 1"),
    (["gemm", "--layer", "conv9"], "invalid choice: 'conv9'"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
