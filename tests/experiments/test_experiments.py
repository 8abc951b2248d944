"""`python -m minicaffe.experiments NAME --quick` and `python -m minicaffe.sweep`, end to end on
tiny generated data with schedules of a few iterations: every experiment writes its Markdown
table, JSON and figures, and its numbers hang together."""
import json
import os

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("minicaffe.compact")

from minicaffe import sweep                                      # noqa: E402
from minicaffe.experiments import __main__ as cli                # noqa: E402
from minicaffe.experiments import lenet, lenet_tradeoff          # noqa: E402

TINY = {"baseline": 30, "ssl": 20, "finetune": 10, "test_iter": 2, "rounds": 2}


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def tiny_schedules(monkeypatch):
    monkeypatch.setattr(lenet, "QUICK", dict(TINY))


def test_lenet_pipeline_writes_the_closing_table(tiny_data, tmp_path, tiny_schedules, capsys):
    out = tmp_path / "lenet"
    rc = cli.main(["lenet", "--quick", "--reference", "--out", str(out), "--data", tiny_data])
    assert rc == 0
    printed = capsys.readouterr()
    assert "| LeNet 1 (baseline) |" in printed.out and "LeNet 2 (SSL filters + channels)" in printed.out
    assert "[1/2] baseline: dense LeNet" in printed.err and "total ETA" in printed.err
    res = json.load(open(out / "lenet.json"))
    keys = [r["key"] for r in res["table"]]
    assert keys == ["baseline", "reference", "fc", "shape"]
    base, ref, fc, shape = res["table"]
    assert base["conv_flops_pct"] == 100.0 and base["filters"] == [20, 50]
    assert ref["iterations"] == fc["iterations"] == sum(TINY[k] for k in ("baseline", "ssl", "finetune"))
    for r in (fc, shape):
        assert 0 < r["conv_flops_pct"] <= 100.0
        assert set(r["speedup"]) == {"1", "64"}
        assert all(v is None or v > 0 for v in r["speedup"]["1"].values())
    # the fine-tuned net is the compacted one: its weights have the compacted shapes
    from minicaffe import weights as weights_io
    layers = {n: a for n, _, a in weights_io.load(res["fc"]["weights"])}
    assert layers["conv1"][0].shape[0] == fc["filters"][0]
    for name in ("lenet_conv1_filters.png", "lenet_curves_fc.png", "lenet_curves_shape.png",
                 "lenet_tradeoff.png"):
        assert is_png(out / name), name
    md = (out / "lenet.md").read_text()
    assert "Data: Fashion-MNIST (256 training, 200 test images" in md and "Machine:" in md
    assert "--quick" in md
    for stage in ("baseline", "ssl-fc", "finetune-fc", "ssl-shape", "finetune-shape"):
        assert (out / "runs" / f"{stage}_summary.json").exists(), stage


def test_lenet_without_reference_says_so(tiny_data, tmp_path, tiny_schedules):
    out = tmp_path / "lenet"
    assert cli.main(["lenet", "--quick", "--out", str(out), "--data", tiny_data]) == 0
    res = json.load(open(out / "lenet.json"))
    assert [r["key"] for r in res["table"]] == ["baseline", "fc", "shape"]
    assert "No dense reference trained as long" in (out / "lenet.md").read_text()


def test_reference_is_an_option_of_lenet_only(capsys):
    assert cli.main(["mlp", "--quick", "--reference"]) == 2
    assert "--reference is an option of lenet only" in capsys.readouterr().err


def test_scales_are_checked(capsys):
    assert cli.main(["lenet", "--quick", "--scales", "0.5,2"]) == 2
    assert "--scales is an option of lenet-tradeoff only" in capsys.readouterr().err
    assert cli.main(["lenet-tradeoff", "--quick", "--scales", "0.5,x"]) == 2
    assert "expected comma-separated numbers" in capsys.readouterr().err


