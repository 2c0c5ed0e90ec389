"""Prediction speed: cold start of `scripts/predict.py` for one text, and throughput on a file of texts.

  python scripts/bench_predict.py --ckpt outputs/runs/<run>/checkpoints/best-....ckpt --input reviews.txt --runs 9

Prints, as medians over --runs:
  cold start   wall time of the command for one short text (interpreter start, imports, checkpoint, spaCy, output)
  file         wall time of the command for --input (one text per line), and texts/s over the whole command
  in process   Predictor.predict on the --input texts after start-up (tokenizing + the model): texts/s and tokens/s
Each command runs in a fresh process, as a user would run it; measure on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT = "A moving film; I loved every minute of it."


def timed_command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts/predict.py"), *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by scripts/train.py")
    parser.add_argument("--input", help="a file with one text per line (e.g. 1,000 IMDB test reviews)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--threads", default="auto", help="predict's threads setting (default auto)")
    args = parser.parse_args()
    common = [f"ckpt={args.ckpt}", f"threads={args.threads}"]

    cold = [timed_command([*common, f"text={TEXT}"]) for _ in range(args.runs)]
    print(f"cold start, one text: median {statistics.median(cold):.2f} s (min {min(cold):.2f}, max {max(cold):.2f}, "
          f"{args.runs} runs)")
    if not args.input:
        return
    texts = Path(args.input).read_text(encoding="utf-8").splitlines()
    whole = [timed_command([*common, f"input={args.input}"]) for _ in range(args.runs)]
    med = statistics.median(whole)
    print(f"command, {len(texts):,} texts: median {med:.2f} s, {len(texts) / med:,.0f} texts/s including start-up")

    from seqlab.inference import Predictor
    from seqlab.threads import configure

    predictor = Predictor.from_checkpoint(args.ckpt)
    configure(int(args.threads) if args.threads.isdigit() else args.threads)
    predictor.predict(texts[:32])  # spaCy and the model warmed up, as after the command's start-up
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        preds = predictor.predict(texts)
        runs.append(time.perf_counter() - start)
    med = statistics.median(runs)
    tokens = sum(len(p.tokens) for p in preds)
    print(f"in process, {len(texts):,} texts ({tokens:,} tokens): median {med:.2f} s, {len(texts) / med:,.0f} "
          f"texts/s, {tokens / med:,.0f} tokens/s")


if __name__ == "__main__":
    main()
