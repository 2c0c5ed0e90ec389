"""Vocabulary, tokenization, bucketing sampler, collate and cache primitives."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from seqlab.data import cache
from seqlab.data.cache import Ragged
from seqlab.data.collate import Collate
from seqlab.data.sampler import BucketBatchSampler
from seqlab.data.tokenize import TokenizerProcess, get_tokenizer, tokenize, tokenize_many
from seqlab.data.vocab import IGNORE_INDEX, PAD, UNK, Vocab, select_by_counts
from seqlab.errors import ConfigError
from seqlab.tasks.classification import Classification
from seqlab.tasks.tagging import Tagging


def test_vocab_from_counts_orders_by_frequency_and_respects_limits():
    counts = Counter({"the": 5, "a": 5, "movie": 3, "rare": 1})
    v = Vocab.from_counts(counts, min_freq=2)
    assert v.itos == [PAD, UNK, "a", "the", "movie"]  # ties alphabetical
    assert v.pad_index == 0 and v.unk_index == 1
    assert v.encode(["the", "rare", "zzz"]) == [3, 1, 1]
    assert v.decode([2, 4]) == ["a", "movie"]
    assert Vocab.from_counts(counts, max_size=1).itos == [PAD, UNK, "a"]


def test_vocab_rejects_bad_specials():
    with pytest.raises(ValueError):
        Vocab(["a", "b"])


def test_select_by_counts_matches_vocab_from_counts():
    itos = [PAD, UNK, "x", "y", "z", "w"]
    counts = torch.tensor([0, 0, 1, 4, 4, 2])
    kept = select_by_counts(counts, max_size=2, min_freq=2)
    assert [itos[i] for i in kept] == ["y", "z"]
    assert [itos[i] for i in select_by_counts(counts, None, 1)] == ["y", "z", "w", "x"]


def test_tokenize_removes_html_breaks_and_lowercases():
    assert tokenize("Great movie!<br /><br />I LOVED it.") == ["great", "movie", "!", "i", "loved", "it", "."]
    assert tokenize("Don't stop", lowercase=False) == ["Do", "n't", "stop"]


def test_tokenize_many_parallel_equals_serial_and_keeps_order():
    texts = [f"Review {i}: it was {'good' if i % 2 else 'bad'}.<br />" for i in range(600)]
    serial = tokenize_many(texts, workers=1)
    assert tokenize_many(texts, workers=2, chunk_size=50) == serial
    assert serial[3] == ["review", "3", ":", "it", "was", "good", "."]


@pytest.mark.skipif(not TokenizerProcess.available, reason="TokenizerProcess needs the fork start method")
def test_tokenizer_process_equals_the_in_process_tokenizer_in_order_and_reports_bad_specs():
    texts = [f"Review {i}: it wasn't {'good' if i % 3 else 'bad'}.<br />Really!" for i in range(50)]
    chunks = [texts[i:i + 7] for i in range(0, len(texts), 7)]  # 8 chunks: one in flight while the next is read
    proc = TokenizerProcess()
    try:
        for spec in ("spacy", "spacy:de", "whitespace"):
            out = list(proc.imap(spec, iter(chunks)))
            assert out == [[get_tokenizer(spec)(t) for t in chunk] for chunk in chunks]
        assert out[0][0] == ["Review", "0:", "it", "wasn't", "bad.<br", "/>Really!"]  # whitespace: split only
        with pytest.raises(ConfigError, match="has no language 'xx_nope'"):
            list(proc.imap("spacy:xx_nope", [["a b"]]))
        assert list(proc.imap("spacy", [["still serving."]])) == [[["still", "serving", "."]]]
    finally:
        proc.close()
    assert not proc._proc.is_alive()


@pytest.mark.skipif(not TokenizerProcess.available, reason="TokenizerProcess needs the fork start method")
def test_tokenizer_process_streams_chunks_larger_than_the_pipe_buffers():
    """Chunks and their token lists well over a pipe's buffer (64 kB) in both directions at once: the next chunk is
    sent while the last one's tokens come back (predict.py with chunk=256 and IMDB reviews hung before)."""
    import threading

    texts = [f"Review {i}: " + "a fine and moving film , " * 60 for i in range(1200)]  # ~1.5 kB each
    chunks = [texts[i:i + 200] for i in range(0, len(texts), 200)]  # ~300 kB a chunk, ~1 MB of tokens back
    out: list = []
    proc = TokenizerProcess()
    try:
        worker = threading.Thread(target=lambda: out.extend(proc.imap("spacy", iter(chunks))), daemon=True)
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "imap hung"
    finally:
        proc._proc.kill()
    assert out == [[get_tokenizer("spacy")(t) for t in chunk] for chunk in chunks]


def _lengths(n=203, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 100, (n,), generator=g)


