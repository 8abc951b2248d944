"""`l1-vs-ssl`: the SSL paper's central comparison on LeNet: a non-structured sparse net (L1
weight decay, run as CSR x dense) against a structured one (SSL, compacted) at about equal
error, their speedups side by side.

    dense baseline (lenet_solver.prototxt)
      -> L1: `regularization_type: "L1"` from the baseline's weights at two strengths, then
         fine-tuned with every zero weight frozen (`connectivity_mode: DISCONNECTED_ELTWISE`,
         as the paper fine-tunes its L1 nets), inference with `conv_mode: LOWERED_CSRMM`
      -> SSL: lenet_ssl_solver.prototxt -> compact -> fine-tune (the lenet experiment's chain)
    Speedups: forward time of the dense LeNet over the sparse one, per conv layer and whole,
    interleaved in one process, batch 1 and 64, 1 thread.
"""
import os
import time

from minicaffe.experiments import common, datasets, jobs, pipeline, runner
from minicaffe.prototxt import read_net

FILES = {"baseline": "prototxt/lenet/lenet_solver.prototxt",
         "ssl": "prototxt/lenet/lenet_ssl_solver.prototxt",
         "finetune": "prototxt/lenet/lenet_finetune_solver.prototxt",
         "net": "prototxt/lenet/lenet_train_test.prototxt",
         "deploy": "prototxt/lenet/lenet_deploy.prototxt"}
CONV = ("conv1", "conv2")
L1 = {"regularization_type": "L1", "lr_policy": "fixed", "base_lr": 0.005, "max_iter": 8000,
      "zero_threshold": 0.0001, "test_interval": 2000}
STRENGTHS = [0.0003, 0.001]          # weight_decay under regularization_type L1
L1_FINETUNE = {"max_iter": 3000}     # lenet_finetune_solver's schedule, ELTWISE-frozen net
QUICK = {"baseline": 200, "ssl": 100, "finetune": 50, "test_iter": 5}


def eltwise_net(net_path, dataset):
    """lenet_train_test with every zero weight of conv1, conv2 and ip1 frozen."""
    net = datasets.retarget(read_net(net_path), dataset)
    for lp in net.layer:
        if lp.name in ("conv1", "conv2", "ip1"):
            lp.connectivity_mode = "DISCONNECTED_ELTWISE"
    return net


def _chain(spec):
    return pipeline.ssl_chain(spec) if spec.get("kind") == "ssl" else pipeline.dense_chain(spec)


def csr_deploy(deploy_path, weights, batch):
    """The deploy LeNet with LOWERED_CSRMM convolutions (CSR x dense GEMMs) and `weights`."""
    from minicaffe.net import Net  # noqa: PLC0415
    from minicaffe.phase import TEST  # noqa: PLC0415

    param = read_net(deploy_path)
    for lp in param.layer:
        if lp.type == "Input":
            for shape in lp.input_param.shape:
                shape.dim[0] = batch
        if lp.type == "Convolution":
            lp.convolution_param.conv_mode = "LOWERED_CSRMM"
    return Net(param, TEST, weights=weights)


def time_csr(deploy_path, dense_weights, sparse_weights, batches, rounds):
    """{batch: {"layers": {name: [dense ms, csr ms]}, "forward_ms": [dense, csr]}}."""
    from minicaffe import timing  # noqa: PLC0415

    out = {}
    for b in batches:
        dense = pipeline.deploy_net(deploy_path, dense_weights, b)
        csr = csr_deploy(deploy_path, sparse_weights, b)
        for name in dense.inputs:
            dense.blobs[name].data[...] = 0.5
            csr.blobs[name].data[...] = 0.5
        res = timing.compare_nets({"dense": dense, "csr": csr}, rounds=rounds, gemm=False)
        out[b] = {"layers": {n: [res["dense"]["layers"][n]["forward_ms"],
                                 res["csr"]["layers"][n]["forward_ms"]] for n in CONV},
                  "forward_ms": [res["dense"]["forward_ms"], res["csr"]["forward_ms"]]}
    return out


def element_sparsity(weights_path):
    from minicaffe import weights as weights_io  # noqa: PLC0415

    out = {}
    for name, _, arrays in weights_io.load(weights_path):
        if name in CONV:
            w = arrays[0]
            out[name] = float((w == 0).sum() / w.size)
            out[name + "_nnz"] = int((w != 0).sum())
    return out


