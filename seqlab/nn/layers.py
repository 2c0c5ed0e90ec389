"""Running the LSTM cell over time: one direction, a reverse direction, bidirectional, and a stack of layers.

Shapes: T time steps, N batch, H hidden size, D directions. Everything is time-major, (T, N, features).

Two interchangeable implementations of the time loop, checked against each other and torch.nn.LSTM in the tests:

* fused (default): ``_FusedRecurrence``, an autograd.Function whose forward writes the gates and states into
  preallocated buffers with in-place ops and whose backward is derived by hand, so autograd records one node per
  layer instead of ~12 per step, and the weight gradient is one (4H × T·N) @ (T·N × H) matmul after the loop
  rather than T small ones. First-order gradients only.
* eager: the plain autograd loop over ``lstm_pointwise`` (any autograd feature works, e.g. double backward).

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
from torch.autograd.function import once_differentiable

from seqlab.nn.cell import lstm_pointwise

LayerWeights = Sequence[Sequence[Tensor | None]]  # per direction: (w_ih, w_hh, b_ih, b_hh)


class _FusedRecurrence(torch.autograd.Function):
    """(xw (T, N, 4H), w_hh (4H, H), h0, c0 (N, H)) -> (out (T, N, H), h_n, c_n (N, H)).

    xw already holds x W_ihᵀ + b_ih + b_hh for every step. tanh(a) is computed as 2σ(2a) − 1, so one sigmoid
    covers all four gates (the g rows of xw and W_hh are scaled by 2 once, up front). State buffers are indexed
    by time: step t reads ``hs[t]`` and writes ``hs[t + 1]`` (forward), or reads ``hs[t + 1]`` and writes
    ``hs[t]`` (reverse), so the output is a contiguous slice of ``hs`` either way.
    """

    @staticmethod
    def forward(ctx, xw, w_hh, h0, c0, batch_sizes, reverse):
        T, N, G = xw.shape
        H = G // 4
        scale = xw.new_ones(G)
        scale[2 * H : 3 * H] = 2.0
        gates = xw * scale  # becomes the activated gates (i, f, σ(2 a_g) -> g, o), saved for backward
        w_scaled = w_hh.t() * scale
        hs, cs = xw.new_empty(T + 1, N, H), xw.new_empty(T + 1, N, H)
        tanh_c = xw.new_empty(T, N, H)
        hs[T if reverse else 0] = h0
        cs[T if reverse else 0] = c0
        for t in range(T - 1, -1, -1) if reverse else range(T):
            prev, new = (t + 1, t) if reverse else (t, t + 1)
            n = N if batch_sizes is None else batch_sizes[t]
            g = gates[t, :n]
            g.addmm_(hs[prev, :n], w_scaled)
            g.sigmoid_()
            i, f, gg, o = g.chunk(4, 1)
            gg.mul_(2.0).sub_(1.0)
            c = torch.mul(f, cs[prev, :n], out=cs[new, :n]).addcmul_(i, gg)
            tc = torch.mul(c, 2.0, out=tanh_c[t, :n]).sigmoid_().mul_(2.0).sub_(1.0)
            torch.mul(o, tc, out=hs[new, :n])
            if n < N:  # finished sequences carry their state unchanged
                hs[new, n:] = hs[prev, n:]
                cs[new, n:] = cs[prev, n:]
        ctx.save_for_backward(w_hh, gates, hs, cs, tanh_c)
        ctx.batch_sizes, ctx.reverse = batch_sizes, reverse
        ctx.set_materialize_grads(False)
        last = 0 if reverse else T
        out = hs[:T] if reverse else hs[1:]
        return out, hs[last].clone(), cs[last].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, d_hn, d_cn):
        w_hh, gates, hs, cs, tanh_c = ctx.saved_tensors
        batch_sizes, reverse = ctx.batch_sizes, ctx.reverse
        T, N, G = gates.shape
        H = G // 4
        d_gates = torch.empty_like(gates)  # gradient w.r.t. the pre-activations, i.e. w.r.t. xw
        dh = hs.new_zeros(N, H) if d_hn is None else d_hn.clone()
        dc = hs.new_zeros(N, H) if d_cn is None else d_cn.clone()
        tmp = hs.new_empty(N, H)
        one = hs.new_ones(())
        for t in range(T) if reverse else range(T - 1, -1, -1):
            prev = t + 1 if reverse else t
            n = N if batch_sizes is None else batch_sizes[t]
            if d_out is not None:
                dh.add_(d_out[t])
            if n < N:
                d_gates[t, n:] = 0.0
            i, f, g, o = gates[t, :n].chunk(4, 1)
            di, df, dg, do = d_gates[t, :n].chunk(4, 1)
            dh_, dc_, tmp_, tc = dh[:n], dc[:n], tmp[:n], tanh_c[t, :n]
            # h = o tanh(c):  dc += dh o (1 - tanh²c);  d(a_o) = dh tanh(c) o (1 - o)
            torch.addcmul(one, tc, tc, value=-1.0, out=tmp_).mul_(o)
            dc_.addcmul_(dh_, tmp_)
            torch.mul(dh_, tc, out=do).mul_(torch.addcmul(o, o, o, value=-1.0, out=tmp_))
            # c = f c_prev + i g:  d(a_i) = dc g i(1-i);  d(a_f) = dc c_prev f(1-f);  d(a_g) = dc i (1 - g²)
            torch.mul(dc_, g, out=di).mul_(torch.addcmul(i, i, i, value=-1.0, out=tmp_))
            torch.mul(dc_, cs[prev, :n], out=df).mul_(torch.addcmul(f, f, f, value=-1.0, out=tmp_))
            torch.mul(dc_, i, out=dg).mul_(torch.addcmul(one, g, g, value=-1.0, out=tmp_))
            dc_.mul_(f)
            torch.mm(d_gates[t, :n], w_hh, out=dh_)
        d_w_hh = None
        if ctx.needs_input_grad[1]:
            h_prev = hs[1:] if reverse else hs[:T]
            d_w_hh = d_gates.view(T * N, G).t().mm(h_prev.reshape(T * N, H))
        return d_gates, d_w_hh, dh, dc, None, None


def _eager_recurrence(xw, w_hh, h0, c0, batch_sizes, reverse):
    """Same contract as :class:`_FusedRecurrence`, as a plain autograd loop over :func:`lstm_pointwise`."""
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
    T, N, _ = x.shape
    flat = x.reshape(T * N, -1)
    if b_ih is None:
        xw = flat @ w_ih.t()
    else:
        xw = torch.addmm(b_ih + b_hh, flat, w_ih.t())
    xw = xw.view(T, N, -1)
    if fused:
        return _FusedRecurrence.apply(xw, w_hh, h0, c0, batch_sizes, reverse)
    return _eager_recurrence(xw, w_hh, h0, c0, batch_sizes, reverse)


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
