"""`python -m minicaffe.experiments NAME [--quick] [--out DIR] ...`: run one of the SSL paper's
experiments (see minicaffe/experiments/__init__.py for the list) and write its Markdown table,
JSON and PNG figures into `results/NAME/` (or --out)."""
import argparse
import importlib
import os
import sys

from minicaffe.experiments import EXPERIMENTS


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.experiments",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("name", choices=sorted(EXPERIMENTS), help="the experiment")
    ap.add_argument("--quick", action="store_true",
                    help="shortened schedules (a smoke test; numbers not comparable)")
    ap.add_argument("--out", help="output folder (default results/NAME)")
    ap.add_argument("--data", default="data", help="data root (default data/)")
    ap.add_argument("--dataset", default=None,
                    help="lenet, mlp, lenet-tradeoff, l1-vs-ssl: auto (MNIST when present, else "
                         "Fashion-MNIST), mnist or fashion-mnist; convnet, resnet-depth, budget: auto "
                         "(CIFAR-10 when present, else Fashion-MNIST padded to 32x32) or cifar10")
    ap.add_argument("--jobs", type=int, default=None,
                    help="training runs at a time (default: one per logical CPU)")
    ap.add_argument("--threads", type=int, default=None,
                    help="compute threads per run (default 1; alexnet-speed: the 'all threads' "
                         "count, default all logical CPUs)")
    ap.add_argument("--reference", action="store_true",
                    help="lenet: also train the dense net as long as SSL + fine-tuning (the "
                         "equal-iteration comparison; about 10 minutes more)")
    ap.add_argument("--full-schedule", action="store_true",
                    help="lenet: the solver files' schedules (8000 fine-tuning iterations) "
                         "instead of the main job's 15-minute cut")
    ap.add_argument("--scales", default=None,
                    help="lenet-tradeoff: comma-separated factors on the SSL solver's "
                         "group-Lasso strengths (default 0.25,0.5,0.75,1,1.5,2.5)")
    ap.add_argument("--schedule", type=float, default=None,
                    help="convnet, resnet-depth, budget: a factor on every iteration count of the "
                         "(already reduced) schedule, e.g. 0.5; the table states what ran")
    ap.add_argument("--flops-target", type=float, default=None, metavar="F",
                    help="lenet: the SSL filters + channels chain asks for this share of the "
                         "conv FLOPs (budget-driven SSL, no lambdas) instead of the solver "
                         "file's lambdas")
    return ap


def main(argv=None):
    args = _parser().parse_args(argv)
    from minicaffe.errors import MinicaffeError  # noqa: PLC0415
    from minicaffe.experiments.jobs import JobError  # noqa: PLC0415

    module = importlib.import_module(EXPERIMENTS[args.name])
    kwargs = {"out_dir": args.out or os.path.join("results", args.name), "quick": args.quick,
              "data_root": args.data}
    if args.dataset:
        kwargs["dataset"] = args.dataset
    if args.jobs:
        kwargs["jobs_n"] = args.jobs
    if args.threads:
        kwargs["threads"] = args.threads
    for flag in ("reference", "full_schedule"):
        if getattr(args, flag):
            if args.name != "lenet":
                print(f"python -m minicaffe.experiments {args.name}: --{flag.replace('_', '-')} "
                      "is an option of lenet only", file=sys.stderr)
                return 2
            kwargs[flag] = True
    if args.scales:
        if args.name != "lenet-tradeoff":
            print(f"python -m minicaffe.experiments {args.name}: --scales is an option of "
                  "lenet-tradeoff only", file=sys.stderr)
            return 2
        try:
            kwargs["scales"] = [float(x) for x in args.scales.split(",")]
        except ValueError:
            print(f"python -m minicaffe.experiments {args.name}: --scales {args.scales!r}: "
                  "expected comma-separated numbers, e.g. 0.5,1,2", file=sys.stderr)
            return 2
    if args.schedule is not None:
        if args.name not in ("convnet", "resnet-depth", "budget"):
            print(f"python -m minicaffe.experiments {args.name}: --schedule is an option of "
                  "convnet, resnet-depth and budget only", file=sys.stderr)
            return 2
        if not 0 < args.schedule <= 10:
            print(f"python -m minicaffe.experiments {args.name}: --schedule {args.schedule:g}: "
                  "expected a factor in (0, 10]", file=sys.stderr)
            return 2
        kwargs["schedule"] = args.schedule
    if args.flops_target is not None:
        if args.name != "lenet":
            print(f"python -m minicaffe.experiments {args.name}: --flops-target applies to the "
                  "lenet experiment", file=sys.stderr)
            return 2
        if not 0 < args.flops_target <= 1:
            print(f"python -m minicaffe.experiments lenet: --flops-target must be in (0, 1] "
                  f"(got {args.flops_target:g})", file=sys.stderr)
            return 2
        kwargs["flops_target"] = args.flops_target
    try:
        result = module.run(**kwargs, log=lambda *a, **k: print(*a, file=sys.stderr))
    except (MinicaffeError, OSError, JobError, KeyError) as exc:
        print(f"python -m minicaffe.experiments {args.name}: {exc}", file=sys.stderr)
        return 1
    md = os.path.join(kwargs["out_dir"], f"{args.name}.md")
    with open(md) as f:
        print(f.read())
    print(f"written: {md}, {os.path.splitext(md)[0]}.json"
          + "".join(f", {p}" for p in result.get("figures", [])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