@pytest.mark.parametrize("shuffle", [True, False])
def test_bucket_sampler_yields_every_index_once_per_epoch(shuffle):
    lengths = _lengths()
    s = BucketBatchSampler(lengths, batch_size=16, shuffle=shuffle, seed=3, pool_factor=4)
    batches = list(s)
    assert len(batches) == len(s)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(len(b) <= 16 for b in batches)


def test_bucket_sampler_groups_similar_lengths_and_reshuffles_per_epoch():
    lengths = _lengths(1000)
    s = BucketBatchSampler(lengths, batch_size=20, seed=1, pool_factor=50)
    e0 = list(s)
    # within a pool of 1000 sorted by length, a batch spans a small range of lengths
    spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in e0]).mean()
    assert spread < 5
    assert list(s) == e0  # same epoch -> same order
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0 and sorted(i for b in e1 for i in b) == list(range(1000))


@pytest.mark.parametrize("n, world", [(203, 2), (50, 3), (7, 4)])
def test_bucket_sampler_ranks_are_disjoint_covering_and_equal_in_count(n, world):
    lengths = _lengths(n)
    per_rank = [list(BucketBatchSampler(lengths, batch_size=8, seed=5, num_replicas=world, rank=r))
                for r in range(world)]
    counts = {len(b) for b in per_rank}
    assert len(counts) == 1, "every rank must run the same number of batches"
    assert all(len(b) == len(BucketBatchSampler(lengths, 8, num_replicas=world, rank=0)) for b in per_rank)
    flat = [i for batches in per_rank for b in batches for i in b]
    assert sorted(flat) == list(range(n))  # disjoint and covering


def test_bucket_sampler_rejects_more_ranks_than_examples():
    with pytest.raises(ValueError):
        BucketBatchSampler([3, 4], batch_size=2, num_replicas=3, rank=0)


def test_collate_classification_and_tagging():
    ex = [{"ids": torch.tensor([5, 6, 7]), "label": 1}, {"ids": torch.tensor([8]), "label": 0}]
    b = Collate(Classification.collate_labels)(ex)
    assert b["tokens"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b["lengths"].tolist() == [3, 1] and b["labels"].tolist() == [1, 0]
    tex = [{"ids": torch.tensor([5, 6]), "label": torch.tensor([2, 3]), "forms": torch.tensor([5, 9])},
           {"ids": torch.tensor([8]), "label": torch.tensor([4]), "forms": torch.tensor([8])}]
    never_seen = torch.zeros(10, dtype=torch.bool)
    never_seen[9] = True
    char_table = torch.arange(20).view(10, 2)
    t = Collate(Tagging.collate_labels, never_seen=never_seen, char_table=char_table)(tex)
    assert t["labels"].tolist() == [[2, 3], [4, IGNORE_INDEX]]
    assert t["unseen"].tolist() == [[False, True], [False, False]]
    assert t["chars"].tolist() == [[[10, 11], [18, 19]], [[16, 17], [0, 1]]]  # padding -> row 0 of the table


def test_ragged_round_trip_and_mapping():
    r = Ragged.from_lists([[1, 2, 3], [], [4]])
    assert len(r) == 3 and r[0].tolist() == [1, 2, 3] and r[1].tolist() == [] and r.lengths().tolist() == [3, 0, 1]
    assert r.subset(torch.tensor([2, 0])).values.tolist() == [4, 1, 2, 3]
    table = torch.tensor([0, 10, 20, 30, 40])
    assert r.map_values(table)[0].tolist() == [10, 20, 30]


def test_fingerprint_is_stable_and_sensitive():
    a = cache.fingerprint({"x": 1, "y": [1, 2]})
    assert a == cache.fingerprint({"y": [1, 2], "x": 1})
    assert a != cache.fingerprint({"x": 2, "y": [1, 2]})


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        cache.atomic_save({"bad": Boom()}, tmp_path / "c.pt")
    assert list(tmp_path.iterdir()) == []
    cache.atomic_save({"ok": torch.arange(3)}, tmp_path / "c.pt")
    assert cache.load(tmp_path / "c.pt")["ok"].tolist() == [0, 1, 2]
    (tmp_path / "c.pt").write_bytes(b"garbage")
    assert cache.load(tmp_path / "c.pt") is None  # unreadable cache -> rebuilt, not trusted


def test_collate_unk_replace_only_touches_rare_words():
    rare = torch.tensor([False, False, True, False])  # id 2 was seen once in training
    items = [{"ids": torch.tensor([2, 3] * 500), "label": 0}]
    torch.manual_seed(0)
    tokens = Collate(Classification.collate_labels, unk_replace=0.5, rare=rare)(items)["tokens"][0]
    assert (tokens[1::2] == 3).all()  # frequent words untouched
    replaced = (tokens[0::2] == 1).float().mean().item()
    assert 0.4 < replaced < 0.6 and set(tokens[0::2].tolist()) == {1, 2}
    assert Collate(Classification.collate_labels)(items)["tokens"][0].tolist() == [2, 3] * 500
