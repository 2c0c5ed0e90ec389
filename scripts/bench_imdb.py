"""Training throughput on real IMDB batches: seqlab's path vs the classic recipe, same model, same batches.

seqlab: padded batch, exact reverse direction (reversed within length), flush-denormal on.
classic: pack_padded_sequence -> nn.LSTM -> loss from h_n, default float settings.
Both compute the same function; the script checks that logits and gradients agree, then prints tokens/s
(median over interleaved repeats, threads pinned).

Run: python scripts/bench_imdb.py --root ../shared/data/imdb [--batches 20 --threads 2]
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from seqlab.data.imdb import IMDBDataModule
from seqlab.models.encoder import run_packed, run_padded
from seqlab.models.module import SeqModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/imdb")
    p.add_argument("--cache-dir", default=str(Path("~/.cache/seqlab").expanduser()))
    p.add_argument("--batches", type=int, default=12, help="training batches per path and repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dm = IMDBDataModule(root=args.root, cache_dir=args.cache_dir, batch_size=64, seed=0, max_size=25000, min_freq=2)
    dm.prepare_data()
    dm.setup()
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(args.batches)]
    tokens = sum(int(b["lengths"].sum()) for b in batches)
    model = SeqModel(dm.metadata, embedding_dim=100, hidden_size=args.hidden, num_layers=args.layers,
                     bidirectional=True, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def logits(path, b):
        enc = model.net.encoder
        out, final = path(enc.rnn, enc.embedding(b["tokens"]), b["lengths"])
        return model.net.head.linear(final)

    # same function: compare logits and gradients on one batch
    grads = {}
    for name, path in (("seqlab", run_padded), ("classic", run_packed)):
        model.zero_grad()
        out = logits(path, batches[0])
        torch.nn.functional.cross_entropy(out, batches[0]["labels"]).backward()
        grads[name] = (out.detach(), [q.grad.clone() for q in model.parameters() if q.grad is not None])
    dl = (grads["seqlab"][0] - grads["classic"][0]).abs().max().item()
    dg = max((a - b).abs().max().item() for a, b in zip(grads["seqlab"][1], grads["classic"][1]))
    print(f"same batch: max |logit diff| = {dl:.2e}, max |grad diff| = {dg:.2e}")

    def run(path, flush):
        torch.set_flush_denormal(flush)
        t = time.perf_counter()
        for b in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(logits(path, b), b["labels"]).backward()
            opt.step()
        return tokens / (time.perf_counter() - t)

    rates = {"seqlab (padded, exact reverse, flush-denormal)": [], "classic (packed, h_n, default floats)": []}
    for r in range(args.repeats):
        rates["seqlab (padded, exact reverse, flush-denormal)"].append(run(run_padded, True))
        rates["classic (packed, h_n, default floats)"].append(run(run_packed, False))
        print(f"repeat {r}: " + ", ".join(f"{k.split()[0]} {v[-1]:.0f} tokens/s" for k, v in rates.items()), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{args.batches} batches x {args.repeats} repeats, {tokens} tokens per repeat, {args.threads} threads, "
          f"BiLSTM {args.layers}x{args.hidden}")
    for k, v in med.items():
        print(f"  {k:48s} {v:10.0f} tokens/s")
    a, b = med.values()
    print(f"  speed-up: {a / b:.1f}x")


if __name__ == "__main__":
    main()
