"""Training throughput with and without a competing busy process, same batches, default settings.

Runs seqlab's `train()` on the first N IMDB training batches (as scripts/bench_train.py does), each run in a fresh
process, in these conditions:

  idle, threads=<cores>      torch's default before `auto` (one thread per core): the idle figure to keep
  idle, threads=auto         the default: must not be slower than the line above
  busy core, threads=auto    scripts/busy_load.py keeps one core busy for the whole run
  busy core, threads=<cores>
  load after L s, auto       the load starts L seconds in (the thread governor re-checks every 30 s); --late-after 0
                             leaves it out

Prints the median tokens/s over --repeats (conditions interleaved) and each as a fraction of idle threads=<cores>.
Each run starts as scripts/train.py does: with threads=auto, OpenMP's wait policy is chosen from the load before
torch is imported (seqlab/threads.py, `wait_policy`). --env runs every condition once per environment, side by side;
a wait policy set there is kept as given. seqlab's choice against libgomp's defaults and the alternatives:

  python scripts/bench_busy.py --env "" GOMP_SPINCOUNT=300000 OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=1000 --late-after 0

(GOMP_SPINCOUNT=300000 is what libgomp does when nothing is set: spin ~3 ms, then sleep.)

Run on an otherwise idle machine: python scripts/bench_busy.py --root ../shared/data/imdb [--batches 150]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args, threads: str, load_after: float | None) -> float:
    """tokens/s of the training steps of one train() run in this process, started as scripts/train.py starts (the
    OpenMP wait policy chosen before torch is imported); `load_after`: start the busy process after that many
    seconds (None: no load)."""
    from seqlab.threads import wait_policy

    proc = timer = None

    def start():
        nonlocal proc
        proc = subprocess.Popen([sys.executable, str(REPO / "scripts/busy_load.py"), "--seconds", "900"])

    if load_after == 0:
        start()
        time.sleep(1.0)  # running before the start-up sample, as a load that was there first
    elif load_after is not None:
        timer = threading.Timer(load_after, start)
        timer.start()
    try:
        wait_policy(threads)
        sys.path.insert(0, str(REPO / "scripts"))
        import bench_train  # the same config and step timer (imports torch)

        from seqlab.train import train

        sys.modules["__main__"].StepTimer = bench_train.StepTimer  # the +callbacks target of bench_train.compose
        with tempfile.TemporaryDirectory() as out:
            args.threads = threads
            train(bench_train.compose(args, Path(out)))
    finally:
        if timer is not None:
            timer.cancel()
        if proc is not None:
            proc.terminate()
            proc.wait()
    seconds, tokens = bench_train.StepTimer.last
    return tokens / seconds


def child(args, threads: str, load_after: float | None, env: str) -> float:
    """One run in a fresh process with `env` ("KEY=VALUE KEY=VALUE", "" for none) added to the environment."""
    extra = dict(kv.split("=", 1) for kv in env.split())
    cmd = [sys.executable, __file__, "--root", args.root, "--cache-dir", args.cache_dir, "--batches",
           str(args.batches), "--hidden", str(args.hidden), "--max-length", str(args.max_length),
           "--one", threads, "none" if load_after is None else str(load_after)]
    out = subprocess.run(cmd, env={**os.environ, **extra}, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(REPO.parent / "shared/data/imdb"))
    p.add_argument("--cache-dir", default=os.environ.get("SEQLAB_CACHE_DIR", str(Path("~/.cache/seqlab").expanduser())))
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--max-length", type=int, default=400)
    p.add_argument("--repeats", type=int, default=1, help="runs of each condition, interleaved; medians printed")
    p.add_argument("--late-after", type=float, default=40.0, help="seconds before the late load (0: none)")
    p.add_argument("--env", nargs="+", default=[""], help='environments to compare, e.g. "" OMP_WAIT_POLICY=PASSIVE')
    p.add_argument("--one", nargs=2, metavar=("THREADS", "LOAD_AFTER"), help=argparse.SUPPRESS)  # a child's run
    args = p.parse_args()
    if args.one:
        threads, load = args.one
        print(run(args, threads, None if load == "none" else float(load)))
        return
    cores = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    conditions = [(f"idle, threads={cores}", cores, None), ("idle, threads=auto", "auto", None),
                  ("busy core, threads=auto", "auto", 0.0), (f"busy core, threads={cores}", cores, 0.0)]
    if args.late_after > 0:
        conditions.append((f"load after {args.late_after:g} s, threads=auto", "auto", args.late_after))
    rates: dict[tuple[str, str], list[float]] = {}
    for r in range(args.repeats):
        for name, threads, load in conditions:
            for env in args.env if r % 2 == 0 else args.env[::-1]:
                rate = child(args, threads, load, env)
                rates.setdefault((name, env), []).append(rate)
                print(f"repeat {r + 1}  {name:>32}  {env or 'default env':>24}: {rate:>9,.0f} tokens/s", flush=True)
    med = {key: statistics.median(v) for key, v in rates.items()}
    idle = med[(conditions[0][0], args.env[0])]
    names = [env or "default env" for env in args.env]
    print(f"\nmedian tokens/s over {args.repeats} run(s), {args.batches} batches (fraction of {conditions[0][0]}"
          f"{', ' + names[0] if len(names) > 1 else ''}); load average now {os.getloadavg()[0]:.2f}")
    print(f"{'':>32}" + "".join(f"  {n:>24}" for n in names))
    for name, _, _ in conditions:
        print(f"{name:>32}" + "".join(f"  {med[(name, env)]:>9,.0f} ({med[(name, env)] / idle:4.2f})".rjust(26)
                                      for env in args.env))


if __name__ == "__main__":
    main()
