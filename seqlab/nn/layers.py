"""Running the LSTM cell over time: one direction, a reverse direction, bidirectional, and a stack of layers.

Shapes: T time steps, N batch, H hidden size, D directions. Everything is time-major, (T, N, features).

Two interchangeable implementations of one direction's time loop, checked against each other and torch.nn.LSTM:

* fused (default): :func:`seqlab.nn.fused.fused_direction`, one autograd node per direction with a hand-derived
  backward (see that module for why it is fast). First-order gradients only.
* eager: the plain autograd loop over ``lstm_pointwise`` below (any autograd feature works, e.g. double backward).

Variable lengths come as ``batch_sizes`` (PackedSequence's, sequences sorted longest first): at time t only the
first ``batch_sizes[t]`` sequences are still running; the others keep their state, so each sequence's final state
is its state after its own last real step. Running the loop backwards in time gives the reverse direction with
every sequence starting at its own last real token, without reversing any data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from seqlab.nn.cell import lstm_pointwise
from seqlab.nn.fused import fused_direction

LayerWeights = Sequence[Sequence[Tensor | None]]  # per direction: (w_ih, w_hh, b_ih, b_hh)


def _eager_recurrence(xw, w_hh, h0, c0, batch_sizes, reverse):
    """The time loop as plain autograd over :func:`lstm_pointwise`.

    xw (T, N, 4H) = x W_ihᵀ + b_ih + b_hh for all steps; w_hh (4H, H); h0, c0 (N, H)
    -> (out (T, N, H), h_n (N, H), c_n (N, H)), with the same batch_sizes / reverse semantics as the fused path.
    """
    steps = xw.unbind(0)  # never xw[t] in the loop: each slice's backward would materialise a full-size zero grad
    T, N = xw.shape[:2]
    w_t = w_hh.t()
    h, c = h0, c0
    outs: list[Tensor] = [h0] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        n = N if batch_sizes is None else batch_sizes[t]
        if n == N:
            h, c = lstm_pointwise(torch.addmm(steps[t], h, w_t), c)
        else:  # finished sequences carry their state unchanged
            h_run, c_run = lstm_pointwise(torch.addmm(steps[t][:n], h[:n], w_t), c[:n])
            h, c = torch.cat([h_run, h[n:]]), torch.cat([c_run, c[n:]])
        outs[t] = h
    return torch.stack(outs), h, c


def lstm_direction(
    x: Tensor,
    weights: Sequence[Tensor | None],
    h0: Tensor,
    c0: Tensor,
    batch_sizes: Sequence[int] | None = None,
    reverse: bool = False,
    fused: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One direction of one layer: x (T, N, H_in) -> (out (T, N, H), h_n (N, H), c_n (N, H)).

    weights = (w_ih (4H, H_in), w_hh (4H, H), b_ih (4H,) or None, b_hh (4H,) or None). The input projection of
    all T steps is one matmul; only h W_hhᵀ stays inside the loop. ``reverse`` runs from the last real step of
    each sequence back to the first and writes out[t] at time t, as torch does.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    bias = None if b_ih is None else b_ih + b_hh
    if fused:
        return fused_direction(x, w_ih, w_hh, bias, h0, c0, batch_sizes, reverse)
    T, N, _ = x.shape
    flat = x.reshape(T * N, -1)
    xw = flat @ w_ih.t() if bias is None else torch.addmm(bias, flat, w_ih.t())
    return _eager_recurrence(xw.view(T, N, -1), w_hh, h0, c0, batch_sizes, reverse)


def lstm_layer(
    x: Tensor,
    weights: LayerWeights,
    h0: Tensor,
    c0: Tensor,
    batch_sizes: Sequence[int] | None = None,
    fused: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One layer, D = len(weights) directions (forward, then reverse), outputs concatenated on features.

    x (T, N, H_in); h0, c0 (D, N, H) -> (out (T, N, D*H), h_n (D, N, H), c_n (D, N, H)).
    """
    results = [
        lstm_direction(x, w, h0[d], c0[d], batch_sizes, reverse=d == 1, fused=fused) for d, w in enumerate(weights)
    ]
    outs, hs, cs = zip(*results)
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
    return out, torch.stack(hs), torch.stack(cs)


def lstm_stack(
    x: Tensor,
    layers: Sequence[LayerWeights],
    h0: Tensor,
    c0: Tensor,
    batch_sizes: Sequence[int] | None = None,
    dropout: float = 0.0,
    training: bool = False,
    fused: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Layers on top of each other, dropout on each layer's output except the last (as torch.nn.LSTM).

    x (T, N, H_in); h0, c0 (L*D, N, H), row k*D + d for layer k, direction d
    -> (out (T, N, D*H), h_n (L*D, N, H), c_n (L*D, N, H)).
    """
    h_n, c_n = [], []
    for k, weights in enumerate(layers):
        if k > 0 and dropout > 0.0 and training:
            x = F.dropout(x, dropout, training=True)
        D = len(weights)
        x, h, c = lstm_layer(x, weights, h0[k * D : (k + 1) * D], c0[k * D : (k + 1) * D], batch_sizes, fused)
        h_n.append(h)
        c_n.append(c)
    return x, torch.cat(h_n), torch.cat(c_n)
