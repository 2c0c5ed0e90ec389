"""Metadata: everything the data determines that the model, the checkpoint and prediction need.

One object flows one way: the datamodule produces it, the model is built from it, the checkpoint stores it
(`to_dict()`: plain types, so `torch.load(weights_only=True)` reads it back) and `eval.py` / `predict.py` rebuild it
with `from_dict()`. Nothing here is typed into a yaml.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from seqlab.data.vocab import PAD_INDEX, UNK_INDEX

FORMAT = 2  # bump when a field changes meaning; checkpoints of another format are refused with a clear message


@dataclass
class Metadata:
    """The bridge datamodule -> model -> checkpoint -> inference.

    Attributes:
        task: the task's registered name (`classification`, `tagging`, ...) or an import path `pkg.module:Class`.
        vocab: the kept vocabulary, id -> token; ids 0 and 1 are `<pad>` and `<unk>`.
        labels: label (class or tag) names, id -> name, from the training data alone.
        tokenizer: how raw text becomes tokens at prediction time (`spacy:en`, `spacy:de`, `whitespace`).
        lowercase: tokens were lowercased before the vocabulary lookup.
        max_length: sequences were cut to this many tokens (None: not cut).
        chars: character vocabulary (`<pad>` 0, `<unk>` 1) when the data provides word characters, else None.
        max_word_length: characters per word seen by a character encoder.
        dataset: a name for logs and checkpoints (`imdb`, `pos`, `text`, ...).
        task_options: settings the task needs to decode and score (e.g. a tag scheme), plain types.
    """

    task: str
    vocab: list[str]
    labels: list[str]
    tokenizer: str = "spacy:en"
    lowercase: bool = False
    max_length: int | None = None
    chars: list[str] | None = None
    max_word_length: int = 20
    dataset: str = ""
    task_options: dict[str, Any] = field(default_factory=dict)

    pad_index = PAD_INDEX
    unk_index = UNK_INDEX

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def num_chars(self) -> int | None:
        return None if self.chars is None else len(self.chars)

    def make_task(self):
        """The task object (head, loss, metrics, outputs) for these labels."""
        from seqlab.tasks import get_task

        return get_task(self.task)(self.labels, **self.task_options)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metadata:
        """The inverse of `to_dict`; a checkpoint of another seqlab version is one clear error."""
        from seqlab.errors import DataError

        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError("The checkpoint was written by another version of seqlab (its metadata format differs); "
                            "retrain the model or use the seqlab version that trained it.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
