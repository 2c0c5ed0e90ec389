"""LSTM-only parts of seqlab.nn against torch: projections (proj_size), LSTMCell, the fused kernel's own backward.

The grids both cells share (uni/bi x layers x batch_first x padded/packed x h0 x dtype) are in test_nn_parity.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_nn_parity import IN, LENGTHS, TOL, H, N, T, assert_all_close, one_thread, run  # noqa: F401
from torch.nn.utils.rnn import pack_padded_sequence

import seqlab.nn.fused
from seqlab.nn import LSTM, LSTMCell
from seqlab.nn.layers import eager_direction
from seqlab.nn.lstm import LSTMRecurrence

P = 3  # proj_size


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zero-state", "hx"])
@pytest.mark.parametrize("pack", [None, False], ids=["padded", "packed"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_projections_match_torch(fused, bidirectional, num_layers, batch_first, pack, with_hx, dtype):
    """proj_size: weight_hr_l{k}, outputs and h of size proj_size, c of size hidden_size, as torch.nn.LSTM."""
    torch.manual_seed(0)
    kw = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first, "proj_size": P,
          "dtype": dtype}
    ref, ours = torch.nn.LSTM(IN, H, **kw), LSTM(IN, H, **kw)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    ours.fused = fused
    x = torch.randn((N, T, IN) if batch_first else (T, N, IN), dtype=dtype, requires_grad=True)
    rows = (2 if bidirectional else 1) * num_layers
    hx = None
    if with_hx:
        hx = (torch.randn(rows, N, P, dtype=dtype, requires_grad=True),
              torch.randn(rows, N, H, dtype=dtype, requires_grad=True))
    wrt = [x, *(hx or ())]
    expected, actual = run(ref, x, hx, pack, wrt)[0], run(ours, x, hx, pack, wrt)[0]
    assert actual[0].shape[-1] == P * (2 if bidirectional else 1)
    assert actual[1].shape == (rows, N, P) and actual[2].shape == (rows, N, H)
    assert_all_close(actual, expected, dtype)


def test_projections_inference_path_matches_torch():
    ref = torch.nn.LSTM(IN, H, 2, bidirectional=True, proj_size=P)
    ours = LSTM(IN, H, 2, bidirectional=True, proj_size=P)
    ours.load_state_dict(ref.state_dict())
    packed = pack_padded_sequence(torch.randn(T, N, IN), torch.tensor(LENGTHS[False]), enforce_sorted=False)
    with torch.no_grad():
        (out, (h, c)), (ref_out, (ref_h, ref_c)) = ours(packed), ref(packed)
    assert_all_close([out.data, h, c], [ref_out.data, ref_h, ref_c])


def fused_lstm(x, w_ih, w_hh, bias, w_hr, h0, c0, batch_sizes=None, reverse=False):
    return LSTMRecurrence().fused(x, (w_ih, w_hh, bias, w_hr), (h0, c0), batch_sizes, reverse)


@pytest.mark.parametrize("proj", [False, True], ids=["no-proj", "proj"])
@pytest.mark.parametrize("batch_sizes", [None, [3, 3, 2, 1]], ids=["dense", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_fused_backward_passes_gradcheck(reverse, batch_sizes, proj):
    """The hand-written backward against finite differences (float64), with variable lengths and projections;
    the first-order check also runs the batched (vmap) backward and must agree with it."""
    R = 2 if proj else 3
    shapes = [(4, 3, 2), (12, 2), (12, R), (12,), (R, 3) if proj else None, (3, R), (3, 3)]
    args = [None if s is None else torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]

    def fn(*a):
        out, (h, c) = fused_lstm(*a, batch_sizes, reverse)
        return out, h, c

    assert torch.autograd.gradcheck(fn, args, check_batched_grad=True)
    args[3] = None  # bias=False
    assert torch.autograd.gradcheck(fn, args)


def test_fused_path_really_runs_the_hand_written_backward(monkeypatch):
    """The first-order backward of the default path is the fused kernel's (not the eager fallback)."""
    calls = []
    real = seqlab.nn.fused.lstm_backward
    monkeypatch.setattr(seqlab.nn.fused, "lstm_backward", lambda *a: calls.append(1) or real(*a))
    model = LSTM(IN, H, bidirectional=True)
    model(torch.randn(T, N, IN))[0].sum().backward()
    assert len(calls) == 2  # one node per direction


def test_eager_direction_is_the_reference_of_the_fused_one():
    """The eager loop (the fused node's double-backward fallback) equals the fused kernel on the same tensors."""
    args = [torch.randn(s, dtype=torch.float64) for s in [(5, 3, 2), (8, 2), (8, 2), (8,)]]
    h0, c0 = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    for reverse in (False, True):
        fused_out, fused_state = fused_lstm(*args, None, h0, c0, [3, 2, 2, 1, 1], reverse)
        eager_out, eager_state = eager_direction(LSTMRecurrence(), args[0], (*args[1:], None), (h0, c0),
                                                 [3, 2, 2, 1, 1], reverse)
        assert_all_close([fused_out, *fused_state], [eager_out, *eager_state], torch.float64)


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch_cell(batched, with_hx):
    ref, ours = torch.nn.LSTMCell(IN, H), LSTMCell(IN, H)
    ours.load_state_dict(ref.state_dict())
    shape = (N,) if batched else ()
    x = torch.randn(*shape, IN, requires_grad=True)
    hx = tuple(torch.randn(*shape, H, requires_grad=True) for _ in range(2)) if with_hx else None
    results = []
    for cell in (ref, ours):
        h, c = cell(x, hx)
        loss = (h * torch.linspace(-1, 1, H)).sum() + (c**2).sum()
        results.append([h, c, *torch.autograd.grad(loss, [x, *(hx or ()), *cell.parameters()])])
    assert results[1][0].shape == shape + (H,)
    assert_all_close(results[1], results[0])


def test_cell_parameters_and_init_match_torch_cell():
    torch.manual_seed(1)
    ref = torch.nn.LSTMCell(IN, H)
    torch.manual_seed(1)
    ours = LSTMCell(IN, H)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    assert repr(ours) == repr(ref) and repr(LSTMCell(3, 4, bias=False)) == repr(torch.nn.LSTMCell(3, 4, bias=False))
    big = LSTMCell(3, 400)
    bound = 1 / math.sqrt(400)
    for p in big.parameters():  # uniform(-1/sqrt(H), 1/sqrt(H)): inside the bound, and filling most of it
        assert p.abs().max() <= bound and p.abs().max() > 0.95 * bound
    assert [n for n, _ in LSTMCell(IN, H, bias=False).named_parameters()] == ["weight_ih", "weight_hh"]

