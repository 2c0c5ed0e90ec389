"""The GRU's fast path: one direction as a single autograd node with a hand-derived backward.

The same recipe as the LSTM's (seqlab/nn/fused.py): the input projection x W_ihᵀ + b_ih of all T steps is one
matmul; per step only hw = h W_hhᵀ + b_hh (one addmm into a preallocated buffer) and in-place element-wise ops;
weight gradients are single big matmuls after the loop; without autograd the input is projected a block of steps
at a time into a small reused buffer.

Per step, with xg = x W_ihᵀ + b_ih and hw = h W_hhᵀ + b_hh split in order (r, z, n)::

    r = σ(xg_r + hw_r)    z = σ(xg_z + hw_z)    n = tanh(xg_n + r ⊙ hw_n)    h' = n + z ⊙ (h − n)

and backward, from dh = d loss / d h' (the pre-activation gradients of xg and of hw differ only in their n rows)::

    dn = dh (1 − z) (1 − n²)      dz = dh (h − n) z (1 − z)      dr = dn hw_n r (1 − r)
    d xg = (dr, dz, dn)      d hw = (dr, dz, dn r)      d h = dh z + d hw W_hh

Shapes: T steps, N batch, H hidden, G = 3H; ``batch_sizes`` and ``reverse`` as in seqlab/nn/fused.py.
"""

from __future__ import annotations

import torch

from seqlab.nn.fused import _rows
from seqlab.nn.layers import autograd_backward, graph_of_gradient

