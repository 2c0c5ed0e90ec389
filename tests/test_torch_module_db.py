"""PyTorch's own test samples for LSTM, LSTMCell, GRU and GRUCell, run on seqlab.nn and compared with torch.nn.

The samples and error inputs come from ``torch.testing._internal.common_modules.module_db`` of the installed torch
(the ModuleInfo entries behind torch's ``test/test_modules.py``); each check below follows one test of that file
(forward and its no-batch-dim reference, gradcheck / gradgradcheck with batched gradients, non-contiguous
tensors, pickling, repr, factory kwargs, meta-device init, memory format, the training flag, error inputs), and
additionally compares seqlab.nn with torch.nn holding the same state_dict: outputs, gradients, error type and text.
The GRU also gets torch's packed-sequence samples (``with_packed_sequence=True``), which its ModuleInfo leaves off.
"""

from __future__ import annotations

import pickle
import re

import pytest
import torch
import torch.testing._internal.common_modules as common_modules
from torch.nn.utils.rnn import PackedSequence
from torch.testing._internal.common_modules import ModuleErrorEnum
from torch.testing._internal.common_utils import freeze_rng_state, gradcheck, gradgradcheck
from torch.utils._pytree import tree_flatten, tree_map

import seqlab.nn as snn

# importing common_utils froze torch.backends flags (the module behind torch.backends holds the switch)
torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True

OURS = {"LSTM": snn.LSTM, "LSTMCell": snn.LSTMCell, "GRU": snn.GRU, "GRUCell": snn.GRUCell}
INFOS = {info.module_cls.__name__: info for info in common_modules.module_db if info.module_cls.__name__ in OURS}
EXTRA = {"GRU": {"with_packed_sequence": True}}
DTYPES = {"f32": torch.float32, "f64": torch.float64}


def samples(name, dtype=torch.float64, requires_grad=True, training=True):
    info = INFOS[name]
    return info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=requires_grad, training=training,
                                   **EXTRA.get(name, {}))


def error_samples(name):
    info = INFOS[name]
    return info.module_error_inputs_func(info, device="cpu", dtype=torch.float32, requires_grad=False,
                                         training=True)


SAMPLES = [(name, i) for name in OURS for i in range(len(samples(name)))]
ERRORS = [(name, i) for name in OURS for i in range(len(error_samples(name)))]
ids = "{0[0]}-{0[1]}".format


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name, sample, dtype, training):
    """torch's module and seqlab's with the same state_dict, in the dtype and mode asked."""
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    ref = INFOS[name].module_cls(*args, **kwargs).to(dtype).train(training)
    ours = OURS[name](*args, **kwargs).to(dtype).train(training)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def fresh(obj):
    """A copy of the forward inputs with their own autograd leaves (so both modules see equal, separate inputs)."""
    def leaf(t):
        return t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
    if isinstance(obj, PackedSequence):
        return PackedSequence(leaf(obj.data), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices)
    if isinstance(obj, (tuple, list)):
        return type(obj)(fresh(o) for o in obj)
    return leaf(obj)


def leaves(obj):
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor) and t.requires_grad]


def forward_and_grads(module, args, seed=0):
    """Outputs, and gradients of a random linear loss on every output w.r.t. inputs and parameters."""
    args = fresh(args)
    with freeze_rng_state():
        out = module(*args)
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
    g = torch.Generator().manual_seed(seed)
    grad_outs = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in outs]
    wrt = leaves(args) + list(module.parameters())
    grads = torch.autograd.grad(outs, wrt, grad_outs, allow_unused=True) if outs else []
    return out, list(grads)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("case", SAMPLES, ids=ids)
def test_forward_and_gradients_equal_torch(case, dtype, training):
    """test_forward plus parity: outputs and gradients equal torch's on the same state_dict; the sample's
    no-batch-dim reference holds for seqlab; .float()/.double() convert the module and it still runs."""
    name, i = case
    sample = samples(name, dtype)[i]
    ref, ours = build(name, sample, dtype, training)
    got, got_grads = forward_and_grads(ours, sample.forward_input.args)
    want, want_grads = forward_and_grads(ref, sample.forward_input.args)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grads, want_grads)
    args = sample.forward_input.args
    if sample.reference_fn is not None and not isinstance(args[0], PackedSequence):
        with freeze_rng_state():
            torch.testing.assert_close(ours(*args), sample.reference_fn(ours, *args))
    {torch.float32: ours.float, torch.float64: ours.double}[dtype]()
    ours(*args)
    assert all(p.dtype == dtype for p in ours.parameters())


