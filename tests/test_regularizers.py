"""Regularisers and training aids (issue 16): each tested for what it does — a mask's shape and values, a gradient,
a norm, a schedule's rates, the averaged weights — on both backends, both cells, the padded and packed paths;
evaluation untouched; config errors before data; exact resume and DDP with everything on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import REPO, add_unseen_test_words, make_imdb_tree, make_metadata, make_pos_dir
from hydra import compose, initialize_config_dir

import seqlab.models.encoder as encoder_module
from seqlab.errors import ConfigError
from seqlab.models.module import SeqModel, _rng_state
from seqlab.models.net import SeqNet
from seqlab.models.regularizers import adversarial_perturbation, normalize_embeddings, word_dropout
from seqlab.schedules import WarmupCosine

META = make_metadata("classification", 30, ["neg", "pos"])
TAGS = make_metadata("tagging", 30, list("ABCD"), num_chars=12)
BACKENDS_CELLS = [(b, c) for b in ("torch", "custom") for c in ("lstm", "gru")]
ALL_ON = {"word_dropout": 0.2, "locked_dropout": {"input": 0.3, "hidden": 0.25, "output": 0.2}, "weight_drop": 0.4}
KERNELS = {"padded_torch": "_torch_layer", "padded_custom": "run_layer", "packed": "_packed_layer"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batch(vocab=30, lengths=(7, 3, 5, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    tokens = torch.randint(2, vocab, (len(lengths), int(lengths.max())), generator=g)
    tokens[torch.arange(tokens.size(1))[None] >= lengths[:, None]] = 0
    return tokens, lengths


def spy_kernel(monkeypatch, backend, path):
    """Record every call of the layer kernel the path runs: (input x (T, B, F), weights, output)."""
    name = KERNELS["packed" if path == "packed" else f"padded_{backend}"]
    calls, kernel = [], getattr(encoder_module, name)

    def spy(rec, x, weights, *args, **kwargs):  # a layer of seqlab.nn.layers.run_stack
        for w in weights:
            if w["weight_hh"].grad_fn is not None:  # a dropped copy: keep its gradient for the test
                w["weight_hh"].retain_grad()
        out = kernel(rec, x, weights, *args, **kwargs)
        calls.append({"x": x, "weights": weights, "out": out[0]})
        return out

    monkeypatch.setattr(encoder_module, name, spy)
    return calls


def real(lengths, T):
    """(T, B, 1) mask of real positions of a time-major batch sorted like `lengths`."""
    return (torch.arange(T)[:, None] < lengths[None, :])[..., None]


# -- word dropout -------------------------------------------------------------------------------------------------

def test_word_dropout_by_type_drops_every_occurrence_of_a_word():
    V, p = 4000, 0.25
    torch.manual_seed(0)
    tokens = torch.stack([torch.randperm(V), torch.randperm(V)])  # every word twice, once per row
    out = word_dropout(torch.ones(2, V, 3), tokens, p, "type", V)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)])
    assert torch.equal(out.amin(-1), out.amax(-1))  # whole vectors
    kept = torch.zeros(2, V)
    kept.scatter_(1, tokens, out[..., 0])
    assert torch.equal(kept[0], kept[1])  # a word is dropped in both rows or in neither
    assert abs((kept[0] == 0).float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / V)


def test_word_dropout_by_token_drops_positions_independently():
    V, p = 4000, 0.25
    torch.manual_seed(0)
    tokens = torch.stack([torch.randperm(V), torch.randperm(V)])
    out = word_dropout(torch.ones(2, V, 3), tokens, p, "token", V)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)]) and torch.equal(out.amin(-1), out.amax(-1))
    kept = torch.zeros(2, V)
    kept.scatter_(1, tokens, out[..., 0])
    assert (kept[0] != kept[1]).any()  # some word dropped in one row and kept in the other
    assert abs((out[..., 0] == 0).float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / (2 * V))


@pytest.mark.parametrize("mode", ["type", "token"])
def test_word_dropout_in_the_encoder_zeroes_whole_word_vectors(monkeypatch, mode):
    net = SeqNet(META, embedding_dim=8, hidden_size=6, dropout=0.0, word_dropout=0.5, word_dropout_mode=mode,
                 path="padded")
    calls = spy_kernel(monkeypatch, "torch", "padded")
    tokens = torch.tensor([[5, 5, 7, 5, 9, 9, 7, 5]])
    torch.manual_seed(1)
    net.train()(tokens, torch.tensor([8]))
    ratio = calls[0]["x"][:, 0] / net.embed(tokens)[0]  # (T, E)
    assert set(ratio.round(decimals=5).unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(ratio.amin(-1), ratio.amax(-1))
    if mode == "type":  # occurrences of one word agree
        for word in (5, 7, 9):
            assert ratio[tokens[0] == word, 0].unique().numel() == 1


# -- locked dropout ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_locked_dropout_one_mask_per_sequence_on_input_and_between_layers(monkeypatch, backend, cell, path):
    p_in, p_hid = 0.3, 0.5
    net = SeqNet(META, embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.0, backend=backend, cell=cell,
                 path=path, locked_dropout={"input": p_in, "hidden": p_hid})
    calls = spy_kernel(monkeypatch, backend, path)
    tokens, lengths = batch()
    torch.manual_seed(0)
    net.train()(tokens, lengths)
    assert len(calls) == 2
    order = torch.argsort(lengths, descending=True, stable=True)
    emb = net.embed(tokens)[order].transpose(0, 1)  # (T, B, E) like the kernel's input
    for x, before, p in ((calls[0]["x"], emb, p_in), (calls[1]["x"], calls[0]["out"], p_hid)):
        mask = real(lengths[order], x.size(0)) & (before.abs() > 1e-6)
        ratio = torch.where(mask, x / before, torch.nan)
        per_sequence = ratio.nanmean(0)  # (B, F): the same at every real time step
        assert torch.allclose(torch.where(mask, ratio, per_sequence.expand_as(ratio)), per_sequence.expand_as(ratio),
                              atol=1e-5, equal_nan=True)
        values = per_sequence[~per_sequence.isnan()]
        assert torch.allclose(values, torch.where(values > 0.5, 1 / (1 - p), 0.0), atol=1e-5)
        assert (values == 0).any() and (values > 0).any()


@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_locked_dropout_on_the_output_masks_outputs_and_final_states_alike(backend, cell):
    p = 0.5
    net = SeqNet(META, embedding_dim=8, hidden_size=6, dropout=0.0, backend=backend, cell=cell,
                 locked_dropout={"output": p})
    tokens, lengths = batch()
    ref = net.eval().encoder(tokens, lengths)
    torch.manual_seed(0)
    out, final = net.train().encoder(tokens, lengths)
    mask = final / ref[1]  # (B, F)
    assert torch.allclose(mask, torch.where(mask > 0.5, 2.0, 0.0), atol=1e-5)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], ref[0][b, :n] * mask[b], atol=1e-6, rtol=0)


def test_locked_dropout_replaces_dropout_only_where_it_is_set():
    plain = SeqNet(META, num_layers=2, dropout=0.5)
    assert plain.encoder.rnn.dropout == 0.5 and plain.encoder.dropout.p == 0.5 and plain.head.dropout.p == 0.5
    everywhere = SeqNet(META, num_layers=2, dropout=0.5, locked_dropout=0.3)
    assert everywhere.encoder.locked == dict.fromkeys(("input", "hidden", "output"), 0.3)
    assert everywhere.encoder.rnn.dropout == 0.0 and everywhere.head.dropout.p == 0.0  # locked masks instead
    between = SeqNet(META, num_layers=2, dropout=0.5, locked_dropout={"hidden": 0.3})
    assert between.encoder.rnn.dropout == 0.0 and between.encoder.dropout.p == 0.5 and between.head.dropout.p == 0.5


# -- DropConnect ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_weight_drop_masks_weight_hh_per_batch_and_its_gradient(monkeypatch, backend, cell, path):
    p = 0.4
    net = SeqNet(META, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0, backend=backend, cell=cell,
                 path=path, weight_drop=p)
    calls = spy_kernel(monkeypatch, backend, path)
    tokens, lengths = batch()
    torch.manual_seed(0)
    net.train()(tokens, lengths).sum().backward()
    rnn = net.encoder.rnn
    masks = []
    for k, call in enumerate(calls):
        for d, w in enumerate(call["weights"]):
            param = getattr(rnn, f"weight_hh_l{k}" + ("_reverse" if d else ""))
            mask = w["weight_hh"].detach() / param.detach()
            assert torch.allclose(mask, torch.where(mask > 0.5, 1 / (1 - p), 0.0), atol=1e-4)
            assert abs((mask == 0).float().mean().item() - p) < 0.1  # 768 entries per matrix
            # d loss / d param = mask * d loss / d (dropped weight): dropped entries get no gradient
            torch.testing.assert_close(param.grad, w["weight_hh"].grad * mask, atol=1e-6, rtol=1e-4)
            assert torch.equal(param.grad[mask == 0], torch.zeros_like(param.grad[mask == 0]))
            masks.append(mask)
            for kind in ("weight_ih", "bias_ih", "bias_hh"):  # only weight_hh is dropped
                assert w[kind] is getattr(rnn, f"{kind}_l{k}" + ("_reverse" if d else ""))
    assert len(masks) == 4 and not torch.equal(masks[0], masks[1])  # each layer and direction its own mask
    calls.clear()
    net(tokens, lengths)
    assert not torch.equal(calls[0]["weights"][0]["weight_hh"].detach() / rnn.weight_hh_l0.detach(), masks[0])


# -- paths, backends, evaluation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_padded_and_packed_paths_agree_with_every_regulariser_on(backend, cell):
    """Same seed, same masks: the packed path's per-layer run equals the padded one, values and gradients."""
    net = SeqNet(META, embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.2, backend=backend, cell=cell,
                 **ALL_ON).double().train()
    tokens, lengths = batch()
    results = []
    for path in ("padded", "packed"):
        net.encoder.path = path
        torch.manual_seed(0)
        scores = net(tokens, lengths)
        results.append([scores, *torch.autograd.grad(scores.pow(2).sum(), list(net.parameters()))])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_evaluation_is_untouched_by_the_regularisers(backend, cell, path):
    kw = {"embedding_dim": 8, "hidden_size": 6, "num_layers": 2, "backend": backend, "cell": cell, "path": path}
    plain, regular = SeqNet(TAGS, **kw), SeqNet(TAGS, **kw, **ALL_ON, word_dropout_mode="token")
    regular.load_state_dict(plain.state_dict())
    tokens, lengths = batch()
    with torch.no_grad():
        assert torch.equal(regular.eval()(tokens, lengths), plain.eval()(tokens, lengths))
        torch.manual_seed(0)
        assert not torch.allclose(regular.train()(tokens, lengths), plain.eval()(tokens, lengths))


