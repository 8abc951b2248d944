"""`python -m minicaffe.sweep`: a lambda sweep as independent runs, collected into an
error-vs-FLOPs table.

    python -m minicaffe.sweep --solver S --set breadth_decay=0.001,0.003,0.01 [--set K=V1,V2 ...]
        [--zip] [--weights W] [--finetune FS] [--jobs N] [--threads T] [--out DIR]
    mpirun -n P python -m minicaffe.sweep --solver S --set ... [--ranks-per-run G]

Each point of the grid (every combination of the `--set` values; with `--zip` the i-th values
go together) is one run, in its own folder `DIR/<k>_<field>=<value>...`:
  1. train solver S with those SolverParameter fields overridden, from `--weights` (the
     paper starts SSL from the dense baseline's weights);
  2. compact the result (minicaffe.compact: zero filters, dead channels both ways, zero shape
     fibres) and count the multiply-adds left;
  3. with `--finetune FS`: fine-tune the compacted net with solver FS, its zero rows and
     columns frozen, and test it.
Runs go `--jobs` at a time as local processes with `--threads` compute threads each. The
table (`DIR/sweep.md`, `DIR/sweep.json`) has one row per point: the overrides, the test error
after SSL and after fine-tuning, conv and whole-net FLOPs left, filters / channels per layer;
`DIR/tradeoff.png` plots error vs conv FLOPs with the starting weights' own error marked.
A point whose folder already holds the `point.json` of the same run is reused, so a stopped
sweep resumes where it left off.

Under mpirun (P > 1 processes) the runs go to rank groups instead of local processes: the P
ranks split into P/G groups of G consecutive ranks (`--ranks-per-run G`, default 1); group g
takes points g, g + P/G, ... and trains each data parallel over its G ranks (as `mpirun -n G
python -m minicaffe.train` would: the solver's batch per rank, a global batch G times that;
docs/SCALING.md), its rank 0 compacting and testing; world rank 0 collects the rows and writes
the table. `--jobs` is then not used; `--threads` is per rank.
Any SolverParameter field can be swept (a solver that steers its lambdas to a `flops_target`
is swept the same way). Exit status 0 when every run finished, 1 otherwise.
"""
import argparse
import itertools
import json
import os
import sys
import time

from minicaffe.errors import MinicaffeError, SolverError
from minicaffe.experiments import common, jobs, pipeline


def parse_set(text):
    """'field=v1,v2' -> ('field', ['v1', 'v2']); SolverError for a malformed argument."""
    if "=" not in text:
        raise SolverError(f"--set {text}: expected FIELD=VALUE[,VALUE...]")
    name, values = text.split("=", 1)
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not name.strip() or not vals:
        raise SolverError(f"--set {text}: expected FIELD=VALUE[,VALUE...]")
    return name.strip(), vals


def grid(sets, zipped=False):
    """[{field: value}] for every point: the product of the value lists, or with `zipped`
    their element-wise pairing (all lists of one length, else SolverError)."""
    if not sets:
        return [{}]
    names = [n for n, _ in sets]
    if len(set(names)) != len(names):
        raise SolverError(f"--set names a field twice: {', '.join(names)}")
    lists = [v for _, v in sets]
    if zipped:
        if len({len(v) for v in lists}) != 1:
            raise SolverError("--zip needs the same number of values in every --set (got "
                              + ", ".join(f"{n}: {len(v)}" for n, v in sets) + ")")
        combos = zip(*lists)
    else:
        combos = itertools.product(*lists)
    return [dict(zip(names, c)) for c in combos]


def point_name(k, overrides):
    parts = [f"{name}={value}" for name, value in overrides.items()]
    return f"{k:02d}_" + ("_".join(parts) if parts else "base")


def _source(spec):
    return {k: spec.get(k) for k in ("solver", "weights", "finetune")}


def finished_point(spec):
    """The row of OUT/point.json when an earlier sweep finished this very point (the same
    overrides, and the same solver, starting weights and fine-tuning solver where the file
    records them); else None. A sweep that was stopped resumes where it left off."""
    path = os.path.join(spec["out"], "point.json")
    try:
        with open(path) as f:
            row = json.load(f)
    except (OSError, ValueError):
        return None
    if row.get("overrides") != spec["overrides"]:
        return None
    if "source" in row and row["source"] != _source(spec):
        return None
    return row


def run_point(spec):
    """One sweep point (runs in a worker process): SSL stage, compaction, optional fine-tune
    (minicaffe.experiments.pipeline.ssl_chain). spec: {"name", "solver", "overrides",
    "weights", "finetune", "out"}; returns the table row (also written to OUT/point.json).
    A point an earlier sweep finished (finished_point) is not trained again."""
    row = finished_point(spec)
    if row is not None:
        row["reused"] = True
        return row
    row = pipeline.ssl_chain(dict(spec, label=spec["name"], every=spec.get("every", 60.0)))
    row.pop("train_param", None)
    row["overrides"] = spec["overrides"]
    row["source"] = _source(spec)
    if spec.get("finetune"):
        row["finetune_error"] = row["error"]
    with open(os.path.join(spec["out"], "point.json"), "w") as f:
        json.dump(row, f, indent=1)
    return row


