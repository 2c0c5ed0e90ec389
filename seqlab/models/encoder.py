"""Embedding -> stacked recurrent layers (LSTM or GRU) over variable-length batches, exact under padding, fast on CPU.

The module is torch's (``backend=torch``: torch.nn.LSTM / GRU) or seqlab's (``backend=custom``: seqlab.nn.LSTM /
GRU); both have the same parameters, so state_dicts and checkpoints swap. Two ways to run it, with identical
results for every sequence regardless of padding (tested to 1e-12 in float64, values and gradients):

- "packed": pack_padded_sequence -> the module -> unpack. The standard recipe; right on GPU (cuDNN).
- "padded": layer by layer over the padded batch, sorted longest first and time-major, no PackedSequence:
  torch's dense kernel (``torch._VF.lstm`` / ``_VF.gru``, what the modules' forward calls) per direction, the
  reverse direction reading each sequence reversed *within its own length* so that padding never reaches a real
  position (on CPU about 10x faster than packed: ``python scripts/bench_lstm.py --encoder``); or, for the custom
  backend, seqlab.nn's own layer kernel, where each sequence stops at its own length.

"auto" takes "padded" on CPU for both backends and for the custom backend anywhere, "packed" for torch on GPU
(provisional: the CPU choice is to be confirmed by ``scripts/bench_lstm.py --encoder`` on an idle machine).

The padded run is the seam for per-layer regularisers: every layer's weights pass through :func:`layer_weights`
(e.g. DropConnect on weight_hh, AWD-LSTM) and every upper layer's input (T, B, F) through ``between`` (dropout
today; locked dropout would draw one (1, B, F) mask per batch) before the kernel runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import _VF, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.nn import RNNBase, layer_weights
from seqlab.nn.layers import run_layer

BACKENDS = {"torch": "torch.nn", "custom": "seqlab.nn"}  # backend -> package with LSTM and GRU of torch's API
CELLS = {"lstm": "LSTM", "gru": "GRU"}  # model.cell -> class name
PATHS = ("auto", "packed", "padded")
WEIGHT_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def make_rnn(backend: str, cell: str, input_size: int, hidden_size: int, **kwargs) -> nn.Module:
    """The backend's module for the cell, e.g. make_rnn("custom", "gru", 100, 128) -> seqlab.nn.GRU(100, 128)."""
    return getattr(importlib.import_module(BACKENDS[backend]), CELLS[cell])(input_size, hidden_size, **kwargs)


def final_hidden(state) -> torch.Tensor:
    """h_n from an LSTM's (h_n, c_n) or a GRU's h_n."""
    return state[0] if isinstance(state, tuple) else state


def reverse_index(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) index that reverses each row within its length and leaves padding in place (an involution)."""
    t = torch.arange(max_len, device=lengths.device).unsqueeze(0)
    n = lengths.unsqueeze(1)
    return torch.where(t < n, n - 1 - t, t)


def dropout_between(rnn: nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The module's own dropout between layers, as torch applies it (training mode only)."""
    return lambda x, layer: nn.functional.dropout(x, rnn.dropout, rnn.training) if rnn.dropout > 0 else x


def _torch_layer(rnn, x, lengths, batch_sizes, weights):
    """One layer of a torch module through its dense kernel: x (T, B, F), lengths (B,) -> (T, B, D*H), (D, B, H)."""
    T, B, _ = x.shape
    H = rnn.hidden_size
    rev = reverse_index(lengths, T).t().unsqueeze(-1)  # (T, B, 1)
    h0 = x.new_zeros(1, B, H)
    outs, finals = [], []
    for d, w in enumerate(weights):
        flat = [w[kind] for kind in WEIGHT_ORDER if w[kind] is not None]
        inp = x.gather(0, rev.expand_as(x)) if d else x
        if rnn.mode == "LSTM":
            out = _VF.lstm(inp, (h0, h0), flat, rnn.bias, 1, 0.0, rnn.training, False, False)[0]
        else:
            out = _VF.gru(inp, h0, flat, rnn.bias, 1, 0.0, rnn.training, False, False)[0]
        if d:  # back to real time; the reverse direction's final state is its output at the first token
            out = out.gather(0, rev.expand(T, B, H))
            finals.append(out[0])
        else:
            finals.append(out[lengths - 1, torch.arange(B, device=x.device)])
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)), torch.stack(finals)


