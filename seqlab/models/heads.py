"""Output heads: encoder features -> scores, their loss, and decoding. Plain PyTorch (no Lightning).

Every head has the same interface, so the model and the trainer never ask which one they hold:

    forward(outputs (B, T, F), final (B, F), lengths (B,)) -> scores
    loss(scores, labels, lengths) -> scalar
    decode(scores, lengths) -> predicted label ids: (B,) per sequence, (B, T) per token
    confidence(scores, preds, lengths) -> probability of each prediction, same shape as preds

Label ids below 0 are not scored by the loss: IGNORE_INDEX marks padding, UNSEEN_LABEL a gold label that the
training data never had (it counts as an error in the metrics, see seqlab.tasks.metrics).
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.data.vocab import IGNORE_INDEX

POOLINGS = ("last", "max", "mean")


def pool(outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, F) outputs -> (B, F), padding masked out: `last` final states, `max` or `mean` over real steps."""
    if how == "last":
        return final
    mask = (torch.arange(outputs.size(1), device=outputs.device)[None, :] < lengths.to(outputs.device)[:, None])
    mask = mask.unsqueeze(-1)
    if how == "max":
        return outputs.masked_fill(~mask, float("-inf")).amax(dim=1)
    return (outputs * mask).sum(dim=1) / lengths.to(outputs.device).unsqueeze(1).to(outputs.dtype)


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    labels = labels.masked_fill(labels < 0, IGNORE_INDEX)  # unseen gold labels have no logit to score
    return nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                       ignore_index=IGNORE_INDEX)


class PooledHead(nn.Module):
    """One label per sequence: pooled features -> dropout -> linear; softmax cross-entropy."""

    def __init__(self, input_size: int, num_labels: int, dropout: float, pooling: str = "last"):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(input_size, num_labels)

    def forward(self, outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """-> logits (B, C)."""
        return self.linear(self.dropout(pool(outputs, final, lengths, self.pooling)))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return _cross_entropy(scores, labels)

    def decode(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return scores.argmax(-1)

    def confidence(self, scores: torch.Tensor, preds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return scores.float().softmax(-1).gather(-1, preds.unsqueeze(-1)).squeeze(-1)


class TokenHead(PooledHead):
    """One label per token: features -> dropout -> linear; softmax cross-entropy over real tokens."""

    def __init__(self, input_size: int, num_labels: int, dropout: float):
        super().__init__(input_size, num_labels, dropout)

    def forward(self, outputs: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """-> logits (B, T, C); positions past a sequence's length are padding (labels IGNORE_INDEX)."""
        return self.linear(self.dropout(outputs))
