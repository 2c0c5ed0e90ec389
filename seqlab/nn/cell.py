"""One time step of each cell (LSTM, GRU) as functions, and drop-ins for ``torch.nn.LSTMCell`` / ``GRUCell``.

Gate order and parameter layout follow ``torch/nn/modules/rnn.py`` so weights interchange with torch: the gates are
stacked along dim 0 of the weights, LSTM in the order input, forget, cell (candidate), output; GRU in the order
reset, update, new. Option checks and error messages are torch's own, word for word.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lstm_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The element-wise half of an LSTM step, given the gate pre-activations.

    gates = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, split in order (i, f, g, o)::

        i = σ(gates_i)    f = σ(gates_f)    g = tanh(gates_g)    o = σ(gates_o)
        c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(c')

    gates (N, 4H), c (N, H) -> (h', c'), each (N, H).
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None) -> tuple[Tensor, Tensor]:
    """One LSTM step: x (N, H_in), h and c (N, H); w_ih (4H, H_in), w_hh (4H, H), biases (4H,) or None
    -> (h', c'), each (N, H). See :func:`lstm_pointwise` for the maths."""
    return lstm_pointwise(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh), c)


def gru_pointwise(xg: Tensor, hg: Tensor, h: Tensor) -> Tensor:
    """The element-wise half of a GRU step, given both projections (each split in order r, z, n)::

        xg = x W_ihᵀ + b_ih        hg = h W_hhᵀ + b_hh
        r = σ(xg_r + hg_r)    z = σ(xg_z + hg_z)    n = tanh(xg_n + r ⊙ hg_n)
        h' = (1 − z) ⊙ n + z ⊙ h

    b_hn sits inside the reset gate's product, as torch computes it. xg, hg (N, 3H), h (N, H) -> h' (N, H).
    """
    x_r, x_z, x_n = xg.chunk(3, dim=-1)
    h_r, h_z, h_n = hg.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n)


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None) -> Tensor:
    """One GRU step: x (N, H_in), h (N, H); w_ih (3H, H_in), w_hh (3H, H), biases (3H,) or None -> h' (N, H)."""
    return gru_pointwise(F.linear(x, w_ih, b_ih), F.linear(h, w_hh, b_hh), h)


class _CellBase(nn.Module):
    """Parameters, init and input checks shared by the cells: ``gates`` chunks of H rows per weight, a state of
    ``num_states`` tensors (each (N, H)), ``name`` as torch's error messages say it.

    Like torch's cells, the constructor checks nothing itself: sizes of 0 are valid (empty weights and states), and
    what torch.empty refuses (negative or non-integer sizes) raises torch.empty's own error, from the same calls.
    """

    gates: int
    num_states: int
    name: str

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        factory = {"device": device, "dtype": dtype}
        G = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty((G, input_size), **factory))
        self.weight_hh = nn.Parameter(torch.empty((G, hidden_size), **factory))
        if bias:  # any truthy value, as torch's cells take it
            self.bias_ih = nn.Parameter(torch.empty(G, **factory))
            self.bias_hh = nn.Parameter(torch.empty(G, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ uniform(-1/√H, 1/√H) (0 for H = 0), drawn in registration order exactly as torch's
        cells."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _prepare(self, input: Tensor, hx: tuple[Tensor, ...] | None, hx_name) -> tuple[Tensor, tuple, bool]:
        """Checks as torch's forward and ATen's cell kernels, in their order; unbatched input becomes a batch of 1.

        hx_name(i) names state i in the dimension error ("hidden" for GRU, "hx[i]" for LSTM).
        Returns (input (N, H_in), states each (N, H), batched).
        """
        if input.dim() not in (1, 2):
            raise ValueError(f"{self.name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for i, state in enumerate(hx or ()):
            if state.dim() not in (1, 2):
                raise ValueError(f"{self.name}: Expected {hx_name(i)} to be 1D or 2D, got {state.dim()}D instead")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            hx = (input.new_zeros(input.size(0), self.hidden_size),) * self.num_states
        elif not batched:
            hx = tuple(state.unsqueeze(0) for state in hx)
        if input.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.size(1)} expected {self.input_size}")
        for i, state in enumerate(hx):
            if input.size(0) != state.size(0):
                raise RuntimeError(f"Input batch size {input.size(0)} doesn't match hidden{i} batch size "
                                   f"{state.size(0)}")
            if state.size(1) != self.hidden_size:
                raise RuntimeError(f"hidden{i} has inconsistent hidden_size: got {state.size(1)}, expected "
                                   f"{self.hidden_size}")
        return input, hx, batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(_CellBase):
    r"""A long short-term memory cell, a drop-in for ``torch.nn.LSTMCell``.

    .. math::
        \begin{array}{ll}
        i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f = \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o = \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' = f \odot c + i \odot g \\
        h' = o \odot \tanh(c') \\
        \end{array}

    Shapes: input (N, H_in) or unbatched (H_in); hx optional (h_0, c_0), each (N, H) or (H), zeros if omitted;
    returns (h', c') of the input's batchedness.

    Parameters (uniform(-1/√H, 1/√H), as torch): weight_ih (4H, H_in) rows [W_ii | W_if | W_ig | W_io],
    weight_hh (4H, H), bias_ih and bias_hh (4H,) unless bias=False.
    """

    gates, num_states, name = 4, 2, "LSTMCell"

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        input, (h, c), batched = self._prepare(input, hx, lambda i: f"hx[{i}]")
        h, c = lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    r"""A gated recurrent unit cell, a drop-in for ``torch.nn.GRUCell``.

    .. math::
        \begin{array}{ll}
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \\
        h' = (1 - z) \odot n + z \odot h
        \end{array}

    Shapes: input (N, H_in) or unbatched (H_in); hx optional (N, H) or (H), zeros if omitted; returns h' of the
    input's batchedness.

    Parameters (uniform(-1/√H, 1/√H), as torch): weight_ih (3H, H_in) rows [W_ir | W_iz | W_in], weight_hh (3H, H),
    bias_ih and bias_hh (3H,) unless bias=False.
    """

    gates, num_states, name = 3, 1, "GRUCell"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, (h,), batched = self._prepare(input, None if hx is None else (hx,), lambda i: "hidden")
        h = gru_cell(input, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return h if batched else h.squeeze(0)
