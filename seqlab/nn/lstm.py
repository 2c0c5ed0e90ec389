"""``seqlab.nn.LSTM``: the LSTM cell kind for the layer stack, and the drop-in for ``torch.nn.LSTM``."""

from __future__ import annotations

import torch
from torch import _VF, Tensor

from seqlab.nn.cell import lstm_pointwise
from seqlab.nn.fused import lstm_direction
from seqlab.nn.layers import Recurrence, State, Weights, eager_direction
from seqlab.nn.rnn import RNNBase


class LSTMRecurrence(Recurrence):
    """The LSTM for :mod:`seqlab.nn.layers`: state (h, c); prepared weights (w_ih, w_hh, b_ih + b_hh, w_hr)."""

    gates, num_states = 4, 2

    def state_sizes(self, hidden_size: int, proj_size: int) -> tuple[int, int]:
        return proj_size or hidden_size, hidden_size

    def prepare(self, w: Weights) -> tuple:
        bias = None if w["bias_ih"] is None else w["bias_ih"] + w["bias_hh"]
        return w["weight_ih"], w["weight_hh"], bias, w.get("weight_hr")

    def step(self, xw: Tensor, state: State, prepared: tuple) -> State:
        _, w_hh, _, w_hr = prepared
        h, c = lstm_pointwise(torch.addmm(xw, state[0], w_hh.t()), state[1])
        return (h if w_hr is None else h @ w_hr.t()), c

    def fused(self, x, prepared, state, batch_sizes, reverse):
        def eager(x, w_ih, w_hh, bias, w_hr, h0, c0):  # the same function, for backward passes that need a graph
            out, (h, c) = eager_direction(self, x, (w_ih, w_hh, bias, w_hr), (h0, c0), batch_sizes, reverse)
            return out, h, c

        out, h, c = lstm_direction(x, *prepared, *state, batch_sizes, reverse, eager)
        return out, (h, c)

    def torch_kernel(self, x, state, flat_weights, bias, train):
        return _VF.lstm(x, state, flat_weights, bias, 1, 0.0, train, False, False)[0]


class LSTM(RNNBase):
    r"""A multi-layer LSTM, a drop-in for ``torch.nn.LSTM`` (projections included).

    For each element of the input sequence, each layer computes

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t) \quad (\text{with } proj\_size > 0: h_t = W_{hr} (o_t \odot \tanh(c_t)))
        \end{array}

    Layer k > 0 takes layer k-1's output (both directions concatenated), with dropout in training mode.

    Args: as torch.nn.LSTM (input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
    proj_size, device, dtype), checked as torch checks them.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size, R = proj_size or H):
        input: (T, N, H_in), (N, T, H_in) if batch_first, unbatched (T, H_in), or a PackedSequence.
        hx: optional (h_0 (D*L, N, R), c_0 (D*L, N, H)) (unbatched: without N), in the caller's batch order.
        returns: output (T, N, D*R) ((N, T, D*R) if batch_first; a PackedSequence if the input was one) and
            (h_n, c_n) as hx, row k*D + d for layer k, direction d (d = 1 is the reverse direction); with a
            PackedSequence, each sequence's state at its own last step, in the caller's order.

    Parameters (uniform(-1/√H, 1/√H)), for each layer k, suffix "_reverse" for the reverse direction:
        weight_ih_l{k}: (4H, H_in) for k = 0, else (4H, D*R); rows in gate order i, f, g, o.
        weight_hh_l{k}: (4H, R).    bias_ih_l{k}, bias_hh_l{k}: (4H,) (absent if bias=False).
        weight_hr_l{k}: (P, H), only if proj_size P > 0.
    """

    mode, recurrence = "LSTM", LSTMRecurrence()

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, **unknown) -> None:
        if unknown:  # torch's LSTM passes its arguments on to RNNBase, whose signature refuses them
            raise TypeError(f"RNNBase.__init__() got an unexpected keyword argument '{next(iter(unknown))}'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
                         device, dtype)
