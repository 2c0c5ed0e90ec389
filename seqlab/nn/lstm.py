"""``seqlab.nn.LSTM``: a hand-written multi-layer LSTM with the constructor, parameters and forward of torch.nn.LSTM.

State dicts interchange with ``torch.nn.LSTM`` both ways (same names, shapes and registration order), and with the
same seed both initialise to the same values.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.nn.cell import check_positive_int
from seqlab.nn.layers import lstm_stack


class LSTM(nn.Module):
    r"""A multi-layer LSTM, a drop-in for ``torch.nn.LSTM`` (without projections).

    For each element of the input sequence, each layer computes

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t) \\
        \end{array}

    Layer k > 0 takes layer k-1's output (both directions concatenated), with dropout in training mode.

    Args: as torch.nn.LSTM. ``proj_size`` must be 0 (projections are not implemented).

    Shapes (L = num_layers, D = 2 if bidirectional else 1, H = hidden_size):
        input: (T, N, H_in), (N, T, H_in) if batch_first, unbatched (T, H_in), or a PackedSequence.
        hx: optional (h_0, c_0), each (D*L, N, H) (unbatched: (D*L, H)), in the caller's batch order; zeros if None.
        returns: output (T, N, D*H) ((N, T, D*H) if batch_first; a PackedSequence if the input was one) and
            (h_n, c_n), each (D*L, N, H), row k*D + d for layer k, direction d (d = 1 is the reverse direction).
            With a PackedSequence, h_n/c_n are each sequence's state at its own last step, in the caller's order.

    Parameters (uniform(-1/√H, 1/√H)), for each layer k, suffix "_reverse" for the reverse direction:
        weight_ih_l{k}: (4H, H_in) for k = 0, else (4H, D*H); rows in gate order i, f, g, o.
        weight_hh_l{k}: (4H, H).    bias_ih_l{k}, bias_hh_l{k}: (4H,) (absent if bias=False).

    Attribute ``fused`` (default True) picks the hand-differentiated time loop; set it False for the plain
    autograd loop (slower, but supports double backward).
    """

    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("num_layers", num_layers)
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being "
                f"zeroed, got {dropout!r}"
            )
        if proj_size != 0:
            raise ValueError(
                f"seqlab.nn.LSTM does not support proj_size={proj_size}; use torch.nn.LSTM for projections."
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=2,
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        self.fused = True

        factory = {"device": device, "dtype": dtype}
        num_directions = 2 if bidirectional else 1
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (4 * hidden_size, layer_input), "weight_hh": (4 * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(4 * hidden_size,), bias_hh=(4 * hidden_size,))
                names = []
                for kind, shape in shapes.items():
                    self.register_parameter(kind + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(kind + suffix)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _flat_weights_names(self) -> list[str]:
        return [name for names in self._all_weights for name in names]

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer and direction, [weight_ih, weight_hh, bias_ih, bias_hh] as torch.nn.LSTM.all_weights."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        """Every parameter ~ uniform(-1/√H, 1/√H), drawn in registration order exactly as torch.nn.LSTM."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op, kept so code written for torch.nn.LSTM (which compacts weights for cuDNN) runs unchanged."""

    def _layer_weights(self) -> list[list[tuple[Tensor, ...]]]:
        """Per layer, per direction: (w_ih, w_hh, b_ih, b_hh), biases None when bias=False."""
        D = self.num_directions
        per_direction = [tuple(ws) if self.bias else (*ws, None, None) for ws in self.all_weights]
        return [per_direction[k * D : (k + 1) * D] for k in range(self.num_layers)]

    def forward(
        self, input: Tensor | PackedSequence, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        """See the class docstring for the shapes of input, hx and the returned output, (h_n, c_n)."""
        sorted_indices = unsorted_indices = batch_sizes = None
        lengths = None
        if isinstance(input, PackedSequence):
            data, batch_sizes_t, sorted_indices, unsorted_indices = input
            # Padded, still in PackedSequence's longest-first order; unsorted back only at the end.
            x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes_t))
            batch_sizes = batch_sizes_t.tolist()
            batched = True
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {input.dim()}D instead")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)
            if batched and self.batch_first:
                x = x.transpose(0, 1)
        if x.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}"
            )
        h0, c0 = self._initial_state(x, hx, batched, sorted_indices)

        out, h_n, c_n = lstm_stack(
            x, self._layer_weights(), h0, c0, batch_sizes, self.dropout, self.training, self.fused
        )

        if lengths is not None:
            packed = pack_padded_sequence(out, lengths, enforce_sorted=True)
            if unsorted_indices is not None:
                h_n, c_n = h_n.index_select(1, unsorted_indices), c_n.index_select(1, unsorted_indices)
            return PackedSequence(packed.data, batch_sizes_t, sorted_indices, unsorted_indices), (h_n, c_n)
        if not batched:
            return out.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, (h_n, c_n)

    def _initial_state(
        self, x: Tensor, hx: tuple[Tensor, Tensor] | None, batched: bool, sorted_indices: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """(h_0, c_0), each (D*L, N, H), zeros or the caller's hx checked and put in the batch order of x."""
        expected = (self.num_layers * self.num_directions, x.size(1), self.hidden_size)
        if hx is None:
            zeros = x.new_zeros(expected)
            return zeros, zeros
        h0, c0 = hx
        want = 3 if batched else 2
        if h0.dim() != want or c0.dim() != want:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(
                f"For {kind} input, hx and cx should also be {want}-D but got ({h0.dim()}-D, {c0.dim()}-D) tensors"
            )
        if not batched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        for i, state in enumerate((h0, c0)):
            if tuple(state.shape) != expected:
                got = list(state.shape) if batched else [state.size(0), state.size(2)]
                want_shape = list(expected) if batched else [expected[0], expected[2]]
                raise RuntimeError(f"Expected hidden[{i}] size {tuple(want_shape)}, got {got}")
        if sorted_indices is not None:
            h0, c0 = h0.index_select(1, sorted_indices), c0.index_select(1, sorted_indices)
        return h0, c0

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s
