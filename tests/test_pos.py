"""POS datamodule: EWT-layout CoNLL-U files, vocab and tag set from training data, unseen-word flags."""

from __future__ import annotations

import pytest
from conftest import conllu_sentence, make_pos_dir

from seqlab.data.pos import PosDataModule
from seqlab.data.vocab import UNSEEN_LABEL
from seqlab.errors import ConfigError, DataError


def _dm(root, tmp_path, **kw):
    dm = PosDataModule(root=root, cache_dir=tmp_path / "cache", batch_size=4, seed=0, download=False, **kw)
    dm.prepare_data()
    dm.setup()
    return dm


def test_reads_splits_tags_from_training_data(tmp_path):
    dm = _dm(make_pos_dir(tmp_path / "ewt"), tmp_path)
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 60, "val": 12, "test": 12}
    assert sorted(dm.labels) == ["ADJ", "DET", "NOUN", "PUNCT", "VERB"]
    assert dm.metadata.task == "tagging" and dm.metadata.labels == dm.labels
    assert "ghost" not in dm.vocab and "the_dog" not in dm.vocab  # empty node / multi-word token skipped
    item = dm.datasets["train"][0]
    assert len(item["ids"]) == len(item["label"]) == len(item["forms"])
    b = next(iter(dm.train_dataloader()))
    assert b["labels"].shape == b["tokens"].shape == b["unseen"].shape and not b["unseen"].any()
    assert b["chars"].shape[:2] == b["tokens"].shape and b["chars"].shape[2] == dm.max_word_length
    # characters of the first word of the first sentence spell it
    word = dm.vocab.itos[int(b["tokens"][0, 0])]
    n = min(len(word), dm.max_word_length)
    assert "".join(dm.chars[c] for c in b["chars"][0, 0, :n].tolist()) == word[:n]
    assert dm.metadata.chars == dm.chars


def test_unseen_words_and_tags_in_test(tmp_path):
    root = make_pos_dir(tmp_path / "ewt")
    extra = conllu_sentence([("The", "DET"), ("gobble", "NOUN"), ("wow", "INTJ")], "t-x")
    with open(root / "en_ewt-ud-test.conllu", "a", encoding="utf-8") as f:
        f.write(extra)
    dm = _dm(root, tmp_path)
    assert "INTJ" not in dm.labels  # the model's tags come from the training data alone...
    ds = dm.datasets["test"]
    i = len(ds) - 1
    assert ds[i]["label"].tolist()[2] == UNSEEN_LABEL  # ...a test-only tag always counts as an error
    assert ds[i]["ids"].tolist()[1:] == [1, 1]  # unseen words are <unk> in the vocabulary...
    loader = dm.test_dataloader()
    batch = loader.collate_fn([ds[i]])
    assert batch["unseen"].tolist() == [[False, True, True]]
    word = batch["chars"][0, 1, :6].tolist()  # ...but keep their characters
    assert "".join(dm.chars[c] for c in word) == "gobble"


def test_own_files_and_lowercase(tmp_path):
    root = make_pos_dir(tmp_path / "ewt")
    files = {f"{k}_file": str(root / f"en_ewt-ud-{s}.conllu") for k, s in
             (("train", "train"), ("val", "dev"), ("test", "test"))}
    dm = _dm(tmp_path / "elsewhere", tmp_path, lowercase=True, **files)
    assert all(w == w.lower() for w in dm.vocab.itos)


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="tag_field"):
        PosDataModule(root=tmp_path, cache_dir=tmp_path, tag_field="lemma")
    with pytest.raises(ConfigError, match="data.test_file"):
        PosDataModule(root=tmp_path, cache_dir=tmp_path, train_file="a", val_file="b")
    with pytest.raises(DataError, match="en_ewt-ud-train.conllu not found"):
        _dm(tmp_path / "empty", tmp_path)
    root = make_pos_dir(tmp_path / "bad")
    with open(root / "en_ewt-ud-dev.conllu", "a", encoding="utf-8") as f:
        f.write("1\tbroken\tline\n\n")
    with pytest.raises(DataError, match=r"en_ewt-ud-dev.conllu:\d+"):
        _dm(root, tmp_path)