# -- adversarial training ---------------------------------------------------------------------------------------------

def test_adversarial_perturbation_has_norm_epsilon_along_the_gradient():
    torch.manual_seed(0)
    g = torch.randn(3, 5, 4) * torch.tensor([1e-30, 1.0, 1e6])[:, None, None]  # tiny ones must not underflow
    g = torch.cat([g, torch.zeros(1, 5, 4)])
    r = adversarial_perturbation(g, 2.5)
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.tensor([2.5, 2.5, 2.5, 0.0]))
    g = g[:3].flatten(1).double()
    cos = torch.nn.functional.cosine_similarity(r[:3].flatten(1).double(), g / g.abs().amax(1, keepdim=True), dim=1)
    torch.testing.assert_close(cos, torch.ones(3, dtype=torch.double))


def test_embedding_normalisation_has_weighted_mean_zero_and_variance_one():
    torch.manual_seed(0)
    weight, counts = torch.randn(50, 6, dtype=torch.double) * 3 + 1, torch.randint(0, 100, (50,)).double()
    counts[0] = 0
    normed = normalize_embeddings(weight, counts, eps=0.0)
    f = (counts / counts.sum())[:, None]
    torch.testing.assert_close((f * normed).sum(0), torch.zeros(6, dtype=torch.double))
    torch.testing.assert_close((f * normed.pow(2)).sum(0), torch.ones(6, dtype=torch.double))
    # the network uses it: its output equals a plain network's holding the normalised matrix
    net = SeqNet(META, embedding_dim=6, hidden_size=5, adversarial={"epsilon": 1.0}).double().eval()
    net.encoder.set_word_counts(counts[:30])
    plain = SeqNet(META, embedding_dim=6, hidden_size=5).double().eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k != "encoder.word_counts"})
    with torch.no_grad():
        plain.encoder.embedding.weight.copy_(normalize_embeddings(net.encoder.embedding.weight, counts[:30]))
    tokens, lengths = batch()
    torch.testing.assert_close(net(tokens, lengths), plain(tokens, lengths))
    assert "encoder.word_counts" not in SeqNet(META, adversarial={"epsilon": 0.0}).state_dict()  # off: no change


