"""The LSTM cell: the gate maths of one time step, as a function and as a drop-in for ``torch.nn.LSTMCell``.

Gate order and parameter layout follow ``torch/nn/modules/rnn.py`` so weights interchange with torch:
the four gates are stacked in the order input, forget, cell (candidate), output along dim 0 of the weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def lstm_pointwise(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The element-wise half of an LSTM step, given the gate pre-activations.

    gates = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh, split in order (i, f, g, o)::

        i = σ(gates_i)    f = σ(gates_f)    g = tanh(gates_g)    o = σ(gates_o)
        c' = f ⊙ c + i ⊙ g
        h' = o ⊙ tanh(c')

    Args:
        gates: (N, 4H) pre-activations.
        c: (N, H) previous cell state.

    Returns:
        (h', c'), each (N, H).
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step on a batch: x (N, H_in), h and c (N, H) -> (h', c'), each (N, H).

    w_ih is (4H, H_in), w_hh is (4H, H), biases (4H,) or None; see :func:`lstm_pointwise` for the maths.
    """
    gates = x @ w_ih.t() + h @ w_hh.t()
    if b_ih is not None:
        gates = gates + b_ih
    if b_hh is not None:
        gates = gates + b_hh
    return lstm_pointwise(gates, c)


def check_positive_int(name: str, value: object) -> None:
    """Raise TypeError/ValueError naming ``name`` unless ``value`` is an int > 0 (as torch's RNN modules do)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than zero, got {value}")


class LSTMCell(nn.Module):
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

    Args:
        input_size: H_in, features of the input x.
        hidden_size: H, features of the hidden state h.
        bias: if False, the cell has no ``bias_ih`` / ``bias_hh``.

    Shapes:
        input: (N, H_in) or unbatched (H_in).
        hx: optional tuple (h_0, c_0), each (N, H) or unbatched (H); zeros if omitted.
        returns: (h', c'), each (N, H) or unbatched (H).

    Parameters (all initialised uniform(-1/√H, 1/√H), as torch):
        weight_ih: (4H, H_in), rows are [W_ii | W_if | W_ig | W_io].
        weight_hh: (4H, H), rows are [W_hi | W_hf | W_hg | W_ho].
        bias_ih, bias_hh: (4H,).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ uniform(-1/√H, 1/√H), exactly as torch.nn.LSTMCell."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """input (N, H_in) or (H_in); hx = (h, c) each (N, H) or (H) -> (h', c') of the same batchedness."""
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if input.size(-1) != self.input_size:
            raise RuntimeError(f"LSTMCell: input has {input.size(-1)} features but input_size is {self.input_size}")
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            zeros = input.new_zeros(input.size(0), self.hidden_size)
            h, c = zeros, zeros
        else:
            h, c = hx
            want = 2 if batched else 1
            if h.dim() != want or c.dim() != want:
                raise ValueError(
                    f"LSTMCell: for {want}-D input, hx and cx should also be {want}-D "
                    f"but got ({h.dim()}-D, {c.dim()}-D) tensors"
                )
            if not batched:
                h, c = h.unsqueeze(0), c.unsqueeze(0)
        h, c = lstm_cell(input, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if not batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
