"""Every failure issue 13 reported for seqlab.nn, as a regression test, each checked against torch itself."""

from __future__ import annotations

import pytest
import torch
from test_nn_parity import CELLS, one_thread, states  # noqa: F401
from torch.nn.utils.rnn import pack_padded_sequence

import seqlab.nn as snn

CELL_PAIRS = {"LSTMCell": (torch.nn.LSTMCell, snn.LSTMCell), "GRUCell": (torch.nn.GRUCell, snn.GRUCell)}


def error_of(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the point is to compare whatever both raise
        return type(e), str(e)
    return None


def assert_same_error(ours, ref):
    """Both raise, with the same exception type and the same message."""
    got, want = error_of(ours), error_of(ref)
    assert want is not None and got == want


def pair(cell, *args, dtype=torch.float64, **kwargs):
    ref_cls, our_cls = CELLS[cell]
    ref = ref_cls(*args, dtype=dtype, **kwargs)
    ours = our_cls(*args, dtype=dtype, **kwargs)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zero_size_batch_gives_empty_results_like_torch(cell, batch_first):
    ref, ours = pair(cell, 3, 4, 2, bidirectional=True, batch_first=batch_first)
    x = torch.zeros((0, 5, 3) if batch_first else (5, 0, 3), dtype=torch.float64, requires_grad=True)
    (out, state), (ref_out, ref_state) = ours(x), ref(x)
    assert out.shape == ref_out.shape == ((0, 5, 8) if batch_first else (5, 0, 8))
    assert [s.shape for s in states(state)] == [s.shape for s in states(ref_state)] == [(4, 0, 4)] * len(states(state))
    grads = torch.autograd.grad(out.sum(), [x, *ours.parameters()])
    assert grads[0].shape == x.shape and all((g == 0).all() for g in grads[1:])
    with torch.no_grad():
        assert ours(x)[0].shape == ref_out.shape


@pytest.mark.parametrize("shape", [(0, 2, 3), (0, 3)], ids=["batched", "unbatched"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zero_length_sequence_is_torchs_error(cell, shape):
    ref, ours = pair(cell, 3, 4)
    x = torch.zeros(shape, dtype=torch.float64)
    assert_same_error(lambda: ours(x), lambda: ref(x))
    assert error_of(lambda: ours(x)) == (RuntimeError, "Expected sequence length to be larger than 0 in RNN")


BAD_CELL_INPUTS = [
    ((10,), [(1, 20), (3, 20)], (3, 10)),  # h0 would broadcast: the example
    ((10,), [(3, 20), (1, 20)], (3, 10)),  # LSTMCell: c0 would broadcast
    ((10,), [(3, 21), (3, 21)], (3, 10)),
    ((10,), [(3, 20), (3, 21)], (3, 10)),  # LSTMCell: c0 of the wrong size
    ((10,), [(3, 20), (3, 20)], (3, 11)),
    ((10,), [(3, 20), (3, 20)], (10,)),  # unbatched input, batched hx
    ((10,), [(3, 1, 1, 20), (3, 1, 1, 20)], (3, 10)),
    ((10,), [(3, 20), (3, 20)], (3, 1, 10)),
    ((10,), [(3, 20), (3, 20)], (3, 10), torch.float32),  # float32 state for a float64 cell
]


@pytest.mark.parametrize(("name", "case"), [("LSTMCell", c) for c in BAD_CELL_INPUTS]
                         + [("GRUCell", c) for c in BAD_CELL_INPUTS if c[1][0] == c[1][1]])  # GRU: one state
def test_cell_errors_are_torchs(name, case):
    (in_size,), hx_shapes, x_shape, *hx_dtype = case
    ref_cls, our_cls = CELL_PAIRS[name]
    ref, ours = ref_cls(in_size, 20).double(), our_cls(in_size, 20).double()
    x = torch.randn(x_shape, dtype=torch.float64)
    hx = tuple(torch.randn(s, dtype=hx_dtype[0] if hx_dtype else torch.float64) for s in hx_shapes)
    hx = hx if name == "LSTMCell" else hx[0]
    assert_same_error(lambda: ours(x, hx), lambda: ref(x, hx))


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_cell_input_of_another_dtype_is_torchs_error(name):
    ref_cls, our_cls = CELL_PAIRS[name]
    x = torch.randn(3, 10, dtype=torch.float64)
    assert_same_error(lambda: our_cls(10, 20)(x), lambda: ref_cls(10, 20)(x))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_double_backward_through_the_fused_path_equals_torch(cell, bidirectional, packed):
    """A gradient penalty (g ** 2).sum() with g = d y / d x (create_graph=True) reaches the weights; it used to be
    silently 0 because the fused backward returned detached gradients."""
    torch.manual_seed(0)
    ref, ours = pair(cell, 3, 5, bidirectional=bidirectional)
    x = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)

    def penalty_grad(m):
        inp = pack_padded_sequence(x, torch.tensor([6, 4])) if packed else x
        out = m(inp)[0]
        y = out.data if packed else out
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        return torch.autograd.grad((g**2).sum(), [x, *m.parameters()])

    got, want = penalty_grad(ours), penalty_grad(ref)
    assert want[2].abs().sum() > 0  # weight_hh_l0: a real, non-zero gradient
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_path_passes_gradgradcheck(cell):
    _, ours = pair(cell, 3, 4, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, *p: ours(x)[0], (x, *ours.parameters()))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_func_transforms_equal_torch(cell):
    ref, ours = pair(cell, 3, 4, 2, bidirectional=True)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    jac, ref_jac = (torch.func.jacrev(lambda z, m=m: m(z)[0])(x) for m in (ours, ref))
    torch.testing.assert_close(jac, ref_jac, atol=1e-10, rtol=1e-10)
    batched = torch.func.vmap(lambda z: ours(z)[0])(x)  # each row of x as an unbatched (2, 3) sequence
    torch.testing.assert_close(batched, torch.stack([ref(z)[0] for z in x]), atol=1e-10, rtol=1e-10)
    params = dict(ours.named_parameters())
    grads = torch.func.grad(lambda p: torch.func.functional_call(ours, p, (x,))[0].sum())(params)
    ref_grads = torch.autograd.grad(ref(x)[0].sum(), list(ref.parameters()))
    for name, g in zip(params, ref_grads):
        torch.testing.assert_close(grads[name], g, atol=1e-10, rtol=1e-10, msg=name)
    tangent = torch.ones_like(x)
    jvp, ref_jvp = (torch.func.jvp(lambda z, m=m: m(z)[0], (x,), (tangent,))[1] for m in (ours, ref))
    torch.testing.assert_close(jvp, ref_jvp, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradcheck_with_batched_grad_passes(cell):
    """gradcheck's batched-gradient check vmaps over the fused backward (an in-place update used to fail it)."""
    _, ours = pair(cell, 3, 4, bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: ours(x)[0], (x, *ours.parameters()), check_batched_grad=True)


BAD_OPTIONS = [{"batch_first": "False"}, {"batch_first": 0}, {"batch_first": 1}, {"bias": "True"}, {"bias": 0},
               {"bias": 1}, {"input_size": 3.0}, {"input_size": "10"}, {"input_size": 0}, {"input_size": -1},
               {"hidden_size": 5.0}, {"hidden_size": 0}, {"num_layers": 0}, {"dropout": 1.5}, {"dropout": True},
               {"dropout": "0.1"}, {"proj_size": -1}, {"proj_size": 5}, {"proj_size": 9}]


@pytest.mark.parametrize("kwargs", BAD_OPTIONS, ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_options_are_torchs_errors(cell, kwargs):
    ref_cls, our_cls = CELLS[cell]
    args = {"input_size": 3, "hidden_size": 5, **kwargs}
    assert_same_error(lambda: our_cls(**args), lambda: ref_cls(**args))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_input_of_another_dtype_is_torchs_error(cell, packed):
    ref_cls, our_cls = CELLS[cell]
    ref, ours = ref_cls(3, 5), our_cls(3, 5)
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    inp = pack_padded_sequence(x, torch.tensor([4, 2])) if packed else x
    got = error_of(lambda: ours(inp))
    assert got == (ValueError, "RNN input dtype (torch.float64) does not match weight dtype (torch.float32). "
                               "Convert input: input.to(torch.float32), or convert model: model.to(torch.float64)")
    if not packed:  # torch checks the dtype of a PackedSequence only when hx is given
        assert got == error_of(lambda: ref(inp))


BAD_INPUTS = [((1, 6, 4, 3), None), ((6, 4, 2), None), ((6, 4, 3), [(2, 4, 5)]),
              ((6, 4, 3), [(1, 3, 5)]), ((6, 3), [(1, 4, 5)]), ((6, 4, 3), [(1, 5)]), ((6, 3), [(1, 6)])]


@pytest.mark.parametrize("case", BAD_INPUTS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_inputs_and_states_are_torchs_errors(cell, case):
    x_shape, hx_shapes = case
    ref_cls, our_cls = CELLS[cell]
    ref, ours = ref_cls(3, 5), our_cls(3, 5)
    x = torch.randn(x_shape)
    hx = None
    if hx_shapes:
        shapes = hx_shapes * 2 if cell == "lstm" else hx_shapes
        hx = tuple(torch.zeros(s) for s in shapes) if cell == "lstm" else torch.zeros(shapes[0])
    assert_same_error(lambda: ours(x, hx), lambda: ref(x, hx))


# -- found by an audit after issue 13 ---------------------------------------------------------------------------------

CELL_SIZES = [(10, 0), (0, 10), (0, 0), (10, -1), (-1, 10), (10, 2.0), (10.0, 2), ("10", 2), (10, True)]


@pytest.mark.parametrize("sizes", CELL_SIZES, ids=repr)
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_cell_sizes_are_taken_or_refused_as_torch_does(name, sizes):
    """torch's cells check no size themselves: 0 is a valid size, torch.empty refuses the rest with its error."""
    ref_cls, our_cls = CELL_PAIRS[name]
    assert error_of(lambda: our_cls(*sizes)) == error_of(lambda: ref_cls(*sizes))


@pytest.mark.parametrize("sizes", [(10, 0), (0, 4), (0, 0)])
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_cells_of_size_zero_run_as_torchs(name, sizes):
    torch.manual_seed(0)
    ref_cls, our_cls = CELL_PAIRS[name]
    ref, ours = ref_cls(*sizes, dtype=torch.float64), our_cls(*sizes, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, sizes[0], dtype=torch.float64, requires_grad=True)
    hx = tuple(torch.randn(3, sizes[1], dtype=torch.float64) for _ in range(ours.num_states))
    for args in [(x,), (x, hx if name == "LSTMCell" else hx[0]), (x[0],)]:
        got, want = states(ours(*args)), states(ref(*args))
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, atol=0, rtol=0)
        (grad,) = torch.autograd.grad(sum(g.sum() for g in got), x, allow_unused=True, materialize_grads=True)
        (ref_grad,) = torch.autograd.grad(sum(w.sum() for w in want), x, allow_unused=True, materialize_grads=True)
        torch.testing.assert_close(grad, ref_grad, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_each_cell_names_its_number_of_states(name):
    """The default state has the cell's own number of tensors, the same as its kind in the layer stack."""
    cell = CELL_PAIRS[name][1]
    module = snn.LSTM if name == "LSTMCell" else snn.GRU
    assert cell.num_states == module.recurrence.num_states == (2 if name == "LSTMCell" else 1)


TYPE_OPTIONS = [{"num_layers": 1.5}, {"num_layers": 2.0}, {"num_layers": "2"}, {"num_layers": None},
                {"proj_size": 1.5}, {"proj_size": "1"}, {"proj_size": True}, {"unknown": 1}]


@pytest.mark.parametrize("kwargs", TYPE_OPTIONS, ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_options_of_another_type_are_torchs_errors(cell, kwargs):
    """torch does not type-check num_layers and proj_size: range() or the comparison raises Python's TypeError."""
    ref_cls, our_cls = CELLS[cell]
    assert_same_error(lambda: our_cls(3, 5, **kwargs), lambda: ref_cls(3, 5, **kwargs))


STATE_DTYPES = [("lstm", (torch.float64, torch.float32)), ("lstm", (torch.float32, torch.float64)),
                ("lstm", (torch.float16, torch.float32)), ("gru", (torch.float64,)), ("gru", (torch.float16,))]


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize(("cell", "dtypes"), STATE_DTYPES, ids=str)
def test_state_of_another_dtype_is_torchs_error(cell, dtypes, packed):
    """A float64 hx for a float32 module: torch's RuntimeError from its kernel's matmul (the LSTM's oneDNN kernel
    words it otherwise; torch's other LSTM kernels, its packed path and its GRU say this)."""
    ref_cls, our_cls = CELLS[cell]
    ref, ours = ref_cls(3, 5), our_cls(3, 5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 2, 3)
    inp = pack_padded_sequence(x, torch.tensor([4, 2])) if packed else x
    hx = tuple(torch.zeros(1, 2, 5, dtype=d) for d in dtypes)
    hx = hx if cell == "lstm" else hx[0]
    got, want = error_of(lambda: ours(inp, hx)), error_of(lambda: ref(inp, hx))
    assert got[0] is want[0] is RuntimeError
    if packed or cell == "gru":
        assert got == want
    bad = next(d for d in dtypes if d != torch.float32)
    assert got[1] == f"mat1 and mat2 must have the same dtype, but got {snn.rnn.type_name(bad)} and Float"


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the cells' size checks are constants in a trace
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_jit_is_refused_clearly_for_modules_and_works_for_cells(cell):
    """A trace of the Python time loop would hold one sequence length (torch.nn's traces take any): refused, with
    what to use instead. The cells have no loop and trace as torch's do."""
    _, ours = pair(cell, 3, 4, dtype=torch.float32)
    x = torch.randn(5, 2, 3)
    name = cell.upper()
    with pytest.raises(RuntimeError, match=rf"seqlab\.nn\.{name} is not traceable .* use torch\.nn\.{name}"):
        torch.jit.trace(ours, x)
    with pytest.raises(RuntimeError, match=rf"seqlab\.nn\.{name} is not scriptable .* use torch\.nn\.{name}"):
        torch.jit.script(torch.nn.Sequential(ours))
    ref_cls, our_cls = CELL_PAIRS[f"{name}Cell"]
    ref_cell, our_cell = ref_cls(3, 4), our_cls(3, 4)
    our_cell.load_state_dict(ref_cell.state_dict())
    traced = torch.jit.trace(our_cell, x[0])
    for z in (x[0], torch.randn(7, 3)):
        for a, b in zip(states(traced(z)), states(ref_cell(z))):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