@pytest.mark.parametrize("backend, cell", BACKENDS_CELLS)
def test_adversarial_loss_is_higher_and_replays_the_dropout_masks(backend, cell):
    model = SeqModel(TAGS, embedding_dim=8, hidden_size=6, num_layers=2, dropout=0.3, backend=backend, cell=cell,
                     **ALL_ON, adversarial={"epsilon": 2.0, "weight": 0.5}).train()
    tokens, lengths = batch()
    labels = torch.randint(0, 4, tokens.shape).masked_fill(tokens == 0, -100)
    b = {"tokens": tokens, "lengths": lengths, "labels": labels}
    torch.manual_seed(0)
    rng = _rng_state(tokens.device)
    emb = model.net.embed(tokens)
    loss = model.net.head.loss(model.net.from_embeddings(emb, tokens, lengths), labels, lengths)
    (g,) = torch.autograd.grad(loss, emb, retain_graph=True)
    adv = model._adversarial_loss(loss, emb, b, rng)
    assert adv > loss
    model.net.adversarial["epsilon"] = 0.0  # no perturbation: the second pass is the first one exactly
    assert torch.equal(model._adversarial_loss(loss, emb, b, rng), loss)
    model.net.adversarial["epsilon"] = 2.0
    # the step's loss: loss + weight * adversarial loss, from the same seed
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        total = model.training_step(b, 0)
    torch.testing.assert_close(total, loss + 0.5 * adv)