def baseline_point(solver, weights, dataset=None):
    """The starting weights' own test error (FLOPs 100%): the reference of the curve."""
    param = pipeline.solver_param(solver, dataset=dataset)
    from minicaffe.prototxt import filter_net  # noqa: PLC0415

    iters = param.test_iter[0] if param.test_iter else 1
    outs = pipeline.evaluate(filter_net(param.net_param, "TEST"), weights, iters)
    acc = outs.get("accuracy")
    return {"name": "starting weights", "weights": weights,
            "error": None if acc is None else 1.0 - acc}


def _pct(a, b):
    return f"{100 * b / a:.1f}%" if a else "–"


def _err(e):
    return "–" if e is None else f"{100 * e:.2f}%"


def format_markdown(result):
    """The sweep's table as Markdown."""
    rows = sorted(result["points"], key=lambda r: r["conv_flops"][1])
    lines = [f"# Sweep of {result['solver']}", "",
             f"Solver `{result['solver']}`" + (f", from `{result['weights']}`"
                                               if result.get("weights") else "")
             + (f", fine-tuned with `{result['finetune']}`" if result.get("finetune") else "")
             + f". Machine: {common.machine_line(result['machine'])}.", ""]
    if result.get("baseline") and result["baseline"].get("error") is not None:
        lines += [f"Starting weights: test error {_err(result['baseline']['error'])} at 100% "
                  "FLOPs.", ""]
    fields = list(rows[0]["overrides"]) if rows else []
    layers = [x["layer"] for x in rows[0]["layers"]] if rows else []
    header = fields + ["error after SSL"] + (["error after fine-tune"] if result.get("finetune")
                                             else []) + \
        ["conv FLOPs left", "all FLOPs left"] + [f"{n} filters / channels" for n in layers]
    body = []
    for r in rows:
        cells = [r["overrides"][f] for f in fields] + [_err(r["ssl_error"])]
        if result.get("finetune"):
            cells.append(_err(r.get("finetune_error")))
        cells += [_pct(*r["conv_flops"]), _pct(*r["flops"])]
        cells += [f"{x['filters'][1]}/{x['filters'][0]} / {x['channels'][1]}/{x['channels'][0]}"
                  for x in r["layers"]]
        body.append(cells)
    lines.append(common.markdown_table(header, body))
    return "\n".join(lines) + "\n"


def draw_tradeoff(result, path):
    """Error vs conv FLOPs left, one point per run, the starting weights marked."""
    from minicaffe.experiments import figures  # noqa: PLC0415

    pts = [(100 * r["conv_flops"][1] / r["conv_flops"][0], 100 * r["error"],
            ",".join(f"{v}" for v in r["overrides"].values()))
           for r in result["points"] if r.get("error") is not None]
    marks = []
    if result.get("baseline") and result["baseline"].get("error") is not None:
        marks.append(("starting weights", 100.0, 100 * result["baseline"]["error"]))
    return figures.tradeoff({"sweep": pts}, marks, path,
                            title=os.path.basename(result["solver"]))


