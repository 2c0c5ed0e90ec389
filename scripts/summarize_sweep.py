"""Summarise a sweep directory: python scripts/summarize_sweep.py outputs/multirun/<time> [--metric val_acc]

Writes summary.csv and summary.md in the directory (the same table a multirun writes when it ends) and prints it:
one row per job with its overrides, metrics, wall time and, for a failed job, its error; best first.
"""

import argparse
import sys

from seqlab.errors import SeqlabError
from seqlab.sweep import write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun directory holding <num>_<overrides>/ job folders")
    parser.add_argument("--metric", default="val_acc", help="metrics.json key to sort by (default: val_acc)")
    parser.add_argument("--mode", choices=("max", "min"), default=None,
                        help="best first is the largest (max) or smallest (min); default: min for losses, else max")
    args = parser.parse_args(argv)
    try:
        print(write_summary(args.sweep_dir, args.metric, args.mode))
    except SeqlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
