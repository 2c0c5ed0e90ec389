"""Why the classic CPU recipe is slow: nn.LSTM forward+backward per path, input form and loss, side by side.

Three switches, every combination timed in one process, the combinations interleaved round by round so that load
from other processes hits them alike (the load average is printed: on a busy machine the figures are noisy):

- input: `packed` (pack_padded_sequence, the classic recipe; also what cuDNN and the custom backend run) or
  `padded` (seqlab's exact padded path, `seqlab.models.encoder.run_padded`: the reverse direction reads each
  sequence reversed within its own length, so padding never reaches a real position);
- loss: on the final states `h_n` only (a classifier on h_n) or on every output;
- `torch.set_flush_denormal` off or on: backward through time from h_n alone drives gradients into denormal floats,
  which x86 handles many times slower unless they are flushed to zero (seqlab's `flush_denormal: true`).

The table gives the median seconds per training step and each row's ratio to the fastest; the two lines after it are
the README's figures (packed vs padded with flushing on, loss on outputs; h_n loss with flushing off vs on).

Run: python scripts/bench_cpu_paths.py [--threads 1] [--batch 64 --steps 256 --input 50 --hidden 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time

import torch
from torch import nn

from seqlab.models.encoder import run_packed, run_padded


def step(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, path: str, loss_on: str) -> None:
    """One forward+backward of `lstm` over the padded batch x (B, T, I) with true `lengths` (B,)."""
    lstm.zero_grad(set_to_none=True)
    outputs, final = (run_packed if path == "packed" else run_padded)(lstm, x, lengths)
    if loss_on == "h_n":
        final.sum().backward()
    else:  # every real step's outputs (padding masked)
        mask = torch.arange(x.size(1))[None, :, None] < lengths[:, None, None]
        (outputs * mask).sum().backward()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1: figures comparable on a busy CPU)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=256, help="longest sequence; lengths are drawn from [steps/2, steps]")
    p.add_argument("--input", type=int, default=50, help="input size (the embedding dimension)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--unidirectional", action="store_true", help="default: bidirectional, as the bilstm model")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported), after one warm-up round")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = torch.randn(a.batch, a.steps, a.input)
    lengths = torch.randint(a.steps // 2, a.steps + 1, (a.batch,))
    lengths[0] = a.steps
    lstm = nn.LSTM(a.input, a.hidden, batch_first=True, bidirectional=not a.unidirectional)
    combos = list(itertools.product((False, True), ("packed", "padded"), ("h_n", "outputs")))
    times: dict[tuple, list[float]] = {c: [] for c in combos}
    flush_supported = torch.set_flush_denormal(True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {a.threads}, "
          f"load average {os.getloadavg()[0]:.2f}; B={a.batch} T<={a.steps} I={a.input} H={a.hidden} "
          f"{'uni' if a.unidirectional else 'bi'}directional; flush_denormal supported: {flush_supported}")
    for round_ in range(a.repeats + 1):
        for flush, path, loss_on in combos:
            torch.set_flush_denormal(flush)
            start = time.perf_counter()
            step(lstm, x, lengths, path, loss_on)
            if round_:  # round 0 warms up
                times[flush, path, loss_on].append(time.perf_counter() - start)
    torch.set_flush_denormal(False)
    median = {c: statistics.median(t) for c, t in times.items()}
    fastest = min(median.values())
    print(f"{'flush_denormal':>14} {'input':>7} {'loss on':>8} {'s/step':>8} {'x fastest':>10}")
    for (flush, path, loss_on), s in median.items():
        print(f"{flush!s:>14} {path:>7} {loss_on:>8} {s:8.3f} {s / fastest:10.1f}")
    print(f"packed vs padded input (flush on, loss on outputs): "
          f"{median[True, 'packed', 'outputs'] / median[True, 'padded', 'outputs']:.1f}x slower")
    print(f"loss on h_n, flush_denormal off vs on (padded input): "
          f"{median[False, 'padded', 'h_n'] / median[True, 'padded', 'h_n']:.1f}x slower")
    print(f"classic recipe (packed, h_n, no flush) vs seqlab's (padded, flush): "
          f"{median[False, 'packed', 'h_n'] / median[True, 'padded', 'h_n']:.1f}x slower")


if __name__ == "__main__":
    main()