_BLOCK_ELEMENTS = 1 << 21  # inference: input-projection buffer of about 8 MB (float32), reused across blocks


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes=None, reverse=False, keep=True):
    """x (T, N, H_in); w_ih (G, H_in); w_hh (G, H); b_ih, b_hh (G,) or None; h0 (N, H).

    Returns out (T, N, H), h_n (N, H) and, if ``keep``, what backward needs: (gates (T, N, G) holding r, z, n,
    hw (T, N, G), hs (T+1, N, H)); states indexed by time as in seqlab/nn/fused.py.
    """
    T, N, F_in = x.shape
    G, H = w_hh.shape
    x2d, w_ih_t, w_hh_t = x.reshape(T * N, F_in), w_ih.t(), w_hh.t()

    def project(lo, hi, out=None):  # x W_ihᵀ + b_ih for times [lo, hi): (hi - lo, N, G)
        rows = x2d[lo * N : hi * N]
        res = torch.mm(rows, w_ih_t, out=out) if b_ih is None else torch.addmm(b_ih, rows, w_ih_t, out=out)
        return res.view(hi - lo, N, G)

    hs = x.new_empty(T + 1, N, H)
    hs[T if reverse else 0] = h0
    h_l = hs.unbind(0)
    if keep:
        gates, hw = project(0, T), x.new_empty(T, N, G)
        g_l, hw_l = gates.unbind(0), hw.unbind(0)
    else:
        block = max(1, _BLOCK_ELEMENTS // max(1, N * G))
        buf, hw_step = x.new_empty(min(block, T) * N, G), x.new_empty(N, G)
    for s, t in enumerate(range(T - 1, -1, -1) if reverse else range(T)):
        prev, new = (t + 1, t) if reverse else (t, t + 1)
        if keep:
            g, hw_t = g_l[t], hw_l[t]
        else:
            if s % block == 0:
                lo, hi = (max(t + 1 - block, 0), t + 1) if reverse else (t, min(t + block, T))
                blk_l, blk_lo = project(lo, hi, buf[: (hi - lo) * N]).unbind(0), lo
            g, hw_t = blk_l[t - blk_lo], hw_step
        h_prev, h_new = h_l[prev], h_l[new]
        n = N if batch_sizes is None else batch_sizes[t]
        if n < N:  # finished sequences carry their state unchanged
            h_new[n:] = h_prev[n:]
            g, hw_t, h_prev, h_new = _rows(n, g, hw_t, h_prev, h_new)
        if b_hh is None:
            torch.mm(h_prev, w_hh_t, out=hw_t)
        else:
            torch.addmm(b_hh, h_prev, w_hh_t, out=hw_t)
        rz, g_n = g[:, : 2 * H], g[:, 2 * H :]
        rz.add_(hw_t[:, : 2 * H]).sigmoid_()
        g_n.addcmul_(rz[:, :H], hw_t[:, 2 * H :]).tanh_()  # n = tanh(xg_n + r hw_n)
        torch.sub(h_prev, g_n, out=h_new).mul_(rz[:, H:]).add_(g_n)  # h' = n + z (h - n)
    out = hs[:T] if reverse else hs[1:]
    h_n = hs[0 if reverse else T].clone()
    return out, h_n, ((gates, hw, hs) if keep else None)


def gru_backward(x, w_ih, w_hh, gates, hw, hs, d_out, d_hn, need, batch_sizes, reverse):
    """Gradients (x, w_ih, w_hh, b_ih, b_hh, h0) from what :func:`gru_forward` kept; missing d_out/d_hn are zero."""
    T, N, G = gates.shape
    H = G // 3
    d_xg, d_hw = torch.empty_like(gates), torch.empty_like(gates)  # pre-activation gradients of xg and hw
    dh = hs.new_zeros(N, H) if d_hn is None else d_hn.clone(memory_format=torch.contiguous_format)
    dhz, tmp, deriv, one = hs.new_empty(N, H), hs.new_empty(N, H), hs.new_empty(N, 2 * H), hs.new_ones(())
    a_l, dx_l, dw_l, hw_l = gates.unbind(0), d_xg.unbind(0), d_hw.unbind(0), hw.unbind(0)
    d_out_l = None if d_out is None else d_out.unbind(0)
    for t in range(T) if reverse else range(T - 1, -1, -1):
        if d_out_l is not None:
            dh.add_(d_out_l[t])
        a, dx, dw, hw_t, h_prev = a_l[t], dx_l[t], dw_l[t], hw_l[t], hs[t + 1 if reverse else t]
        dh_, dhz_, tmp_, der = dh, dhz, tmp, deriv
        n = N if batch_sizes is None else batch_sizes[t]
        if n < N:  # finished sequences: no gate gradient; dh passes on to the carried state
            dx[n:] = 0.0
            dw[n:] = 0.0
            a, dx, dw, hw_t, h_prev, dh_, dhz_, tmp_, der = _rows(n, a, dx, dw, hw_t, h_prev, dh, dhz, tmp, deriv)
        r, z, g_n = a.view(n, 3, H).unbind(1)
        dw_r, dw_z, dw_n = dw.view(n, 3, H).unbind(1)
        dx_n = dx[:, 2 * H :]
        torch.mul(dh_, z, out=dhz_)  # the direct path h -> h' = ... + z h
        torch.sub(dh_, dhz_, out=dx_n).mul_(torch.addcmul(one, g_n, g_n, value=-1.0, out=tmp_))  # dn
        torch.mul(dx_n, r, out=dw_n)  # d hw_n = dn r
        torch.mul(dx_n, hw_t[:, 2 * H :], out=dw_r)  # d r = dn hw_n (times σ' below)
        torch.sub(h_prev, g_n, out=dw_z).mul_(dh_)  # d z = dh (h - n) (times σ' below)
        rz = a[:, : 2 * H]
        dw[:, : 2 * H].mul_(torch.addcmul(rz, rz, rz, value=-1.0, out=der))  # σ' = s (1 - s)
        torch.addmm(dhz_, dw, w_hh, out=dh_)  # dh_prev = dh z + d hw W_hh
    d_xg[..., : 2 * H] = d_hw[..., : 2 * H]
    dx_flat, dw_flat = d_xg.view(T * N, G), d_hw.view(T * N, G)
    d_x = dx_flat.mm(w_ih).view(x.shape) if need[0] else None
    d_w_ih = dx_flat.t().mm(x.reshape(T * N, x.size(-1))) if need[1] else None
    d_w_hh = dw_flat.t().mm((hs[1:] if reverse else hs[:T]).reshape(T * N, H)) if need[2] else None
    d_b_ih = dx_flat.sum(0) if need[3] else None
    d_b_hh = dw_flat.sum(0) if need[4] else None
    return d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh, dh


class FusedGRU(torch.autograd.Function):
    """(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, eager) -> (out, h_n); ``eager`` as in FusedLSTM."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, eager):
        out, h_n, saved = gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes, reverse, keep=True)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, h0, *saved)
        ctx.batch_sizes, ctx.reverse, ctx.eager = batch_sizes, reverse, eager
        ctx.set_materialize_grads(False)
        return out, h_n

    @staticmethod
    def backward(ctx, d_out, d_hn):
        x, w_ih, w_hh, b_ih, b_hh, h0, *saved = ctx.saved_tensors
        grads, need = (d_out, d_hn), ctx.needs_input_grad[:6]
        if graph_of_gradient(grads):
            return (*autograd_backward(ctx.eager, (x, w_ih, w_hh, b_ih, b_hh, h0), need, grads), None, None, None)
        return (*gru_backward(x, w_ih, w_hh, *saved, *grads, need, ctx.batch_sizes, ctx.reverse), None, None, None)


def gru_direction(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes=None, reverse=False, eager=None):
    """One direction through the fast path: an autograd node if anything needs a gradient, else inference mode.
    Returns (out (T, N, H), h_n (N, H))."""
    tensors = (x, w_ih, w_hh, b_ih, b_hh, h0)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return FusedGRU.apply(*tensors, batch_sizes, reverse, eager)
    return gru_forward(*tensors, batch_sizes, reverse, keep=False)[:2]
