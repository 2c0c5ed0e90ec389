"""``RNNBase``: the constructor, parameters and forward of torch's recurrent modules, once for every cell kind.

A subclass names its ``mode`` (as in error messages: "LSTM", "GRU") and its :class:`~seqlab.nn.layers.Recurrence`;
this class does the rest as torch does: option checks (same order, same messages), parameters (same names, shapes,
registration order and init, so state dicts interchange both ways and equal seeds give equal weights), input and
state checks, PackedSequence, ``batch_first``, unbatched input, and the state's batch order.

Two methods are the seams for regularisers that act per layer: :meth:`RNNBase.layer_weights` (every layer's
parameters pass through it before its kernel runs, e.g. DropConnect on ``weight_hh``) and
:meth:`RNNBase.between_layers` (dropout on each layer's input but the first, e.g. locked dropout instead).
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqlab.nn.layers import Recurrence, Weights, run_stack

WEIGHT_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # torch's names and order


def check_type(name: str, value: object, kind: type) -> None:
    """TypeError unless ``value`` is a ``kind`` (torch's check and message: ``bias=0`` is not a bool)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} should be of type {kind.__name__}, got: {type(value).__name__}")


def check_size(name: str, value: object) -> None:
    """torch's checks of input_size / hidden_size: an int (TypeError), greater than zero (ValueError)."""
    check_type(name, value, int)
    if value <= 0:
        raise ValueError(f"{name} must be greater than zero")


def type_name(dtype: torch.dtype) -> str:
    """ATen's name of a dtype, as its kernels' messages write it: torch.float64 -> "Double"."""
    return torch.empty((), dtype=dtype).type().removeprefix("torch.").removesuffix("Tensor")


def layer_weights(module: nn.Module, layer: int) -> list[Weights]:
    """Per direction, layer ``layer``'s parameters by kind (None where absent), for any module with torch's
    parameter names — torch.nn.LSTM / GRU as well as seqlab.nn's."""
    directions = 2 if module.bidirectional else 1
    return [{kind: getattr(module, f"{kind}_l{layer}" + ("_reverse" if d else ""), None) for kind in WEIGHT_KINDS}
            for d in range(directions)]


class RNNBase(nn.Module):
    """Shared by :class:`seqlab.nn.LSTM` and :class:`seqlab.nn.GRU`; see those for the maths and shapes.

    Attribute ``fused`` (default True) picks the cell's hand-differentiated kernel; False runs the plain autograd
    loop (slower; results are the same).
    """

    mode: str
    recurrence: Recurrence

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element "
                             "being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=3)
        check_type("bias", bias, bool)
        check_type("batch_first", batch_first, bool)
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        # num_layers and proj_size are compared, not type-checked, as torch does: a float num_layers fails in
        # range() below with Python's own TypeError, a str in the comparison
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size, self.fused = bidirectional, proj_size, True

        factory = {"device": device, "dtype": dtype}
        out_size = (proj_size or hidden_size) * self.num_directions
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = self._parameter_shapes(input_size if layer == 0 else out_size)
                for kind, shape in shapes.items():
                    self.register_parameter(kind + suffix, nn.Parameter(torch.empty(shape, **factory)))
                self._all_weights.append([kind + suffix for kind in shapes])
        self._flat_weights_names = [name for names in self._all_weights for name in names]
        self.reset_parameters()

    def _parameter_shapes(self, layer_input: int) -> dict[str, tuple[int, ...]]:
        """One direction's parameters in torch's order: gate rows G = gates * H, recurrent width R = P or H."""
        G, R = self.recurrence.gates * self.hidden_size, self.proj_size or self.hidden_size
        shapes = {"weight_ih": (G, layer_input), "weight_hh": (G, R)}
        if self.bias:
            shapes.update(bias_ih=(G,), bias_hh=(G,))
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, self.hidden_size)
        return shapes

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer and direction, the parameters in torch's order, as ``torch.nn.LSTM.all_weights``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    def reset_parameters(self) -> None:
        """Every parameter ~ uniform(-1/√H, 1/√H), drawn in registration order exactly as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """No-op, kept so code written for torch's modules (which compact weights for cuDNN) runs unchanged."""

    def layer_weights(self, layer: int) -> list[Weights]:
        """The seam every layer's parameters pass through before its kernel runs (per direction, by kind)."""
        return layer_weights(self, layer)

    def between_layers(self, x: Tensor, layer: int) -> Tensor:
        """Layer ``layer``'s input (T, N, F), for layer > 0: dropout in training mode, as torch."""
        return F.dropout(x, self.dropout, training=True) if self.training and self.dropout > 0 else x

    def forward(self, input: Tensor | PackedSequence, hx=None):
        """input (T, N, H_in) ((N, T, H_in) if batch_first), unbatched (T, H_in), or a PackedSequence; hx the
        initial state as torch's module takes it -> (output, final state) as torch's module returns them."""
        if torch.jit.is_tracing():
            raise RuntimeError(self._not_compilable("traceable with torch.jit.trace", "its time loop runs in Python, "
                                                    "so a trace would record the steps of one sequence length"))
        rec, packed = self.recurrence, isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = batch_sizes = None
        if packed:
            data, batch_sizes_t, sorted_indices, unsorted_indices = input
            batched = True
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.dim()}D instead")
            batched, data = input.dim() == 3, input
        states = None if hx is None else ((hx,) if rec.num_states == 1 else tuple(hx))
        if states is not None and not packed:
            self._check_state_dims(states, batched)
            if not batched:
                states = tuple(s.unsqueeze(1) for s in states)
        self._check_input(data, 2 if packed else 3 if batched else 2)
        if packed:
            x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes_t))  # sorted longest first
            batch_sizes = batch_sizes_t.tolist()
        else:
            x = (input.transpose(0, 1) if self.batch_first else input) if batched else input.unsqueeze(1)
        shapes = [(self.num_layers * self.num_directions, x.size(1), size)
                  for size in rec.state_sizes(self.hidden_size, self.proj_size)]
        if states is None:
            states = tuple(x.new_zeros(shape) for shape in shapes)
        else:
            self._check_state_sizes(states, shapes)
            if sorted_indices is not None:
                states = tuple(s.index_select(1, sorted_indices) for s in states)
        if x.size(0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")

        layers = [self.layer_weights(k) for k in range(self.num_layers)]
        out, finals = run_stack(rec, x, layers, states, batch_sizes, self.between_layers, self.fused)

        if packed:
            out = PackedSequence(pack_padded_sequence(out, lengths).data, batch_sizes_t, sorted_indices,
                                 unsorted_indices)
            if unsorted_indices is not None:
                finals = tuple(f.index_select(1, unsorted_indices) for f in finals)
        elif not batched:
            out, finals = out.squeeze(1), tuple(f.squeeze(1) for f in finals)
        elif self.batch_first:
            out = out.transpose(0, 1).contiguous()  # torch returns a contiguous (N, T, F)
        return out, (finals[0] if rec.num_states == 1 else finals)

    def _not_compilable(self, how: str, why: str) -> str:
        return (f"seqlab.nn.{self.mode} is not {how}: {why}; use torch.nn.{self.mode} there instead (backend=torch), "
                "which takes the same state_dict")

    def __prepare_scriptable__(self):  # torch.jit.script calls this first: refuse before it fails deep in the code
        raise RuntimeError(self._not_compilable("scriptable with torch.jit.script",
                                                "its kernels are autograd Functions that TorchScript cannot compile"))

    def _check_state_dims(self, states: tuple[Tensor, ...], batched: bool) -> None:
        want, kind = (3, "batched 3-D") if batched else (2, "unbatched 2-D")
        if any(s.dim() != want for s in states):
            if len(states) == 1:
                raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {states[0].dim()}-D tensor")
            dims = ", ".join(f"{s.dim()}-D" for s in states)
            raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")

    def _check_input(self, data: Tensor, dims: int) -> None:
        weight = self.weight_ih_l0
        if data.dtype != weight.dtype and not torch._C._is_any_autocast_enabled():
            raise ValueError(f"RNN input dtype ({data.dtype}) does not match weight dtype ({weight.dtype}). Convert "
                             f"input: input.to({weight.dtype}), or convert model: model.to({data.dtype})")
        if data.dim() != dims:
            raise RuntimeError(f"input must have {dims} dimensions, got {data.dim()}")
        if data.size(-1) != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {data.size(-1)}")

    def _check_state_sizes(self, states: tuple[Tensor, ...], shapes: list[tuple[int, int, int]]) -> None:
        for i, (state, shape) in enumerate(zip(states, shapes)):
            if state.shape != shape:
                name = "hidden" if len(states) == 1 else f"hidden[{i}]"
                raise RuntimeError(f"Expected {name} size {shape}, got {list(state.shape)}")
        dtype = self.weight_ih_l0.dtype
        for state in states:  # torch's error from its kernel's first matmul, state @ weight_hhᵀ
            if state.dtype != dtype and not torch._C._is_any_autocast_enabled():
                raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {type_name(state.dtype)} and "
                                   f"{type_name(dtype)}")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s
