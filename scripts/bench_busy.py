"""Training throughput with and without a competing busy process, same batches, default settings.

Runs seqlab's `train()` on the first N IMDB training batches (as scripts/bench_train.py does) in three conditions:
idle with the default `threads` (auto); with scripts/busy_load.py keeping one core busy, default `threads`; and,
for comparison, with the load and `threads=<all cores>` (torch's default before `auto`). A fourth run starts the
load half-way through (the thread governor re-checks the load every 30 s). Prints tokens/s and each as a fraction of
idle.

Run on an otherwise idle machine: python scripts/bench_busy.py --root ../shared/data/imdb [--batches 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import bench_train  # noqa: E402  (the same config and step timer)


def run(args, threads: str, load_after: float | None) -> float:
    """tokens/s of the training steps of one train() run; `load_after`: start the busy process after that many
    seconds (None: no load)."""
    from seqlab.train import train

    proc = None
    timer = None
    if load_after is not None:
        def start():
            nonlocal proc
            proc = subprocess.Popen([sys.executable, str(REPO / "scripts/busy_load.py"), "--seconds", "900"])
        timer = threading.Timer(load_after, start)
        timer.start()
    try:
        with tempfile.TemporaryDirectory() as out:
            args.threads = threads
            cfg = bench_train.compose(args, Path(out))
            train(cfg)
    finally:
        if timer is not None:
            timer.cancel()
        if proc is not None:
            proc.terminate()
            proc.wait()
    seconds, tokens = bench_train.StepTimer.last
    return tokens / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(REPO.parent / "shared/data/imdb"))
    p.add_argument("--cache-dir", default=os.environ.get("SEQLAB_CACHE_DIR", str(Path("~/.cache/seqlab").expanduser())))
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--max-length", type=int, default=400)
    args = p.parse_args()
    sys.modules["__main__"].StepTimer = bench_train.StepTimer  # the +callbacks target of bench_train.compose
    cores = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    results = {}
    for name, threads, load in (("idle, threads=auto", "auto", None), ("busy core, threads=auto", "auto", 0.0),
                                (f"busy core, threads={cores}", cores, 0.0),
                                ("load starts after 40 s, threads=auto", "auto", 40.0)):
        results[name] = run(args, threads, load)
        print(f"{name:>38}: {results[name]:>9,.0f} tokens/s", flush=True)
        time.sleep(2)
    idle = results["idle, threads=auto"]
    print("\nfraction of idle throughput:")
    for name, rate in results.items():
        print(f"{name:>38}: {rate / idle:.2f}")


if __name__ == "__main__":
    main()