def _custom_layer(rnn, x, lengths, batch_sizes, weights):
    """One layer of a seqlab.nn module through its own kernel; each sequence stops at its length (batch_sizes)."""
    rec, B = rnn.recurrence, x.size(1)
    state = tuple(x.new_zeros(len(weights), B, size) for size in rec.state_sizes(rnn.hidden_size, rnn.proj_size))
    out, finals = run_layer(rec, x, weights, state, batch_sizes, rnn.fused)
    return out, finals[0]


def run_padded(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor,
               between: Callable[[torch.Tensor, int], torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact recurrent layers over a right-padded batch, layer by layer, with the module's own weights.

    x (B, T, I), lengths (B,) -> outputs (B, T, D*H), final h (B, D*H): the forward direction's state after each
    sequence's last real step, the reverse direction's at its first token. Outputs at padded positions are
    unspecified (callers mask them). ``between(x, k)`` runs on layer k's input for k > 0 (default: the module's
    dropout); every layer's weights come from :func:`seqlab.nn.layer_weights`.
    """
    B, T, _ = x.shape
    lengths = lengths.to(x.device)
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    batch_sizes = (sorted_lengths.unsqueeze(0) > torch.arange(T, device=x.device).unsqueeze(1)).sum(1).tolist()
    kernel = _custom_layer if isinstance(rnn, RNNBase) else _torch_layer
    between = between or dropout_between(rnn)
    h = x.index_select(0, order).transpose(0, 1)  # (T, B, I), longest first
    for k in range(rnn.num_layers):
        if k > 0:
            h = between(h, k)
        h, finals = kernel(rnn, h, sorted_lengths, batch_sizes, layer_weights(rnn, k))
    unorder = torch.argsort(order)
    final = finals.index_select(1, unorder).transpose(0, 1).reshape(B, -1)  # (B, D*H): forward, reverse
    return h.transpose(0, 1).index_select(0, unorder), final


def run_packed(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same contract as `run_padded`, through a PackedSequence and the module itself."""
    B, T, _ = x.shape
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    D = 2 if rnn.bidirectional else 1
    last = final_hidden(state).view(rnn.num_layers, D, B, rnn.hidden_size)[-1]  # (D, B, H): forward, reverse
    return out, torch.cat(list(last), dim=-1)


def rename_lstm_keys(state_dict, prefix, *args) -> None:
    """Checkpoints written before the GRU named the recurrent module ``lstm``; it is ``rnn`` now."""
    for key in [k for k in state_dict if k.startswith(prefix + "lstm.")]:
        state_dict[prefix + "rnn." + key[len(prefix) + 5:]] = state_dict.pop(key)


class RNNEncoder(nn.Module):
    """tokens (B, T) + lengths (B,) [+ chars (B, T, W)] -> outputs (B, T, D*H) and final hidden state (B, D*H).

    With a character encoder, each token's input is its word embedding concatenated with its character features.
    ``cell`` is "lstm" or "gru"; ``backend`` "torch" or "custom" (see the module docstring); ``path`` "auto",
    "packed" or "padded".
    """

    def __init__(self, vocab_size: int, pad_index: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, backend: str = "torch", path: str = "auto",
                 char_encoder: nn.Module | None = None, cell: str = "lstm"):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.char_encoder = char_encoder
        input_size = embedding_dim + (char_encoder.output_size if char_encoder is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(backend, cell, input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.backend, self.path, self.cell = backend, path, cell
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self._register_load_state_dict_pre_hook(rename_lstm_keys)

    @property
    def lstm(self) -> nn.Module:
        """The recurrent module under its name from before the GRU (kept for scripts and notebooks)."""
        return self.rnn

    def resolved_path(self, device: torch.device) -> str:
        if self.path != "auto":
            return self.path
        return "packed" if self.backend == "torch" and device.type != "cpu" else "padded"

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor,
                chars: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding(tokens)
        if self.char_encoder is not None:
            x = torch.cat([x, self.char_encoder(chars)], dim=-1)
        x = self.dropout(x)
        run = run_padded if self.resolved_path(x.device) == "padded" else run_packed
        return run(self.rnn, x, lengths)


LSTMEncoder = RNNEncoder  # the name from before the GRU
