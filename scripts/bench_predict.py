"""Prediction speed: cold start of `scripts/predict.py` for one text, and throughput on a file of texts.

  python scripts/bench_predict.py --ckpt outputs/runs/<run>/checkpoints/best-....ckpt --input reviews.txt --runs 9

Prints, as medians over --runs:
  cold start   wall time of the command for one short text (interpreter start, imports, checkpoint, spaCy, output)
  file         wall time of the command for --input (one text per line), texts/s over the whole command and after
               start-up (the file's time less the cold start's)
  in process   after start-up, texts/s and tokens/s of Predictor.predict (tokenizing, then the model, one process)
               and of predict_stream with a TokenizerProcess (as the command runs: the next --chunk is tokenized
               in a child process while the model runs on this one)
Each command runs in a fresh process, as a user would run it; measure on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

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
    parser.add_argument("--chunk", type=int, default=None, help="predict's chunk setting (default: predict.yaml's)")
    args = parser.parse_args()
    common = [f"ckpt={args.ckpt}", f"threads={args.threads}"] + ([f"chunk={args.chunk}"] if args.chunk else [])

    cold = [timed_command([*common, f"text={TEXT}"]) for _ in range(args.runs)]
    print(f"cold start, one text: median {statistics.median(cold):.2f} s (min {min(cold):.2f}, max {max(cold):.2f}, "
          f"{args.runs} runs)")
    if not args.input:
        return
    from seqlab.inference import read_lines

    texts = list(read_lines(args.input))  # as the command reads them (str.splitlines also splits at U+2028, ...)
    whole = [timed_command([*common, f"input={args.input}"]) for _ in range(args.runs)]
    med = statistics.median(whole)
    after = med - statistics.median(cold)
    print(f"command, {len(texts):,} texts: median {med:.2f} s, {len(texts) / med:,.0f} texts/s including start-up, "
          f"{len(texts) / after:,.0f} texts/s after it ({after:.2f} s)")

    from seqlab.data.tokenize import TokenizerProcess
    from seqlab.inference import Predictor
    from seqlab.threads import configure

    tokenizer = TokenizerProcess() if TokenizerProcess.available else None
    predictor = Predictor.from_checkpoint(args.ckpt)
    configure(int(args.threads) if args.threads.isdigit() else args.threads)
    chunk = args.chunk or int(yaml.safe_load((REPO / "configs/predict.yaml").read_text())["chunk"])
    ways = {"predict (one process)": lambda: predictor.predict(texts)}
    if tokenizer is not None:
        ways[f"predict_stream, chunk {chunk}, tokenizer process"] = lambda: list(
            predictor.predict_stream(texts, chunk=chunk, tokenizer=tokenizer))
    for way in ways.values():
        way()  # spaCy and the model warmed up, as after the command's start-up
    runs: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):  # interleaved
        for name, way in ways.items():
            start = time.perf_counter()
            preds = way()
            runs[name].append(time.perf_counter() - start)
    tokens = sum(len(p.tokens) for p in preds)
    for name, times in runs.items():
        med = statistics.median(times)
        print(f"in process, {name}, {len(texts):,} texts ({tokens:,} tokens): median {med:.2f} s, "
              f"{len(texts) / med:,.0f} texts/s, {tokens / med:,.0f} tokens/s")
    if tokenizer is not None:
        tokenizer.close()


if __name__ == "__main__":
    main()
