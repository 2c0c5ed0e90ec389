"""Caches carry the version of the code that builds them, an unreadable cache is rebuilt with a log line saying why,
and a failed archive extraction leaves nothing behind."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import tarfile

import pytest
import torch
from conftest import make_imdb_archive, make_pos_dir

import seqlab.data
from seqlab.data import imdb, pos, vectors
from seqlab.data.base import SequenceDataModule
from seqlab.data.imdb import IMDBDataModule
from seqlab.data.pos import PosDataModule
from seqlab.errors import DataError


def imdb_dm(root, cache):
    return IMDBDataModule(root=root, cache_dir=cache, batch_size=4, seed=0, tokenizer_workers=1)


def pos_dm(root, cache):
    return PosDataModule(root=root, cache_dir=cache, download=False, batch_size=4, seed=0)


def ready(dm):
    dm.prepare_data()
    dm.setup()
    return dm


def test_every_corpus_builder_declares_a_code_version():
    """A datamodule module that builds a cached corpus defines CORPUS_VERSION (found by import, so a new dataset
    module is checked too)."""
    builders = []
    for info in pkgutil.iter_modules(seqlab.data.__path__):
        module = importlib.import_module(f"seqlab.data.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, SequenceDataModule) and obj is not SequenceDataModule \
                    and obj.__module__ == module.__name__ and "_build_corpus" in vars(obj):
                builders.append(obj)
                assert isinstance(getattr(module, "CORPUS_VERSION", None), int), module.__name__
    assert {IMDBDataModule, PosDataModule} <= set(builders)


@pytest.mark.parametrize("kind", ["imdb", "pos"])
def test_corpus_cache_key_changes_with_the_code_version(tmp_path, monkeypatch, caplog, kind):
    if kind == "imdb":
        make_imdb_archive(tmp_path / "data", n_per_class=4)
        module, make = imdb, imdb_dm
    else:
        make_pos_dir(tmp_path / "data", {"train": 6, "dev": 2, "test": 2})
        module, make = pos, pos_dm
    first = ready(make(tmp_path / "data", tmp_path / "cache"))
    assert first._corpus_spec()["version"] == module.CORPUS_VERSION
    old_path = first.cache_path()
    monkeypatch.setattr(module, "CORPUS_VERSION", module.CORPUS_VERSION + 1)
    with caplog.at_level(logging.INFO, logger="seqlab.data.base"):
        second = ready(make(tmp_path / "data", tmp_path / "cache"))
    assert second.cache_path() != old_path  # the older version's cache is not reused: the corpus is rebuilt
    assert f"Preparing {kind} (cache miss: {second.cache_path()})" in caplog.text
    assert len(list((tmp_path / "cache").glob(f"{kind}-*.pt"))) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_corpus_cache_is_rebuilt_and_the_log_says_why(tmp_path, caplog, damage):
    make_pos_dir(tmp_path / "ewt", {"train": 6, "dev": 2, "test": 2})
    good = ready(pos_dm(tmp_path / "ewt", tmp_path / "cache"))
    path = good.cache_path()
    data = path.read_bytes()
    path.write_bytes({"garbage": os.urandom(500), "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with caplog.at_level(logging.INFO):
        again = ready(pos_dm(tmp_path / "ewt", tmp_path / "cache"))
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and warning[0].startswith(f"Cache {path} is unreadable (")
    assert warning[0].endswith("); rebuilding it.")
    assert "Preparing pos" in caplog.text
    assert torch.load(path, weights_only=True)["itos"] == good.full_itos  # rewritten, readable, the same corpus
    assert again.datasets["train"].ids.values.tolist() == good.datasets["train"].ids.values.tolist()


def test_vector_matrix_cache_has_a_version_and_an_unreadable_one_is_rebuilt(tmp_path, monkeypatch, caplog):
    (tmp_path / "v.txt").write_text("the 1 2\ncat 3 4\n", encoding="utf-8")
    itos = ["<pad>", "<unk>", "the", "cat", "dog"]
    m1, _ = vectors.build_embedding_matrix(itos, str(tmp_path / "v.txt"), 2, tmp_path / "cache")
    (saved,) = (tmp_path / "cache/vectors").glob("matrix-*.pt")
    monkeypatch.setattr(vectors, "MATRIX_VERSION", vectors.MATRIX_VERSION + 1)
    m2, _ = vectors.build_embedding_matrix(itos, str(tmp_path / "v.txt"), 2, tmp_path / "cache")
    assert len(list((tmp_path / "cache/vectors").glob("matrix-*.pt"))) == 2 and torch.equal(m1, m2)
    monkeypatch.undo()
    saved.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        m3, _ = vectors.build_embedding_matrix(itos, str(tmp_path / "v.txt"), 2, tmp_path / "cache")
    assert f"Cache {saved} is unreadable" in caplog.text and torch.equal(m1, m3)
    assert torch.equal(torch.load(saved, weights_only=True)["matrix"], m1)


def leftovers(cache):
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_archive_leaves_nothing_in_the_cache(tmp_path, damage):
    archive = make_imdb_archive(tmp_path / "data", n_per_class=30)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(4000))
    with pytest.raises(DataError, match="is not a readable tar archive"):
        ready(imdb_dm(tmp_path / "data", tmp_path / "cache"))
    assert leftovers(tmp_path / "cache") == []  # no empty extraction folder, no temp dir


def test_an_archive_without_the_imdb_tree_leaves_nothing_in_the_cache(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "readme.txt").write_text("not IMDB")
    with tarfile.open(tmp_path / "data/aclImdb_v1.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "readme.txt", arcname="other/readme.txt")
    with pytest.raises(DataError, match="does not contain the aclImdb"):
        ready(imdb_dm(tmp_path / "data", tmp_path / "cache"))
    assert leftovers(tmp_path / "cache") == []


def test_a_complete_extraction_is_reused(tmp_path, monkeypatch):
    make_imdb_archive(tmp_path / "data", n_per_class=4)
    ready(imdb_dm(tmp_path / "data", tmp_path / "cache"))
    (extracted,) = (tmp_path / "cache").glob("imdb-extracted-*")
    assert sorted(p.name for p in extracted.iterdir()) == ["aclImdb"]
    assert oct(extracted.stat().st_mode & 0o777) != oct(0o700)  # not left private like a temp dir
    for p in (tmp_path / "cache").glob("imdb-*.pt"):
        p.unlink()  # the corpus is rebuilt from the extraction, which is not extracted again
    monkeypatch.setattr(imdb, "safe_extract", lambda *a: pytest.fail("extracted again"))
    assert len(ready(imdb_dm(tmp_path / "data", tmp_path / "cache")).datasets["test"]) == 8
