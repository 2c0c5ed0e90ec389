"""End-to-end runs of scripts/train.py on tiny generated datasets (CPU, 1 epoch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, add_unseen_test_words, make_imdb_tree, make_pos_dir, raw_imdb_test, raw_pos_test

from seqlab.inference import Predictor

SMALL = ["model.embedding_dim=8", "model.hidden_size=8", "trainer.max_epochs=1", "trainer.log_every_n_steps=1",
         "trainer.enable_progress_bar=false"]


def run_train(tmp_path: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        pytest.fail(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _check_run(run: Path, data_root: Path) -> dict:
    """metrics.json's figures against independent computations: val_acc is the score in the best checkpoint's
    name, test_acc what the checkpoint alone predicts on the raw test files (another code path: raw text ->
    tokenizer -> Predictor)."""
    metrics = json.loads((run / "metrics.json").read_text())
    assert Path(metrics["best_checkpoint"]).is_file() and (run / "checkpoints/last.ckpt").is_file()
    assert metrics["monitor"] == "val_acc" and metrics["monitor_mode"] == "max"
    assert Path(metrics["best_checkpoint"]).name.endswith(f"-acc{metrics['val_acc']:.4f}.ckpt")
    predictor = Predictor.from_checkpoint(metrics["best_checkpoint"], tokenizer="whitespace" if
                                          (data_root / "en_ewt-ud-test.conllu").is_file() else None)
    if (data_root / "en_ewt-ud-test.conllu").is_file():
        texts, gold = raw_pos_test(data_root)
        got = [t for p in predictor.predict(texts) for t in p.record["tags"]]
        gold = [t for g in gold for t in g]
    else:
        texts, gold = raw_imdb_test(data_root)
        got = [p.record["label"] for p in predictor.predict(texts)]
    assert len(got) == len(gold)
    assert metrics["test_acc"] == pytest.approx(sum(a == b for a, b in zip(got, gold)) / len(gold), abs=1e-6)
    # the parameter count of the same architecture built from torch's own modules: embedding (+ character CNN:
    # embedding, width-3 convolution), LSTM, linear head
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=True)
    hp, meta = ckpt["hyper_parameters"], ckpt["seqlab"]["metadata"]
    assert hp["char_encoder"] in (None, "cnn"), "the reference below builds these"
    chars = [] if hp["char_encoder"] is None else [torch.nn.Embedding(len(meta["chars"]), hp["char_dim"]),
                                                   torch.nn.Conv1d(hp["char_dim"], hp["char_hidden"], 3)]
    word = hp["embedding_dim"] + (hp["char_hidden"] if chars else 0)
    reference = [torch.nn.Embedding(len(meta["vocab"]), hp["embedding_dim"]), *chars,
                 torch.nn.LSTM(word, hp["hidden_size"], hp["num_layers"], bidirectional=hp["bidirectional"]),
                 torch.nn.Linear(hp["hidden_size"] * (2 if hp["bidirectional"] else 1), len(meta["labels"]))]
    assert metrics["num_parameters"] == sum(p.numel() for m in reference for p in m.parameters())
    assert metrics["wall_time_s"] > 0
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event files"
    return metrics


@pytest.mark.parametrize("model", ["bilstm", "lstm"])
def test_imdb_end_to_end(tmp_path, model):
    make_imdb_tree(tmp_path / "imdb")
    run_train(tmp_path, f"model={model}", f"data.root={tmp_path / 'imdb'}", *SMALL)
    metrics = _check_run(tmp_path / "run", tmp_path / "imdb")
    assert f"model={model}" in metrics["overrides"]
    tb_runs = [p.name for p in (tmp_path / "run/tensorboard").iterdir()]
    # the run's name is built from its overrides in command-line order, keys shortened (paths, display excluded)
    assert tb_runs == [f"model={model},embedding_dim=8,hidden_size=8,max_epochs=1"]


def test_pos_end_to_end(tmp_path):
    root = make_pos_dir(tmp_path / "ewt")
    add_unseen_test_words(root)
    run_train(tmp_path, "data=pos", f"data.root={root}", "data.download=false", *SMALL)
    metrics = _check_run(tmp_path / "run", root)
    # OOV accuracy: the tags predicted for the one sentence of unseen words (the last test sentence)
    texts, gold = raw_pos_test(root)
    predicted = Predictor.from_checkpoint(metrics["best_checkpoint"], tokenizer="whitespace").predict(texts[-1:])
    unseen_right = sum(a == b for a, b in zip(predicted[0].record["tags"][:2], gold[-1][:2]))
    assert metrics["test_oov_acc"] == pytest.approx(unseen_right / 2)


@pytest.mark.parametrize("override, message", [
    ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
    ("model.hidden_size=0", "model.hidden_size must be a positive integer"),
    ("data.batch_size=-4", "data.batch_size must be a positive integer"),
])
def test_bad_values_fail_with_one_clear_sentence(tmp_path, override, message):
    make_imdb_tree(tmp_path / "imdb")
    proc = run_train(tmp_path, f"data.root={tmp_path / 'imdb'}", override, check=False)
    assert proc.returncode == 2
    assert f"error: {message}" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_key_and_option_are_rejected(tmp_path):
    """What Hydra cannot compose is one error line and exit 2 through the real command too."""
    proc = run_train(tmp_path, "model.hiden_size=4", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: model.hiden_size is not a key of this config; "
                                                           "did you mean hidden_size?")
    assert proc.stderr.count("\n") == 1, proc.stderr
    proc = run_train(tmp_path, "data=imbd", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: data=imbd is not an option of the config group "
                                                           "data; did you mean imdb?")
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_missing_data_is_reported(tmp_path):
    proc = run_train(tmp_path, f"data.root={tmp_path / 'none'}", "data.download=false", check=False)
    assert proc.returncode == 2 and "No IMDB data in" in proc.stderr
    assert not list((tmp_path / "cache").glob("imdb-*.pt"))


def test_pretrained_vectors_and_char_features_end_to_end(tmp_path):
    make_pos_dir(tmp_path / "ewt")
    words = ["the", "dog", "cat", "movie", "runs", "big"]
    vec = tmp_path / "vecs.txt"
    vec.write_text("".join(f"{w} " + " ".join(str(0.1 * (i + j)) for j in range(8)) + "\n"
                           for i, w in enumerate(words)), encoding="utf-8")
    run_train(tmp_path, "data=pos", f"data.root={tmp_path / 'ewt'}", "data.download=false", *SMALL,
              f"model.vectors={vec}", "model.char_encoder=cnn", "model.char_hidden=6")
    metrics = _check_run(tmp_path / "run", tmp_path / "ewt")
    import torch

    ckpt = torch.load(metrics["best_checkpoint"], weights_only=True)
    meta = ckpt["seqlab"]["metadata"]
    found = [w for w in meta["vocab"] if w in words or w.lower() in words]  # exact, then lowercase match
    assert metrics["vectors_vocab_coverage"] == pytest.approx(len(found) / (len(meta["vocab"]) - 2))
    assert any(k.startswith("net.encoder.char_encoder.") for k in ckpt["state_dict"])
    assert meta["vocab"][:2] == ["<pad>", "<unk>"] and meta["chars"][:2] == ["<pad>", "<unk>"]


def test_vector_dimension_mismatch_is_reported(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    vec = tmp_path / "vecs.txt"
    vec.write_text("the 0.1 0.2 0.3\nmovie 0.3 0.2 0.1\n", encoding="utf-8")
    proc = run_train(tmp_path, f"data.root={tmp_path / 'imdb'}", *SMALL, f"model.vectors={vec}", check=False)
    assert proc.returncode == 2 and "embedding_dim" in proc.stderr and "Traceback" not in proc.stderr


def test_scheduler_changes_the_learning_rate_each_epoch(tmp_path):
    make_imdb_tree(tmp_path / "imdb")
    run_train(tmp_path, f"data.root={tmp_path / 'imdb'}", *SMALL, "trainer.max_epochs=3",
              "model.scheduler={_target_: torch.optim.lr_scheduler.StepLR, step_size: 1, gamma: 0.5}")
    log = (tmp_path / "run/train.log").read_text()
    assert [line.split("lr=")[1].split()[0] for line in log.splitlines() if "lr=" in line] == ["0.001", "0.0005",
                                                                                           "0.00025"]


def test_oov_accuracy_is_null_when_no_test_word_is_unseen(tmp_path):
    root = make_pos_dir(tmp_path / "ewt")
    train_file = root / "en_ewt-ud-train.conllu"
    (root / "en_ewt-ud-test.conllu").write_text(train_file.read_text(encoding="utf-8"), encoding="utf-8")
    proc = run_train(tmp_path, "data=pos", f"data.root={root}", "data.download=false", "data.min_freq=1", *SMALL)
    metrics = _check_run(tmp_path / "run", root)
    assert metrics["test_oov_acc"] is None
    assert "test_oov_acc is undefined" in proc.stdout + proc.stderr
