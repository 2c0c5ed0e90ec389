"""seqlab.nn.LSTM / GRU against torch.nn.LSTM / GRU: same weights in, same outputs and gradients out, every config."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import seqlab.nn.fused
import seqlab.nn.fused_gru
from seqlab.nn import GRU, LSTM

IN, H, T, N = 5, 7, 6, 4
LENGTHS = {False: [3, 6, 1, 4], True: [6, 4, 3, 1]}  # by enforce_sorted; the longest equals T
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}
CELLS = {"lstm": (torch.nn.LSTM, LSTM), "gru": (torch.nn.GRU, GRU)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and idle OpenMP workers slow the suite down on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_pair(cell, num_layers=1, bidirectional=False, fused=True, dtype=torch.float32, **kwargs):
    """A torch module and a seqlab.nn module of the cell holding the same (torch-initialised) weights."""
    ref_cls, our_cls = CELLS[cell]
    ref = ref_cls(IN, H, num_layers, bidirectional=bidirectional, dtype=dtype, **kwargs)
    ours = our_cls(IN, H, num_layers, bidirectional=bidirectional, dtype=dtype, **kwargs)
    ours.load_state_dict(ref.state_dict())
    ours.fused = fused
    return ref, ours


def states(result):
    """The final state as a tuple: (h, c) for the LSTM, (h,) for the GRU."""
    return tuple(result) if isinstance(result, tuple) else (result,)


def assert_all_close(actual, expected, dtype=torch.float32):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL[dtype])


def run(model, x, hx=None, pack=None, wrt=(), loss_on=None):
    """Forward (packing x first if pack is True/False = enforce_sorted), then a random linear loss on the chosen
    results (index 0 = output, 1.. = state tensors; all by default); returns [output data, *final state,
    d loss / d wrt..., d loss / d params...] and the raw output."""
    inp = x
    if pack is not None:
        inp = pack_padded_sequence(x, torch.tensor(LENGTHS[pack]), model.batch_first, enforce_sorted=pack)
    out, final = model(inp, hx)
    dense = out.data if isinstance(out, PackedSequence) else out
    results = [dense, *states(final)]
    g = torch.Generator().manual_seed(0)
    chosen = range(len(results)) if loss_on is None else loss_on
    loss = sum((results[k] * torch.randn(results[k].shape, generator=g, dtype=x.dtype)).sum() for k in chosen)
    grads = torch.autograd.grad(loss, [*wrt, *model.parameters()])
    return [*results, *grads], out


def initial_state(cell, layers_x_dirs, batch_shape, dtype, requires_grad=True):
    n = 2 if cell == "lstm" else 1
    hx = tuple(torch.randn(layers_x_dirs, *batch_shape, H, dtype=dtype, requires_grad=requires_grad) for _ in range(n))
    return hx if cell == "lstm" else hx[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zero-state", "hx"])
@pytest.mark.parametrize("pack", [None, False, True], ids=["padded", "packed-unsorted", "packed-sorted"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch(cell, fused, bidirectional, num_layers, batch_first, pack, with_hx, dtype):
    torch.manual_seed(0)
    ref, ours = make_pair(cell, num_layers, bidirectional, fused, dtype, batch_first=batch_first)
    x = torch.randn((N, T, IN) if batch_first else (T, N, IN), dtype=dtype, requires_grad=True)
    hx = initial_state(cell, (2 if bidirectional else 1) * num_layers, (N,), dtype) if with_hx else None
    wrt = [x, *(states(hx) if with_hx else ())]
    expected, ref_out = run(ref, x, hx, pack, wrt)
    actual, our_out = run(ours, x, hx, pack, wrt)
    assert_all_close(actual, expected, dtype)
    if pack is not None:
        assert isinstance(our_out, PackedSequence)
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            a, e = getattr(our_out, field), getattr(ref_out, field)
            assert (a is None and e is None) or torch.equal(a, e), field
    elif batch_first:
        assert our_out.is_contiguous()  # as torch's: callers may .view() it


@pytest.mark.parametrize("loss_on", [(0,), (1,), (-1,)], ids=["out", "h", "last-state"])
@pytest.mark.parametrize("pack", [None, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_from_one_result_only(cell, fused, pack, loss_on):
    """Unused results get no gradient (None) inside the fused backward; that path must still be right."""
    ref, ours = make_pair(cell, 2, True, fused)
    x = torch.randn(T, N, IN, requires_grad=True)
    assert_all_close(run(ours, x, None, pack, [x], loss_on)[0], run(ref, x, None, pack, [x], loss_on)[0])


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_bias(cell, fused):
    ref, ours = make_pair(cell, 2, True, fused, bias=False)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    x = torch.randn(T, N, IN, requires_grad=True)
    assert_all_close(run(ours, x, wrt=[x])[0], run(ref, x, wrt=[x])[0])


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unbatched_input(cell, fused, with_hx):
    ref, ours = make_pair(cell, 2, True, fused)
    x = torch.randn(T, IN, requires_grad=True)
    hx = initial_state(cell, 4, (), torch.float32) if with_hx else None
    wrt = [x, *(states(hx) if with_hx else ())]
    expected, actual = run(ref, x, hx, wrt=wrt), run(ours, x, hx, wrt=wrt)
    assert actual[0][0].shape == (T, 2 * H) and actual[0][1].shape == (4, H)
    assert_all_close(actual[0], expected[0])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_sequence_alone_equals_inside_a_longer_batch(cell, fused, bidirectional):
    """Padding and longer neighbours change nothing for a sequence: output and final state are its own."""
    _, model = make_pair(cell, 2, bidirectional, fused)
    x = torch.randn(T, 3, IN)
    batch_out, batch_state = model(pack_padded_sequence(x, torch.tensor([4, 2, T]), enforce_sorted=False))
    alone_out, alone_state = model(pack_padded_sequence(x[:2, 1:2], torch.tensor([2])))
    # Row 1 of the batch (length 2) sits at packed positions: time 0 -> index 1 of 3, time 1 -> 3 + 1 = 4.
    sorted_pos = batch_out.unsorted_indices[1].item()
    rows = [sorted_pos, 3 + sorted_pos]
    assert_all_close([batch_out.data[rows], *(s[:, 1:2] for s in states(batch_state))],
                     [alone_out.data, *states(alone_state)])


@pytest.mark.parametrize("block_steps", [1, 4, 100])  # 4 does not divide T: a short last block
@pytest.mark.parametrize("pack", [None, False])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_path_matches_torch(monkeypatch, cell, bidirectional, pack, block_steps):
    """Under no_grad the fused path projects the input a block of steps at a time into a reused buffer."""
    kernel, gates = (seqlab.nn.fused, 4) if cell == "lstm" else (seqlab.nn.fused_gru, 3)
    monkeypatch.setattr(kernel, "_BLOCK_ELEMENTS", block_steps * N * gates * H)
    ref, ours = make_pair(cell, 2, bidirectional)
    x = torch.randn(T, N, IN)
    hx = initial_state(cell, 4 if bidirectional else 2, (N,), torch.float32, requires_grad=False)
    inp = x if pack is None else pack_padded_sequence(x, torch.tensor(LENGTHS[pack]), enforce_sorted=pack)
    with torch.no_grad():
        (out, state), (ref_out, ref_state) = ours(inp, hx), ref(inp, hx)
    assert_all_close([out.data if pack is not None else out, *states(state)],
                     [ref_out.data if pack is not None else ref_out, *states(ref_state)])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_parameter_names_shapes_order_and_init_match_torch(cell, num_layers, bidirectional, bias):
    ref_cls, our_cls = CELLS[cell]
    torch.manual_seed(3)
    ref = ref_cls(IN, H, num_layers, bias=bias, bidirectional=bidirectional)
    torch.manual_seed(3)
    ours = our_cls(IN, H, num_layers, bias=bias, bidirectional=bidirectional)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    # Same registration order and init draws -> same values from the same seed.
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
    assert ours._flat_weights_names == ref._flat_weights_names
    assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]
    bound = 1 / math.sqrt(H)
    assert all(p.abs().max() <= bound for p in ours.parameters())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_dict_round_trips_both_ways(cell):
    ref_cls, our_cls = CELLS[cell]
    x = torch.randn(T, N, IN)
    ours, ref = our_cls(IN, H, 2, bidirectional=True), ref_cls(IN, H, 2, bidirectional=True)
    ref.load_state_dict(ours.state_dict())  # seqlab -> torch (strict)
    assert_all_close(ref(x)[0], ours(x)[0])
    fresh = our_cls(IN, H, 2, bidirectional=True)
    fresh.load_state_dict(ref.state_dict())  # torch -> seqlab (strict)
    assert_all_close(fresh(x)[0], ref(x)[0])
    fresh.flatten_parameters()  # exists, does nothing


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_between_layers_only_in_training(cell):
    torch.manual_seed(0)
    ref, ours = make_pair(cell, 3, True, dropout=0.5)
    x = torch.randn(T, N, IN)
    ours.train()
    train_a, train_b = ours(x)[0], ours(x)[0]
    ref.eval()
    ours.eval()
    eval_a, eval_b = ours(x)[0], ours(x)[0]
    assert not torch.allclose(train_a, train_b) and not torch.allclose(train_a, eval_a)
    assert torch.equal(eval_a, eval_b)
    assert_all_close(eval_a, ref(x)[0])
    # dropout=1 zeroes each layer's input except the first's; the last layer's output is still a real (non-zero)
    # recurrent output -- no dropout after it -- and deterministic, so it equals torch's.
    ref, ours = make_pair(cell, 2, False, dropout=1.0)
    ref.train()
    ours.train()
    out = ours(x)[0]
    assert out.abs().min() > 0
    assert_all_close(out, ref(x)[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_with_one_layer_warns_like_torch(cell):
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        CELLS[cell][1](IN, H, dropout=0.2)
