"""The CRF head (model.head=crf) through SeqNet: padding invariance, marginals and the unknown-label loss against
brute-force enumeration, constraints from the tag scheme, and the settings' errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from conftest import REPO, make_pos_dir
from hydra import compose, initialize_config_dir

from seqlab.data.vocab import IGNORE_INDEX, UNSEEN_LABEL
from seqlab.errors import ConfigError
from seqlab.metadata import Metadata
from seqlab.models.crf import CRF, path_score
from seqlab.models.heads import CRFHead, TokenHead
from seqlab.models.net import SeqNet
from seqlab.tasks.schemes import allowed_transitions, find_violation, labels_for

LABELS = labels_for(["LOC", "PER"], "BIOES")  # 9 tags


def span_meta(scheme: str = "BIOES") -> Metadata:
    vocab = ["<pad>", "<unk>", *(f"w{i}" for i in range(2, 30))]
    return Metadata(task="spans", vocab=vocab, labels=labels_for(["LOC", "PER"], scheme),
                    chars=["<pad>", "<unk>", "a", "b"], task_options={"data_scheme": "IOB2", "model_scheme": scheme})


@torch.no_grad()
def brute_force(crf: CRF, emissions: torch.Tensor, known: list[int | None] | None = None):
    """(log Z, marginals (T, C), log Z over the paths that agree with `known`) of one sentence (T, C)."""
    T, C = emissions.shape
    emissions_, start, trans, end = crf._scores(emissions[None], -1e4)
    paths = torch.tensor(list(itertools.product(range(C), repeat=T)))
    mask = torch.ones(len(paths), T, dtype=torch.bool)
    scores = path_score(emissions_.expand(len(paths), T, C), paths, mask, start, trans, end)
    log_z = torch.logsumexp(scores, 0)
    probs = (scores - log_z).exp()
    marginals = torch.stack([torch.zeros(C, dtype=probs.dtype).index_add_(0, paths[:, t], probs) for t in range(T)])
    agree = torch.ones(len(paths), dtype=torch.bool)
    for t, y in enumerate(known or []):
        if y is not None:
            agree &= paths[:, t] == y
    return log_z, marginals, torch.logsumexp(scores[agree], 0)


@pytest.mark.parametrize("constrained", [False, True])
def test_marginals_and_unknown_label_loss_equal_brute_force(constrained):
    torch.manual_seed(0)
    labels = labels_for(["X"], "BIOES")  # O B-X I-X E-X S-X: 5 tags, 5^4 paths
    head = CRFHead(4, len(labels), 0.0, allowed_transitions(labels, "BIOES") if constrained else None).double()
    with torch.no_grad():  # away from the near-uniform initialisation
        head.crf.transitions.normal_()
        head.crf.start.normal_()
        head.crf.end.normal_()
    emissions = torch.randn(2, 4, len(labels), dtype=torch.float64)
    lengths = torch.tensor([4, 3])
    got = head.marginals(emissions, lengths)
    for b, n in enumerate(lengths.tolist()):
        _, want, _ = brute_force(head.crf, emissions[b, :n])
        torch.testing.assert_close(got[b, :n], want, atol=1e-9, rtol=0)
        assert got[b, n:].abs().sum() == 0 and torch.allclose(got[b, :n].sum(-1), torch.ones(n, dtype=torch.float64))
    # gold labels with a gap (a label training lacks): -log p(the known labels), summed over the unknown step
    gold = torch.tensor([[1, UNSEEN_LABEL, 3, 0], [0, 4, UNSEEN_LABEL, IGNORE_INDEX]])
    want = 0.0
    for b, n in enumerate(lengths.tolist()):
        known = [None if y < 0 else y for y in gold[b, :n].tolist()]
        log_z, _, log_z_known = brute_force(head.crf, emissions[b, :n], known)
        want += float(log_z - log_z_known)
    assert head.loss(emissions, gold, lengths).detach().item() == pytest.approx(want / 7, abs=1e-9)
    # with every label known it is the CRF's own token-mean NLL
    full = torch.tensor([[1, 2, 3, 0], [0, 4, 0, IGNORE_INDEX]])
    want = sum(float(brute_force(head.crf, emissions[b, :n])[0] - brute_force(head.crf, emissions[b, :n],
               full[b, :n].tolist())[2]) for b, n in enumerate(lengths.tolist()))
    assert head.loss(emissions, full, lengths).detach().item() == pytest.approx(want / 7, abs=1e-9)


def test_padded_batch_gives_each_sentence_its_own_result_through_seqnet():
    torch.manual_seed(1)
    net = SeqNet(span_meta(), embedding_dim=8, hidden_size=6, head="crf", char_encoder="cnn", char_dim=4,
                 char_hidden=5).eval()
    assert isinstance(net.head, CRFHead)
    lengths = torch.tensor([6, 2, 4])
    tokens = torch.randint(2, 30, (3, 6)).masked_fill(torch.arange(6)[None] >= lengths[:, None], 0)
    chars = torch.randint(1, 4, (3, 6, 5)).masked_fill((tokens == 0)[..., None], 0)
    labels = torch.randint(0, len(LABELS), (3, 6)).masked_fill(tokens == 0, IGNORE_INDEX)
    with torch.no_grad():
        scores = net(tokens, lengths, chars)
        paths = net.head.decode(scores, lengths)
        confidence = net.head.confidence(scores, paths, lengths)
        total = net.head.loss(scores, labels, lengths) * lengths.sum()
        alone_total = 0.0
        for b, n in enumerate(lengths.tolist()):
            one = net(tokens[b:b + 1, :n], lengths[b:b + 1], chars[b:b + 1, :n])
            path = net.head.decode(one, lengths[b:b + 1])
            assert paths[b, :n].tolist() == path[0].tolist() and (paths[b, n:] == IGNORE_INDEX).all()
            torch.testing.assert_close(confidence[b, :n], net.head.confidence(one, path, lengths[b:b + 1])[0])
            alone_total += float(net.head.loss(one, labels[b:b + 1, :n], lengths[b:b + 1])) * n
    assert float(total) == pytest.approx(alone_total, rel=1e-5)


def test_constraints_come_from_the_model_scheme():
    torch.manual_seed(2)
    for scheme in ("IOB1", "IOB2", "BIOES"):
        net = SeqNet(span_meta(scheme), embedding_dim=8, hidden_size=6, head="crf", tag_scheme=scheme).eval()
        emissions = torch.randn(64, 7, len(net.task.labels)) * 5  # strong, random: unconstrained paths break rules
        paths = net.head.decode(emissions, torch.full((64,), 7))
        assert all(find_violation([net.task.labels[i] for i in p], scheme) is None for p in paths.tolist())
        free = SeqNet(span_meta(scheme), embedding_dim=8, hidden_size=6, head="crf", crf_constraints=False)
        assert free.head.crf.allowed.all() and not net.head.crf.allowed.all()
        paths = free.head.decode(emissions, torch.full((64,), 7))
        assert any(find_violation([free.task.labels[i] for i in p], scheme) for p in paths.tolist())


def test_tagging_without_a_scheme_has_no_constraints_and_linear_is_the_default():
    meta = Metadata(task="tagging", vocab=["<pad>", "<unk>", "a"], labels=["DET", "NOUN", "VERB"])
    crf = SeqNet(meta, embedding_dim=4, hidden_size=4, head="crf", crf_constraints=True).head
    assert isinstance(crf, CRFHead) and crf.crf.allowed.all() and crf.crf.allowed_start.all()
    assert type(SeqNet(meta, embedding_dim=4, hidden_size=4).head) is TokenHead


@pytest.mark.parametrize("meta, options, message", [
    (Metadata(task="classification", vocab=["<pad>", "<unk>"], labels=["a", "b"]), {"head": "crf"},
     "model.head=crf does not apply to the classification task; use one of linear"),
    (span_meta("BIOES"), {"tag_scheme": "IOB2"}, r"model.tag_scheme=IOB2, but the data's labels are in BIOES"),
    (span_meta("BIOES"), {"crf_constraints": "yes"}, "model.crf_constraints must be true or false"),
])
def test_settings_errors(meta, options, message):
    with pytest.raises(ConfigError, match=message):
        SeqNet(meta, embedding_dim=4, hidden_size=4, **options)


def test_crf_loss_starts_on_the_cross_entropy_scale():
    """token_mean: an untrained CRF's loss is about log(C), like the softmax head's, so learning rates carry over."""
    torch.manual_seed(3)
    head = CRFHead(8, len(LABELS), 0.0)
    feats, lengths = torch.randn(16, 12, 8) * 0.01, torch.randint(3, 13, (16,))
    labels = torch.randint(0, len(LABELS), (16, 12))
    loss = head.loss(head(feats, None, lengths), labels, lengths).detach().item()
    assert loss == pytest.approx(math.log(len(LABELS)), rel=0.1)


def test_pos_recipe_runs_with_the_crf_head(tmp_path):
    """`experiment=pos_cpu model.head=crf`: one step on generated CoNLL-U data; token accuracy as usual."""
    from seqlab.train import train

    root = make_pos_dir(tmp_path / "data")
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{w} " + " ".join(["0.1"] * 50) + "\n" for w in ("the", "dog")))
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=pos_cpu", "model.head=crf", f"data.root={root}", "data.download=false",
            f"model.vectors={vectors}", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
            "model.hidden_size=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
            "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0", "threads=1"])
    metrics = train(cfg)
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=True)
    assert ckpt["hyper_parameters"]["head"] == "crf" and "net.head.crf.transitions" in ckpt["state_dict"]
    assert metrics["monitor"] == "val_acc" and {"test_acc", "test_oov_acc"} <= set(metrics)