# -- schedules ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("warmup", [{"warmup_steps": 4}, {"warmup_fraction": 0.2}, {}])
def test_warmup_cosine_rates_follow_the_closed_form(warmup):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = WarmupCosine(opt, total_steps=20, start_factor=0.1, eta_min=0.001, **warmup)
    W = 4 if warmup else 0
    rates = []
    for _ in range(21):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    def expected(t):
        if t < W:
            return 0.1 * (0.1 + 0.9 * t / W)
        return 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * (t - W) / (20 - W))) / 2

    assert rates == pytest.approx([expected(t) for t in range(21)], rel=1e-9, abs=1e-12)


EVERYTHING = ["model.num_layers=2", "model.word_dropout=0.1", "model.locked_dropout={input:0.2,hidden:0.2,output:0.3}",
              "model.weight_drop=0.3", "model.adversarial.epsilon=1.0",
              "model.swa={swa_lrs:0.01,swa_epoch_start:2,annealing_epochs:1}",
              "model.scheduler={_target_:seqlab.schedules.WarmupCosine,total_steps:auto,warmup_fraction:0.1,"
              "interval:step}"]

# -- config checks --------------------------------------------------------------------------------------------------

def compose_train(*overrides: str):
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("override, message", [
    ("model.word_dropout=1.0", "model.word_dropout must be a number in [0, 1)"),
    ("model.word_dropout=-0.1", "model.word_dropout must be a number in [0, 1)"),
    ("model.word_dropout_mode=word", "model.word_dropout_mode must be one of type, token"),
    ("model.locked_dropout=1.5", "model.locked_dropout must be a number in [0, 1)"),
    ("model.locked_dropout=high", "model.locked_dropout must be a number or a mapping or null, got 'high'"),
    ("model.locked_dropout={inputs:0.2}", "model.locked_dropout.inputs is not a place of locked dropout"),
    ("model.locked_dropout={hidden:2}", "model.locked_dropout.hidden must be a number in [0, 1)"),
    ("model.weight_drop=1", "model.weight_drop must be a number in [0, 1)"),
    ("model.adversarial.epsilon=-1", "model.adversarial.epsilon must be a finite number >= 0"),
    ("model.adversarial.weight=-0.5", "model.adversarial.weight must be a finite number >= 0"),
    ("model.adversarial.normalize=3", "model.adversarial.normalize must be true or false"),
    ("+model.adversarial.eps=1", "model.adversarial.eps is not a setting"),
    ("model.swa={swa_lrs:-0.1}", "model.swa.swa_lrs=-0.1 is rejected by StochasticWeightAveraging"),
    ("model.swa={swa_lr:0.1}", "model.swa.swa_lr is not an argument of StochasticWeightAveraging"),
    ("model.swa={swa_lrs:0.1,swa_epoch_start:9}", "model.swa.swa_epoch_start=9 is after trainer.max_epochs=5"),
    ("model.swa=0.1", "model.swa must be a mapping or null, got 0.1"),
    ("model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,step_size:auto}",
     "model.scheduler.step_size=auto: only total_steps, T_max, total_iters can be auto"),
    ("model.scheduler={_target_:seqlab.schedules.WarmupCosine,total_steps:auto,warmup_fraction:1.5}",
     "model.scheduler.warmup_fraction=1.5 is rejected by seqlab.schedules.WarmupCosine"),
])
def test_bad_regulariser_settings_are_one_clear_error_before_any_data(override, message, tmp_path):
    from seqlab.checks import check_train_config

    cfg = compose_train(f"data.root={tmp_path / 'nothing-here'}", override)
    with pytest.raises(ConfigError) as e:
        check_train_config(cfg)
    assert message in str(e.value)


