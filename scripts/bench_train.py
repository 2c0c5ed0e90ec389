"""Framework tax: seqlab's `train()` against a plain hand-written PyTorch loop, same batches, same network.

Both train the same SeqNet (same seed, same initial weights) on the same first N training batches of IMDB (the
datamodule's loader: same bucketing, same collation), with the same maths: Adam, gradient clipping at
`trainer.gradient_clip_val`, flush-denormal, the exact padded CPU path. The hand loop is just
zero_grad / forward / loss / backward / clip / step. seqlab's run is `train()` itself, with everything a real run
has: Lightning's loop, logging, the progress bar, per-step seeding, the step checkpoint every 100 steps. Only the
training steps are timed (from the first batch's start to the last batch's end), in interleaved repeats; the
median tokens/s of each and their ratio are printed.

Both run with `reuse_memory` as --reuse-memory says (default true, as train.yaml; process-wide, so the hand loop
has it too); `--reuse-memory false` measures the allocator's default (glibc maps large blocks afresh each step). The
minor page faults per training step of each run are printed.

Run on an idle machine: python scripts/bench_train.py --root ../shared/data/imdb [--batches 150 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[1]


class StepTimer(pl.Callback):
    """Seconds from the first training batch's start to the last one's end, and the tokens trained on."""

    last: tuple[float, int] = (0.0, 0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.t0, self.tokens = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.tokens += int(batch["lengths"].sum())
        StepTimer.last = (time.perf_counter() - self.t0, self.tokens)


def compose(args, out_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return hydra_compose("train", overrides=[
            f"data.root={Path(args.root).resolve()}", f"data.max_length={args.max_length}", "data.batch_size=64",
            "model.embedding_dim=50", f"model.hidden_size={args.hidden}", "model.num_layers=1",
            f"threads={args.threads}", f"reuse_memory={getattr(args, 'reuse_memory', 'true')}",
            f"paths.output_dir={out_dir}", f"paths.cache_dir={args.cache_dir}",
            "trainer.max_epochs=1", f"trainer.limit_train_batches={args.batches}", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0",
            "+callbacks.timer._target_=__main__.StepTimer"])


def hand_loop(cfg) -> tuple[float, int]:
    """The plain loop over the same loader and network; returns (seconds, tokens)."""
    from seqlab.models.net import SeqNet
    from seqlab.train import build_datamodule

    torch.set_num_threads(int(cfg.threads))
    torch.set_flush_denormal(True)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    keys = ("embedding_dim", "hidden_size", "num_layers", "bidirectional", "dropout", "backend", "path", "pooling")
    net = SeqNet(dm.metadata, **{k: cfg.model[k] for k in keys}).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.optimizer.lr)
    clip = cfg.trainer.gradient_clip_val
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(0)
    tokens, t0 = 0, None
    for i, batch in enumerate(loader):
        if i == cfg.trainer.limit_train_batches:
            break
        t0 = t0 or time.perf_counter()
        opt.zero_grad()
        loss = net.head.loss(net(batch["tokens"], batch["lengths"]), batch["labels"], batch["lengths"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        tokens += int(batch["lengths"].sum())
    return time.perf_counter() - t0, tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(REPO.parent / "shared/data/imdb"))
    p.add_argument("--cache-dir", default=os.environ.get("SEQLAB_CACHE_DIR", str(Path("~/.cache/seqlab").expanduser())))
    p.add_argument("--batches", type=int, default=150)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--max-length", type=int, default=400)
    p.add_argument("--reuse-memory", choices=("true", "false"), default="true")
    args = p.parse_args()
    sys.modules.setdefault("__main__", sys.modules[__name__])
    from seqlab.allocator import reuse_freed_memory
    from seqlab.train import train

    if args.reuse_memory == "true":
        reuse_freed_memory()  # train() would set it at its first call; the hand loop may run first

    rates: dict[str, list[float]] = {"hand loop": [], "seqlab": []}
    for r in range(args.repeats):
        for name in (("hand loop", "seqlab") if r % 2 == 0 else ("seqlab", "hand loop")):
            with tempfile.TemporaryDirectory() as out:
                cfg = compose(args, Path(out))
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                if name == "seqlab":
                    train(cfg)
                    seconds, tokens = StepTimer.last
                else:
                    seconds, tokens = hand_loop(cfg)
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.batches
            rates[name].append(tokens / seconds)
            print(f"repeat {r + 1} {name:>9}: {tokens:,} tokens in {seconds:.2f} s = {tokens / seconds:,.0f} tokens/s"
                  f" ({faults:,.0f} page faults per batch, data and set-up included)", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nmedian tokens/s: hand loop {med['hand loop']:,.0f}, seqlab {med['seqlab']:,.0f}; "
          f"seqlab / hand loop = {med['seqlab'] / med['hand loop']:.3f} ({args.batches} batches, {args.threads} "
          f"threads, reuse_memory={args.reuse_memory}, load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
