"""Use a trained checkpoint on raw text: load it self-contained, encode text, predict in length-sorted batches.

A checkpoint written by `scripts/train.py` carries the model's hyperparameters and weights plus its metadata
(`checkpoint["seqlab"]`: vocabulary, labels, task, tokenizer, lowercase, max_length, characters), so nothing here
needs the dataset or the run's config. The import path stays light on purpose: the network is the plain-PyTorch
`SeqNet` (no Lightning), no datamodule, dataset or cache is touched, and the tokenizer (spaCy) is built on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlab.data.chars import encode_chars
from seqlab.data.collate import pad
from seqlab.data.tokenize import TokenizerProcess, canonical, get_tokenizer
from seqlab.data.vocab import PAD, PAD_INDEX, UNK_INDEX
from seqlab.errors import ConfigError, DataError
from seqlab.metadata import Metadata


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict, after checking it is a seqlab checkpoint (weights_only: no code runs on load)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"Checkpoint {path} not found; give ckpt=PATH to a .ckpt file written by scripts/train.py.")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a text file, a truncated download, a pickle of arbitrary objects, ...
        raise DataError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}); give a .ckpt file "
                        "written by scripts/train.py.") from e
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("seqlab"), dict) and "state_dict" in ckpt
            and "hyper_parameters" in ckpt):
        raise DataError(f"{path} is not a seqlab checkpoint (it carries no vocabulary and labels); use one written "
                        "by scripts/train.py.")
    return ckpt


def _device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA GPU here; use device=cpu.")
    return device


def load_net(checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu"):
    """(SeqNet in eval mode on `device`, Metadata) from a checkpoint file (or its dict) alone.

    The network is the one the trainer trained (its LightningModule holds it as `net`), rebuilt from the saved
    hyperparameters and metadata: predictions cannot drift from what was trained and evaluated.
    """
    device = _device(device)
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    from seqlab.models.net import SeqNet  # only once the checkpoint is known to be usable

    metadata = Metadata.from_dict(ckpt["seqlab"].get("metadata"))
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net = SeqNet.from_hparams(metadata, dict(ckpt["hyper_parameters"]))
        net.load_state_dict(state)
    except (ConfigError, RuntimeError) as e:  # hyperparameters or weights this version's model does not have
        raise DataError(f"The checkpoint does not fit this version of seqlab's model ({str(e).splitlines()[0]}); "
                        "use the seqlab version that trained it.") from e
    return net.to(device).eval(), metadata


@dataclass
class Encoded:
    """One input text: `tokens` as written (truncated to the model's max_length), their ids, what was dropped."""

    tokens: list[str]
    ids: list[int]
    forms: list[str]  # the tokens as looked up (lowercased when the model was trained lowercased)
    truncated: int = 0  # tokens beyond max_length, not seen by the model
    unknown: int = 0  # tokens outside the vocabulary (<unk>)


@dataclass
class Prediction:
    """`record`: the task's JSON object for this input (e.g. {label, probability} or {tokens, tags})."""

    tokens: list[str]
    record: dict[str, Any]
    truncated: int = 0
    unknown: int = 0


class Predictor:
    """A checkpoint ready for raw text: `predict(texts)` tokenizes, batches by length and runs the network."""

    def __init__(self, net, metadata: Metadata, device: str | torch.device = "cpu", tokenizer: str | None = None):
        self.net, self.metadata, self.device = net, metadata, torch.device(device)
        self.task = net.task
        # errors name the setting the spec came from: predict's `tokenizer`, else the checkpoint's own
        self.tokenizer_key = "tokenizer" if tokenizer else "the checkpoint's data.tokenizer"
        self.tokenizer_spec = canonical(tokenizer or metadata.tokenizer, self.tokenizer_key)
        self.max_length = metadata.max_length
        self.stoi = {t: i for i, t in enumerate(metadata.vocab)}
        if getattr(net.encoder, "char_encoder", None) is not None and not metadata.chars:
            raise DataError("The checkpoint's model reads characters but the checkpoint has no character vocabulary; "
                            "retrain it with this seqlab version.")

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu",
                        tokenizer: str | None = None) -> Predictor:
        net, metadata = load_net(path, device)
        return cls(net, metadata, device, tokenizer)

    def tokenizer(self) -> Callable[[str], list[str]]:
        """The function text -> tokens (built on first use: spaCy's import takes a while)."""
        return get_tokenizer(self.tokenizer_spec, self.tokenizer_key)

    def encode(self, text: str) -> Encoded:
        """Tokens of `text` (the model's tokenizer), looked up as the model was trained."""
        return self.encode_tokens(self.tokenizer()(text))

    def encode_tokens(self, tokens: list[str]) -> Encoded:
        """`tokens` (as the model's tokenizer splits text), truncated to max_length and looked up."""
        truncated = 0
        if self.max_length is not None and len(tokens) > self.max_length:
            truncated, tokens = len(tokens) - self.max_length, tokens[:self.max_length]
        forms = [t.lower() for t in tokens] if self.metadata.lowercase else tokens
        ids = [self.stoi.get(f, UNK_INDEX) for f in forms]
        return Encoded(tokens, ids, forms, truncated, sum(i == UNK_INDEX for i in ids))

    def _batch(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """tokens (B, T), lengths (B,)[, chars (B, T, W)], right-padded like the training collate."""
        batch = {"tokens": pad([torch.tensor(e.ids) for e in items], PAD_INDEX),
                 "lengths": torch.tensor([len(e.ids) for e in items])}
        if self.net.encoder.char_encoder is not None:
            T, W = batch["tokens"].size(1), self.metadata.max_word_length
            rows = [encode_chars(e.forms + [PAD] * (T - len(e.forms)), self.metadata.chars, W) for e in items]
            batch["chars"] = torch.stack(rows)
        return {k: v.to(self.device) for k, v in batch.items()}

    def predict(self, texts: Iterable[str], batch_size: int = 32) -> list[Prediction]:
        """One Prediction per text, in order. Texts are sorted by length and batched, so padding stays small."""
        return self.predict_encoded([self.encode(t) for t in texts], batch_size)

    @torch.inference_mode()
    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int = 32) -> list[Prediction]:
        """`predict` for texts already encoded (`encode` / `encode_tokens`)."""
        out = [Prediction(e.tokens, self.task.empty_record(e.tokens), e.truncated, e.unknown) for e in encoded]
        order = sorted((i for i, e in enumerate(encoded) if e.ids), key=lambda i: -len(encoded[i].ids))
        head = self.net.head
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self._batch([encoded[i] for i in idx])
            scores = self.net(batch["tokens"], batch["lengths"], batch.get("chars"))
            preds = head.decode(scores, batch["lengths"])
            confidence = head.confidence(scores, preds, batch["lengths"])
            preds, confidence = preds.cpu(), confidence.cpu()
            for row, i in enumerate(idx):
                out[i].record = self.task.record(encoded[i].tokens, preds[row], confidence[row])
        return out

    def predict_stream(self, texts: Iterable[str], batch_size: int = 32, chunk: int = 2048,
                       tokenizer: TokenizerProcess | None = None) -> Iterator[Prediction]:
        """`predict` over an endless iterable, `chunk` texts at a time (length-sorted within each chunk). With a
        `tokenizer` process (the model's tokenizer being spaCy), the next chunk is tokenized there while the model
        runs on this one."""
        chunks = _chunks(texts, chunk)
        if tokenizer is None or self.tokenizer_spec == "whitespace":
            for texts_ in chunks:
                yield from self.predict(texts_, batch_size)
            return
        for tokens in tokenizer.imap(self.tokenizer_spec, chunks, self.tokenizer_key):
            yield from self.predict_encoded([self.encode_tokens(t) for t in tokens], batch_size)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    pending: list[str] = []
    for item in items:
        pending.append(item)
        if len(pending) == size:
            yield pending
            pending = []
    if pending:
        yield pending


def read_lines(source: str) -> Iterator[str]:
    """Lines of a UTF-8 file (`-`: stdin), without line endings; a byte that is not UTF-8 is a DataError."""
    import sys

    name = "stdin" if source == "-" else source
    if source != "-" and Path(source).expanduser().is_dir():
        raise DataError(f"Input {source} is a folder; give input=FILE (one text per line) or input=- for stdin.")
    if source != "-" and not Path(source).expanduser().is_file():
        raise DataError(f"Input file {source} not found; give input=FILE (one text per line) or input=- for stdin.")
    stream = sys.stdin.buffer if source == "-" else open(Path(source).expanduser(), "rb")  # noqa: SIM115
    try:
        for n, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{name} line {n} is not valid UTF-8 (byte {e.start + 1}); save the input as "
                                "UTF-8.") from None
            line = line.rstrip("\r\n")
            yield line.removeprefix("\ufeff") if n == 1 else line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
