"""IMDB datamodule: data discovery (tree, archive, download), cache behaviour, splits and errors."""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import make_imdb_archive, make_imdb_tree

from seqlab.data.imdb import IMDBDataModule
from seqlab.errors import ConfigError, DataError


def _dm(root, cache, **kw):
    kw.setdefault("tokenizer_workers", 1)
    return IMDBDataModule(root=root, cache_dir=cache, batch_size=4, eval_batch_size=8, seed=0, **kw)


def _ready(dm):
    dm.prepare_data()
    dm.setup()
    return dm


def test_tree_splits_vocab_and_metadata(imdb_tree, tmp_path):
    dm = _ready(_dm(imdb_tree, tmp_path / "cache"))
    sizes = {k: len(v) for k, v in dm.datasets.items()}
    assert sizes == {"train": 22, "val": 2, "test": 24}  # 10% of 12 per class, stratified: 1 + 1
    assert sorted(dm.datasets["val"][i]["label"] for i in range(2)) == [0, 1]
    meta = dm.metadata
    assert (meta.task, meta.labels, meta.vocab, meta.pad_index) == ("classification", ["neg", "pos"], dm.vocab.itos, 0)
    assert (meta.tokenizer, meta.lowercase, meta.chars, meta.dataset) == ("spacy:en", True, None, "imdb")
    assert "<br" not in dm.vocab.itos and "great" in dm.vocab.itos
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape[0] == batch["lengths"].shape[0] == batch["labels"].shape[0] <= 4
    assert (batch["tokens"][0, : batch["lengths"][0]] != 0).all()


def test_val_split_is_deterministic_and_disjoint(imdb_tree, tmp_path):
    a = _ready(_dm(imdb_tree, tmp_path / "c"))
    b = _ready(_dm(imdb_tree, tmp_path / "c"))

    def texts(dm, split):
        ds = dm.datasets[split]
        return {tuple(ds[i]["ids"].tolist()) for i in range(len(ds))}

    assert texts(a, "val") == texts(b, "val")
    assert not texts(a, "val") & texts(a, "train")


def test_vocab_is_built_from_training_portion_only(tmp_path):
    root = tmp_path / "imdb"
    make_imdb_tree(root)
    (root / "aclImdb/test/pos/999_9.txt").write_text("zyzzyva only in test", encoding="utf-8")
    dm = _ready(_dm(root, tmp_path / "c"))
    assert "zyzzyva" not in dm.vocab


def test_cache_hit_miss_and_invalidation(imdb_tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    dm = _ready(_dm(imdb_tree, cache))
    files = sorted(cache.glob("imdb-*.pt"))
    assert len(files) == 1
    ref = dm.datasets["test"][0]["ids"].tolist()

    # hit: a second datamodule loads without building
    monkeypatch.setattr(IMDBDataModule, "_build_corpus", lambda self: pytest.fail("cache miss"))
    dm2 = _ready(_dm(imdb_tree, cache))
    assert dm2.datasets["test"][0]["ids"].tolist() == ref
    # vocabulary settings re-map cached ids: no rebuild, smaller vocab
    dm3 = _ready(_dm(imdb_tree, cache, max_size=5))
    assert len(dm3.vocab) == 7
    monkeypatch.undo()

    # miss: a preprocessing setting changes the fingerprint
    dm4 = _ready(_dm(imdb_tree, cache, lowercase=False))
    assert len(sorted(cache.glob("imdb-*.pt"))) == 2
    assert any(t[0].isupper() for t in dm4.vocab.itos[2:])
    # miss: a changed source file
    (imdb_tree / "aclImdb/train/pos/0_9.txt").write_text("Changed review, truly great.", encoding="utf-8")
    _ready(_dm(imdb_tree, cache))
    assert len(sorted(cache.glob("imdb-*.pt"))) == 3


def test_archive_is_extracted_into_cache_and_matches_tree(tmp_path):
    root = tmp_path / "arch"
    root.mkdir()
    make_imdb_archive(root)
    (root / "src").rename(tmp_path / "src")  # the root holds only the archive
    from_archive = _ready(_dm(root, tmp_path / "c1"))
    from_tree = _ready(_dm(tmp_path / "src", tmp_path / "c2"))
    assert from_archive.vocab.itos == from_tree.vocab.itos
    assert list(root.iterdir()) == [root / "aclImdb_v1.tar.gz"]  # nothing written next to the user's archive
    assert list((tmp_path / "c1").glob("imdb-extracted-*/aclImdb/train/pos"))


def test_download_verified_against_local_server(tmp_path, serve_dir):
    www = tmp_path / "www"
    www.mkdir()
    archive = make_imdb_archive(www)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = serve_dir(www) + "/aclImdb_v1.tar.gz"
    root = tmp_path / "data"
    dm = _ready(_dm(root, tmp_path / "c", url=url, checksum=f"sha256:{digest}"))
    assert len(dm.datasets["test"]) == 24 and (root / "aclImdb_v1.tar.gz").is_file()

    bad_root = tmp_path / "bad"
    with pytest.raises(DataError, match="Checksum mismatch"):
        _ready(_dm(bad_root, tmp_path / "c", url=url, checksum="sha256:" + "0" * 64))
    assert not bad_root.exists() or list(bad_root.iterdir()) == []


def test_missing_data_without_download_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"No IMDB data in .*aclImdb_v1\.tar\.gz"):
        _ready(_dm(tmp_path / "nothing", tmp_path / "c", download=False))


def test_offline_download_names_where_to_put_the_archive(tmp_path):
    with pytest.raises(DataError, match="offline.*aclImdb_v1.tar.gz"):
        _ready(_dm(tmp_path / "nothing", tmp_path / "c", url="http://127.0.0.1:9/aclImdb_v1.tar.gz"))


def test_non_utf8_review_names_the_file_and_leaves_no_cache(imdb_tree, tmp_path):
    bad = imdb_tree / "aclImdb/train/neg/3_2.txt"
    bad.write_bytes(b"caf\xe9 awful")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"3_2\.txt is not valid UTF-8"):
        _ready(_dm(imdb_tree, cache))
    assert not list(cache.glob("imdb-*.pt*"))


def test_corrupt_archive_is_reported(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "aclImdb_v1.tar.gz").write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    with pytest.raises(DataError, match="not a readable tar archive"):
        _ready(_dm(root, tmp_path / "c"))


@pytest.mark.parametrize("kw, key", [({"batch_size": 0}, "batch_size"), ({"min_freq": -1}, "min_freq"),
                                     ({"max_length": 0}, "max_length"), ({"val_fraction": 1.5}, "val_fraction")])
def test_bad_settings_raise_config_error(tmp_path, kw, key):
    with pytest.raises(ConfigError, match=f"data.{key}"):
        IMDBDataModule(root=tmp_path, cache_dir=tmp_path, **kw)


def test_max_length_truncates(imdb_tree, tmp_path):
    dm = _ready(_dm(imdb_tree, tmp_path / "c", max_length=3))
    assert max(len(dm.datasets["train"][i]["ids"]) for i in range(len(dm.datasets["train"]))) == 3
    assert int(dm.datasets["train"].lengths().max()) == 3
    assert torch.equal(dm.datasets["train"].lengths(), torch.full((22,), 3))