def test_every_option_on_passes_the_checks(tmp_path):
    from seqlab.checks import check_train_config

    check_train_config(compose_train(*EVERYTHING))


ABLATIONS = sorted(p.stem for p in (REPO / "configs/ablation").glob("*.yaml"))


@pytest.mark.parametrize("name", ABLATIONS)
def test_each_ablation_variant_changes_one_setting_of_imdb_cpu_and_passes_the_checks(name):
    from omegaconf import OmegaConf

    from seqlab.checks import check_train_config

    base = OmegaConf.to_container(compose_train("experiment=imdb_cpu", "model.swa=null").model)  # the baseline
    cfg = compose_train("experiment=imdb_ablation", f"ablation={name}")
    check_train_config(cfg)
    model = OmegaConf.to_container(cfg.model)
    changed = sorted(k for k in model if model[k] != base[k])
    expected = {"none": [], "all": ["adversarial", "locked_dropout", "scheduler", "swa", "weight_drop", "word_dropout"],
                "onecycle": ["scheduler"], "warmup_cosine": ["scheduler"]}.get(name, [name])
    assert changed == expected
    assert OmegaConf.to_container(cfg.trainer) == OmegaConf.to_container(compose_train("experiment=imdb_cpu").trainer)


def test_imdb_cpu_is_the_ablation_baseline_plus_its_winner():
    """The recipe adopted the option that validated best (swa); the ablation's baseline is the recipe without it."""
    from omegaconf import OmegaConf

    recipe = OmegaConf.to_container(compose_train("experiment=imdb_cpu"))
    assert recipe["model"]["swa"] == {"swa_lrs": 1e-3, "swa_epoch_start": 0.6, "annealing_epochs": 1}
    assert OmegaConf.to_container(compose_train("experiment=imdb_ablation", "ablation=swa")) == recipe


def test_the_ablation_covers_every_option():
    assert set(ABLATIONS) == {"none", "word_dropout", "locked_dropout", "weight_drop", "adversarial", "swa",
                              "onecycle", "warmup_cosine", "all"}


# -- end to end -------------------------------------------------------------------------------------------------------