def run_sweep(solver, sets, out, weights=None, finetune=None, zipped=False, jobs_n=1,
              threads=1, executor=None, log=print, dataset=None, every=60.0, groups=None):
    """Run every point; returns the result dict (also written as sweep.json / sweep.md).

    `dataset` (experiments.datasets.Dataset) retargets the nets' Data layers; `executor` (a
    concurrent.futures Executor) replaces the local process pool; `groups` (a
    parallel.RankGroups) runs the points on MPI rank groups instead, and returns the result on
    world rank 0 only (None on the other ranks)."""
    points = grid(sets, zipped)
    for overrides in points:     # fail before training on a misspelled field or bad value
        pipeline.solver_param(solver, overrides, dataset=dataset)
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    specs = [{"solver": os.path.abspath(solver), "overrides": o,
              "weights": os.path.abspath(weights) if weights else None,
              "finetune": os.path.abspath(finetune) if finetune else None,
              "out": os.path.join(out, point_name(k, o)), "name": point_name(k, o),
              "dataset": dataset, "every": every}
             for k, o in enumerate(points)]
    t0 = time.perf_counter()
    log(f"sweep: {len(specs)} run(s), {jobs_n} at a time, {threads} thread(s) each -> {out}",
        file=sys.stderr)

    def done(i, row):
        finished.append(i)
        elapsed = time.perf_counter() - t0
        eta = elapsed / len(finished) * (len(specs) - len(finished))
        log(f"sweep: {row['name']} done: error {_err(row['error'])}, conv FLOPs "
            f"{_pct(*row['conv_flops'])} ({len(finished)}/{len(specs)}, ETA "
            f"{common.fmt_duration(eta)})", file=sys.stderr)

    finished = []
    if groups is not None:
        rows = _run_on_groups(groups, specs, done)
        if rows is None:
            return None
    else:
        rows = jobs.run_jobs(run_point, specs, jobs=jobs_n, threads=threads, executor=executor,
                             name=lambda s, i: s["name"], on_done=done)
    result = {"solver": solver, "weights": weights, "finetune": finetune, "sets": sets,
              "dataset": None if dataset is None else dataset.__dict__,
              "zip": zipped, "machine": common.machine(), "points": rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    if weights:
        result["baseline"] = baseline_point(solver, weights, dataset)
    o = common.Output(out)
    o.write_json("sweep.json", result)
    o.write_text("sweep.md", format_markdown(result))
    try:
        result["figure"] = draw_tradeoff(result, o.path("tradeoff.png"))
    except ImportError as exc:
        log(f"sweep: no figure ({exc})", file=sys.stderr)
    return result


def _run_on_groups(groups, specs, done):
    """The points on MPI rank groups (module doc): each group root runs its share, training
    with the whole group; world rank 0 gets [row per point] (None on the other ranks).
    Raises jobs.JobError (on world rank 0) naming the first point that failed."""
    mine = []
    if groups.is_group_root:
        for i in groups.runs(len(specs)):
            try:
                row = run_point(dict(specs[i], make_solver=groups.make_solver))
            except Exception as exc:  # noqa: BLE001  (divergence, a bad net: the next point)
                mine.append((i, None, f"{type(exc).__name__}: {exc}"))
                continue
            mine.append((i, row, None))
            done(i, row)
        groups.release()
    else:
        groups.serve()
    every = groups.gather(mine)
    if every is None:
        return None
    rows, errors = [None] * len(specs), []
    for i, row, error in (item for part in every for item in part):
        rows[i] = row
        if error is not None:
            errors.append((i, error))
    if errors:
        i, error = min(errors)
        raise jobs.JobError(f"{specs[i]['name']} failed: {error}")
    return rows


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.sweep",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--solver", required=True, help="solver .prototxt of the SSL stage")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=V1,V2",
                    help="SolverParameter field and its values (repeatable)")
    ap.add_argument("--zip", action="store_true", help="pair the i-th values of every --set "
                    "instead of taking every combination")
    ap.add_argument("--weights", help="weights every run starts from (the dense baseline)")
    ap.add_argument("--finetune", help="fine-tuning solver run on each compacted net")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time (local processes)")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per run")
    ap.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    ap.add_argument("--ranks-per-run", type=int, default=1, metavar="G",
                    help="under mpirun: MPI ranks training each run together (data parallel; "
                         "must divide the number of ranks; default 1)")
    return ap


def _launched_ranks():
    from minicaffe.parallel import launch_size  # noqa: PLC0415

    launched = launch_size()
    return launched[0] if launched else 1


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        print("python -m minicaffe.sweep: --jobs and --threads must be >= 1", file=sys.stderr)
        return 1
    if _launched_ranks() > 1:
        return _main_mpi(args)
    try:
        sets = [parse_set(s) for s in args.set]
        result = run_sweep(args.solver, sets, args.out, args.weights, args.finetune, args.zip,
                           args.jobs, args.threads)
    except (MinicaffeError, OSError, jobs.JobError) as exc:
        print(f"python -m minicaffe.sweep: {exc}", file=sys.stderr)
        return 1
    print(format_markdown(result))
    return 0


def _main_mpi(args):
    """main() on one rank of an MPI job: the runs on rank groups (module doc). Every rank
    checks the arguments alike, so a bad one ends every rank with the same message (printed
    once, by rank 0)."""
    from minicaffe import parallel  # noqa: PLC0415

    if args.jobs != 1:
        print("python -m minicaffe.sweep: --jobs is for local processes; under mpirun the "
              "ranks run the points (--ranks-per-run G ranks each)", file=sys.stderr)
        return 1
    try:
        groups = parallel.RankGroups(args.ranks_per_run, threads=args.threads)
    except MinicaffeError as exc:
        print(f"python -m minicaffe.sweep: {exc}", file=sys.stderr)
        return 1
    rank0 = groups.world_rank == 0
    quiet = (lambda *a, **k: None) if not rank0 else print
    try:
        sets = [parse_set(s) for s in args.set]
        result = run_sweep(args.solver, sets, args.out, args.weights, args.finetune, args.zip,
                           threads=args.threads, groups=groups, log=quiet)
    except (MinicaffeError, OSError, jobs.JobError) as exc:
        if rank0:
            print(f"python -m minicaffe.sweep: {exc}", file=sys.stderr)
        return 1
    finally:
        groups.close()
    if result is not None:
        print(format_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