def _prior_baseline(path, ds):
    """The lenet experiment's dense baseline (a StageResult) when `path` (its lenet.json) is a
    full run on the same data whose weights are still there; else None."""
    res = pipeline.full_lenet_result(path, ds)
    if res is None:
        return None
    b = res["baseline"]
    return pipeline.StageResult(name="baseline", weights=b["weights"], net_param=None,
                                test=b["test"], iterations=b["iterations"],
                                seconds=b["seconds"], log=b["log"], summary=b["summary"])


def run(out_dir="results/l1-vs-ssl", root=".", data_root="data", dataset="fashion-mnist",
        quick=False, jobs_n=2, threads=1, rounds=30, batches=(1, 64), log=print,
        lenet_result="results/lenet/lenet.json", **_):
    """`lenet_result`: the lenet experiment's lenet.json; its dense baseline is reused when it
    ran in full on the same data (the baseline is trained here otherwise)."""
    t0 = time.time()
    out = common.Output(out_dir)
    ds = datasets.mnist_like(data_root, dataset)
    path = {k: os.path.join(root, v) for k, v in FILES.items()}
    q = {}
    if quick:
        q = {k: runner.quick_overrides({}, QUICK[k], QUICK["test_iter"])
             for k in ("baseline", "ssl", "finetune")}
    every = 2.0 if quick else 30.0
    runs = out.path("runs")
    base_param = pipeline.solver_param(path["baseline"], q.get("baseline"), dataset=ds)
    progress = common.Progress([("baseline", base_param.max_iter), ("chains", 1)], every=every)
    base = None if quick else _prior_baseline(lenet_result, ds)
    if base is not None:
        log(f"l1-vs-ssl: the dense baseline from {lenet_result} ({base.weights})")
        progress = common.Progress([("chains", 1)], every=every)
    else:
        restore = common.log_to_file(os.path.join(runs, "baseline.log"))
        try:
            base = pipeline.train_stage("baseline", base_param, runs, None, progress,
                                        what=f"dense LeNet, {base_param.max_iter} iterations")
        finally:
            restore()
    frozen = eltwise_net(path["net"], ds)
    specs = [{"kind": "ssl", "name": "ssl", "label": "SSL (filters + channels)",
              "solver": path["ssl"], "overrides": q.get("ssl", {}), "finetune": path["finetune"],
              "ft_overrides": q.get("finetune", {})}]
    for k, lam in enumerate(STRENGTHS):
        specs.append({"kind": "l1", "name": f"l1-{k + 1}", "label": f"L1 {lam:g}", "lambda": lam,
                      "stages": [(path["baseline"], dict(L1, weight_decay=lam,
                                                         **q.get("ssl", {}))),
                                 (path["finetune"], dict(L1_FINETUNE, **q.get("finetune", {})),
                                  frozen)]})
    for s in specs:
        s.update(weights=base.weights, dataset=ds, out=runs, every=every)
    progress.start("chains", 1, f"SSL and {len(STRENGTHS)} L1 chain(s), {jobs_n} process(es)")
    results = jobs.run_jobs(_chain, specs, jobs=jobs_n, threads=threads,
                            name=lambda s, i: f"chain '{s['name']}'")
    progress.end("chains")
    rounds = 3 if quick else rounds
    from minicaffe.ops import get_num_threads, set_num_threads  # noqa: PLC0415

    saved = get_num_threads()
    set_num_threads(1)
    rows = []
    try:
        progress.note("timing (1 thread, interleaved)")
        for spec, c in zip(specs, results):
            if spec["kind"] == "ssl":
                timing_ = pipeline.time_compaction(path["deploy"], base.weights, c, batches,
                                                   rounds)
                layers = {r["layer"]: r for r in c["report"]["rows"]}
                speed = {b: {n: _ratio(next(r for r in rep["rows"] if r["layer"] == n)
                                       ["time_ms"]) for n in CONV}
                         for b, rep in timing_.items()}
                fwd = {b: _ratio(rep["timing"]["forward_ms"]) for b, rep in timing_.items()}
                sp = element_sparsity(c["ssl_weights"])
                rows.append({"net": spec["label"], "method": "SSL, compacted GEMM",
                             "error": c["error"], "sparsity": [sp[n] for n in CONV],
                             "rows_cols": [f"{layers[n]['filters'][1]}x"
                                           f"{_size(layers[n]['filter_size'][1])}" for n in CONV],
                             "conv_flops_pct": 100 * c["conv_flops"][1] / c["conv_flops"][0],
                             "speedup": speed, "forward": fwd})
                c.pop("train_param", None)
            else:
                t = time_csr(path["deploy"], base.weights, c["weights"], batches, rounds)
                sp = element_sparsity(c["weights"])
                dense_macs = {"conv1": 20 * 25 * 576, "conv2": 50 * 500 * 64}
                kept = {"conv1": sp["conv1_nnz"] * 576, "conv2": sp["conv2_nnz"] * 64}
                rows.append({"net": spec["label"], "method": "L1, CSR x dense",
                             "error": c["error"], "sparsity": [sp[n] for n in CONV],
                             "rows_cols": ["–", "–"],
                             "conv_flops_pct": 100 * sum(kept.values()) / sum(dense_macs.values()),
                             "speedup": {b: {n: _ratio(v["layers"][n]) for n in CONV}
                                         for b, v in t.items()},
                             "forward": {b: _ratio(v["forward_ms"]) for b, v in t.items()}})
    finally:
        set_num_threads(saved)
    result = {"experiment": "l1-vs-ssl", "quick": quick, "dataset": ds.__dict__,
              "machine": common.machine(), "baseline": base.to_dict(), "rows": rows,
              "chains": results, "batches": list(batches), "rounds": rounds,
              "seconds": time.time() - t0,
              "schedule": (f"baseline lenet_solver.prototxt {q.get('baseline') or ''}; L1: "
                           f"lenet_solver.prototxt with {dict(L1, **q.get('ssl', {}))}, "
                           "weight_decay per row, then lenet_finetune_solver.prototxt "
                           f"{dict(L1_FINETUNE, **q.get('finetune', {}))} with zero weights "
                           "frozen (DISCONNECTED_ELTWISE); SSL: lenet_ssl_solver.prototxt, "
                           "compacted, lenet_finetune_solver.prototxt; batch 64")}
    try:
        from minicaffe.experiments import figures  # noqa: PLC0415

        b = batches[0]
        groups = {f"{r['net']} ({100 * r['error']:.2f}%)": dict(r["speedup"][b], forward=r["forward"][b])
                  for r in rows}
        result["figures"] = [figures.speedup_bars(
            groups, out.path("l1_vs_ssl.png"),
            title=f"LeNet: L1 (CSR) vs SSL (compacted), batch {b}, 1 thread")]
    except ImportError as exc:
        log(f"l1-vs-ssl: no figures ({exc})")
    out.write_json("l1-vs-ssl.json", result)
    out.write_text("l1-vs-ssl.md", format_markdown(result))
    return result


