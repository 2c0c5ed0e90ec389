"""seqlab.nn.LSTM vs torch.nn.LSTM: forward and forward+backward times (median), side by side in one run.

Both modules hold the same weights and see the same padded input (T, N, H_in); forward runs under no_grad,
forward+backward backpropagates a dense loss (sum of every output). Runs of the two are interleaved so that
load from other processes hits both alike; the load average is printed because it makes timings noisy.

Run: python scripts/bench_lstm.py [--threads 2 --repeats 5 --stat median --eager --device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from seqlab.nn import LSTM

SHAPES = ["64,256,100,256", "32,40,100,128"]  # B,T,I,H


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(models: dict, x: torch.Tensor, warmup: int, repeats: int, device: str, stat) -> dict:
    """stat (median or min) of the seconds per (model name, 'fwd' | 'fwdbwd'), runs of the models interleaved."""

    def forward(m):
        with torch.no_grad():
            m(x)

    def forward_backward(m):
        out, _ = m(x)
        out.sum().backward()

    times = {(name, kind): [] for name in models for kind in ("fwd", "fwdbwd")}
    for kind, fn in (("fwd", forward), ("fwdbwd", forward_backward)):
        for _ in range(warmup):
            for m in models.values():
                fn(m)
        for _ in range(repeats):
            for name, m in models.items():
                m.zero_grad(set_to_none=True)
                times[name, kind].append(timed(lambda m=m, fn=fn: fn(m), device))
    return {key: stat(v) for key, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per model and pass (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per model and pass first")
    p.add_argument("--shapes", nargs="+", default=SHAPES, metavar="B,T,I,H")
    p.add_argument("--stat", default="median", choices=["median", "min"], help="min is steadier on a busy machine")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--eager", action="store_true", help="also time seqlab's plain autograd loop (fused=False)")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda asked for, but torch.cuda.is_available() is False")

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
        f"{args.stat} of {args.repeats} runs after {args.warmup} warm-up, load average {os.getloadavg()[0]:.2f}"
    )
    names = ["torch", "seqlab"] + (["eager"] if args.eager else [])
    header = f"{'B':>4} {'T':>4} {'I':>4} {'H':>4} {'dir':>4} {'pass':>7} " + " ".join(
        f"{n + ' ms':>10}" for n in names
    )
    header += "  " + " ".join(f"{n + '/torch':>13}" for n in names[1:])
    print(header)
    print("-" * len(header))
    for shape in args.shapes:
        B, T, In, H = (int(v) for v in shape.split(","))
        for bidirectional in (False, True):
            ref = torch.nn.LSTM(In, H, bidirectional=bidirectional, device=args.device)
            models = {"torch": ref}
            for name in names[1:]:
                m = LSTM(In, H, bidirectional=bidirectional, device=args.device)
                m.load_state_dict(ref.state_dict())
                m.fused = name == "seqlab"
                models[name] = m
            x = torch.randn(T, B, In, device=args.device, requires_grad=True)
            stat = statistics.median if args.stat == "median" else min
            med = measure(models, x, args.warmup, args.repeats, args.device, stat)
            for kind in ("fwd", "fwdbwd"):
                row = f"{B:>4} {T:>4} {In:>4} {H:>4} {'bi' if bidirectional else 'uni':>4} {kind:>7} "
                row += " ".join(f"{med[n, kind] * 1e3:>10.1f}" for n in names)
                row += "  " + " ".join(f"{med[n, kind] / med['torch', kind]:>13.2f}" for n in names[1:])
                print(row, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f} (timings are unreliable when it exceeds --threads)")


if __name__ == "__main__":
    main()
