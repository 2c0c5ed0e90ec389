"""Summarise a sweep directory: python scripts/summarize_sweep.py outputs/multirun/<time> [--metric val_acc]

Writes summary.csv and summary.md in the directory (the same tables a multirun writes when it ends) and prints the
Markdown: one row per job with its overrides, metrics, wall time and, for a failed job, its error, best first by the
metric the jobs monitor; jobs that differ only in `seed` are grouped (mean ± standard deviation over seeds).
"""

import argparse
import sys

from seqlab.errors import ConfigError, SeqlabError, report
from seqlab.sweep.summary import summarize
from seqlab.sweep.tables import write_summary


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A bad argument is one `error:` line (exit 2), as in seqlab's other commands."""
        usage = self.format_usage().strip().removeprefix("usage: ")
        sys.exit(report(ConfigError(f"{message}; usage: {usage}")))


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun directory holding <num>_<name>/ job folders")
    parser.add_argument("--metric", default=None,
                        help="metrics.json key to rank by (default: the metric the jobs monitor, e.g. val_acc)")
    parser.add_argument("--mode", choices=("max", "min"), default=None,
                        help="best first is the largest (max) or smallest (min); default: the monitor's mode, "
                             "else min for losses and max for the rest")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.sweep_dir, args.metric, args.mode)
        print(write_summary(summary), end="")
    except SeqlabError as e:
        return report(e)
    if summary.note:
        print(f"warning: {summary.note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
