"""A reproducible competing load: keeps one core busy (a pure-Python loop) for --seconds, then exits.

Run: python scripts/busy_load.py --seconds 120 [--nice 0]   (used by scripts/bench_busy.py)
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="how long to keep the core busy (bounded)")
    p.add_argument("--nice", type=int, default=0, help="niceness increment (19: lowest priority)")
    args = p.parse_args()
    if args.nice:
        os.nice(args.nice)
    end = time.monotonic() + args.seconds
    x = 0
    while time.monotonic() < end:
        for _ in range(10_000):
            x += 1


if __name__ == "__main__":
    main()
