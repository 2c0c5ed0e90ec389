"""backend=torch and backend=custom are interchangeable: same parameters, same outputs, checkpoints swap."""

from __future__ import annotations

import pytest
import torch
from conftest import make_metadata

from seqlab.models.module import SeqModel

META = make_metadata("classification", 40, ["neg", "pos"])
TAG_META = make_metadata("tagging", 40, list("ABC"), num_chars=9)


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("meta", [META, TAG_META], ids=["classification", "tagging-with-char-rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_dict_swaps_between_backends_with_equal_outputs(cell, meta, bidirectional, path):
    torch.manual_seed(0)
    kw = {"embedding_dim": 6, "hidden_size": 5, "num_layers": 2, "bidirectional": bidirectional, "dropout": 0.0,
          "cell": cell, "path": path}
    if meta is TAG_META:
        kw.update(char_encoder="lstm", char_dim=4, char_hidden=3)
    a = SeqModel(meta, backend="torch", **kw).eval()
    b = SeqModel(meta, backend="custom", **kw).eval()
    assert type(a.net.encoder.rnn) is not type(b.net.encoder.rnn)
    assert a.state_dict().keys() == b.state_dict().keys()
    b.load_state_dict(a.state_dict())
    tokens = torch.randint(1, 40, (3, 7))
    lengths = torch.tensor([7, 4, 1])
    tokens[1, 4:] = 0
    tokens[2, 1:] = 0
    chars = torch.randint(1, 9, (3, 7, 4)) if meta is TAG_META else None
    ya, yb = a(tokens, lengths, chars), b(tokens, lengths, chars)
    if meta.task == "tagging":
        mask = torch.arange(7)[None] < lengths[:, None]
        ya, yb = ya[mask], yb[mask]
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    a.load_state_dict(b.state_dict())  # and back


@pytest.mark.parametrize("path", ["padded", "packed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_custom_backend_gradients_match_torch(cell, path):
    torch.manual_seed(0)
    kw = {"embedding_dim": 6, "hidden_size": 5, "num_layers": 2, "dropout": 0.0, "cell": cell, "path": path}
    a, b = SeqModel(META, backend="torch", **kw).double(), SeqModel(META, backend="custom", **kw).double()
    b.load_state_dict(a.state_dict())
    tokens, lengths = torch.randint(1, 40, (4, 6)), torch.tensor([6, 5, 2, 1])
    for m in (a, b):
        m(tokens, lengths).pow(2).sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize("trained, evaluated, cell", [("torch", "custom", "lstm"), ("custom", "torch", "lstm"),
                                                     ("torch", "custom", "gru"), ("custom", "torch", "gru")])
def test_checkpoint_of_one_backend_evaluates_equally_under_the_other(tmp_path, trained, evaluated, cell):
    import pytorch_lightning as pl
    from conftest import REPO, make_imdb_tree
    from hydra import compose, initialize_config_dir

    from seqlab.evaluate import load_module
    from seqlab.train import build_datamodule, train

    make_imdb_tree(tmp_path / "imdb")
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"backend={trained}", f"model.cell={cell}", f"data.root={tmp_path / 'imdb'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.output_dir={tmp_path / 'run'}", "model.hidden_size=8", "model.embedding_dim=8",
            "trainer.max_epochs=2", "trainer.enable_progress_bar=false"])
    metrics = train(cfg)
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    checkpoint["hyper_parameters"]["backend"] = evaluated
    model, _ = load_module(checkpoint)
    assert type(model.net.encoder.rnn).__module__.startswith("torch" if evaluated == "torch" else "seqlab")
    assert model.hparams.cell == cell and model.net.encoder.cell == cell
    dm = build_datamodule(cfg)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert result["test/acc"] == pytest.approx(metrics["test_acc"], abs=1e-7)
    assert result["test/loss"] == pytest.approx(metrics["test_loss"], abs=1e-5)
