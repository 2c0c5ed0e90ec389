"""seqlab.nn vs torch.nn, LSTM and GRU: time ratios for forward only, training forward, forward+backward.

Both modules hold the same weights and see the same padded input (T, N, H_in). Passes:
  fwd        forward under no_grad (inference)
  fwd-train  forward with autograd recording (the first half of a training step), no backward
  fwdbwd     forward + backward of a dense loss (sum of every output)
Every pass of every implementation is warmed up (--warmup runs each), then the timed runs of all of them are
interleaved round-robin, so that load from other processes and a cold first pass hit all alike; the figure is the
median (or min) of --repeats runs, and the load average is printed because it makes timings noisy.
The goal column holds issue 13's targets for the default shapes (seqlab / torch, both cells): fwd+bwd <= 1.10 at
B64 T256 I100 H256 and <= 1.30 at B32 T40 I100 H128, fwd <= 1.20 at B64 T256. The row "fwd/train" is each
implementation's inference over its own training forward (fwd / fwd-train, the same tokens): issue 15 asks <= 1.00.

--encoder instead times the encoder's two exact paths (seqlab/models/encoder.py: padded vs packed) for every
backend and cell on a batch of random lengths, forward+backward, which is what ``model.path=auto`` should pick.

Run (idle machine): python scripts/bench_lstm.py --threads 1 2 --repeats 7
                    python scripts/bench_lstm.py --encoder --threads 1 2 --repeats 7
On a busy machine, compare with --threads 1 --clock thread (CPU time of this thread, not wall time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial

import torch

from seqlab.models.encoder import make_rnn, run_packed, run_padded
from seqlab.nn import GRU, LSTM

SHAPES = ["64,256,100,256", "32,40,100,128"]  # B,T,I,H
GOALS = {("64,256,100,256", "fwdbwd"): 1.10, ("32,40,100,128", "fwdbwd"): 1.30, ("64,256,100,256", "fwd"): 1.20}
CELLS = {"lstm": (torch.nn.LSTM, LSTM), "gru": (torch.nn.GRU, GRU)}
PASSES = ("fwd", "fwd-train", "fwdbwd")


def timer(clock: str, device: str):
    now = time.thread_time if clock == "thread" else time.perf_counter

    def timed(fn) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = now()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return now() - start

    return timed


def first(fn, *args):
    """The first result of fn(*args): a module's or an encoder path's output tensor."""
    return fn(*args)[0]


def run_pass(kind: str, fn) -> None:
    if kind == "fwd":
        with torch.no_grad():
            fn()
    elif kind == "fwd-train":
        fn()
    else:
        fn().sum().backward()


def measure(fns: dict, kinds, warmup: int, repeats: int, timed, stat) -> dict:
    """stat of the seconds per (name, kind). Every pass of every name is warmed up first; then the timed runs go
    round-robin over all of them, starting one later each round, so that neither a cold first pass (allocator and
    page-fault warm-up) nor a change of load favours one pass or name."""
    pairs = [(name, kind) for kind in kinds for name in fns]
    for _ in range(warmup):
        for name, kind in pairs:
            run_pass(kind, fns[name])
    times = {pair: [] for pair in pairs}
    for r in range(repeats):
        for name, kind in pairs[r % len(pairs):] + pairs[:r % len(pairs)]:
            times[name, kind].append(timed(partial(run_pass, kind, fns[name])))
    return {key: stat(v) for key, v in times.items()}


def bench_modules(args, timed, stat) -> None:
    names = ["torch", "seqlab"] + (["eager"] if args.eager else [])
    header = (f"{'cell':>4} {'thr':>3} {'B':>4} {'T':>4} {'I':>4} {'H':>4} {'dir':>4} {'pass':>9} "
              + " ".join(f"{n + ' ms':>10}" for n in names) + " " + " ".join(f"{n + '/torch':>13}" for n in names[1:])
              + f" {'goal':>5}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cell in args.cells:
            ref_cls, our_cls = CELLS[cell]
            for shape in args.shapes:
                B, T, In, H = (int(v) for v in shape.split(","))
                for bidirectional in (False, True):
                    ref = ref_cls(In, H, bidirectional=bidirectional, device=args.device)
                    models = {"torch": ref}
                    for name in names[1:]:
                        m = our_cls(In, H, bidirectional=bidirectional, device=args.device)
                        m.load_state_dict(ref.state_dict())
                        m.fused = name == "seqlab"
                        models[name] = m
                    x = torch.randn(T, B, In, device=args.device, requires_grad=True)
                    fns = {name: partial(first, m, x) for name, m in models.items()}
                    med = measure(fns, PASSES, args.warmup, args.repeats, timed, stat)
                    for kind in PASSES:
                        goal = GOALS.get((shape, kind))
                        row = (f"{cell:>4} {threads:>3} {B:>4} {T:>4} {In:>4} {H:>4} "
                               f"{'bi' if bidirectional else 'uni':>4} {kind:>9} ")
                        row += " ".join(f"{med[n, kind] * 1e3:>10.1f}" for n in names)
                        row += " " + " ".join(f"{med[n, kind] / med['torch', kind]:>13.2f}" for n in names[1:])
                        print(row + (f" {goal:>5.2f}" if goal else ""), flush=True)
                    row = (f"{cell:>4} {threads:>3} {B:>4} {T:>4} {In:>4} {H:>4} "
                           f"{'bi' if bidirectional else 'uni':>4} {'fwd/train':>9} ")
                    row += " ".join(f"{med[n, 'fwd'] / med[n, 'fwd-train']:>10.2f}" for n in names)
                    print(row + " " + " ".join(" " * 13 for _ in names[1:]) + f" {1.0:>5.2f}", flush=True)


def bench_encoder_paths(args, timed, stat) -> None:
    """run_padded vs run_packed, each backend and cell, 2-layer BiRNN, lengths uniform in [T/4, T]."""
    print(f"{'cell':>4} {'thr':>3} {'backend':>7} {'B':>4} {'T':>4} {'H':>4} {'padded ms':>10} {'packed ms':>10} "
          f"{'padded/packed':>14}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cell in args.cells:
            for shape in args.shapes:
                B, T, In, H = (int(v) for v in shape.split(","))
                g = torch.Generator().manual_seed(0)
                lengths = torch.randint(max(1, T // 4), T + 1, (B,), generator=g)
                x = torch.randn(B, T, In, device=args.device, requires_grad=True)
                for backend in ("torch", "custom"):
                    rnn = make_rnn(backend, cell, In, H, num_layers=2, bidirectional=True, batch_first=True)
                    rnn = rnn.to(args.device)
                    fns = {"padded": partial(first, run_padded, rnn, x, lengths),
                           "packed": partial(first, run_packed, rnn, x, lengths)}
                    med = measure(fns, ("fwdbwd",), args.warmup, args.repeats, timed, stat)
                    a, b = med["padded", "fwdbwd"], med["packed", "fwdbwd"]
                    print(f"{cell:>4} {threads:>3} {backend:>7} {B:>4} {T:>4} {H:>4} {a * 1e3:>10.1f} {b * 1e3:>10.1f} "
                          f"{a / b:>14.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads, each in turn")
    p.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--repeats", type=int, default=5, help="timed runs per model and pass (at least 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per model and pass first")
    p.add_argument("--shapes", nargs="+", default=SHAPES, metavar="B,T,I,H")
    p.add_argument("--stat", default="median", choices=["median", "min"], help="min is steadier on a busy machine")
    p.add_argument("--clock", default="wall", choices=["wall", "thread"],
                   help="thread: CPU time of this thread (only meaningful with --threads 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--eager", action="store_true", help="also time seqlab's plain autograd loop (fused=False)")
    p.add_argument("--encoder", action="store_true", help="time the encoder's padded vs packed paths instead")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda asked for, but torch.cuda.is_available() is False")
    if args.repeats < 5:
        p.error("--repeats must be at least 5 (medians of fewer runs are too noisy to compare)")
    if args.clock == "thread" and args.threads != [1]:
        p.error("--clock thread measures one thread's CPU time; use it with --threads 1")
    torch.set_flush_denormal(True)  # as training does (flush_denormal: true)
    torch.manual_seed(0)
    stat = statistics.median if args.stat == "median" else min
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads}, {args.clock} clock, "
          f"{args.stat} of {args.repeats} runs after {args.warmup} warm-up, load average {os.getloadavg()[0]:.2f}")
    timed = timer(args.clock, args.device)
    (bench_encoder_paths if args.encoder else bench_modules)(args, timed, stat)
    print(f"load average at the end {os.getloadavg()[0]:.2f} (timings are unreliable when it exceeds the threads)")


if __name__ == "__main__":
    main()
