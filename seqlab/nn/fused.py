"""The LSTM's fast path: one direction as a single autograd node with a hand-derived backward.

Why it is fast (CPU, measured with scripts/bench_lstm.py):

* the input projection x W_ihᵀ + b of all T steps is one matmul; only h W_hhᵀ stays in the loop, added in place
  into the gate buffer (``addmm_``);
* forward and backward write into preallocated buffers with in-place ops, and autograd records one node per
  direction instead of ~12 per step; the weight gradients are single big matmuls after the loop
  (dW_hh = (4H × T·N) @ (T·N × H)) rather than T small ones;
* the gates' tanh(a_g) is computed as 2σ(2a_g) − 1 so that one sigmoid call covers all four gates (the g rows of
  the weights and bias are scaled by 2 up front); tanh(c) is torch.tanh itself (one op, where 2σ(2c) − 1 is four);
* constants are 0-dim tensors (a Python scalar costs a conversion per op);
* the input is projected a block of steps at a time, just before those steps run, so that their gates are still
  in cache when the loop reads them; without autograd (inference) the blocks share one small buffer instead of a
  T·N·4H allocation, whose first touch (page faults) costs as much as a matmul.

Projections (``proj_size`` P > 0, torch's semantics): h_t = W_hr (o_t ⊙ tanh c_t), so h is (N, P), c stays (N, H)
and W_hh is (4H, P); dW_hr is one matmul after the loop as well.

Shapes: T steps, N batch, H hidden, G = 4H, R = P or H. ``batch_sizes`` (PackedSequence's, longest first) means
only the first ``batch_sizes[t]`` sequences run at time t; the rest carry their state. ``reverse`` runs from
t = T-1 down to 0, so every sequence's reverse pass starts at its own last real step.
"""

from __future__ import annotations

import torch

from seqlab.nn.layers import autograd_backward, graph_of_gradient

_BLOCK_ELEMENTS = 1 << 21  # inference: gate buffer of about 8 MB (float32), reused across blocks of steps


def _rows(n, *tensors):
    """The first n rows (running sequences) of each tensor; None stays None."""
    return tuple(None if t is None else t[:n] for t in tensors)