def gradient_checks(name, i, training, check, partial):
    """test_modules' _test_gradients_helper: the total derivative or (``partial``) each parameter's on its own."""
    sample = samples(name, torch.float64)[i]
    _, m = build(name, sample, torch.float64, training)
    args = sample.forward_input.args
    params = tuple(m.parameters())
    flat, spec = tree_flatten(args + params)

    def fn(*flat_input):
        rebuilt = torch.utils._pytree.tree_unflatten(flat_input, spec)
        with freeze_rng_state():
            return [t for t in tree_flatten(m(*rebuilt[: len(args)]))[0] if isinstance(t, torch.Tensor)]

    if not partial:
        assert check(fn, flat)
        return
    for p in params:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
        assert check(fn, tree_flatten(args + params)[0])
        p.requires_grad_(False)


def gradient_cases(fast):
    """(case, training) pairs; the ones ``fast`` rejects carry the slow mark (``pytest -m slow`` runs them). The
    samples have no dropout, so training and eval compute the same function: eval is the slow duplicate."""
    return [pytest.param(case, training, id=f"{ids(case)}-{'train' if training else 'eval'}",
                         marks=() if training and fast(case) else pytest.mark.slow)
            for case in SAMPLES for training in (True, False)]


@pytest.mark.parametrize(("case", "training"), gradient_cases(lambda case: True))
def test_grad(case, training):
    """gradcheck (with batched gradients) of the total derivative: inputs and every parameter at once."""
    gradient_checks(*case, training, gradcheck, partial=False)


# Second order is slow (~1 s a case): the fast suite takes the cells and four samples each of LSTM and GRU without
# bias, time-major (LSTM: h0, uni/bi, with/without projections; GRU: h0 or packed, uni/bi).
@pytest.mark.parametrize(("case", "training"), gradient_cases(lambda c: "Cell" in c[0] or c[1] in (1, 3, 5, 7)))
def test_gradgrad(case, training):
    gradient_checks(*case, training, gradgradcheck, partial=False)


