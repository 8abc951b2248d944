"""`python -m minicaffe.data get|convert|compute-mean`: the dataset tool.

    get mnist|fashion-mnist|cifar10 [--dir D]     fetch (verified, resumable; local copies first)
    convert SOURCE OUT_LMDB [--format idx|cifar10|imagelist] [--root-folder R]
            [--resize-height H --resize-width W] [--gray] [--shuffle] [--encoded]
    compute-mean SOURCE OUT.binaryproto [--backend LMDB|IDX|CIFAR10]
"""
import argparse
import sys

from minicaffe.errors import DataError


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m minicaffe.data",
                                     description="Get datasets, convert them to Caffe LMDBs, "
                                                 "compute mean files.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("get", help="download a dataset (checksum-verified, resumable)")
    g.add_argument("dataset", choices=["mnist", "fashion-mnist", "cifar10"])
    g.add_argument("--dir", help="target folder (default data/<dataset> under the working directory)")
    g.add_argument("--no-local", action="store_true",
                   help="do not copy from local dataset packages (/usr/share/datasets/...)")
    g.add_argument("--timeout", type=float, default=30, help="network timeout in seconds")

    c = sub.add_parser("convert", help="write a dataset into a Caffe LMDB of Datum records")
    c.add_argument("source", help="IDX images file, CIFAR-10 .bin/dir, or an image list file")
    c.add_argument("out", help="LMDB folder to create (must not exist)")
    c.add_argument("--format", choices=["idx", "cifar10", "imagelist"],
                   help="input format (default: guessed from the name)")
    c.add_argument("--root-folder", default="", help="prefix for image list paths")
    c.add_argument("--resize-height", type=int, default=0)
    c.add_argument("--resize-width", type=int, default=0)
    c.add_argument("--gray", action="store_true", help="load images as one grey channel")
    c.add_argument("--shuffle", action="store_true", help="shuffle the image list order")
    c.add_argument("--encoded", action="store_true", help="store encoded image files in the Datums")
    c.add_argument("--seed", type=int, default=0, help="seed for --shuffle")

    m = sub.add_parser("compute-mean", help="write the mean image as a .binaryproto")
    m.add_argument("source")
    m.add_argument("out")
    m.add_argument("--backend", default="LMDB", type=str.upper, choices=["LMDB", "IDX", "CIFAR10"])
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "get":
            from minicaffe.data.download import get_dataset
            folder = get_dataset(args.dataset, args.dir, local_dirs=[] if args.no_local else None,
                                 timeout=args.timeout)
            print(f"{args.dataset} is in {folder}")
        elif args.command == "convert":
            from minicaffe.data.convert import convert
            convert(args.source, args.out, args.format, root_folder=args.root_folder,
                    resize_height=args.resize_height, resize_width=args.resize_width,
                    gray=args.gray, shuffle=args.shuffle, encoded=args.encoded, seed=args.seed)
        else:
            from minicaffe.data.convert import compute_mean
            from minicaffe.data.transform import write_mean_file
            write_mean_file(args.out, compute_mean(args.source, args.backend))
            print(f"wrote {args.out}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
