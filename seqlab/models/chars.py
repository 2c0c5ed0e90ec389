"""Character-level word encoders: features for rare and unseen words (tagging).

Both map chars (B, T, W) — character ids of each word, 0 = padding — to (B, T, output_size).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class CharCNN(nn.Module):
    """Character embeddings -> 1-D convolution (width 3) -> max over the word's characters."""

    def __init__(self, num_chars: int, char_dim: int = 30, hidden: int = 50):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, hidden, kernel_size=3, padding=1)
        self.output_size = hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, W = chars.shape
        x = self.embedding(chars.view(B * T, W)).transpose(1, 2)  # (BT, C, W)
        h = self.conv(x).masked_fill((chars.view(B * T, 1, W) == 0), float("-inf"))
        h = h.amax(dim=2)
        return torch.where(torch.isinf(h), torch.zeros_like(h), h).view(B, T, -1)  # padding words -> 0


class CharLSTM(nn.Module):
    """Character embeddings -> bidirectional LSTM over each word -> final states of both directions."""

    def __init__(self, num_chars: int, char_dim: int = 30, hidden: int = 50):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, hidden, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, W = chars.shape
        flat = chars.view(B * T, W)
        lengths = (flat != 0).sum(1)
        real = torch.nonzero(lengths).flatten()  # padding positions have no characters
        out = chars.new_zeros(B * T, self.output_size, dtype=self.embedding.weight.dtype)
        if real.numel():
            packed = pack_padded_sequence(self.embedding(flat[real]), lengths[real].cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
            out[real] = torch.cat([h_n[0], h_n[1]], dim=-1)
        return out.view(B, T, -1)


CHAR_ENCODERS = {"cnn": CharCNN, "lstm": CharLSTM}