SMALL = ["data.batch_size=8", "model.embedding_dim=16", "model.hidden_size=16", "model.optimizer.lr=0.05",
         "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "threads=1", "data.tokenizer_workers=1"]
RECORD = "+callbacks.weights._target_=test_regularizers.RecordWeights"


class RecordWeights(pl.Callback):
    """A test aid injected through `callbacks`: the net's weights at the start of every epoch, to <run>/weights/."""

    def on_train_epoch_start(self, trainer, pl_module):
        out = Path(trainer.default_root_dir) / "weights"
        out.mkdir(exist_ok=True)
        weights = {k: v.clone() for k, v in pl_module.net.state_dict().items()}
        torch.save(weights, out / f"epoch{trainer.current_epoch}.pt")


def best_score(checkpoint: Path) -> float:
    """The best validation accuracy the run's checkpoint callback had seen when `checkpoint` was written."""
    states = torch.load(checkpoint, weights_only=True)["callbacks"]
    (state,) = [v for k, v in states.items() if k.startswith("ModelCheckpoint{'monitor': 'val/acc'")]
    return float(state["best_model_score"])


def train_run(tmp_path: Path, name: str, *overrides: str) -> dict:
    from seqlab.train import train

    if not (tmp_path / "imdb").exists():
        make_imdb_tree(tmp_path / "imdb", n_per_class=40)
    cfg = compose_train(f"data.root={tmp_path / 'imdb'}", f"paths.cache_dir={tmp_path / 'cache'}",
                        f"paths.output_dir={tmp_path / name}", *SMALL, *overrides)
    return train(cfg)


def test_every_option_on_trains_and_swa_is_validated_and_selected_honestly(tmp_path):
    from seqlab.train import build_datamodule

    metrics = train_run(tmp_path, "run", *EVERYTHING, RECORD)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["swa_checkpoint"] == str(run / "checkpoints/swa.ckpt")
    # the average: Lightning's, of the weights at the start of epochs 2 and 3 (swa_epoch_start=2 of 3)
    snapshots = [torch.load(run / f"weights/epoch{e}.pt") for e in (1, 2)]
    swa = torch.load(run / "checkpoints/swa.ckpt", weights_only=True)["state_dict"]
    for name, value in snapshots[0].items():
        if name != "encoder.word_counts":
            torch.testing.assert_close(swa[f"net.{name}"], (value + snapshots[1][name]) / 2, atol=1e-6, rtol=1e-5)
    # its validation score, recomputed independently, and the choice of what was tested
    cfg = compose_train(f"data.root={tmp_path / 'imdb'}", f"paths.cache_dir={tmp_path / 'cache'}", *SMALL)
    dm = build_datamodule(cfg)
    dm.setup()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, use_distributed_sampler=False)
    swa_val = trainer.validate(SeqModel.load_from_checkpoint(run / "checkpoints/swa.ckpt"), datamodule=dm,
                               verbose=False)[0]["val/acc"]
    assert swa_val == pytest.approx(saved["swa_val_acc"], abs=1e-6)
    best_val = best_score(run / "checkpoints/last.ckpt")
    chose_swa = saved["swa_val_acc"] > best_val
    assert saved["tested_checkpoint"] == (saved["swa_checkpoint"] if chose_swa else saved["best_checkpoint"])
    assert saved["val_acc"] == pytest.approx(max(saved["swa_val_acc"], best_val))
    tested = trainer.test(SeqModel.load_from_checkpoint(saved["tested_checkpoint"]), datamodule=dm, verbose=False)[0]
    assert tested["test/acc"] == pytest.approx(metrics["test_acc"], abs=1e-6)
    # prediction (seqlab.inference, the checkpoint alone) rebuilds the same network: same scores in eval mode
    from seqlab.inference import load_net

    net, _ = load_net(saved["swa_checkpoint"])
    reference = SeqModel.load_from_checkpoint(saved["swa_checkpoint"]).eval()
    b = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        assert torch.equal(net(b["tokens"], b["lengths"]), reference(b["tokens"], b["lengths"]))
    # adversarial training's embedding normalisation weighs words by their training counts
    counts = torch.bincount(dm.datasets["train"].ids.values.long(), minlength=len(dm.vocab)).float()
    assert torch.equal(swa["net.encoder.word_counts"], counts)
    # the warm-up + cosine schedule knew the run's length (auto): 3 epochs of 9 batches
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    swalr = last["callbacks"][next(k for k in last["callbacks"] if k.startswith("SWA"))]["scheduler_state"]
    assert swalr is not None and last["global_step"] == 27