def _size(ks):
    return ks[0] if isinstance(ks, list) and len(set(ks)) == 1 else ks


def _ratio(t):
    a, b = t
    return None if not a or not b else a / b


def _x(v):
    return "–" if v is None else f"{v:.2f}x"


def format_markdown(result):
    lines = ["# L1 (non-structured, CSR) vs SSL (structured, compacted) on LeNet", "",
             f"Data: {result['dataset']['description']}.", f"Schedule: {result['schedule']}.",
             f"Machine: {common.machine_line(result['machine'])}.",
             common.wall_time_line(result), "",
             f"Dense baseline: {100 * result['baseline']['error']:.2f}% error.", ""]
    header = ["net", "inference", "error", "zero weights", "kept rows x columns",
              "conv FLOPs"]
    for b in result["batches"]:
        header += [f"speedup b{b}", f"forward b{b}"]
    body = []
    for r in result["rows"]:
        cells = [r["net"], r["method"], f"{100 * r['error']:.2f}%",
                 "—".join(f"{100 * s:.1f}%" for s in r["sparsity"]), "—".join(map(str, r["rows_cols"])),
                 f"{r['conv_flops_pct']:.1f}%"]
        for b in result["batches"]:
            sp = r["speedup"].get(b) or r["speedup"].get(str(b)) or {}
            fw = r["forward"].get(b) or r["forward"].get(str(b))
            cells += ["—".join(_x(sp.get(n)) for n in CONV), _x(fw)]
        body.append(cells)
    lines.append(common.markdown_table(header, body))
    lines += ["", "Columns conv1—conv2. *conv FLOPs*: multiply-adds the sparse form runs (SSL: "
              "kept rows x kept columns after compaction; L1: non-zero weights), % of dense. "
              "*speedup*: dense layer time over the sparse layer's (the dense LeNet with the "
              "baseline's weights against the L1 net in LOWERED_CSRMM / the compacted SSL net), "
              f"interleaved in one process, 1 thread, medians of {result['rounds']} rounds. "
              "Figure: `l1_vs_ssl.png`."]
    return "\n".join(lines) + "\n"
