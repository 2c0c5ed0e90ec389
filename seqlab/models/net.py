"""The network: embedding (+ character features) -> recurrent encoder -> the task's head. Plain PyTorch.

`SeqNet` is what a checkpoint holds and what prediction runs; the LightningModule (`seqlab.models.module`) wraps it
for training. It is built from the metadata (vocabulary, labels, task) and the model config's architecture keys.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqlab.arguments import check_positive_int
from seqlab.errors import ConfigError
from seqlab.metadata import Metadata
from seqlab.models.chars import CHAR_ENCODERS
from seqlab.models.encoder import BACKENDS, CELLS, PATHS, LSTMEncoder
from seqlab.models.regularizers import adversarial_settings, check_regularizers, locked_rates

# model-config keys that are about training, not the network (SeqModel takes them; SeqNet never sees them)
TRAINING_KEYS = ("optimizer", "scheduler", "vectors", "extend_vocab", "monitor", "swa")


def check_architecture(cfg: dict[str, Any]) -> None:
    """ConfigError naming the model.* key of a bad architecture value."""
    for key in ("embedding_dim", "hidden_size", "num_layers", "char_dim", "char_hidden"):
        check_positive_int(f"model.{key}", cfg[key])
    if isinstance(cfg["dropout"], bool) or not isinstance(cfg["dropout"], (int, float)) \
            or not 0.0 <= float(cfg["dropout"]) < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg['dropout']!r}.")
    for key, allowed in (("backend", tuple(BACKENDS)), ("cell", tuple(CELLS)), ("path", PATHS),
                         ("char_encoder", (None, *CHAR_ENCODERS))):
        if cfg[key] not in allowed:
            raise ConfigError(f"model.{key} must be one of {', '.join(map(str, allowed))}; got {cfg[key]!r}.")
    for key in ("bidirectional", "freeze_embeddings", "crf_constraints"):
        if not isinstance(cfg[key], bool):
            raise ConfigError(f"model.{key} must be true or false, got {cfg[key]!r}.")
    check_regularizers(cfg)


class SeqNet(nn.Module):
    """tokens (B, T) + lengths (B,) [+ chars (B, T, W)] -> the head's scores ((B, C) or (B, T, C)).

    `head` (`self.head`) also gives the loss and the decoding: see seqlab.models.heads for the interface.
    `forward` is `from_embeddings(embed(tokens), tokens, ...)`: adversarial training perturbs what `embed` returns.
    Regularisers (seqlab.models.regularizers; off by default, training mode only): `word_dropout` /
    `word_dropout_mode`, `locked_dropout` (replaces `dropout` at the places it names; at `output` it takes the
    place of the head's dropout), `weight_drop`, `adversarial` (its `epsilon` > 0 with `normalize` makes the
    embeddings frequency-normalised, in evaluation too: part of the network).
    """

    def __init__(self, metadata: Metadata, embedding_dim: int = 100, hidden_size: int = 128, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.5, backend: str = "torch", path: str = "auto",
                 freeze_embeddings: bool = False, char_encoder: str | None = None, char_dim: int = 30,
                 char_hidden: int = 50, head: str = "linear", pooling: str = "last", crf_constraints: bool = True,
                 tag_scheme: str | None = None, cell: str = "lstm", word_dropout: float = 0.0,
                 word_dropout_mode: str = "type", locked_dropout: float | dict[str, float] | None = None,
                 weight_drop: float = 0.0, adversarial: dict[str, Any] | None = None):
        super().__init__()
        check_architecture(locals())
        locked = locked_rates(locked_dropout)
        self.adversarial = adversarial_settings(adversarial)
        normalize = self.adversarial["epsilon"] > 0 and self.adversarial["normalize"]
        self.metadata = metadata
        self.task = metadata.make_task()
        chars = None
        if char_encoder is not None:
            if metadata.num_chars is None:
                raise ConfigError(f"model.char_encoder={char_encoder} needs the characters of each word, which the "
                                  f"{metadata.task} task's data does not provide; set model.char_encoder=null.")
            chars = CHAR_ENCODERS[char_encoder](metadata.num_chars, char_dim, char_hidden, backend, cell)
        self.encoder = LSTMEncoder(metadata.vocab_size, metadata.pad_index, embedding_dim, hidden_size, num_layers,
                                   bidirectional, dropout, backend, path, chars, cell=cell,
                                   word_dropout=float(word_dropout), word_dropout_mode=word_dropout_mode,
                                   locked=locked, weight_drop=float(weight_drop), normalize=normalize)
        # Pretrained vectors are copied in by train(), which has them; checkpoints carry the weights.
        self.encoder.embedding.weight.requires_grad_(not freeze_embeddings)
        # Head settings go to the task, which uses those that apply to it (pooling: classification; crf_constraints:
        # tagging; tag_scheme: span tasks, whose labels the datamodule already wrote in it, checked there).
        head_dropout = dropout if locked["output"] is None else 0.0  # the encoder's locked output dropout instead
        self.head = self.task.build_head(self.encoder.output_size, head_dropout, head=head, pooling=pooling,
                                         crf_constraints=crf_constraints, tag_scheme=tag_scheme)

    @classmethod
    def from_hparams(cls, metadata: Metadata, hparams: dict[str, Any]) -> SeqNet:
        """The network of a checkpoint: its saved model config minus the training keys."""
        try:
            return cls(metadata, **{k: v for k, v in hparams.items() if k not in TRAINING_KEYS})
        except TypeError as e:  # a setting this version's model does not have
            raise ConfigError(f"The model settings do not fit this version of seqlab ({e}).") from None

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> word embeddings (B, T, E) (frequency-normalised under adversarial training)."""
        return self.encoder.embed(tokens)

    def from_embeddings(self, embeddings: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                        chars: torch.Tensor | None = None) -> torch.Tensor:
        """The head's scores from the word embeddings (B, T, E) of tokens (B, T) (word dropout needs the ids)."""
        outputs, final = self.encoder.encode(embeddings, tokens, lengths, chars)
        return self.head(outputs, final, lengths)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_embeddings(self.embed(tokens), tokens, lengths, chars)