def test_lenet_budget_option_runs_the_fc_chain_without_lambdas(tiny_data, tmp_path,
                                                               tiny_schedules, capsys):
    out = tmp_path / "lenet"
    rc = cli.main(["lenet", "--quick", "--out", str(out), "--data", tiny_data,
                   "--flops-target", "0.5"])
    assert rc == 0
    assert "LeNet 2 (SSL filters + channels, budget 50% conv FLOPs, no lambdas)" in \
        capsys.readouterr().out
    res = json.load(open(out / "lenet.json"))
    assert res["flops_target"] == 0.5 and "flops_target 0.5 of CONV FLOPs" in res["schedule"]
    # the update the budget run used, not the field's default
    fc_schedule = res["schedule"].split("SSL filters+channels:")[1].split("; SSL shapes")[0]
    assert "group_lasso_update PROXIMAL" in fc_schedule, fc_schedule
    summary = json.load(open(out / "runs" / "ssl-fc_summary.json"))["budget"]
    assert summary["target"] == 0.5 and summary["phase"] == "finetune"
    fc = next(r for r in res["table"] if r["key"] == "fc")
    # what compaction left is what the controller counted when it froze the structure
    assert fc["conv_flops_pct"] == pytest.approx(100 * summary["final_share"])
    assert cli.main(["mlp", "--flops-target", "0.5"]) == 2
    assert cli.main(["lenet", "--flops-target", "1.5"]) == 2


