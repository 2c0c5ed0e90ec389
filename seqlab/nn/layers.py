"""Any cell over time: one direction, both directions, a stack of layers — written once for every cell kind.

The layering of PyTorch's ``benchmarks/fastrnns/custom_lstms.py``: cell -> layer over time (also reversed) ->
bidirectional -> stack with dropout between layers. A cell kind is a :class:`Recurrence` (LSTM: seqlab.nn.lstm,
GRU: seqlab.nn.gru); it projects the input of all steps at once, takes one step, and offers a fused kernel.
Directions, stacking, variable lengths and the choice of kernel live here, so a new cell (say a layer-normalised
LSTM) is one Recurrence plus its fused kernel.

Shapes: T time steps, N batch, D directions, everything time-major (T, N, features). A state is a tuple of tensors
(LSTM (h, c), GRU (h,)); ``state[0]`` is the output h. Variable lengths come as ``batch_sizes`` (PackedSequence's,
sequences sorted longest first): at time t only the first ``batch_sizes[t]`` sequences run, the others carry their
state, so each sequence's final state is the one after its own last real step. Running the loop backwards in time
gives the reverse direction, each sequence starting at its own last real token, without reversing any data.

Two interchangeable time loops per direction, checked against each other and torch:

* fused (default): the cell's hand-differentiated kernel, one autograd node per direction; its backward turns into
  autograd of the eager loop when the gradient itself must be differentiable (double backward) or batched (vmap);
* eager: the plain autograd loop :func:`eager_direction`, also taken under ``torch.func`` transforms and
  forward-mode AD, which the fused node does not implement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd import forward_ad

State = tuple[Tensor, ...]
Weights = dict[str, Tensor | None]  # one direction's parameters by kind: weight_ih, weight_hh, bias_ih, ...


class Recurrence:
    """A cell kind as the layer stack sees it. Subclasses set ``gates`` and ``num_states`` and implement the rest.

    ``prepare`` turns one direction's parameters (a :data:`Weights` dict) into what ``project``, ``step`` and
    ``fused`` take, once per forward (e.g. the LSTM adds its two biases).
    """

    gates: int  # chunks of hidden_size rows in weight_ih / weight_hh (LSTM 4, GRU 3)
    num_states: int  # tensors in the state (LSTM 2, GRU 1)

    def state_sizes(self, hidden_size: int, proj_size: int) -> tuple[int, ...]:
        raise NotImplementedError

    def prepare(self, weights: Weights) -> tuple:
        raise NotImplementedError

    def project(self, x: Tensor, prepared: tuple) -> Tensor:
        """Input projection of all steps: x (T, N, H_in) -> (T, N, G) = x W_ihᵀ + b, one matmul. By default
        ``prepared`` starts (W_ih, _, b or None, ...): the bias added here (LSTM: both biases; GRU: b_ih alone)."""
        w_ih, _, bias = prepared[:3]
        T, N, F_in = x.shape
        flat = x.reshape(T * N, F_in)
        xw = flat @ w_ih.t() if bias is None else torch.addmm(bias, flat, w_ih.t())
        return xw.view(T, N, w_ih.size(0))

    def step(self, xw: Tensor, state: State, prepared: tuple) -> State:
        """One step of n sequences: xw (n, G), state tensors (n, S) -> new state."""
        raise NotImplementedError

    def fused(self, x: Tensor, prepared: tuple, state: State, batch_sizes, reverse: bool) -> tuple[Tensor, State]:
        """The fast kernel, with the results of :func:`eager_direction`."""
        raise NotImplementedError

    def torch_kernel(self, x: Tensor, state: State, flat_weights: list[Tensor], bias: bool, train: bool) -> Tensor:
        """torch's own dense kernel for this cell over one direction of one layer (``torch._VF.lstm`` / ``gru``,
        what torch.nn.LSTM / GRU's forward calls): x (T, N, H_in), state tensors (1, N, S), flat_weights in torch's
        order -> out (T, N, S_0). For torch modules on seqlab.models.encoder's padded path."""
        raise NotImplementedError


def eager_direction(rec: Recurrence, x: Tensor, prepared: tuple, state: State,
                    batch_sizes: Sequence[int] | None = None, reverse: bool = False) -> tuple[Tensor, State]:
    """One direction as plain autograd: x (T, N, H_in), state tensors (N, S) -> (out (T, N, S_0), final state)."""
    steps = rec.project(x, prepared).unbind(0)  # never xw[t] in the loop: each slice's backward is a full-size zero
    T, N = x.shape[:2]
    outs: list[Tensor] = [state[0]] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        n = N if batch_sizes is None else batch_sizes[t]
        if n == N:
            state = rec.step(steps[t], state, prepared)
        else:  # finished sequences carry their state unchanged
            new = rec.step(steps[t][:n], tuple(s[:n] for s in state), prepared)
            state = tuple(torch.cat([a, s[n:]]) for a, s in zip(new, state))
        outs[t] = state[0]
    return torch.stack(outs), state


