"""Use a trained checkpoint on raw text: load it self-contained, encode text, predict in length-sorted batches.

A checkpoint written by `scripts/train.py` carries the model's hyperparameters and weights plus `checkpoint["seqlab"]`
(vocabulary, labels, lowercase, max_length, tokenizer; character vocabulary for tagging), so nothing here needs the
dataset or the run's config. The import path stays light on purpose: no datamodule, no dataset, no cache is touched;
spaCy's tokenizer is built on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqlab.data.tokenize import tokenize
from seqlab.errors import ConfigError, DataError

TOKENIZERS = ("spacy-blank-en",)  # the `tokenizer` values this module knows how to reproduce
PAD_ID, UNK_ID = 0, 1


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


def load_model(checkpoint: str | Path | dict[str, Any], device: str | torch.device = "cpu"):
    """(SeqModel in eval mode on `device`, inference info) from a checkpoint file (or its dict) alone.

    The model is the trainer's own class, rebuilt from the saved hyperparameters: predictions cannot drift from
    what was trained and evaluated. (It imports Lightning, about half of `scripts/predict.py`'s start-up time.)
    """
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch sees no CUDA GPU here; use device=cpu.")
    ckpt = checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)
    from seqlab.models.module import SeqModel  # only once the checkpoint is known to be usable

    try:
        model = SeqModel(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as e:  # hyperparameters or weights this version's model does not have
        raise DataError(f"The checkpoint does not fit this version of seqlab's model ({str(e).splitlines()[0]}); "
                        "use the seqlab version that trained it.") from e
    model.on_load_checkpoint(ckpt)
    return model.to(device).eval(), ckpt["seqlab"]


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
    """Classification: `label`, `probability`. Tagging: `tags`, one per token. Empty input: neither."""

    tokens: list[str]
    label: str | None = None
    probability: float | None = None
    tags: list[str] | None = field(default=None)
    truncated: int = 0
    unknown: int = 0


class Predictor:
    """A checkpoint ready for raw text: `predict(texts)` tokenizes, batches by length and runs the model."""

    def __init__(self, model, info: dict[str, Any], device: str | torch.device = "cpu"):
        if info.get("tokenizer") not in TOKENIZERS:
            raise ConfigError(f"The checkpoint's tokenizer {info.get('tokenizer')!r} is not one of "
                              f"{', '.join(TOKENIZERS)}; predict with the seqlab version that trained it.")
        self.model, self.info, self.device = model, info, torch.device(device)
        self.task = info["task"]
        self.labels = list(info["labels"])
        self.lowercase, self.max_length = bool(info["lowercase"]), info.get("max_length")
        self.stoi = {t: i for i, t in enumerate(info["vocab"])}
        self.char_ids = None
        if getattr(model.encoder, "char_encoder", None) is not None:  # character features: ids from info["chars"]
            if not info.get("chars"):
                raise DataError("The checkpoint's model reads characters but the checkpoint has no character "
                                "vocabulary; retrain it with this seqlab version.")
            self.char_ids = {c: i for i, c in enumerate(info["chars"])}
        self.max_word_length = int(info.get("max_word_length") or 20)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        model, info = load_model(path, device)
        return cls(model, info, device)

    def encode(self, text: str) -> Encoded:
        """spaCy blank-English tokens of `text` (`<br />` removed), looked up as the model was trained."""
        tokens = tokenize(text, lowercase=False)
        truncated = 0
        if self.max_length is not None and len(tokens) > self.max_length:
            truncated, tokens = len(tokens) - self.max_length, tokens[:self.max_length]
        forms = [t.lower() for t in tokens] if self.lowercase else tokens
        ids = [self.stoi.get(f, UNK_ID) for f in forms]
        return Encoded(tokens, ids, forms, truncated, sum(i == UNK_ID for i in ids))

    def _batch(self, items: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """tokens (B, T), lengths (B,)[, chars (B, T, W)], right-padded like the training collate."""
        T = max(len(e.ids) for e in items)
        tokens = torch.full((len(items), T), PAD_ID, dtype=torch.int64)
        for i, e in enumerate(items):
            tokens[i, :len(e.ids)] = torch.tensor(e.ids)
        batch = {"tokens": tokens, "lengths": torch.tensor([len(e.ids) for e in items])}
        if self.char_ids is not None:
            W = self.max_word_length
            chars = torch.zeros(len(items), T, W, dtype=torch.int64)
            for i, e in enumerate(items):
                for j, form in enumerate(e.forms):
                    ids = [self.char_ids.get(c, UNK_ID) for c in form[:W]]
                    chars[i, j, :len(ids)] = torch.tensor(ids)
            batch["chars"] = chars
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.inference_mode()
    def predict(self, texts: Iterable[str], batch_size: int = 32) -> list[Prediction]:
        """One Prediction per text, in order. Texts are sorted by length and batched, so padding stays small."""
        encoded = [self.encode(t) for t in texts]
        out = [Prediction(e.tokens, truncated=e.truncated, unknown=e.unknown) for e in encoded]
        order = sorted((i for i, e in enumerate(encoded) if e.ids), key=lambda i: -len(encoded[i].ids))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self._batch([encoded[i] for i in idx])
            probs = self.model(batch["tokens"], batch["lengths"], batch.get("chars")).float().softmax(-1).cpu()
            p, label = probs.max(-1)
            for row, i in enumerate(idx):
                if self.task == "tagging":
                    out[i].tags = [self.labels[k] for k in label[row, :len(encoded[i].ids)].tolist()]
                else:
                    out[i].label, out[i].probability = self.labels[int(label[row])], float(p[row])
        return out

    def predict_stream(self, texts: Iterable[str], batch_size: int = 32, chunk: int = 2048) -> Iterator[Prediction]:
        """`predict` over an endless iterable, `chunk` texts at a time (length-sorted within each chunk)."""
        pending: list[str] = []
        for text in texts:
            pending.append(text)
            if len(pending) == chunk:
                yield from self.predict(pending, batch_size)
                pending = []
        if pending:
            yield from self.predict(pending, batch_size)


def as_record(p: Prediction, task: str) -> dict[str, Any]:
    """The JSON object of one prediction: {label, probability} or {tokens, tags}."""
    if task == "tagging":
        return {"tokens": p.tokens, "tags": p.tags or []}
    return {"label": p.label, "probability": None if p.probability is None else round(p.probability, 6)}


def as_text(p: Prediction, task: str) -> str:
    """A readable line: `pos 0.973` or `The/DET dog/NOUN barks/VERB ./PUNCT` (empty input: an empty line)."""
    if task == "tagging":
        return " ".join(f"{t}/{g}" for t, g in zip(p.tokens, p.tags or []))
    return "" if p.label is None else f"{p.label} {p.probability:.3f}"


def read_lines(source: str) -> Iterator[str]:
    """Lines of a UTF-8 file (`-`: stdin), without line endings; a byte that is not UTF-8 is a DataError."""
    import sys

    name = "stdin" if source == "-" else source
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
