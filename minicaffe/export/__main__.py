"""`python -m minicaffe.export onnx`: write a Caffe net as an ONNX model.

    python -m minicaffe.export onnx --model deploy.prototxt --weights W.caffemodel \\
        --out net.onnx [--opset 17] [--static-batch] [--output BLOB ...] [--verify] [--json F]

Prints what each layer became, what was left out and, for compacted / sparse layers, the work
ONNX Runtime does against minicaffe's. `--verify` runs the model in ONNX Runtime on random
inputs next to the net and fails (exit 1) if an output differs by more than 1e-4.
"""
import argparse
import sys

from minicaffe.export.graph import DEFAULT_OPSET


def _parser():
    ap = argparse.ArgumentParser(prog="python -m minicaffe.export",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="format", required=True, metavar="FORMAT")
    p = sub.add_parser("onnx", help="ONNX model (ONNX Runtime, TensorRT, OpenVINO, ...)")
    p.add_argument("--model", "-model", required=True, help="net .prototxt (deploy or train_test)")
    p.add_argument("--weights", "-weights", help=".caffemodel or .npz with the trained weights")
    p.add_argument("--out", "-o", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--phase", default="TEST", choices=["TRAIN", "TEST"],
                   help="phase the net is built in (default TEST)")
    p.add_argument("--output", action="append", metavar="BLOB",
                   help="blob to output (repeatable; default: the net's outputs)")
    p.add_argument("--static-batch", action="store_true",
                   help="fix the batch at the prototxt's size instead of a symbolic N")
    p.add_argument("--batch-axis", action="append", default=[], metavar="INPUT=AXIS",
                   help="where an input's batch axis is, when not 0 (repeatable)")
    p.add_argument("--verify", action="store_true",
                   help="run ONNX Runtime on random inputs and compare with the net (1e-4)")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.add_argument("--no-check", action="store_true", help="skip onnx.checker")
    return ap


def _batch_axes(items):
    out = {}
    for item in items:
        name, sep, axis = item.rpartition("=")
        if not sep or not name:
            raise ValueError(f"--batch-axis {item!r}: expected INPUT=AXIS")
        out[name] = int(axis)
    return out


def main(argv=None):
    args = _parser().parse_args(argv)
    from minicaffe.errors import MinicaffeError
    from minicaffe.export import export_onnx
    from minicaffe.net import Net

    try:
        net = Net(args.model, args.phase, weights=args.weights)
        report = export_onnx(net, args.out, opset=args.opset, outputs=args.output,
                             dynamic_batch=not args.static_batch,
                             batch_axes=_batch_axes(args.batch_axis), check=not args.no_check)
    except (MinicaffeError, ValueError, OSError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(report.to_json())
    if args.verify:
        from minicaffe.export.verify import verify

        batch = None if args.static_batch else 2
        result = verify(net, report.model, batch=batch)
        print(f"\nverify (ONNX Runtime vs minicaffe, random inputs): {result}")
        if not result.ok:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