def transforms_active() -> bool:
    """True under torch.func transforms (vmap, grad, jacrev, ...) or inside a forward-mode AD level."""
    return torch._C._are_functorch_transforms_active() or forward_ad._current_level >= 0


def run_direction(rec: Recurrence, x: Tensor, prepared: tuple, state: State, batch_sizes=None,
                  reverse: bool = False, fused: bool = True) -> tuple[Tensor, State]:
    """One direction of one layer through the fused kernel, or the eager loop when asked or under transforms."""
    if fused and not transforms_active():
        return rec.fused(x, prepared, state, batch_sizes, reverse)
    return eager_direction(rec, x, prepared, state, batch_sizes, reverse)


def run_layer(rec: Recurrence, x: Tensor, weights: Sequence[Weights], state: State, batch_sizes=None,
              fused: bool = True) -> tuple[Tensor, State]:
    """One layer of D = len(weights) directions (forward, then reverse), outputs concatenated on features.

    x (T, N, H_in); state tensors (D, N, S) -> (out (T, N, D*S_0), final state tensors (D, N, S)).
    """
    results = [run_direction(rec, x, rec.prepare(w), tuple(s[d] for s in state), batch_sizes, d == 1, fused)
               for d, w in enumerate(weights)]
    outs = [out for out, _ in results]
    finals = tuple(torch.stack([final[i] for _, final in results]) for i in range(rec.num_states))
    return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)), finals


Layer = Callable[..., tuple[Tensor, State]]  # (rec, x, weights per direction, state, batch_sizes, fused)


def run_stack(rec: Recurrence, x: Tensor, layers: Sequence[Sequence[Weights]], state: State, batch_sizes=None,
              between: Callable[[Tensor, int], Tensor] | None = None, fused: bool = True,
              layer: Layer = run_layer) -> tuple[Tensor, State]:
    """Layers on top of each other; ``between(x, k)`` (dropout) runs on layer k's input for k > 0.

    x (T, N, H_in); state tensors (L*D, N, S), row k*D + d for layer k, direction d
    -> (out (T, N, D*S_0), final state tensors (L*D, N, S)). ``layer`` runs one layer with :func:`run_layer`'s
    arguments and results (seqlab.models.encoder passes torch's dense kernel or a PackedSequence call for torch
    modules; a layer may return fewer final state tensors than it was given, e.g. only h).
    """
    finals: list[State] = []
    for k, weights in enumerate(layers):
        if k > 0 and between is not None:
            x = between(x, k)
        D = len(weights)
        x, final = layer(rec, x, weights, tuple(s[k * D:(k + 1) * D] for s in state), batch_sizes, fused)
        finals.append(final)
    return x, tuple(torch.cat(parts) for parts in zip(*finals))


def autograd_backward(eager: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor | None],
                      needs: Sequence[bool], grads: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    """A fused node's backward as autograd of ``eager`` (same inputs, same outputs) recomputed from the saved inputs.

    Used when the gradient must itself be differentiable (create_graph=True: grad mode is on inside backward only
    then) or is batched (vmap over the backward): the result is built of differentiable, vmap-able ops.
    """
    create_graph = torch.is_grad_enabled()
    wanted = [i for i, (t, need) in enumerate(zip(inputs, needs)) if need and t is not None]
    with torch.enable_grad():
        pairs = [(out, g) for out, g in zip(eager(*inputs), grads) if g is not None]
    result: list[Tensor | None] = [None] * len(inputs)
    if wanted and pairs:
        got = torch.autograd.grad([o for o, _ in pairs], [inputs[i] for i in wanted], [g for _, g in pairs],
                                  create_graph=create_graph, allow_unused=True)
        for i, g in zip(wanted, got):
            result[i] = g
    return tuple(result)


def graph_of_gradient(grads: Sequence[Tensor | None]) -> bool:
    """In a backward: must the gradient be differentiable (create_graph=True) or batched (vmap)?"""
    functorch = torch._C._functorch  # vmap's batched tensors: torch.func's, and the legacy kind gradcheck uses
    return torch.is_grad_enabled() or transforms_active() or any(
        g is not None and (functorch.is_batchedtensor(g) or functorch.is_legacy_batchedtensor(g)) for g in grads)
