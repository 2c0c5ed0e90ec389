"""GRU-only parts of seqlab.nn: the gate maths written out by hand, GRUCell against torch, the fused backward.

The grids both cells share (uni/bi x layers x batch_first x padded/packed x h0 x dtype) are in test_nn_parity.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_nn_parity import IN, H, N, T, assert_all_close, one_thread  # noqa: F401

import seqlab.nn.fused_gru
from seqlab.nn import GRU, GRUCell
from seqlab.nn.gru import GRURecurrence
from seqlab.nn.layers import eager_direction


def test_gate_order_and_reset_gate_bias_as_written_by_hand():
    """h' = (1 - z) n + z h with r, z, n in that row order and b_hn inside the reset gate's product."""
    torch.manual_seed(0)
    cell = GRUCell(IN, H).double()
    x, h = torch.randn(N, IN, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64)
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    expected = (1 - z) * n + z * h
    torch.testing.assert_close(cell(x, h), expected, atol=1e-12, rtol=0)
    model = GRU(IN, H).double()  # one step of the layer is the same cell
    model.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    for fused in (True, False):
        model.fused = fused
        out, h_n = model(x.unsqueeze(0), h.unsqueeze(0))
        torch.testing.assert_close(out[0], expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(h_n[0], expected, atol=1e-12, rtol=0)


def fused_gru(x, w_ih, w_hh, b_ih, b_hh, h0, batch_sizes=None, reverse=False):
    out, (h,) = GRURecurrence().fused(x, (w_ih, w_hh, b_ih, b_hh), (h0,), batch_sizes, reverse)
    return out, h


@pytest.mark.parametrize("batch_sizes", [None, [3, 3, 2, 1]], ids=["dense", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_fused_backward_passes_gradcheck(reverse, batch_sizes):
    """The hand-written backward against finite differences (float64), with variable lengths, both directions;
    the first-order check also runs the batched (vmap) backward and must agree with it."""
    shapes = [(4, 3, 2), (9, 2), (9, 3), (9,), (9,), (3, 3)]  # x, w_ih, w_hh, b_ih, b_hh, h0
    args = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    fn = lambda *a: fused_gru(*a, batch_sizes, reverse)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, check_batched_grad=True)
    args[3] = args[4] = None  # bias=False
    assert torch.autograd.gradcheck(fn, args)


def test_fused_path_really_runs_the_hand_written_backward(monkeypatch):
    calls = []
    real = seqlab.nn.fused_gru.gru_backward
    monkeypatch.setattr(seqlab.nn.fused_gru, "gru_backward", lambda *a: calls.append(1) or real(*a))
    GRU(IN, H, bidirectional=True)(torch.randn(T, N, IN))[0].sum().backward()
    assert len(calls) == 2  # one node per direction


def test_eager_direction_is_the_reference_of_the_fused_one():
    args = [torch.randn(s, dtype=torch.float64) for s in [(5, 3, 2), (6, 2), (6, 2), (6,), (6,)]]
    h0 = torch.randn(3, 2, dtype=torch.float64)
    for reverse in (False, True):
        fused_out, fused_h = fused_gru(*args, h0, [3, 2, 2, 1, 1], reverse)
        eager_out, (eager_h,) = eager_direction(GRURecurrence(), args[0], tuple(args[1:]), (h0,), [3, 2, 2, 1, 1],
                                                reverse)
        assert_all_close([fused_out, fused_h], [eager_out, eager_h], torch.float64)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch_cell(batched, with_hx, bias):
    ref, ours = torch.nn.GRUCell(IN, H, bias=bias), GRUCell(IN, H, bias=bias)
    ours.load_state_dict(ref.state_dict())
    shape = (N,) if batched else ()
    x = torch.randn(*shape, IN, requires_grad=True)
    hx = torch.randn(*shape, H, requires_grad=True) if with_hx else None
    results = []
    for cell in (ref, ours):
        h = cell(x, hx)
        loss = (h * torch.linspace(-1, 1, H)).sum()
        results.append([h, *torch.autograd.grad(loss, [x, *([hx] if with_hx else []), *cell.parameters()])])
    assert results[1][0].shape == shape + (H,)
    assert_all_close(results[1], results[0])


def test_cell_parameters_and_init_match_torch_cell():
    torch.manual_seed(1)
    ref = torch.nn.GRUCell(IN, H)
    torch.manual_seed(1)
    ours = GRUCell(IN, H)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    assert repr(ours) == repr(ref)
    bound = 1 / math.sqrt(H)
    assert all(p.abs().max() <= bound for p in ours.parameters())


def test_projections_are_refused_as_torch_refuses_them():
    for cls in (torch.nn.GRU, GRU):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
            cls(IN, H, proj_size=2)
