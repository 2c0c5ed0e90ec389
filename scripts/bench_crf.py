"""Time the CRF head against a plain softmax head on a BTC-like batch (prints figures; not a test).

    python scripts/bench_crf.py                       # B=32, T=40, 7 and 13 tags, 1 thread, CPU
    python scripts/bench_crf.py --threads 2 --device cuda

Per batch: loss forward+backward (token-mean cross-entropy vs CRF NLL, both back into the emissions and the
projection that makes them) and decoding (argmax vs Viterbi, free and with BIOES/IOB2 constraints), next to a
BiLSTM encoder's forward for scale (is decoding an evaluation bottleneck?). Cases are interleaved in rounds and
the median per case is reported, so figures taken on a busy machine still compare; measure on an idle one.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn
from torch.utils.benchmark import Timer

from seqlab.models.crf import CRF, lengths_to_mask
from seqlab.tasks.schemes import allowed_transitions, labels_for

SCHEMES = {7: ("IOB2", ["LOC", "ORG", "PER"]), 13: ("BIOES", ["LOC", "ORG", "PER"])}  # BTC's 3 types


def cases(n_tags: int, batch: int, length: int, hidden: int, device: str) -> dict:
    """name -> zero-argument callable, all on one BTC-like batch (lengths 5..length, one of full length)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, length + 1, (batch,), generator=g)
    lengths[0] = length
    mask = lengths_to_mask(lengths, length).to(device)
    feats = torch.randn(batch, length, 2 * hidden, generator=g).to(device)
    proj = nn.Linear(2 * hidden, n_tags).to(device)
    tags = torch.randint(0, n_tags, (batch, length), generator=g).to(device).masked_fill(~mask, -100)
    scheme, types = SCHEMES.get(n_tags, ("BIOES", [f"T{i}" for i in range((n_tags - 1) // 4)]))
    labels = labels_for(types, scheme)
    crf = CRF(n_tags).to(device)
    constrained = CRF(n_tags, allowed_transitions(labels, scheme) if len(labels) == n_tags else None).to(device)
    ce = nn.CrossEntropyLoss(ignore_index=-100)
    encoder = nn.LSTM(100, hidden, batch_first=True, bidirectional=True).to(device)
    words = torch.randn(batch, length, 100, generator=g).to(device)

    def softmax_loss():
        ce(proj(feats).flatten(0, 1), tags.flatten()).backward()

    def crf_loss():
        crf(proj(feats), tags, mask).backward()

    @torch.no_grad()
    def argmax():
        return proj(feats).argmax(-1)

    @torch.no_grad()
    def viterbi(model=crf):
        return model.decode(proj(feats), mask)

    @torch.no_grad()
    def encode():
        packed = nn.utils.rnn.pack_padded_sequence(words, lengths, batch_first=True, enforce_sorted=False)
        return encoder(packed)

    return {"softmax loss fwd+bwd": softmax_loss, "CRF NLL fwd+bwd": crf_loss, "argmax decode": argmax,
            "Viterbi decode": viterbi, f"Viterbi decode ({scheme} constraints)": lambda: viterbi(constrained),
            f"BiLSTM 100->2x{hidden} forward (scale)": encode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--tags", type=int, nargs="+", default=[7, 13])
    ap.add_argument("--hidden", type=int, default=128, help="encoder size per direction (features are 2x)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.2, help="time per case per round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s), B={args.batch}, T={args.length}; "
          f"ms per batch, median of {args.rounds} interleaved rounds")
    for n_tags in args.tags:
        fns = cases(n_tags, args.batch, args.length, args.hidden, args.device)
        for fn in fns.values():  # warm-up
            fn()
        times = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                m = Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=args.seconds)
                times[name].append(m.median * 1e3)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"\n{n_tags} tags")
        base = {"loss": med["softmax loss fwd+bwd"], "decode": med["argmax decode"]}
        for name, ms in med.items():
            kind = "loss" if "loss" in name or "NLL" in name else "decode"
            ratio = f"{ms / base[kind]:6.2f}x {'softmax loss' if kind == 'loss' else 'argmax'}"
            print(f"  {name:<40} {ms:9.3f} ms   {ratio}")
        btc_test_batches = -(-2001 // args.batch)
        print(f"  Viterbi over BTC test ({btc_test_batches} batches): {med['Viterbi decode'] * btc_test_batches:.0f} ms"
              f" (argmax {med['argmax decode'] * btc_test_batches:.0f} ms)")


if __name__ == "__main__":
    main()
