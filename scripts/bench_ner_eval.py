"""Is evaluation with the CRF head a bottleneck? Times one validation pass over BTC dev, per phase, per head.

    python scripts/bench_ner_eval.py                          # ../shared/data/btc, btc_cpu's model sizes, 1 thread
    python scripts/bench_ner_eval.py --threads 2 --rounds 5

For the linear (softmax) and the CRF head on the same BiLSTM + char BiLSTM encoder (untrained weights: the cost does
not depend on them), one pass over the dev batches is split into: the network's forward (embedding, encoder,
emissions), decoding (argmax vs Viterbi with the BIOES constraints) and the evaluator's update (span extraction and
SpanF1 / token counts, in Python per sentence). Heads are interleaved in rounds and the median per phase is
printed, so figures taken on a busy machine still compare; measure on an idle one. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from seqlab.data.conll import ConllDataModule
from seqlab.models.net import SeqNet

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/btc"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    root = Path(args.root)
    cache = os.environ.get("SEQLAB_CACHE_DIR", str(Path.home() / ".cache/seqlab"))
    dm = ConllDataModule(cache_dir=cache, train_file=str(root / "btc.train"),
                         val_file=str(root / "btc.dev"), sep="tab", train_scheme="BIOES",
                         eval_batch_size=args.eval_batch_size)
    dm.prepare_data()
    dm.setup()
    batches = list(dm.val_dataloader())
    tokens = sum(int(b["lengths"].sum()) for b in batches)
    sizes = dict(embedding_dim=50, hidden_size=100, dropout=0.5, char_encoder="lstm", char_dim=25, char_hidden=25)
    torch.manual_seed(0)
    nets = {head: SeqNet(dm.metadata, head=head, **sizes).eval() for head in ("linear", "crf")}
    times = {(h, p): [] for h in nets for p in ("forward", "decode", "evaluate")}
    for _ in range(args.rounds):
        for head, net in nets.items():
            ev = net.task.evaluator("val")
            with torch.inference_mode():
                for b in batches:
                    t0 = time.perf_counter()
                    scores = net(b["tokens"], b["lengths"], b["chars"])
                    t1 = time.perf_counter()
                    preds = net.head.decode(scores, b["lengths"])
                    t2 = time.perf_counter()
                    net.task.update(ev, preds, b)
                    t3 = time.perf_counter()
                    for phase, dt in zip(("forward", "decode", "evaluate"), (t1 - t0, t2 - t1, t3 - t2)):
                        times[head, phase].append(dt)
            ev.compute()
    print(f"BTC dev: {len(batches)} batches, {tokens:,} tokens, {args.threads} thread(s), {args.rounds} rounds "
          "(median pass per phase)")
    n = len(batches)
    for head in nets:
        per = {p: statistics.median(sum(times[head, p][r * n:(r + 1) * n]) for r in range(args.rounds))
               for p in ("forward", "decode", "evaluate")}
        total = sum(per.values())
        parts = ", ".join(f"{p} {s * 1e3:8.1f} ms ({100 * s / total:4.1f}%)" for p, s in per.items())
        print(f"{head:>6}: {parts}; pass {total * 1e3:.1f} ms = {tokens / total:,.0f} tokens/s")


if __name__ == "__main__":
    main()