@pytest.mark.slow
@pytest.mark.parametrize("check", [gradcheck, gradgradcheck], ids=["grad", "gradgrad"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", SAMPLES, ids=ids)
def test_partial_derivatives(case, training, check):
    """The rest of test_modules' gradient checks: each parameter's derivative on its own (slow: one check each)."""
    gradient_checks(*case, training, check, partial=True)


def non_contiguous(obj):
    def inner(t):
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            return t
        out = torch.repeat_interleave(t, 2, dim=-1)[..., ::2].detach()
        return out.requires_grad_(t.requires_grad)
    if isinstance(obj, PackedSequence):
        return PackedSequence(inner(obj.data), obj.batch_sizes, obj.sorted_indices, obj.unsorted_indices)
    return tree_map(inner, obj) if not isinstance(obj, torch.Tensor) else inner(obj)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize(("case", "training"), gradient_cases(lambda case: True))
def test_non_contiguous_tensors(case, training, dtype):
    """Non-contiguous inputs and output gradients give the same outputs and gradients as contiguous ones."""
    name, i = case
    sample = samples(name, dtype)[i]
    _, m = build(name, sample, dtype, training)
    args = sample.forward_input.args
    nc_args = tuple(non_contiguous(a) for a in args)
    assert any(not t.is_contiguous() for t in tree_flatten(nc_args)[0] if isinstance(t, torch.Tensor) and t.dim())
    out, grads = forward_and_grads(m, args)
    nc_out, nc_grads = forward_and_grads(m, nc_args)
    torch.testing.assert_close(nc_out, out)
    torch.testing.assert_close(nc_grads, grads, atol=1e-4, rtol=0)


@pytest.mark.parametrize("case", SAMPLES, ids=ids)
def test_pickle_repr_and_train_flag(case, tmp_path):
    """test_pickle (a saved and reloaded module gives the same output), test_repr (repr equals torch's),
    test_if_train_and_eval_modes_differ (forward reads the training flag, as the ModuleInfo declares)."""
    name, i = case
    sample = samples(name, torch.float32, requires_grad=False)[i]
    ref, ours = build(name, sample, torch.float32, True)
    args = sample.forward_input.args
    with freeze_rng_state():
        out = ours(*args)
    torch.save(ours, tmp_path / "m.pt")
    with freeze_rng_state():
        torch.testing.assert_close(torch.load(tmp_path / "m.pt", weights_only=False)(*args), out)
        torch.testing.assert_close(pickle.loads(pickle.dumps(ours))(*args), out)
    assert repr(ours) == repr(ref)
    delattr(ours, "training")
    try:
        ours(*args)
    except AttributeError as e:
        assert "'training'" in str(e) and INFOS[name].train_and_eval_differ


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("case", SAMPLES, ids=ids)
def test_factory_kwargs_and_meta_device(case, dtype):
    """test_factory_kwargs (device/dtype reach every parameter) and test_device_ctx_init (a module built under
    torch.device('meta') has the metadata of the CPU one)."""
    name, i = case
    sample = samples(name, dtype, requires_grad=False)[i]
    args, kwargs = sample.constructor_input.args, sample.constructor_input.kwargs
    m = OURS[name](*args, **kwargs, device="cpu", dtype=dtype)
    assert all(p.device.type == "cpu" and p.dtype == dtype for p in m.parameters())
    cpu = OURS[name](*args, **kwargs)
    with torch.device("meta"):
        meta = OURS[name](*args, **kwargs)
    for p_meta, p_cpu in zip(meta.parameters(), cpu.parameters()):
        assert p_meta.is_meta and (p_meta.shape, p_meta.dtype, p_meta.stride()) == (p_cpu.shape, p_cpu.dtype,
                                                                                    p_cpu.stride())


@pytest.mark.parametrize("case", SAMPLES, ids=ids)
def test_memory_format(case):
    """test_memory_format for these modules: outputs and input gradients are contiguous, as torch's."""
    name, i = case
    sample = samples(name, torch.float32)[i]
    ref, ours = build(name, sample, torch.float32, True)
    for m in (ref, ours):
        args = fresh(sample.forward_input.args)
        out = m(*args)
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]
        assert all(t.is_contiguous() for t in outs)
        grads = torch.autograd.grad([t for t in outs if t.requires_grad], leaves(args) + list(m.parameters()),
                                    [torch.rand_like(t) for t in outs if t.requires_grad])
        assert all(g.is_contiguous() for g in grads)


@pytest.mark.parametrize("case", ERRORS, ids=ids)
def test_errors(case):
    """test_errors: each error input raises the ModuleInfo's type and message; and the same message as torch."""
    name, i = case
    error = error_samples(name)[i]
    sample = error.module_error_input
    c_args, c_kwargs = sample.constructor_input.args, sample.constructor_input.kwargs

    def attempt(cls):
        try:
            m = cls(*c_args, **c_kwargs)
            if error.error_on == ModuleErrorEnum.FORWARD_ERROR:
                m(*sample.forward_input.args, **sample.forward_input.kwargs)
        except Exception as e:  # noqa: BLE001 - compared below
            return e
        return None

    got, want = attempt(OURS[name]), attempt(INFOS[name].module_cls)
    assert isinstance(got, error.error_type), got
    assert re.search(error.error_regex, str(got)), str(got)
    assert (type(got), str(got)) == (type(want), str(want))


def test_every_module_and_sample_is_covered():
    """The ModuleInfo entries exist in this torch, and the case lists are what this file reports on."""
    assert set(INFOS) == set(OURS)
    counts = {name: sum(1 for n, _ in SAMPLES if n == name) for name in OURS}
    assert counts["LSTM"] >= 32 and counts["GRU"] >= 32 and counts["LSTMCell"] >= 2 and counts["GRUCell"] >= 2
    assert any(s.constructor_input.kwargs.get("proj_size") for s in samples("LSTM"))
    assert len(ERRORS) >= 30
