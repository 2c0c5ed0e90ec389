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

Regularisers (seqlab.models.regularizers; all off by default, none in eval mode): word dropout and locked dropout
on the recurrent input, DropConnect on each layer's ``weight_hh`` and locked dropout between layers, locked dropout
on the outputs. The per-layer ones run through the layer stack of :func:`run_padded` (seqlab.nn's one stack,
``run_stack``, for both backends): every layer's weights come from ``weights(k)`` (default
:func:`seqlab.nn.layer_weights`; DropConnect passes dropped copies) and every upper layer's input (T, B, F) passes
through ``between(x, k)`` before its kernel runs. On the packed path they need the
same loop, so in training with one of them on, each layer runs as its own PackedSequence call of a one-layer module
of the same class on that layer's (dropped) weights (``torch.func.functional_call``): the same loop, the same
random draws, so both paths give the same results (tested).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.regularizers import drop_connect, locked_mask, normalize_embeddings, word_dropout
from seqlab.nn import GRU, LSTM, RNNBase, layer_weights
from seqlab.nn.layers import Recurrence, Weights, run_layer, run_stack

BACKENDS = {"torch": "torch.nn", "custom": "seqlab.nn"}  # backend -> package with LSTM and GRU of torch's API
CELLS = {"lstm": "LSTM", "gru": "GRU"}  # model.cell -> class name
PATHS = ("auto", "packed", "padded")
WEIGHT_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
RECURRENCES = {"LSTM": LSTM.recurrence, "GRU": GRU.recurrence}  # torch.nn's mode -> seqlab.nn's cell kind


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


def recurrence_of(rnn: nn.Module) -> Recurrence:
    """The cell kind of an LSTM or GRU module, seqlab.nn's (its own) or torch.nn's (seqlab.nn's of its mode)."""
    return rnn.recurrence if isinstance(rnn, RNNBase) else RECURRENCES[rnn.mode]


def _torch_layer(rec, x, weights, state, batch_sizes, fused, *, lengths, training):
    """One layer through torch's dense kernel (the cell's ``torch_kernel``): x (T, B, F), lengths (B,), state
    tensors (D, B, S) -> (T, B, D*S_0), (final h (D, B, S_0),): the reverse direction reads each sequence reversed
    within its length. c_n is not returned: the forward direction's kernel runs on through the padding."""
    T, B, F = x.shape
    # row t*B + b of a (T*B, F) view -> its place within the sequence reversed (an involution); whole rows move,
    # index_select copies them ~8x faster than gather's element-wise index on (T, B, F)
    rows = (reverse_index(lengths, T).t() * B + torch.arange(B, device=x.device)).flatten()
    outs, finals = [], []
    for d, w in enumerate(weights):
        flat = [w[kind] for kind in WEIGHT_ORDER if w[kind] is not None]
        inp = x.reshape(T * B, F).index_select(0, rows).view(T, B, F) if d else x
        out = rec.torch_kernel(inp, tuple(s[d:d + 1] for s in state), flat, w["bias_ih"] is not None, training)
        if d:  # back to real time; the reverse direction's final state is its output at the first token
            out = out.reshape(T * B, -1).index_select(0, rows).view(T, B, -1)
            finals.append(out[0])
        else:
            finals.append(out[lengths - 1, torch.arange(B, device=x.device)])
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)), (torch.stack(finals),)


@functools.lru_cache(maxsize=32)
def _one_layer(cls: type, input_size: int, hidden_size: int, bidirectional: bool, bias: bool) -> nn.Module:
    """A one-layer module of `cls` without storage (meta device): functional_call gives it a layer's weights."""
    return cls(input_size, hidden_size, bias=bias, bidirectional=bidirectional, device="meta")


def _packed_layer(rec, x, weights, state, batch_sizes, fused, *, rnn, lengths):
    """One layer through a PackedSequence call of a one-layer module of rnn's class on the given weights:
    x (T, B, F) sorted longest first, state tensors (D, B, S) -> (T, B, D*S_0), final state (D, B, S) each."""
    one = _one_layer(type(rnn), x.size(-1), rnn.hidden_size, rnn.bidirectional, rnn.bias)
    params = {f"{kind}_l0" + ("_reverse" if d else ""): w[kind]
              for d, w in enumerate(weights) for kind in WEIGHT_ORDER if w[kind] is not None}
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=True)
    one.train(rnn.training)
    with warnings.catch_warnings():  # cuDNN: dropped weights are never one contiguous chunk
        warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
        out, final = torch.func.functional_call(one, params, (packed, state if len(state) > 1 else state[0]))
    return pad_packed_sequence(out, total_length=x.size(0))[0], (final if isinstance(final, tuple) else (final,))


