"""The layer stack is cell-generic: a third cell is one Recurrence + a module line, and the per-layer seams work."""

from __future__ import annotations

import pytest
import torch
from test_nn_parity import IN, LENGTHS, H, N, T, assert_all_close, one_thread  # noqa: F401
from torch.nn.utils.rnn import pack_padded_sequence

from seqlab.nn import GRU, LSTM, RNNBase
from seqlab.nn.layers import Recurrence, eager_direction


class TanhRecurrence(Recurrence):
    """The Elman RNN, h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh): everything a new cell has to say."""

    gates, num_states = 1, 1

    def state_sizes(self, hidden_size, proj_size):
        return (hidden_size,)

    def prepare(self, w):
        bias = None if w["bias_ih"] is None else w["bias_ih"] + w["bias_hh"]
        return w["weight_ih"], w["weight_hh"], bias

    def project(self, x, prepared):
        w_ih, _, bias = prepared
        return torch.nn.functional.linear(x, w_ih, bias)

    def step(self, xw, state, prepared):
        return (torch.tanh(torch.addmm(xw, state[0], prepared[1].t())),)

    def fused(self, x, prepared, state, batch_sizes, reverse):  # no hand-written kernel: the eager loop
        return eager_direction(self, x, prepared, state, batch_sizes, reverse)


class TanhRNN(RNNBase):
    mode, recurrence = "RNN", TanhRecurrence()


@pytest.mark.parametrize("pack", [None, False], ids=["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_a_third_cell_is_one_recurrence(bidirectional, pack):
    """Stacking, directions, packing, h0, batch_first and the state's batch order come from the shared code."""
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": bidirectional, "batch_first": True, "dtype": torch.float64}
    ref, ours = torch.nn.RNN(IN, H, **kw), TanhRNN(IN, H, **kw)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(N, T, IN, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4 if bidirectional else 2, N, H, dtype=torch.float64, requires_grad=True)
    results = []
    for m in (ref, ours):
        inp = x if pack is None else pack_padded_sequence(x, torch.tensor(LENGTHS[pack]), True, enforce_sorted=False)
        out, h_n = m(inp, h0)
        out = out if pack is None else out.data
        results.append([out, h_n, *torch.autograd.grad(out.sum() + h_n.pow(2).sum(), [x, h0, *m.parameters()])])
    assert_all_close(results[1], results[0], torch.float64)


class ZeroRecurrentWeights(LSTM):
    """The DropConnect seam: every layer's weights pass through layer_weights before the kernel runs."""

    def layer_weights(self, layer):
        return [{**w, "weight_hh": torch.zeros_like(w["weight_hh"])} for w in super().layer_weights(layer)]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_layer_weights_is_the_seam_every_kernel_reads(fused):
    torch.manual_seed(0)
    ours, plain = ZeroRecurrentWeights(IN, H, 2, bidirectional=True), LSTM(IN, H, 2, bidirectional=True)
    plain.load_state_dict(ours.state_dict())
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if name.startswith("weight_hh"):
                p.zero_()
    ours.fused = plain.fused = fused
    x = torch.randn(T, N, IN)
    assert_all_close(ours(x)[0], plain(x)[0])
    packed = pack_padded_sequence(x, torch.tensor(LENGTHS[False]), enforce_sorted=False)
    assert_all_close(ours(packed)[0].data, plain(packed)[0].data)


def test_between_layers_sees_each_upper_layers_input():
    """The dropout seam: called once per layer above the first with its (T, N, D*H) input; its result is used."""
    seen = []

    class Doubling(GRU):
        def between_layers(self, x, layer):
            seen.append((layer, tuple(x.shape)))
            return 2 * x

    torch.manual_seed(0)
    ours, plain = Doubling(IN, H, 3, bidirectional=True), GRU(IN, H, 3, bidirectional=True)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(T, N, IN)
    out = ours(x)[0]
    assert seen == [(1, (T, N, 2 * H)), (2, (T, N, 2 * H))]
    assert not torch.allclose(out, plain(x)[0])
    # the same result by hand: layers run one at a time, inputs doubled in between
    h = x
    for k in range(3):
        layer = GRU(IN if k == 0 else 2 * H, H, bidirectional=True)
        layer.load_state_dict({n.replace(f"_l{k}", "_l0"): p for n, p in plain.state_dict().items() if f"_l{k}" in n})
        h = layer(2 * h if k else h)[0]
    assert_all_close(out, h)
