"""Character-level word encoders: features for rare and unseen words (tagging).

Both map chars (B, T, W) — character ids of each word, 0 = padding — to (B, T, output_size).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from seqlab.models.encoder import final_hidden, make_rnn, rename_lstm_keys


class CharCNN(nn.Module):
    """Character embeddings -> 1-D convolution (width 3) -> max over the word's characters.

    ``backend`` and ``cell`` are accepted for a uniform signature and unused (no recurrence).
    """

    def __init__(self, num_chars: int, char_dim: int = 30, hidden: int = 50, backend: str = "torch",
                 cell: str = "lstm"):
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
    """Character embeddings -> bidirectional recurrent layer over each word -> final states of both directions.

    The recurrent layer follows the model: ``cell`` "lstm" or "gru", ``backend`` "torch" (torch.nn) or "custom"
    (seqlab.nn); each word runs alone through a PackedSequence (words differ in length).
    """

    def __init__(self, num_chars: int, char_dim: int = 30, hidden: int = 50, backend: str = "torch",
                 cell: str = "lstm"):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.rnn = make_rnn(backend, cell, char_dim, hidden, batch_first=True, bidirectional=True)
        self.output_size = 2 * hidden
        self._register_load_state_dict_pre_hook(rename_lstm_keys)

    @property
    def lstm(self) -> nn.Module:
        """The recurrent module under its name from before the GRU."""
        return self.rnn

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        B, T, W = chars.shape
        flat = chars.view(B * T, W)
        lengths = (flat != 0).sum(1)
        real = torch.nonzero(lengths).flatten()  # padding positions have no characters
        out = chars.new_zeros(B * T, self.output_size, dtype=self.embedding.weight.dtype)
        if real.numel():
            packed = pack_padded_sequence(self.embedding(flat[real]), lengths[real].cpu(), batch_first=True,
                                          enforce_sorted=False)
            h_n = final_hidden(self.rnn(packed)[1])
            out[real] = torch.cat([h_n[0], h_n[1]], dim=-1)
        return out.view(B, T, -1)


CHAR_ENCODERS = {"cnn": CharCNN, "lstm": CharLSTM}  # "lstm": the recurrent one, whose cell follows model.cell