def run_padded(rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor,
               between: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
               weights: Callable[[int], list[Weights]] | None = None, packed: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact recurrent layers over a right-padded batch, layer by layer, with the module's own weights.

    x (B, T, I), lengths (B,) -> outputs (B, T, D*H), final h (B, D*H): the forward direction's state after each
    sequence's last real step, the reverse direction's at its first token. Outputs at padded positions are
    unspecified (callers mask them). ``between(x, k)`` runs on layer k's input (T, B, F), sequences sorted longest
    first (stable), for k > 0 (default: the module's dropout); layer k's weights are ``weights(k)`` (default
    :func:`seqlab.nn.layer_weights`). ``packed``: each layer through a PackedSequence call instead of the padded
    kernels (what the packed path runs when a per-layer regulariser is on).

    The layers run in seqlab.nn's one stack (:func:`seqlab.nn.layers.run_stack`) from a zero state, with the
    layer kernel of the module: seqlab.nn's own (each sequence stops at its length), torch's dense kernel with
    per-sequence reversal, or the PackedSequence call.
    """
    B, T, _ = x.shape
    lengths = lengths.to(x.device)
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    batch_sizes = (sorted_lengths.unsqueeze(0) > torch.arange(T, device=x.device).unsqueeze(1)).sum(1).tolist()
    rec, D = recurrence_of(rnn), 2 if rnn.bidirectional else 1
    if packed:
        layer = functools.partial(_packed_layer, rnn=rnn, lengths=sorted_lengths)
    elif isinstance(rnn, RNNBase):
        layer = run_layer
    else:
        layer = functools.partial(_torch_layer, lengths=sorted_lengths, training=rnn.training)
    weights = weights or functools.partial(layer_weights, rnn)
    state = tuple(x.new_zeros(rnn.num_layers * D, B, size) for size in rec.state_sizes(rnn.hidden_size, rnn.proj_size))
    h = x.index_select(0, order).transpose(0, 1)  # (T, B, I), longest first
    h, finals = run_stack(rec, h, [weights(k) for k in range(rnn.num_layers)], state, batch_sizes,
                          between or dropout_between(rnn), getattr(rnn, "fused", True), layer)
    unorder = torch.argsort(order)
    final = finals[0][-D:].index_select(1, unorder).transpose(0, 1).reshape(B, -1)  # (B, D*H): forward, reverse
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
    "packed" or "padded". Regularisers (training mode only): ``word_dropout`` (rate, ``word_dropout_mode`` "type" or
    "token") on the word embeddings; ``locked`` {input, hidden, output} -> locked dropout rate, or None where
    ``dropout`` (per element) applies; ``weight_drop`` DropConnect on weight_hh; ``normalize``: the embeddings are
    frequency-normalised (adversarial training), with training counts from :meth:`set_word_counts`.
    """

    def __init__(self, vocab_size: int, pad_index: int, embedding_dim: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, backend: str = "torch", path: str = "auto",
                 char_encoder: nn.Module | None = None, cell: str = "lstm", word_dropout: float = 0.0,
                 word_dropout_mode: str = "type", locked: dict[str, float | None] | None = None,
                 weight_drop: float = 0.0, normalize: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)
        self.char_encoder = char_encoder
        input_size = embedding_dim + (char_encoder.output_size if char_encoder is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.locked = {"input": None, "hidden": None, "output": None, **(locked or {})}
        between = dropout if self.locked["hidden"] is None else 0.0  # locked dropout there replaces the module's
        self.rnn = make_rnn(backend, cell, input_size, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=between if num_layers > 1 else 0.0)
        self.backend, self.path, self.cell = backend, path, cell
        self.word_dropout, self.word_dropout_mode, self.weight_drop = word_dropout, word_dropout_mode, weight_drop
        self.normalize = normalize
        if normalize:  # training counts of each word id; part of the model (checkpoints carry it)
            self.register_buffer("word_counts", torch.zeros(vocab_size))
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

    def set_word_counts(self, counts: torch.Tensor) -> None:
        """Training counts (V,) of each word id, the weights of the embedding normalisation."""
        self.word_counts.copy_(counts.to(self.word_counts))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> word embeddings (B, T, E), frequency-normalised when ``normalize``."""
        if not self.normalize:
            return self.embedding(tokens)
        weight = normalize_embeddings(self.embedding.weight, self.word_counts)
        return nn.functional.embedding(tokens, weight, self.embedding.padding_idx)

    def _locked(self, place: str, x: torch.Tensor) -> torch.Tensor | None:
        """A (B, F) locked mask for `place` in training mode, else None."""
        p = self.locked[place]
        return locked_mask(x.size(0), x.size(-1), p, x) if self.training and p else None

    def encode(self, x: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
               chars: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The rest of `forward` from the word embeddings x (B, T, E) of tokens (B, T)."""
        if self.training and self.word_dropout:
            x = word_dropout(x, tokens, self.word_dropout, self.word_dropout_mode, self.embedding.num_embeddings)
        if self.char_encoder is not None:
            x = torch.cat([x, self.char_encoder(chars)], dim=-1)
        if self.locked["input"] is None:
            x = self.dropout(x)
        elif (mask := self._locked("input", x)) is not None:
            x = x * mask.unsqueeze(1)
        padded = self.resolved_path(x.device) == "padded"
        hooks = self._layer_hooks()
        if padded or hooks:
            outputs, final = run_padded(self.rnn, x, lengths, packed=not padded, **hooks)
        else:
            outputs, final = run_packed(self.rnn, x, lengths)
        if (mask := self._locked("output", final)) is not None:
            outputs, final = outputs * mask.unsqueeze(1), final * mask
        return outputs, final

    def _layer_hooks(self) -> dict[str, Callable]:
        """run_padded's `between` and `weights` for the per-layer regularisers in training mode, else {}."""
        hidden = self.locked["hidden"]
        if not self.training or not (self.weight_drop or hidden):
            return {}
        hooks: dict[str, Callable] = {}
        if hidden:
            hooks["between"] = lambda h, k: h * locked_mask(h.size(1), h.size(2), hidden, h).unsqueeze(0)
        if self.weight_drop:
            hooks["weights"] = lambda k: drop_connect(layer_weights(self.rnn, k), self.weight_drop)
        return hooks

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor,
                chars: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(self.embed(tokens), tokens, lengths, chars)


LSTMEncoder = RNNEncoder  # the name from before the GRU
