"""Embedding -> stacked (bi)LSTM over variable-length batches, exact under padding, fast on CPU.

Two ways to run the LSTM, with identical results for every sequence regardless of padding:
- "packed": pack_padded_sequence -> LSTM -> unpack. The standard recipe; right on GPU (cuDNN) and the path used by
  the custom backend (seqlab.nn.LSTM handles PackedSequence itself).
- "padded": layer by layer and direction by direction over the padded batch, with the weights of the same module;
  the reverse direction reads each sequence reversed *within its own length*, so padding never reaches a real
  position. On CPU this takes torch's dense (oneDNN) kernel, about 10x faster than the packed path (measured with
  ../shared/bench/cpu_lstm_paths.py). It calls `torch._VF.lstm`, the kernel `nn.LSTM.forward` itself calls.
"auto" chooses "padded" for the torch backend on CPU and "packed" otherwise.
"""

from __future__ import annotations

import torch
from hydra.utils import get_class
from torch import _VF, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

BACKENDS = {"torch": "torch.nn.LSTM", "custom": "seqlab.nn.LSTM"}  # name -> class with torch.nn.LSTM's API
PATHS = ("auto", "packed", "padded")


def reverse_index(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) index that reverses each row within its length and leaves padding in place (an involution)."""
    t = torch.arange(max_len, device=lengths.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def _layer_weights(lstm: nn.Module, layer: int, reverse: bool) -> list[torch.Tensor]:
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if lstm.bias else [])
    return [getattr(lstm, n + sfx) for n in names]


def run_padded(lstm: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact LSTM over a right-padded batch. x: (B, T, I), lengths: (B,) -> outputs (B, T, D*H), final h (B, D*H).

    Outputs at padded positions are unspecified (callers mask them); final states are those at each sequence's
    own last real step (forward) and at its first token (reverse).
    """
    B, T, _ = x.shape
    H, D = lstm.hidden_size, 2 if lstm.bidirectional else 1
    rev = reverse_index(lengths.to(x.device), T)
    h0 = x.new_zeros(1, B, H)
    for layer in range(lstm.num_layers):
        if layer > 0 and lstm.dropout > 0:
            x = nn.functional.dropout(x, lstm.dropout, lstm.training)
        outs = []
        for d in range(D):
            idx = rev.unsqueeze(-1).expand(B, T, x.size(-1))
            inp = x.gather(1, idx) if d else x
            out = _VF.lstm(inp, (h0, h0), _layer_weights(lstm, layer, d == 1), lstm.bias, 1, 0.0, lstm.training,
                           False, True)[0]
            outs.append(out.gather(1, rev.unsqueeze(-1).expand(B, T, H)) if d else out)
        x = torch.cat(outs, dim=-1) if D == 2 else outs[0]
    last = (lengths.to(x.device) - 1).view(B, 1, 1).expand(B, 1, H)
    final = [x[..., :H].gather(1, last).squeeze(1)]
    if D == 2:
        final.append(x[:, 0, H:])
    return x, torch.cat(final, dim=-1)


def run_packed(lstm: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same contract as `run_padded`, through a PackedSequence."""
    B, T, _ = x.shape
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, (h_n, _) = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    D = 2 if lstm.bidirectional else 1
    last = h_n.view(lstm.num_layers, D, B, lstm.hidden_size)[-1]  # (D, B, H): forward, reverse
    return out, torch.cat(list(last), dim=-1)


class LSTMEncoder(nn.Module):
    """tokens (B, T) + lengths (B,) [+ chars (B, T, W)] -> outputs (B, T, D*H) and final hidden state (B, D*H).

    With a character encoder, each token's input is its word embedding concatenated with its character features.
    """

    def __init__(self, vocab_size: int, pad_index: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, backend: str = "torch", path: str = "auto",
                 char_encoder: nn.Module | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.char_encoder = char_encoder
        input_size = embedding_dim + (char_encoder.output_size if char_encoder is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.lstm = get_class(BACKENDS[backend])(input_size, hidden_size, num_layers=num_layers, batch_first=True,
                                      bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.backend, self.path = backend, path
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def resolved_path(self, device: torch.device) -> str:
        if self.path != "auto":
            return self.path
        return "padded" if self.backend == "torch" and device.type == "cpu" else "packed"

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor,
                chars: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding(tokens)
        if self.char_encoder is not None:
            x = torch.cat([x, self.char_encoder(chars)], dim=-1)
        x = self.dropout(x)
        run = run_padded if self.resolved_path(x.device) == "padded" else run_packed
        return run(self.lstm, x, lengths)