def test_one_cycle_total_steps_auto_is_the_runs_optimizer_steps(tmp_path):
    train_run(tmp_path, "run", "model.scheduler={_target_:torch.optim.lr_scheduler.OneCycleLR,max_lr:0.05,"
              "total_steps:auto,interval:step}")
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    (state,) = last["lr_schedulers"]
    assert state["total_steps"] == 27 and state["last_epoch"] == 27
    # the rate is the one of a one-cycle schedule of 27 steps after 27 steps; its 27th optimizer step, the run's
    # last, trained at the minimum max_lr / div_factor / final_div_factor (torch's defaults 25, 1e4)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=27)
    used = []
    for _ in range(27):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert used[-1] == pytest.approx(0.05 / 25 / 1e4, rel=1e-9)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)


def test_swa_stopped_early_still_ends_with_the_average(tmp_path):
    """Early stopping after the 2nd of 5 epochs (min_delta 1: nothing improves): one snapshot averaged, the weights
    at the start of epoch 2, i.e. after epoch 1 — Lightning alone would have kept the last trained weights."""
    metrics = train_run(tmp_path, "run", "trainer.max_epochs=5", "early_stopping={patience:0,min_delta:1.0}",
                        "model.swa={swa_lrs:0.01,swa_epoch_start:2}", RECORD)
    assert metrics["epochs"] == 2
    run = tmp_path / "run"
    swa = torch.load(run / "checkpoints/swa.ckpt", weights_only=True)["state_dict"]
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    snapshot = torch.load(run / "weights/epoch1.pt")
    for name, value in snapshot.items():
        assert torch.equal(swa[f"net.{name}"], value), name
    assert any(not torch.equal(swa[k], last[k]) for k in swa if k.startswith("net."))


def test_swa_stopped_by_max_time_ends_with_the_average_of_the_epochs_it_reached(tmp_path, monkeypatch):
    """Training steps slowed to 0.15 s, a 5-second cap, 10 epochs planned: the cap stops training mid-run, and the
    weights tested as swa.ckpt are the average of the epoch-start snapshots from epoch 2 on."""
    import time

    step = SeqModel.training_step

    def slow(self, batch, batch_idx):
        time.sleep(0.15)
        return step(self, batch, batch_idx)

    monkeypatch.setattr(SeqModel, "training_step", slow)
    metrics = train_run(tmp_path, "run", "trainer.max_epochs=10", "trainer.max_time=00:00:00:05",
                        "model.swa={swa_lrs:0.01,swa_epoch_start:2}", RECORD)
    run = tmp_path / "run"
    reached = sorted(int(f.stem.removeprefix("epoch")) for f in (run / "weights").glob("epoch*.pt"))
    assert metrics["epochs"] < 10 and len(reached) >= 3  # stopped by the cap, after SWA started
    snapshots = [torch.load(run / f"weights/epoch{e}.pt") for e in reached if e >= 1]
    swa = torch.load(run / "checkpoints/swa.ckpt", weights_only=True)["state_dict"]
    for name in snapshots[0]:
        mean = torch.stack([s[name] for s in snapshots]).mean(0)
        torch.testing.assert_close(swa[f"net.{name}"], mean, atol=1e-6, rtol=1e-5)


PLATEAU = ("model.scheduler={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,factor:0.5,patience:0,"
           "threshold:1.0,threshold_mode:abs}")  # no epoch improves by 1: the rate would halve after every epoch


def test_swa_takes_the_rate_over_from_a_plateau_schedule(tmp_path):
    """SWALR replaces the plateau schedule at epoch 2 and anneals to swa_lrs in one epoch; nothing halves it after."""
    train_run(tmp_path, "run", "trainer.max_epochs=4", PLATEAU, "model.swa={swa_lrs:0.01,swa_epoch_start:2,"
              "annealing_epochs:1}")
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01, rel=1e-12)


# -- exact resume, DDP ----------------------------------------------------------------------------------------------

