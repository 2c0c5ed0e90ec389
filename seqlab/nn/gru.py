"""``seqlab.nn.GRU``: the GRU cell kind for the layer stack, and the drop-in for ``torch.nn.GRU``."""

from __future__ import annotations

import torch.nn.functional as F
from torch import _VF, Tensor

from seqlab.nn.cell import gru_pointwise
from seqlab.nn.fused_gru import gru_direction
from seqlab.nn.layers import Recurrence, State, Weights, eager_direction
from seqlab.nn.rnn import RNNBase


class GRURecurrence(Recurrence):
    """The GRU for :mod:`seqlab.nn.layers`: state (h,); prepared weights (w_ih, w_hh, b_ih, b_hh).

    b_hh stays separate from b_ih: its n rows sit inside the reset gate's product, r ⊙ (W_hn h + b_hn).
    """

    gates, num_states = 3, 1

    def state_sizes(self, hidden_size: int, proj_size: int) -> tuple[int]:
        return (hidden_size,)

    def prepare(self, w: Weights) -> tuple:
        return w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"]

    def step(self, xw: Tensor, state: State, prepared: tuple) -> State:
        _, w_hh, _, b_hh = prepared
        return (gru_pointwise(xw, F.linear(state[0], w_hh, b_hh), state[0]),)

    def fused(self, x, prepared, state, batch_sizes, reverse):
        def eager(x, w_ih, w_hh, b_ih, b_hh, h0):  # the same function, for backward passes that need a graph
            out, (h,) = eager_direction(self, x, (w_ih, w_hh, b_ih, b_hh), (h0,), batch_sizes, reverse)
            return out, h

        out, h = gru_direction(x, *prepared, state[0], batch_sizes, reverse, eager)
        return out, (h,)

    def torch_kernel(self, x, state, flat_weights, bias, train):
        return _VF.gru(x, state[0], flat_weights, bias, 1, 0.0, train, False, False)[0]


class GRU(RNNBase):
    r"""A multi-layer gated recurrent unit (GRU), a drop-in for ``torch.nn.GRU``.

    For each element of the input sequence, each layer computes

    .. math::
        \begin{array}{ll}
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{array}

    Layer k > 0 takes layer k-1's output (both directions concatenated), with dropout in training mode.

    Args: as torch.nn.GRU (input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
    dtype), checked as torch checks them; ``proj_size`` is refused as torch refuses it.

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size):
        input: (T, N, H_in), (N, T, H_in) if batch_first, unbatched (T, H_in), or a PackedSequence.
        hx: optional h_0 (D*L, N, H) (unbatched: (D*L, H)), in the caller's batch order; zeros if None.
        returns: output (T, N, D*H) ((N, T, D*H) if batch_first; a PackedSequence if the input was one) and h_n
            as hx, row k*D + d for layer k, direction d; with a PackedSequence, each sequence's state at its own
            last step, in the caller's order.

    Parameters (uniform(-1/√H, 1/√H)), for each layer k, suffix "_reverse" for the reverse direction:
        weight_ih_l{k}: (3H, H_in) for k = 0, else (3H, D*H); rows in gate order r, z, n.
        weight_hh_l{k}: (3H, H).    bias_ih_l{k}, bias_hh_l{k}: (3H,) (absent if bias=False).
    """

    mode, recurrence = "GRU", GRURecurrence()

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, **unsupported) -> None:
        if "proj_size" in unsupported:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if unsupported:
            raise TypeError(f"RNNBase.__init__() got an unexpected keyword argument '{next(iter(unsupported))}'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
                         dtype)
