"""Model pieces: exact padded/packed LSTM paths, pooling masks, character encoders, config validation."""

from __future__ import annotations

import pytest
import torch
from conftest import make_metadata
from torch import nn

from seqlab.errors import ConfigError
from seqlab.models.chars import CharCNN, CharLSTM
from seqlab.models.encoder import make_rnn, reverse_index, run_packed, run_padded
from seqlab.models.heads import pool
from seqlab.models.module import SeqModel

META = make_metadata("classification", 30, ["neg", "pos"])


def test_reverse_index_reverses_within_length():
    idx = reverse_index(torch.tensor([3, 1, 4]), 4)
    assert idx.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("backend", ["torch", "custom"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padded_path_equals_packed_path_values_and_gradients(cell, backend, layers, bidirectional):
    torch.manual_seed(0)
    rnn = make_rnn(backend, cell, 5, 6, num_layers=layers, bidirectional=bidirectional, batch_first=True).double()
    x = torch.randn(4, 7, 5, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([7, 2, 5, 1])
    mask = (torch.arange(7)[None] < lengths[:, None])[..., None]
    res = []
    for run in (run_padded, run_packed):
        out, final = run(rnn, x, lengths)
        grads = torch.autograd.grad((out * mask).pow(2).sum() + final.sum(), [x, *rnn.parameters()])
        res.append((out * mask, final, grads))
    (o1, f1, g1), (o2, f2, g2) = res
    torch.testing.assert_close(o1, o2, atol=1e-12, rtol=0)
    torch.testing.assert_close(f1, f2, atol=1e-12, rtol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def _refuse(*args, **kwargs):
    raise AssertionError("torch's recurrent kernel ran under backend=custom")


@pytest.mark.parametrize("path", ["padded", "auto", "packed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_custom_backend_never_runs_a_torch_kernel(monkeypatch, cell, path):
    """backend=custom runs seqlab.nn over the batch on every path, the character encoder too."""
    from torch import _VF

    for name in ("lstm", "gru", "lstm_cell", "gru_cell"):  # torch's kernels, wherever they are called from
        monkeypatch.setattr(_VF, name, _refuse)
    monkeypatch.setattr(nn.LSTM, "forward", _refuse)
    monkeypatch.setattr(nn.GRU, "forward", _refuse)
    meta = make_metadata("tagging", 30, list("ABCD"), num_chars=12)
    model = SeqModel(meta, embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.0, backend="custom", cell=cell,
                     path=path, char_encoder="lstm", char_dim=4, char_hidden=5)
    assert type(model.net.encoder.rnn).__module__.startswith("seqlab.nn")
    assert type(model.net.encoder.char_encoder.rnn).__module__.startswith("seqlab.nn")
    logits = model(torch.randint(1, 30, (2, 5)), torch.tensor([5, 3]), torch.randint(1, 12, (2, 5, 6)))
    logits.sum().backward()
    assert logits.shape == (2, 5, 4) and model.net.encoder.rnn.weight_hh_l1.grad.abs().sum() > 0


@pytest.mark.parametrize("cell, cls", [("lstm", nn.LSTM), ("gru", nn.GRU)])
def test_cell_and_backend_pick_the_module(cell, cls):
    import seqlab.nn

    for backend, expected in (("torch", cls), ("custom", getattr(seqlab.nn, cls.__name__))):
        model = SeqModel(META, embedding_dim=8, hidden_size=6, cell=cell, backend=backend)
        assert type(model.net.encoder.rnn) is expected and model.net.encoder.lstm is model.net.encoder.rnn
        assert model.hparams.cell == cell


def test_auto_path_is_padded_on_cpu_for_both_backends():
    for backend in ("torch", "custom"):
        model = SeqModel(META, embedding_dim=8, hidden_size=6, backend=backend)
        assert model.net.encoder.resolved_path(torch.device("cpu")) == "padded"
    assert SeqModel(META, backend="torch").net.encoder.resolved_path(torch.device("cuda")) == "packed"
    assert SeqModel(META, backend="custom").net.encoder.resolved_path(torch.device("cuda")) == "padded"
    assert SeqModel(META, backend="torch", path="packed").net.encoder.resolved_path(torch.device("cpu")) == "packed"


def test_state_dict_from_before_the_gru_loads():
    """Checkpoints written when the recurrent modules were named `lstm` load into `rnn`."""
    meta = make_metadata("tagging", 30, list("ABCD"), num_chars=12)
    model = SeqModel(meta, embedding_dim=8, hidden_size=6, char_encoder="lstm", char_dim=4, char_hidden=5)
    old = {k.replace(".rnn.", ".lstm."): v + 1 for k, v in model.state_dict().items()}
    assert "net.encoder.lstm.weight_ih_l0" in old and "net.encoder.char_encoder.lstm.weight_hh_l0" in old
    model.load_state_dict(old)  # strict
    enc = model.net.encoder
    assert torch.equal(enc.rnn.weight_ih_l0, old["net.encoder.lstm.weight_ih_l0"])
    assert torch.equal(enc.char_encoder.rnn.weight_hh_l0, old["net.encoder.char_encoder.lstm.weight_hh_l0"])


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("backend", ["torch", "custom"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sequence_alone_equals_sequence_padded_in_a_batch(cell, backend, pooling, path, bidirectional):
    torch.manual_seed(1)
    model = SeqModel(META, embedding_dim=8, hidden_size=6, num_layers=2, bidirectional=bidirectional,
                     dropout=0.0, pooling=pooling, path=path, cell=cell, backend=backend).double().eval()
    seq = torch.tensor([[4, 9, 3]])
    batch = torch.tensor([[5, 6, 7, 8, 9, 10], [4, 9, 3, 0, 0, 0]])
    alone = model(seq, torch.tensor([3]))
    padded = model(batch, torch.tensor([6, 3]))[1:]
    torch.testing.assert_close(alone, padded, atol=1e-12, rtol=0)


def test_pool_masks_padding():
    out = torch.tensor([[[1.0], [3.0], [100.0]]])
    lengths = torch.tensor([2])
    assert pool(out, torch.zeros(1, 1), lengths, "max").item() == 3.0
    assert pool(out, torch.zeros(1, 1), lengths, "mean").item() == 2.0


@pytest.mark.parametrize("cls, size, backend, cell", [(CharCNN, 7, "torch", "lstm"), (CharLSTM, 14, "torch", "lstm"),
                                                   (CharLSTM, 14, "custom", "lstm"), (CharLSTM, 14, "torch", "gru"),
                                                   (CharLSTM, 14, "custom", "gru")])
def test_char_encoders_shapes_and_padding(cls, size, backend, cell):
    enc = cls(num_chars=12, char_dim=5, hidden=7, backend=backend, cell=cell)
    chars = torch.randint(1, 12, (3, 4, 6))
    chars[:, :, 4:] = 0  # words of 4 characters
    chars[2, 2:] = 0  # padding words
    out = enc(chars)
    assert out.shape == (3, 4, size) == (3, 4, enc.output_size)
    assert (out[2, 2:] == 0).all() and (out[0] != 0).any()
    # a word's features do not depend on its neighbours
    solo = enc(chars[:1, :1])
    torch.testing.assert_close(solo[0, 0], out[0, 0])


def test_tagging_model_with_chars_gives_per_token_logits():
    meta = make_metadata("tagging", 30, list("ABCD"), num_chars=12)
    model = SeqModel(meta, embedding_dim=8, hidden_size=6, dropout=0.0, char_encoder="cnn", char_dim=4,
                     char_hidden=5)
    logits = model(torch.randint(1, 30, (2, 5)), torch.tensor([5, 3]), torch.randint(0, 12, (2, 5, 6)))
    assert logits.shape == (2, 5, 4)


@pytest.mark.parametrize("kw, key", [({"hidden_size": 0}, "model.hidden_size"), ({"dropout": 1.0}, "model.dropout"),
                                     ({"pooling": "sum"}, "model.pooling"), ({"backend": "jax"}, "model.backend"),
                                     ({"cell": "rnn"}, "model.cell"),
                                     ({"char_encoder": "cnn"}, "model.char_encoder")])
def test_bad_model_config_is_a_clear_error(kw, key):
    with pytest.raises(ConfigError, match=key):
        SeqModel(META, **kw)


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_embeddings_stay_fixed_while_the_rest_trains(freeze):
    """Optimizer steps through the model's own configure_optimizers: with freeze_embeddings the embedding matrix is
    bit-identical afterwards and every other parameter has moved; without it the embeddings move too."""
    torch.manual_seed(0)
    model = SeqModel(META, embedding_dim=6, hidden_size=5, freeze_embeddings=freeze)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = model.configure_optimizers()
    tokens, lengths = torch.randint(1, 30, (4, 7)), torch.tensor([7, 5, 3, 2])
    tokens[torch.arange(7)[None] >= lengths[:, None]] = 0  # padding
    labels = torch.tensor([0, 1, 1, 0])
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(tokens, lengths), labels).backward()
        optimizer.step()
    moved = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    embedding = "net.encoder.embedding.weight"
    assert moved == (set(before) - {embedding} if freeze else set(before))


def test_optimizer_without_scheduler_is_plain():
    opt = SeqModel(META, optimizer={"_target_": "torch.optim.SGD", "lr": 0.3}).configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.3


@pytest.mark.parametrize("monitor, mode", [(None, "max"), ("val/loss", "min")])
def test_plateau_scheduler_follows_the_monitored_metric(monitor, mode):
    spec = {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "factor": 0.25, "patience": 0}
    if monitor:
        spec["monitor"] = monitor
    conf = SeqModel(META, scheduler=spec).configure_optimizers()
    sched = conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["monitor"] == (monitor or "val/acc")
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and sched.mode == mode
    assert sched.optimizer is conf["optimizer"]
    sched.step(0.5)
    sched.step(0.4 if mode == "max" else 0.6)  # worse: the rate drops by `factor`
    assert conf["optimizer"].param_groups[0]["lr"] == pytest.approx(0.25e-3)


@pytest.mark.parametrize("spec", ["cosine", {"T_max": 3}])
def test_bad_scheduler_config_is_a_clear_error(spec):
    with pytest.raises(ConfigError, match="model.scheduler must be null or a mapping with a _target_"):
        SeqModel(META, scheduler=spec)


@pytest.mark.parametrize("backend", ["torch", "custom"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_char_lstm_equals_a_plain_packed_lstm_over_every_word(cell, backend):
    """The same values and gradients as a packed LSTM over every real word; padding words get zeros."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(3)
    enc = CharLSTM(num_chars=9, char_dim=4, hidden=5, backend=backend, cell=cell).double()
    chars = torch.randint(1, 9, (2, 5, 12))
    lengths = torch.tensor([[3, 7, 3, 1, 0], [7, 2, 3, 0, 0]])
    chars[1, 0], chars[0, 2] = chars[0, 1], chars[0, 0]  # repeated words
    chars[torch.arange(12).expand(2, 5, 12) >= lengths.unsqueeze(-1)] = 0
    out = enc(chars)
    out.pow(2).sum().backward()
    got = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()

    flat, n = chars.view(10, 12), lengths.view(10)
    real = n > 0
    packed = pack_padded_sequence(enc.embedding(flat[real]), n[real], batch_first=True, enforce_sorted=False)
    ref_rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(4, 5, batch_first=True, bidirectional=True).double()
    ref_rnn.load_state_dict(enc.rnn.state_dict())  # torch's own module is the reference for both backends
    h_n = ref_rnn(packed)[1][0] if cell == "lstm" else ref_rnn(packed)[1]
    ref = torch.zeros(10, 10, dtype=torch.double)
    ref[real] = torch.cat([h_n[0], h_n[1]], dim=-1)
    ref.pow(2).sum().backward()
    torch.testing.assert_close(out.view(10, 10), ref, atol=1e-12, rtol=0)
    assert (out[0, 4] == 0).all() and (out[1, 3:] == 0).all()
    torch.testing.assert_close(out[1, 0], out[0, 1], atol=1e-12, rtol=0)  # a word's features ignore its position
    want = [enc.embedding.weight.grad, *(p.grad for p in ref_rnn.parameters())]  # enc.parameters()' order
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "custom"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_inference_runs_the_padded_path_without_autograd(monkeypatch, cell, backend):
    """What Predictor runs (SeqNet in eval mode under inference_mode, on CPU): the exact padded path, through
    seqlab.nn's kernel without its autograd node (nothing kept for a backward) or torch's kernel in eval mode."""
    import seqlab.models.encoder as encoder
    import seqlab.nn.fused as fused
    import seqlab.nn.fused_gru as fused_gru
    from seqlab.models.net import SeqNet

    kernels = []

    def spy(name, kernel):
        def run(*args, **kwargs):
            kernels.append((name, kwargs.get("keep", kwargs.get("training"))))
            return kernel(*args, **kwargs)
        return run

    monkeypatch.setattr(encoder, "run_packed", _refuse)
    for module, name in ((fused, "lstm_forward"), (fused_gru, "gru_forward"), (encoder, "_torch_layer")):
        monkeypatch.setattr(module, name, spy(name, getattr(module, name)))
    monkeypatch.setattr(fused.FusedLSTM, "apply", _refuse)
    monkeypatch.setattr(fused_gru.FusedGRU, "apply", _refuse)
    net = SeqNet(META, embedding_dim=8, hidden_size=6, num_layers=2, bidirectional=True, backend=backend, cell=cell)
    tokens, lengths = torch.randint(1, 30, (3, 5)), torch.tensor([5, 5, 2])
    with torch.inference_mode():
        net.eval()(tokens, lengths)
    name = "_torch_layer" if backend == "torch" else f"{cell}_forward"
    assert kernels == [(name, False)] * (2 if backend == "torch" else 4)  # per layer; seqlab.nn: per direction
