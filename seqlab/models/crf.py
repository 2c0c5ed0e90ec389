"""A linear-chain conditional random field (CRF) output layer: NLL by the forward algorithm, Viterbi decoding.

For emissions ``e`` (T, C) of one sentence (C tags) and a tag path ``y``, the path score is

    s(y) = start[y_0] + sum_t e[t, y_t] + sum_{t>=1} trans[y_{t-1}, y_t] + end[y_{T-1}],

``p(y | e) = exp(s(y)) / Z`` with ``log Z = logsumexp over all paths of s(y)``, computed by the forward recursion
``alpha_0 = start + e_0``, ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + e_t[j]``,
``log Z = logsumexp_j(alpha_{T-1}[j] + end[j])``, all in log space. Viterbi replaces logsumexp by max and keeps
back-pointers. Batches are padded: ``mask`` (B, T) is True on each sequence's first ``length`` steps (lengths >= 1),
and padded steps leave the recursions unchanged, so each sequence gets exactly its own result.

**Hard constraints** (e.g. from :func:`seqlab.tasks.schemes.allowed_transitions`): forbidden transitions, start and
end tags get the score ``FORBIDDEN`` (-10^4) in the forward algorithm, so their paths carry a weight of
``exp(-10^4)``, which is exactly 0 in float32 and float64 (a finite value rather than -inf keeps gradients free
of NaN), and -inf in Viterbi, so a decoded path never uses them. The constraints must leave a legal path of every
length (all tag schemes do: O O ... O). A gold path they forbid gets an NLL of about 10^4 rather than infinity;
train on tags converted into the model's scheme (:func:`seqlab.tasks.schemes.convert`), which are always legal.

No maintained library was used: ``pytorch-crf`` (last release 2019-02), ``TorchCRF`` (2020), ``torch-struct``
(2021) and AllenNLP (archived in 2022) are unmaintained, and Flair's CRF comes with all of Flair.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CRF", "FORBIDDEN", "lengths_to_mask", "log_partition", "path_score", "viterbi"]

FORBIDDEN = -1e4


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool mask, True on the first ``lengths[b]`` steps of row b."""
    steps = torch.arange(int(lengths.max()) if max_len is None else max_len, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def log_partition(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
                  end: torch.Tensor) -> torch.Tensor:
    """log Z per sequence: emissions (B, T, C), mask (B, T), start (C,), trans (C, C), end (C,) -> (B,)."""
    steps, masks = emissions.unbind(1), mask.unbind(1)
    alpha = start + steps[0]  # (B, C)
    for e_t, m_t in zip(steps[1:], masks[1:]):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + e_t  # (B, C_prev, C) -> (B, C)
        alpha = torch.where(m_t.unsqueeze(1), nxt, alpha)  # padding: carry the sequence's own alpha forward
    return torch.logsumexp(alpha + end, dim=1)


def path_score(emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
               trans: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """s(y) per sequence: tags (B, T) long (padded steps may hold any value) -> (B,). No time loop."""
    tags = tags.masked_fill(~mask, 0)
    maskf = mask.to(emissions.dtype)
    emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
    score = start[tags[:, 0]] + (emit * maskf).sum(1)
    score = score + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
    last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
    return score + end[last]


def viterbi(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
            end: torch.Tensor, pad_value: int = -100) -> tuple[torch.Tensor, torch.Tensor]:
    """Best paths (B, T) long (``pad_value`` past each length) and their scores (B,)."""
    steps, masks = emissions.unbind(1), mask.unbind(1)
    batch, n_tags = emissions.size(0), emissions.size(2)
    keep = torch.arange(n_tags, device=emissions.device).expand(batch, n_tags)  # identity back-pointers
    score = start + steps[0]
    pointers = []
    for e_t, m_t in zip(steps[1:], masks[1:]):
        best, arg = (score.unsqueeze(2) + trans).max(dim=1)  # (B, C): best previous tag for each tag
        score = torch.where(m_t.unsqueeze(1), best + e_t, score)
        pointers.append(torch.where(m_t.unsqueeze(1), arg, keep))  # padded steps point to themselves
    best_score, last = (score + end).max(dim=1)
    path = [last]
    for ptr in reversed(pointers):  # walking back through padding keeps the last real tag until its step
        last = ptr.gather(1, last.unsqueeze(1)).squeeze(1)
        path.append(last)
    paths = torch.stack(path[::-1], dim=1)
    return paths.masked_fill(~mask, pad_value), best_score


class CRF(nn.Module):
    """Linear-chain CRF over ``num_tags`` tags with learned ``transitions`` (C, C), ``start`` and ``end`` (C,).

    ``constraints``: optional ``(pairs, start, end)`` bool tensors of shapes (C, C), (C,), (C,) saying which
    transitions and first/last tags are allowed (a :class:`seqlab.tasks.schemes.Transitions`); they are stored as
    buffers (saved in the state dict) and apply to both the loss and decoding.
    Shapes below: emissions (B, T, C) from the encoder, tags (B, T) long, mask (B, T) bool, left-aligned, every
    sequence at least one step long. Half-precision emissions are computed in float32.
    """

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        if constraints is None:
            pairs = torch.ones(num_tags, num_tags, dtype=torch.bool)
            first = last = torch.ones(num_tags, dtype=torch.bool)
        else:
            pairs, first, last = (torch.as_tensor(c, dtype=torch.bool) for c in constraints)
            if pairs.shape != (num_tags, num_tags) or first.shape != (num_tags,) or last.shape != (num_tags,):
                raise ValueError(f"constraints must have shapes ({num_tags}, {num_tags}), ({num_tags},), "
                                 f"({num_tags},); got {tuple(pairs.shape)}, {tuple(first.shape)}, "
                                 f"{tuple(last.shape)}")
        self.register_buffer("allowed", pairs.clone())
        self.register_buffer("allowed_start", first.clone())
        self.register_buffer("allowed_end", last.clone())

    def extra_repr(self) -> str:
        free = bool(self.allowed.all() and self.allowed_start.all() and self.allowed_end.all())
        return f"num_tags={self.num_tags}, constrained={not free}"

    def _scores(self, emissions: torch.Tensor, fill: float) -> tuple[torch.Tensor, ...]:
        """Emissions in the compute dtype and start/trans/end with forbidden entries set to ``fill``."""
        dtype = torch.promote_types(emissions.dtype, torch.float32)
        start = self.start.to(dtype).masked_fill(~self.allowed_start, fill)
        trans = self.transitions.to(dtype).masked_fill(~self.allowed, fill)
        end = self.end.to(dtype).masked_fill(~self.allowed_end, fill)
        return emissions.to(dtype), start, trans, end

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
                reduction: str = "token_mean") -> torch.Tensor:
        """Negative log-likelihood ``log Z - s(tags)``: per sequence (``"none"``, (B,)), ``"sum"``, ``"mean"`` over
        sequences, or ``"token_mean"`` (sum / number of real tokens, the scale of a softmax head's token-mean
        cross-entropy, so the same learning rates apply)."""
        emissions, start, trans, end = self._scores(emissions, FORBIDDEN)
        mask = mask.bool()
        nll = log_partition(emissions, mask, start, trans, end) - path_score(emissions, tags, mask, start, trans, end)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        if reduction == "token_mean":
            return nll.sum() / mask.sum()
        raise ValueError(f"reduction must be 'none', 'sum', 'mean' or 'token_mean', got {reduction!r}")

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor, pad_value: int = -100) -> torch.Tensor:
        """Viterbi paths (B, T) long, ``pad_value`` past each sequence's length."""
        emissions, start, trans, end = self._scores(emissions, float("-inf"))
        return viterbi(emissions, mask.bool(), start, trans, end, pad_value)[0]