def lstm_forward(x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes=None, reverse=False, keep=True):
    """x (T, N, H_in); w_ih (G, H_in); w_hh (G, R); bias (G,) or None; w_hr (R, H) or None; h0 (N, R), c0 (N, H).

    Returns out (T, N, R), h_n (N, R), c_n (N, H) and, if ``keep``, what backward needs: (gates (T, N, G) activated
    as (i, f, g, o), hs (T+1, N, R), cs (T+1, N, H), tanh_c (T, N, H), hr (T, N, H) = o tanh(c) or None without
    projection). States are indexed by time: step t reads ``hs[t]`` and writes ``hs[t+1]`` (forward) or reads
    ``hs[t+1]`` and writes ``hs[t]`` (reverse), so ``out`` is a contiguous slice of ``hs`` either way.
    """
    T, N, F_in = x.shape
    G, R = w_hh.shape
    H = G // 4
    scale = x.new_ones(G)
    scale[2 * H : 3 * H] = 2.0
    one, two = x.new_ones(()), x.new_full((), 2.0)
    x2d = x.reshape(T * N, F_in)
    w_ih_s = (w_ih * scale[:, None]).t()
    bias_s = None if bias is None else bias * scale
    w_hh_s = w_hh.t() * scale
    w_hr_t = None if w_hr is None else w_hr.t()

    def project(lo, hi, out=None):  # gate pre-activations from the input for times [lo, hi): (hi - lo, N, G)
        rows = x2d[lo * N : hi * N]
        res = torch.mm(rows, w_ih_s, out=out) if bias_s is None else torch.addmm(bias_s, rows, w_ih_s, out=out)
        return res.view(hi - lo, N, G)

    hs = x.new_empty(T + 1, N, R)
    hs[T if reverse else 0] = h0
    h_l = hs.unbind(0)  # per-step views made in one call: indexing inside the loop costs a dispatch per step
    block = max(1, _BLOCK_ELEMENTS // max(1, N * G))  # steps projected at a time, just before they run
    hr = hr_l = None
    if keep:  # every step's gates, c, tanh(c) (and o tanh(c) with projections) stay for backward
        gates = x.new_empty(T, N, G)
        cs, tanh_c = x.new_empty(T + 1, N, H), x.new_empty(T, N, H)
        cs[T if reverse else 0] = c0
        c_l, tc_l = cs.unbind(0), tanh_c.unbind(0)
        if w_hr is not None:
            hr = x.new_empty(T, N, H)
            hr_l = hr.unbind(0)
    else:  # c and tanh(c) only for the current step (ping-pong), gates in one reused block buffer
        buf = x.new_empty(min(block, T) * N, G)
        cs, tc_step, hr_step = x.new_empty(2, N, H), x.new_empty(N, H), x.new_empty(N, H)
        cs[0] = c0
        c_l = cs.unbind(0)
    for s, t in enumerate(range(T - 1, -1, -1) if reverse else range(T)):
        prev, new = (t + 1, t) if reverse else (t, t + 1)
        if s % block == 0:  # the next block's input projection, written while it is still warm in cache
            lo, hi = (max(t + 1 - block, 0), t + 1) if reverse else (t, min(t + block, T))
            out = gates.view(T * N, G)[lo * N : hi * N] if keep else buf[: (hi - lo) * N]
            blk_l, blk_lo = project(lo, hi, out).unbind(0), lo
        g = blk_l[t - blk_lo]
        if keep:
            c_prev, c_new, tc = c_l[prev], c_l[new], tc_l[t]
            h_raw = None if hr_l is None else hr_l[t]
        else:
            c_prev, c_new, tc, h_raw = c_l[s % 2], c_l[(s + 1) % 2], tc_step, hr_step
        h_prev, h_new = h_l[prev], h_l[new]
        n = N if batch_sizes is None else batch_sizes[t]
        if n < N:  # finished sequences carry their state unchanged
            h_new[n:] = h_prev[n:]
            c_new[n:] = c_prev[n:]
            if h_raw is not None:
                h_raw[n:] = 0.0  # dW_hr sums over every row: no garbage (maybe NaN) in finished ones
            g, h_prev, c_prev, h_new, c_new, tc, h_raw = _rows(n, g, h_prev, c_prev, h_new, c_new, tc, h_raw)
        g.addmm_(h_prev, w_hh_s).sigmoid_()
        i, f, gg, o = g.view(n, 4, H).unbind(1)
        gg.mul_(two).sub_(one)  # tanh(a_g) = 2σ(2 a_g) − 1
        torch.mul(f, c_prev, out=c_new).addcmul_(i, gg)  # c = f c_prev + i g
        torch.tanh(c_new, out=tc)  # one op: faster than 2σ(2c) − 1, four (torch 2.13, CPU)
        if w_hr is None:
            torch.mul(o, tc, out=h_new)  # h = o tanh(c)
        else:
            torch.mm(torch.mul(o, tc, out=h_raw), w_hr_t, out=h_new)  # h = W_hr (o tanh(c))
    out = hs[:T] if reverse else hs[1:]
    h_n = hs[0 if reverse else T].clone()
    if not keep:
        return out, h_n, cs[T % 2].clone(), None
    return out, h_n, cs[0 if reverse else T].clone(), (gates, hs, cs, tanh_c, hr)


def lstm_backward(x, w_ih, w_hh, w_hr, gates, hs, cs, tanh_c, hr, d_out, d_hn, d_cn, need, batch_sizes, reverse):
    """Gradients (x, w_ih, w_hh, bias, w_hr, h0, c0) from what :func:`lstm_forward` kept; ``need`` as
    ``ctx.needs_input_grad``. Missing output gradients (None) count as zero."""
    T, N, G = gates.shape
    H, R = G // 4, hs.size(-1)
    d_gates = torch.empty_like(gates)  # d loss / d gate pre-activations
    dh = hs.new_zeros(N, R) if d_hn is None else d_hn.clone(memory_format=torch.contiguous_format)
    dc = hs.new_zeros(N, H) if d_cn is None else d_cn.clone(memory_format=torch.contiguous_format)
    tmp, deriv, d_raw, one = hs.new_empty(N, H), hs.new_empty(N, G), hs.new_empty(N, H), hs.new_ones(())
    d_hs = None if w_hr is None else hs.new_empty(T, N, R)  # projection: every step's dh, for dW_hr
    a_l, da_l, c_l, tc_l = gates.unbind(0), d_gates.unbind(0), cs.unbind(0), tanh_c.unbind(0)
    d_out_l = None if d_out is None else d_out.unbind(0)
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if d_out_l is not None:
            dh.add_(d_out_l[t])
        if d_hs is not None:
            d_hs[t] = dh
        a, da, c_prev, tc = a_l[t], da_l[t], c_l[t + 1 if reverse else t], tc_l[t]
        dh_, dc_, tmp_, der, dr_ = dh, dc, tmp, deriv, d_raw
        n = N if batch_sizes is None else batch_sizes[t]
        if n < N:  # finished sequences: no gate gradient; dh and dc pass on to the carried state
            da[n:] = 0.0
            if d_hs is not None:
                d_hs[t, n:] = 0.0
            a, da, c_prev, tc, dh_, dc_, tmp_, der, dr_ = _rows(n, a, da, c_prev, tc, dh, dc, tmp, deriv, d_raw)
        d_o_tc = dh_ if w_hr is None else torch.mm(dh_, w_hr, out=dr_)  # d loss / d (o tanh c)
        i, f, g, o = a.view(n, 4, H).unbind(1)
        di, df, dg, do = da.view(n, 4, H).unbind(1)
        torch.addcmul(one, tc, tc, value=-1.0, out=tmp_).mul_(o)
        dc_.addcmul_(d_o_tc, tmp_)  # h = o tanh(c): dc += dh o (1 - tanh²c)
        torch.mul(dc_, g, out=di)  # c = f c_prev + i g: gradients w.r.t. the activations i, f, g, o
        torch.mul(dc_, c_prev, out=df)
        torch.mul(dc_, i, out=dg)
        torch.mul(d_o_tc, tc, out=do)
        torch.addcmul(a, a, a, value=-1.0, out=der)  # σ' = s (1 - s) for i, f, o ...
        torch.addcmul(one, g, g, value=-1.0, out=der[:, 2 * H : 3 * H])  # ... tanh' = 1 - g² for g
        da.mul_(der)
        dc_.mul_(f)
        torch.mm(da, w_hh, out=dh_)
    d_flat = d_gates.view(T * N, G)
    d_x = d_flat.mm(w_ih).view(x.shape) if need[0] else None
    d_w_ih = d_flat.t().mm(x.reshape(T * N, x.size(-1))) if need[1] else None
    d_w_hh = d_flat.t().mm((hs[1:] if reverse else hs[:T]).reshape(T * N, R)) if need[2] else None
    d_bias = d_flat.sum(0) if need[3] else None
    d_w_hr = d_hs.view(T * N, R).t().mm(hr.view(T * N, H)) if need[4] and w_hr is not None else None
    return d_x, d_w_ih, d_w_hh, d_bias, d_w_hr, dh, dc


class FusedLSTM(torch.autograd.Function):
    """(x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes, reverse, eager) -> (out, h_n, c_n).

    ``eager`` computes the same outputs from the same seven tensors by plain autograd; the backward becomes its
    autograd when the gradient must be differentiable (double backward) or batched (vmap), never silently zero.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes, reverse, eager):
        out, h_n, c_n, saved = lstm_forward(x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes, reverse, keep=True)
        ctx.save_for_backward(x, w_ih, w_hh, bias, w_hr, h0, c0, *saved)
        ctx.batch_sizes, ctx.reverse, ctx.eager = batch_sizes, reverse, eager
        ctx.set_materialize_grads(False)
        return out, h_n, c_n

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x, w_ih, w_hh, bias, w_hr, h0, c0, *saved = ctx.saved_tensors
        grads, need = (d_out, d_hn, d_cn), ctx.needs_input_grad[:7]
        if graph_of_gradient(grads):
            return (*autograd_backward(ctx.eager, (x, w_ih, w_hh, bias, w_hr, h0, c0), need, grads), None, None, None)
        return (*lstm_backward(x, w_ih, w_hh, w_hr, *saved, *grads, need, ctx.batch_sizes, ctx.reverse),
                None, None, None)


def lstm_direction(x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes=None, reverse=False, eager=None):
    """One direction through the fast path: an autograd node if anything needs a gradient, else inference mode.
    Returns (out (T, N, R), h_n (N, R), c_n (N, H))."""
    tensors = (x, w_ih, w_hh, bias, w_hr, h0, c0)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return FusedLSTM.apply(*tensors, batch_sizes, reverse, eager)
    return lstm_forward(*tensors, batch_sizes, reverse, keep=False)[:3]