def test_sweep_cli_collects_error_and_flops(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import datasets, pipeline
    from minicaffe.prototxt import to_text
    ds = datasets.mnist_like(tiny_data)
    short = {"max_iter": 10, "test_iter": [2], "test_interval": 10}
    files = {}
    for key in ("lenet_ssl_solver", "lenet_finetune_solver", "lenet_solver"):
        p = pipeline.solver_param(f"prototxt/lenet/{key}.prototxt", short, dataset=ds)
        files[key] = tmp_path / f"{key}.prototxt"
        files[key].write_text(to_text(p))
    base = pipeline.train_stage("base", pipeline.solver_param(str(files["lenet_solver"])),
                                tmp_path / "base", None)
    out = tmp_path / "sweep"
    rc = sweep.main(["--solver", str(files["lenet_ssl_solver"]), "--set",
                     "breadth_decay=0.5,5", "--set", "block_group_decay=1", "--weights",
                     base.weights, "--finetune", str(files["lenet_finetune_solver"]),
                     "--jobs", "2", "--out", str(out)])
    assert rc == 0
    res = json.load(open(out / "sweep.json"))
    assert [p["overrides"] for p in res["points"]] == [
        {"breadth_decay": "0.5", "block_group_decay": "1"},
        {"breadth_decay": "5", "block_group_decay": "1"}]
    weak, strong = res["points"]
    assert strong["conv_flops"][1] <= weak["conv_flops"][1] <= weak["conv_flops"][0]
    assert res["baseline"]["error"] == pytest.approx(base.error, abs=1e-6)
    assert all("finetune_error" in p for p in res["points"])
    assert is_png(out / "tradeoff.png")
    assert "| breadth_decay | block_group_decay | error after SSL |" in (out / "sweep.md").read_text()
    assert os.path.exists(out / "00_breadth_decay=0.5_block_group_decay=1" / "point.json")
    # the same sweep again: every point is reused from its point.json, none is retrained
    monkeypatch.setattr(pipeline, "ssl_chain", lambda spec: pytest.fail("retrained a point"))
    args = ["--solver", str(files["lenet_ssl_solver"]), "--set", "breadth_decay=0.5,5", "--set",
            "block_group_decay=1", "--weights", base.weights, "--finetune",
            str(files["lenet_finetune_solver"]), "--jobs", "1", "--out", str(out)]
    assert sweep.main(args) == 0
    again = json.load(open(out / "sweep.json"))
    assert all(p["reused"] for p in again["points"])
    assert [p["error"] for p in again["points"]] == [p["error"] for p in res["points"]]
    # another starting point is not the same run: that point is trained again
    other = tmp_path / "other.caffemodel"
    other.write_bytes(open(base.weights, "rb").read())
    spec = {"out": str(out / "00_breadth_decay=0.5_block_group_decay=1"),
            "overrides": {"breadth_decay": "0.5", "block_group_decay": "1"},
            "solver": os.path.abspath(files["lenet_ssl_solver"]), "weights": str(other),
            "finetune": os.path.abspath(files["lenet_finetune_solver"])}
    assert sweep.finished_point(spec) is None
    spec["weights"] = os.path.abspath(base.weights)
    assert sweep.finished_point(spec)["error"] == res["points"][0]["error"]


def test_tradeoff_quick(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(lenet_tradeoff, "QUICK", {"baseline": 20, "ssl": 10, "finetune": 5,
                                                  "test_iter": 2, "scales": [9.0]})
    rc = cli.main(["lenet-tradeoff", "--quick", "--out", str(tmp_path / "t"), "--data",
                   tiny_data, "--jobs", "1", "--scales", "0.5,3"])
    assert rc == 0
    res = json.load(open(tmp_path / "t" / "lenet-tradeoff.json"))
    assert [p["scale"] for p in res["points"]] == [0.5, 3.0]
    assert res["marks"][0][0] == "LeNet 1 (baseline)"
    assert is_png(tmp_path / "t" / "lenet_tradeoff.png")


def test_alexnet_speed_quick(tmp_path):
    from minicaffe.experiments import alexnet_speed
    res = alexnet_speed.run(out_dir=str(tmp_path / "a"), quick=True, threads=1,
                            layers=["conv3"], log=lambda *a, **k: None)
    rows = {(r["net"], r["method"]): r for r in res["table"]}
    ssl = rows[("AlexNet 2 (SSL)", "SSL compacted GEMM")]
    assert ssl["paper"] == [1.05, 3.37, 6.27, 9.73, 4.93]
    assert ssl["measured"][2] > 0 and ssl["measured"][0] is None
    assert is_png(tmp_path / "a" / "alexnet_speedups.png")
    assert "AlexNet 1 (L1)" in (tmp_path / "a" / "alexnet-speed.md").read_text()


def test_mlp_quick(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import mlp
    monkeypatch.setattr(mlp, "QUICK", {"baseline": 20, "ssl": 10, "finetune": 5})
    monkeypatch.setattr(mlp, "STRENGTHS", {"MLP 2": 0.5, "MLP 3": 5.0})
    res = mlp.run(out_dir=str(tmp_path / "m"), data_root=tiny_data, quick=True, jobs_n=1,
                  log=lambda *a, **k: None)
    base, weak, strong = res["rows"]
    assert base["neurons"] == [300, 100, 10] and base["pixels"] == 784
    assert strong["neurons"][0] <= weak["neurons"][0] <= 300
    assert strong["pixels"] <= weak["pixels"] <= 784
    assert is_png(tmp_path / "m" / "mlp_neurons_pixels.png")
    assert "input pixels—hidden 1—hidden 2—output" in (tmp_path / "m" / "mlp.md").read_text()


def test_convnet_quick_on_the_padded_stand_in(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import convnet
    monkeypatch.setattr(convnet, "QUICK", {"baseline": 4, "ssl": 3, "finetune": 2,
                                           "test_iter": 2})
    monkeypatch.setattr(convnet, "STRENGTHS", {"ConvNet 2": (2.0, 2.0), "ConvNet 3": (0.5, 0.5)})
    res = convnet.run(out_dir=str(tmp_path / "c"), data_root=tiny_data, quick=True, jobs_n=1,
                      batches=(1,), log=lambda *a, **k: None, steer="lambda")
    assert res["dataset"]["name"] == "fashion-mnist-32"
    assert [r["net"] for r in res["rows"]] == ["ConvNet 1 (baseline)", "ConvNet 2", "ConvNet 3"]
    assert all(0 <= s <= 1 for r in res["rows"] for s in r["row_sparsity"] + r["column_sparsity"])
    md = (tmp_path / "c" / "convnet.md").read_text()
    assert "stand-in for CIFAR-10" in md and "17.9%" in md
    assert is_png(tmp_path / "c" / "convnet_speedups.png")


def test_convnet_quick_steers_to_the_papers_flops(tiny_data, tmp_path, monkeypatch):
    """The default run asks the budget controller for the conv FLOPs the paper's ConvNet 2
    and 3 keep (no lambda): each compacted net lands near its budget."""
    from minicaffe.experiments import convnet
    monkeypatch.setattr(convnet, "QUICK", {"baseline": 2, "ssl": 8, "finetune": 1,
                                           "test_iter": 1})
    res = convnet.run(out_dir=str(tmp_path / "c"), data_root=tiny_data, quick=True, jobs_n=1,
                      batches=(1,), rounds=1, log=lambda *a, **k: None)
    assert res["steer"] == "budget"
    assert [r["net"] for r in res["rows"]] == ["ConvNet 1 (baseline)",
                                               "ConvNet 2 (budget 42.6%)",
                                               "ConvNet 3 (budget 67.9%)"]
    for r, target in zip(res["rows"][1:], (42.6, 67.9)):
        assert r["flops_target"] == pytest.approx(target / 100)
        # the controller's count lands on the budget; compaction never keeps more (with 8
        # iterations it may fold far more: a conv1 emptied at the freeze makes the rest constant)
        assert abs(100 * r["budget"]["final_share"] - target) < 5
        assert r["flops_pct"] <= 100 * r["budget"]["final_share"] + 1e-6
    assert "steered to the conv FLOPs" in (tmp_path / "c" / "convnet.md").read_text()
    with pytest.raises(ValueError, match="steer must be"):
        convnet.run(out_dir=str(tmp_path / "d"), data_root=tiny_data, quick=True, steer="x")


def test_resnet_depth_quick(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import resnet_depth
    monkeypatch.setattr(resnet_depth, "QUICK", {"baseline": 1, "ssl": 1, "finetune": 1,
                                                "test_iter": 1, "batch": 2})
    monkeypatch.setattr(resnet_depth, "STRENGTHS", [1e4])
    res = resnet_depth.run(out_dir=str(tmp_path / "r"), data_root=tiny_data, quick=True,
                           jobs_n=1, log=lambda *a, **k: None)
    (p,) = res["points"]
    # a strength this large empties every residual convolution: conv1 and fc are left
    assert p["layers"] == 2 and len(p["removed"]) == 18
    assert is_png(tmp_path / "r" / "resnet_depth.png")


def test_depth_groups_cover_whole_residual_convolutions(tiny_data):
    from minicaffe.experiments import datasets, resnet_depth
    net = resnet_depth.depth_net("prototxt/resnet20/resnet20_train_test.prototxt",
                                 datasets.cifar_like(tiny_data))
    blocks = {lp.name: (lp.param[0].block_group_lasso[0].xdimen,
                        lp.param[0].block_group_lasso[0].ydimen)
              for lp in net.layer if lp.type == "Convolution" and lp.param[0].block_group_lasso}
    assert len(blocks) == 18 and "conv1" not in blocks and "res2_1_proj" not in blocks
    assert blocks["res1_1_a"] == (16 * 9, 16) and blocks["res2_1_a"] == (16 * 9, 32)
    assert blocks["res3_3_b"] == (64 * 9, 64)


def test_l1_vs_ssl_quick(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import l1_vs_ssl
    monkeypatch.setattr(l1_vs_ssl, "QUICK", {"baseline": 20, "ssl": 10, "finetune": 5,
                                             "test_iter": 2})
    monkeypatch.setattr(l1_vs_ssl, "STRENGTHS", [0.05])
    res = l1_vs_ssl.run(out_dir=str(tmp_path / "l"), data_root=tiny_data, quick=True, jobs_n=1,
                        batches=(1,), log=lambda *a, **k: None)
    ssl, l1 = res["rows"]
    assert ssl["method"] == "SSL, compacted GEMM" and l1["method"] == "L1, CSR x dense"
    assert all(0 <= s <= 1 for s in l1["sparsity"])
    assert is_png(tmp_path / "l" / "l1_vs_ssl.png")


def test_full_lenet_result_is_reused_only_from_a_full_run_on_the_same_data(tiny_data, tmp_path):
    from minicaffe.experiments import datasets, pipeline
    ds = datasets.mnist_like(tiny_data)
    weights = tmp_path / "lenet_iter_10000.caffemodel"
    weights.write_bytes(b"")
    path = tmp_path / "lenet.json"
    res = {"dataset": {"name": ds.name}, "quick": False, "baseline": {"weights": str(weights)}}
    path.write_text(json.dumps(res))
    assert pipeline.full_lenet_result(str(path), ds)["baseline"]["weights"] == str(weights)
    for change in ({"quick": True}, {"dataset": {"name": "mnist"}},
                   {"baseline": {"weights": str(tmp_path / "gone.caffemodel")}}):
        path.write_text(json.dumps(dict(res, **change)))
        assert pipeline.full_lenet_result(str(path), ds) is None, change
    assert pipeline.full_lenet_result(str(tmp_path / "missing.json"), ds) is None


def test_scaled_schedule_keeps_the_shape_of_a_schedule():
    from minicaffe.experiments import convnet, resnet_depth, runner
    assert runner.scaled_schedule(resnet_depth.BASELINE, 0.4) == {
        "max_iter": 800, "test_interval": 400, "stepvalue": [600]}
    assert runner.scaled_schedule({"max_iter": 3, "base_lr": 0.1}, 0.01) == {"max_iter": 1}
    assert runner.scaled_schedule(convnet.SSL, 1.0)["max_iter"] == convnet.SSL["max_iter"]


def test_schedule_option_is_checked(capsys):
    assert cli.main(["lenet", "--quick", "--schedule", "0.5"]) == 2
    assert "--schedule is an option of convnet, resnet-depth and budget only" in \
        capsys.readouterr().err
    assert cli.main(["convnet", "--quick", "--schedule", "0"]) == 2
    assert "expected a factor in (0, 10]" in capsys.readouterr().err


def test_tradeoff_table_names_the_lenet_runs_own_points():
    res = {"dataset": {"description": "Fashion-MNIST"}, "schedule": "s", "machine": {
        "cpu": "x", "logical_cpus": 2, "threads": 1, "load_average_1min": 1.0, "blas": "b",
        "isa": "avx2", "python": "3", "date": "d"}, "seconds": 1.0, "quick": False,
        "marks": [("LeNet 1 (baseline)", 100.0, 10.27)], "points": [],
        "main_job": [{"net": "LeNet 2 (SSL filters + channels)", "conv_flops_pct": 20.0,
                      "error": 0.093, "ssl_error": 0.11, "iterations": 23000}]}
    md = lenet_tradeoff.format_markdown(res)
    assert "LeNet 2 (SSL filters + channels): 9.30% at 20.0% conv FLOPs, 23000 iterations" in md
    assert "- LeNet 1 (baseline): 10.27% at 100% FLOPs" in md


def test_budget_quick_steers_both_nets_without_lambdas(tiny_data, tmp_path, monkeypatch):
    from minicaffe.experiments import budget
    monkeypatch.setattr(budget, "QUICK", {"baseline": 2, "ssl": 6, "finetune": 1,
                                          "test_iter": 1, "batch": 2})
    monkeypatch.setattr(budget, "SEEDS", (1, 2))
    res = budget.run(out_dir=str(tmp_path / "b"), data_root=tiny_data, quick=True, jobs_n=1,
                     log=lambda *a, **k: None)
    assert res["dataset"]["name"] == "fashion-mnist-32"
    assert [n["net"] for n in res["nets"]] == ["cifar10-quick", "resnet20"]
    for n in res["nets"]:
        assert [r["seed"] for r in n["runs"]] == [1, 2]
        for r in n["runs"]:
            b = r["budget"]
            assert b is not None and b["target_share"] == 0.5 and b["kind"] == "flops"
            # the controller never counts less than compaction leaves (docs/SSL.md, "What is
            # counted"); compaction may remove a little more (constant outputs folded)
            assert 100 * b["final_share"] >= r["conv_flops_pct"] - 1e-6
            assert 100 * b["final_share"] - r["conv_flops_pct"] < 5
            assert r["gap_pp"] == pytest.approx(r["conv_flops_pct"] - 50)
        assert n["schedule"]["ssl"]["max_iter"] == 6
    md = (tmp_path / "b" / "budget.md").read_text()
    assert "| CIFAR-10 quick | seed 1 |" in md and "| ResNet-20 | seed 2 |" in md
    assert "Runs within 2 points of the budget:" in md


def test_budget_seeds_change_the_data_order(tiny_data):
    from minicaffe.experiments import budget, datasets
    ds = datasets.cifar_like(tiny_data)
    nets = [budget.seeded_net("prototxt/cifar10/cifar10_quick_train_test.prototxt", ds, s, 16)
            for s in (0, 1)]
    train = [[lp for lp in n.layer if lp.type == "Data"
              and {r.phase for r in lp.include} == {"TRAIN"}][0] for n in nets]
    assert train[0].data_param.rand_skip == 0
    assert train[1].data_param.rand_skip == budget.RAND_SKIP
    assert train[1].data_param.batch_size == 16


def test_resnet_depth_states_the_batch_it_trains_with():
    """A scaled schedule (--schedule 0.4) trains at batch 32; the table said 8 (the --quick
    batch) whenever the schedule was not the default."""
    from minicaffe.experiments import resnet_depth, runner
    q = {k: runner.scaled_schedule(v, 0.4) for k, v in (("baseline", resnet_depth.BASELINE),
                                                        ("ssl", resnet_depth.SSL))}
    assert "training batch 32." in resnet_depth._schedule(q, resnet_depth.BATCH)
