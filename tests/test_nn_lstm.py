"""seqlab.nn.LSTM / LSTMCell against torch.nn.LSTM / LSTMCell: same weights in, same outputs and gradients out."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import seqlab.nn.fused
from seqlab.nn import LSTM, LSTMCell
from seqlab.nn.fused import FusedDirection

IN, H, T, N = 5, 7, 6, 4
LENGTHS = {False: [3, 6, 1, 4], True: [6, 4, 3, 1]}  # by enforce_sorted; the longest equals T
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float64: {"atol": 1e-10, "rtol": 1e-10}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and idle OpenMP workers slow the suite down on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_pair(num_layers=1, bidirectional=False, fused=True, dtype=torch.float32, **kwargs):
    """A torch.nn.LSTM and a seqlab.nn.LSTM holding the same (torch-initialised) weights."""
    ref = torch.nn.LSTM(IN, H, num_layers, bidirectional=bidirectional, dtype=dtype, **kwargs)
    ours = LSTM(IN, H, num_layers, bidirectional=bidirectional, dtype=dtype, **kwargs)
    ours.load_state_dict(ref.state_dict())
    ours.fused = fused
    return ref, ours


def assert_all_close(actual, expected, dtype=torch.float32):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **TOL[dtype])


def run(model, x, hx=None, pack=None, wrt=(), loss_on=("out", "h", "c")):
    """Forward (packing x first if pack is True/False = enforce_sorted), then a random linear loss on the
    chosen results; returns [output data, h_n, c_n, d loss / d wrt..., d loss / d params...] and the raw output."""
    inp = x
    if pack is not None:
        inp = pack_padded_sequence(x, torch.tensor(LENGTHS[pack]), model.batch_first, enforce_sorted=pack)
    out, (h_n, c_n) = model(inp, hx)
    dense = out.data if isinstance(out, PackedSequence) else out
    g = torch.Generator().manual_seed(0)
    results = {"out": dense, "h": h_n, "c": c_n}
    loss = sum((results[k] * torch.randn(results[k].shape, generator=g, dtype=x.dtype)).sum() for k in loss_on)
    grads = torch.autograd.grad(loss, [*wrt, *model.parameters()])
    return [dense, h_n, c_n, *grads], out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["zero-state", "hx"])
@pytest.mark.parametrize("pack", [None, False, True], ids=["padded", "packed-unsorted", "packed-sorted"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_matches_torch(fused, bidirectional, num_layers, batch_first, pack, with_hx, dtype):
    torch.manual_seed(0)
    ref, ours = make_pair(num_layers, bidirectional, fused, dtype, batch_first=batch_first)
    x = torch.randn((N, T, IN) if batch_first else (T, N, IN), dtype=dtype, requires_grad=True)
    hx = None
    if with_hx:
        D = 2 if bidirectional else 1
        hx = tuple(torch.randn(D * num_layers, N, H, dtype=dtype, requires_grad=True) for _ in range(2))
    wrt = [x, *(hx or ())]
    expected, ref_out = run(ref, x, hx, pack, wrt)
    actual, our_out = run(ours, x, hx, pack, wrt)
    assert_all_close(actual, expected, dtype)
    if pack is not None:
        assert isinstance(our_out, PackedSequence)
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            a, e = getattr(our_out, field), getattr(ref_out, field)
            assert (a is None and e is None) or torch.equal(a, e), field


@pytest.mark.parametrize("loss_on", [("out",), ("h",), ("c",)])
@pytest.mark.parametrize("pack", [None, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_gradients_from_one_result_only(fused, pack, loss_on):
    """Unused results get no gradient (None) inside the fused backward; that path must still be right."""
    ref, ours = make_pair(2, True, fused)
    x = torch.randn(T, N, IN, requires_grad=True)
    assert_all_close(run(ours, x, None, pack, [x], loss_on)[0], run(ref, x, None, pack, [x], loss_on)[0])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_without_bias(fused, bias):
    ref, ours = make_pair(2, True, fused, bias=bias)
    x = torch.randn(T, N, IN, requires_grad=True)
    assert_all_close(run(ours, x, wrt=[x])[0], run(ref, x, wrt=[x])[0])


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_unbatched_input(fused, with_hx):
    ref, ours = make_pair(2, True, fused)
    x = torch.randn(T, IN, requires_grad=True)
    hx = tuple(torch.randn(4, H, requires_grad=True) for _ in range(2)) if with_hx else None
    wrt = [x, *(hx or ())]
    expected, actual = run(ref, x, hx, wrt=wrt), run(ours, x, hx, wrt=wrt)
    assert actual[0][0].shape == (T, 2 * H) and actual[0][1].shape == (4, H)
    assert_all_close(actual[0], expected[0])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_packed_sequence_alone_equals_inside_a_longer_batch(fused, bidirectional):
    """Padding and longer neighbours change nothing for a sequence: output and final state are its own."""
    _, model = make_pair(2, bidirectional, fused)
    x = torch.randn(T, 3, IN)
    lengths = torch.tensor([4, 2, T])
    batch_out, (batch_h, batch_c) = model(pack_padded_sequence(x, lengths, enforce_sorted=False))
    alone_out, (alone_h, alone_c) = model(pack_padded_sequence(x[:2, 1:2], torch.tensor([2])))
    # Row 1 of the batch (length 2) sits at packed positions: time 0 -> index 1 of 3, time 1 -> 3 + 1 = 4.
    sorted_pos = batch_out.unsorted_indices[1].item()
    rows = [sorted_pos, 3 + sorted_pos]
    assert_all_close([batch_out.data[rows], batch_h[:, 1:2], batch_c[:, 1:2]], [alone_out.data, alone_h, alone_c])


@pytest.mark.parametrize("block_steps", [1, 4, 100])  # 4 does not divide T: a short last block
@pytest.mark.parametrize("pack", [None, False])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_inference_path_matches_torch(monkeypatch, bidirectional, pack, block_steps):
    """Under no_grad the fused path projects the input a block of steps at a time into a reused buffer."""
    monkeypatch.setattr(seqlab.nn.fused, "_BLOCK_ELEMENTS", block_steps * N * 4 * H)
    ref, ours = make_pair(2, bidirectional)
    x = torch.randn(T, N, IN)
    hx = tuple(torch.randn(4 if bidirectional else 2, N, H) for _ in range(2))
    inp = x if pack is None else pack_padded_sequence(x, torch.tensor(LENGTHS[pack]), enforce_sorted=pack)
    with torch.no_grad():
        (out, (h, c)), (ref_out, (ref_h, ref_c)) = ours(inp, hx), ref(inp, hx)
    dense = [out.data if pack is not None else out, h, c]
    assert_all_close(dense, [ref_out.data if pack is not None else ref_out, ref_h, ref_c])


def test_fused_backward_passes_gradcheck():
    """The hand-written backward against finite differences, with variable lengths, both directions, float64."""
    shapes = [(4, 3, 2), (8, 2), (8, 2), (8,), (3, 2), (3, 2)]  # x, w_ih, w_hh, bias, h0, c0
    args = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for batch_sizes in (None, [3, 3, 2, 1]):
        for reverse in (False, True):
            fn = lambda *a, bs=batch_sizes, r=reverse: FusedDirection.apply(*a, bs, r)  # noqa: E731
            assert torch.autograd.gradcheck(fn, args)
    args[3] = None  # bias=False
    assert torch.autograd.gradcheck(lambda *a: FusedDirection.apply(*a, None, False), args)


def test_eager_path_supports_double_backward():
    _, model = make_pair(1, True, fused=False, dtype=torch.float64)
    x = torch.randn(3, 2, IN, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: model(x)[0], (x,))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_parameter_names_shapes_order_and_init_match_torch(num_layers, bidirectional, bias):
    torch.manual_seed(3)
    ref = torch.nn.LSTM(IN, H, num_layers, bias=bias, bidirectional=bidirectional)
    torch.manual_seed(3)
    ours = LSTM(IN, H, num_layers, bias=bias, bidirectional=bidirectional)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    # Same registration order and init draws -> same values from the same seed.
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
    bound = 1 / math.sqrt(H)
    assert all(p.abs().max() <= bound for p in ours.parameters())


def test_state_dict_round_trips_both_ways():
    x = torch.randn(T, N, IN)
    ours = LSTM(IN, H, 2, bidirectional=True)
    ref = torch.nn.LSTM(IN, H, 2, bidirectional=True)
    ref.load_state_dict(ours.state_dict())  # seqlab -> torch (strict)
    assert_all_close(ref(x)[0], ours(x)[0])
    fresh = LSTM(IN, H, 2, bidirectional=True)
    fresh.load_state_dict(ref.state_dict())  # torch -> seqlab (strict)
    assert_all_close(fresh(x)[0], ref(x)[0])
    fresh.flatten_parameters()  # exists, does nothing


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    ref, ours = make_pair(3, True, dropout=0.5)
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
    # LSTM output -- no dropout after it -- and deterministic, so it equals torch's exactly.
    ref, ours = make_pair(2, False, dropout=1.0)
    ref.train()
    ours.train()
    out = ours(x)[0]
    assert out.abs().min() > 0
    assert_all_close(out, ref(x)[0])


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        LSTM(IN, H, dropout=0.2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"proj_size": 4}, ValueError, "does not support proj_size=4; use torch.nn.LSTM"),
        ({"dropout": 1.5}, ValueError, "dropout should be a number in range"),
        ({"dropout": True}, ValueError, "dropout should be a number in range"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be greater than zero"),
        ({"num_layers": 0}, ValueError, "num_layers must be greater than zero"),
        ({"hidden_size": 7.0}, TypeError, "hidden_size should be of type int"),
        ({"input_size": -1}, ValueError, "input_size must be greater than zero"),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        LSTM(**{"input_size": IN, "hidden_size": H, **kwargs})


def test_invalid_inputs_are_rejected_like_torch():
    model = LSTM(IN, H, 2)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        model(torch.randn(1, T, N, IN))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 5, got 3"):
        model(torch.randn(T, N, 3))
    with pytest.raises(RuntimeError, match="Expected hidden\\[0\\] size"):
        model(torch.randn(T, N, IN), (torch.zeros(1, N, H), torch.zeros(2, N, H)))
    with pytest.raises(RuntimeError, match="hx and cx should also be 2-D"):
        model(torch.randn(T, IN), (torch.zeros(2, 1, H), torch.zeros(2, 1, H)))


@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch_cell(batched, with_hx):
    ref, ours = torch.nn.LSTMCell(IN, H), LSTMCell(IN, H)
    ours.load_state_dict(ref.state_dict())
    shape = (N,) if batched else ()
    x = torch.randn(*shape, IN, requires_grad=True)
    hx = tuple(torch.randn(*shape, H, requires_grad=True) for _ in range(2)) if with_hx else None
    results = []
    for cell in (ref, ours):
        h, c = cell(x, hx)
        loss = (h * torch.linspace(-1, 1, H)).sum() + (c**2).sum()
        results.append([h, c, *torch.autograd.grad(loss, [x, *(hx or ()), *cell.parameters()])])
    assert results[1][0].shape == shape + (H,)
    assert_all_close(results[1], results[0])


def test_cell_parameters_and_init_match_torch_cell():
    torch.manual_seed(1)
    ref = torch.nn.LSTMCell(IN, H)
    torch.manual_seed(1)
    ours = LSTMCell(IN, H)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in ref.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), ref.parameters()))
    big = LSTMCell(3, 400)
    bound = 1 / math.sqrt(400)
    for p in big.parameters():  # uniform(-1/sqrt(H), 1/sqrt(H)): inside the bound, and filling most of it
        assert p.abs().max() <= bound and p.abs().max() > 0.95 * bound
    assert [n for n, _ in LSTMCell(IN, H, bias=False).named_parameters()] == ["weight_ih", "weight_hh"]