def resume_equals_uninterrupted(tmp_path: Path, data: str, extra: list[str], kill_step: int) -> tuple[dict, dict]:
    """SIGKILL a run mid-epoch, resume with ckpt_path=last: metrics, final weights, optimizer and scheduler state and
    swa.ckpt equal the uninterrupted run's (tests/test_resume.py's machinery)."""
    from test_resume import SLOW, command, finish, kill_at_step, run_ok, start

    make_imdb_tree(tmp_path / "imdb", n_per_class=40)
    add_unseen_test_words(make_pos_dir(tmp_path / "ewt"))
    (tmp_path / "slow.py").write_text(SLOW)
    every = ["checkpoint_every_n_steps=2", *extra]
    whole = start(command(tmp_path, "whole", *every, data=data), tmp_path)
    kill_at_step(command(tmp_path, "run", *every, slow=True, data=data), tmp_path, step=kill_step)
    finish(whole)
    assert not (tmp_path / "run/metrics.json").exists()
    run_ok(command(tmp_path, "run", *every, "ckpt_path=last", data=data), tmp_path)
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("whole", "run"))
    for key in ("val_acc", "test_acc", "test_loss", "swa_val_acc", "epochs"):
        assert a.get(key) == b.get(key), key
    for name in ("last.ckpt", "swa.ckpt") if a.get("swa_checkpoint") else ("last.ckpt",):
        x, y = (torch.load(tmp_path / r / "checkpoints" / name, weights_only=True) for r in ("whole", "run"))
        for key, tensor in x["state_dict"].items():
            assert torch.equal(tensor, y["state_dict"][key]), (name, key)
    x, y = (torch.load(tmp_path / r / "checkpoints/last.ckpt", weights_only=True) for r in ("whole", "run"))
    assert x["lr_schedulers"] == y["lr_schedulers"] and x["global_step"] == y["global_step"]
    assert x["optimizer_states"][0]["param_groups"][0]["lr"] == y["optimizer_states"][0]["param_groups"][0]["lr"]
    return x, a


def test_exact_resume_with_every_option_on(tmp_path):
    """Killed in the 3rd epoch, while SWA averages (its SWALR re-installed mid-epoch): bit-identical."""
    last, metrics = resume_equals_uninterrupted(tmp_path, "imdb", EVERYTHING, kill_step=2 * 9 + 4)
    (swa,) = [v for k, v in last["callbacks"].items() if k.startswith("SWA")]
    assert swa["n_averaged"] == 2 and metrics["swa_val_acc"] is not None


@pytest.mark.slow
def test_exact_resume_tagging_packed_custom_gru_plateau_swa(tmp_path):
    """Tagging with a character BiLSTM, GRU cells, seqlab.nn, the packed path (per-layer functional_call), a plateau
    schedule that SWA takes over in the 3rd epoch; killed in the 3rd epoch."""
    extra = ["backend=custom", "model.cell=gru", "model.path=packed", "model.char_encoder=lstm", "model.char_dim=8",
             "model.char_hidden=8", "data.batch_size=6", "model.word_dropout=0.2", "model.word_dropout_mode=token",
             "model.num_layers=2", "model.locked_dropout=0.2", "model.weight_drop=0.3", "model.adversarial.epsilon=0.5",
             PLATEAU, "model.swa={swa_lrs:0.01,swa_epoch_start:3,annealing_epochs:1}"]
    last, _ = resume_equals_uninterrupted(tmp_path, "pos", extra, kill_step=2 * 10 + 4)
    assert last["global_step"] == 30
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.01, rel=1e-12)


@pytest.mark.slow
def test_ddp_run_with_every_option_on_finishes(tmp_path):
    from test_ddp import DDP, TESTS_ON_PATH
    from test_ddp import SMALL as DDP_SMALL

    add_unseen_test_words(make_pos_dir(tmp_path / "ewt"))
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", **TESTS_ON_PATH}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), f"hydra.run.dir={tmp_path / 'run'}",
           f"data.root={tmp_path / 'ewt'}", "threads=1", *DDP_SMALL, *EVERYTHING, "model.char_encoder=lstm",
           "model.char_dim=4", "model.char_hidden=4", *DDP]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["swa_val_acc"] is not None
    assert (tmp_path / "run/checkpoints/swa.ckpt").is_file()
    assert (tmp_path / "run/train.log").read_text().count("Metrics:") == 1
