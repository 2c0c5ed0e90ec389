"""Output heads: encoder features -> scores, their loss, and decoding. Plain PyTorch (no Lightning).

Every head has the same interface, so the model and the trainer never ask which one they hold:

    forward(outputs (B, T, F), final (B, F), lengths (B,)) -> scores
    loss(scores, labels, lengths) -> scalar
    decode(scores, lengths) -> predicted label ids: (B,) per sequence, (B, T) per token
    confidence(scores, preds, lengths) -> probability of each prediction, same shape as preds

Label ids below 0 are not scored by the loss: IGNORE_INDEX marks padding, UNSEEN_LABEL a gold label that the
training data never had (it counts as an error in the metrics, see seqlab.tasks.metrics).

Per-token heads (`model.head` of tagging tasks): `linear` (`TokenHead`, a softmax per token) and `crf` (`CRFHead`,
a linear-chain CRF over the same linear emissions).
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.data.vocab import IGNORE_INDEX
from seqlab.models.crf import CRF, FORBIDDEN, lengths_to_mask, log_partition

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


class CRFHead(TokenHead):
    """One label per token: features -> dropout -> linear emissions (B, T, C) -> linear-chain CRF.

    `loss`: the CRF's negative log-likelihood per real token (`token_mean`, the scale of the softmax head's
    cross-entropy, so learning rates carry over). `decode`: Viterbi paths, IGNORE_INDEX past each length.
    `confidence`: each decoded tag's marginal probability p(y_t = tag | sentence) (forward-backward).
    `constraints`: optional allowed (transitions, first, last) tags (`seqlab.tasks.schemes.Transitions`), applied to
    the loss and the decoding, so a decoded path is always well-formed in the tag scheme.

    A gold label training lacks (a label id below 0 within the length, val/test only: UNSEEN_LABEL, the span task's
    UNSEEN_START) is unknown to the model: the loss sums over every tag at that step (``log Z - log Z_known``, Z_known
    over the paths that agree with the known labels), as the softmax head leaves such tokens out of its cross-entropy.
    """

    def __init__(self, input_size: int, num_labels: int, dropout: float,
                 constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        super().__init__(input_size, num_labels, dropout)
        self.crf = CRF(num_labels, constraints)

    @staticmethod
    def _mask(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return lengths_to_mask(lengths.to(scores.device), scores.size(1))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = self._mask(scores, lengths)
        unknown = (labels < 0) & mask
        if not unknown.any():
            return self.crf(scores, labels, mask)
        emissions, start, trans, end = self.crf._scores(scores, FORBIDDEN)
        other = torch.arange(scores.size(-1), device=scores.device) != labels.unsqueeze(-1)  # (B, T, C)
        known = emissions.masked_fill(other & (mask & ~unknown).unsqueeze(-1), FORBIDDEN)
        nll = log_partition(emissions, mask, start, trans, end) - log_partition(known, mask, start, trans, end)
        return nll.sum() / mask.sum()

    def decode(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.crf.decode(scores, self._mask(scores, lengths), pad_value=IGNORE_INDEX)

    def confidence(self, scores: torch.Tensor, preds: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        marginals = self.marginals(scores, lengths)
        return marginals.gather(-1, preds.clamp(min=0).unsqueeze(-1)).squeeze(-1)

    def marginals(self, scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """p(y_t = c | sentence) (B, T, C) by forward-backward in log space (0 past each length):
        alpha_t[c] + beta_t[c] - log Z, with beta_{L-1} = end, beta_t[i] = logsumexp_j(trans[i, j] + e_{t+1}[j] +
        beta_{t+1}[j])."""
        emissions, start, trans, end = self.crf._scores(scores, FORBIDDEN)
        mask = self._mask(scores, lengths)
        steps, masks = emissions.unbind(1), mask.unbind(1)
        alphas = [start + steps[0]]
        for e_t, m_t in zip(steps[1:], masks[1:]):
            nxt = torch.logsumexp(alphas[-1].unsqueeze(2) + trans, dim=1) + e_t
            alphas.append(torch.where(m_t.unsqueeze(1), nxt, alphas[-1]))
        betas = [end.expand_as(alphas[0])]
        for t in range(len(steps) - 2, -1, -1):  # beta_t from beta_{t+1}; at and past a sequence's end it stays end
            nxt = torch.logsumexp(trans + (steps[t + 1] + betas[-1]).unsqueeze(1), dim=2)
            betas.append(torch.where(masks[t + 1].unsqueeze(1), nxt, betas[-1]))
        alpha, beta = torch.stack(alphas, 1), torch.stack(betas[::-1], 1)
        log_z = torch.logsumexp(alphas[-1] + end, dim=1)
        return (alpha + beta - log_z[:, None, None]).exp() * mask.unsqueeze(-1)
