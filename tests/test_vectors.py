"""Tests for seqlab.data.vectors on tiny vector files written in every supported format (no internet)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from conftest import REPO

from seqlab.data import vectors as V
from seqlab.data.vectors import build_embedding_matrix, read_vectors, resolve_vectors
from seqlab.errors import ConfigError, DataError

LINES = ["the 0.1 0.2 0.3", "The -1 -1 -1", "cat 1 2 3", "Paris 4 5 6", "dog 7 8 9", "new york 0.5 0.5 0.5"]
TEXT = "\n".join(LINES) + "\n"
WORDS = ["the", "The", "cat", "Paris", "dog", "new york"]
ITOS = ["<pad>", "<unk>", "the", "The", "cat", "paris", "DOG", "bird", "zebra"]
COUNTS = {"the": 10, "The": 2, "cat": 3, "paris": 1, "DOG": 1, "bird": 2, "zebra": 1, "oov": 5}
REAL_GLOVE = REPO.parent / "shared/data/glove/glove.6B.50d.txt.gz"  # ../shared/data beside the checkout, if any


def write_txt(d: Path) -> str:
    (d / "vec.txt").write_text(TEXT, encoding="utf-8")
    return str(d / "vec.txt")


def write_gz(d: Path) -> str:
    with gzip.open(d / "vec.txt.gz", "wt", encoding="utf-8") as f:
        f.write(TEXT)
    return str(d / "vec.txt.gz")


def write_zip_member(d: Path) -> str:
    with zipfile.ZipFile(d / "vec.zip", "w") as zf:
        zf.writestr("README", "not vectors")
        zf.writestr("other.txt", "x 9 9 9\n")
        zf.writestr("vec.txt", TEXT)
    return f"{d / 'vec.zip'}:vec.txt"


def write_zip_single(d: Path) -> str:
    with zipfile.ZipFile(d / "one.zip", "w") as zf:
        zf.writestr("README", "not vectors")
        zf.writestr("vec.txt", TEXT)
    return str(d / "one.zip")


def write_word2vec(d: Path) -> str:
    (d / "w2v.txt").write_text(f"{len(LINES)} 3\n" + TEXT, encoding="utf-8")
    return str(d / "w2v.txt")


WRITERS = [write_txt, write_gz, write_zip_member, write_zip_single, write_word2vec]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__[6:])
def test_read_every_format(tmp_path, writer):
    words, vecs = read_vectors(writer(tmp_path))
    assert words == WORDS  # "new york": a word with a space, the last 3 fields are its vector
    assert vecs.dtype == torch.float32 and vecs.shape == (6, 3)
    assert vecs[0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert vecs[5].tolist() == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__[6:])
def test_matrix_same_in_every_format(tmp_path, writer):
    ref, _ = build_embedding_matrix(ITOS, write_txt(tmp_path), 3, tmp_path / "c1")
    got, stats = build_embedding_matrix(ITOS, writer(tmp_path), 3, tmp_path / "c2")
    assert torch.equal(ref, got) and stats["found"] == 5


def test_read_wanted_keeps_word_or_its_lowercase(tmp_path):
    words, vecs = read_vectors(write_txt(tmp_path), {"paris", "the", "nothing"})
    assert words == ["the", "The", "Paris"] and vecs.shape == (3, 3)
    words, vecs = read_vectors(write_txt(tmp_path), set())
    assert words == [] and vecs.shape == (0, 3)


def test_matching_rules_pad_and_coverage(tmp_path):
    m, stats = build_embedding_matrix(ITOS, write_txt(tmp_path), 3, tmp_path / "cache", train_counts=COUNTS)
    assert m.shape == (len(ITOS), 3) and m.dtype == torch.float32
    assert torch.equal(m[0], torch.zeros(3))  # <pad>
    assert m[1].abs().sum() > 0  # <unk>: random, never matched
    assert m[2].tolist() == pytest.approx([0.1, 0.2, 0.3])  # "the": exact
    assert m[3].tolist() == [-1, -1, -1]  # "The": exact wins over the lowercase "the"
    assert m[4].tolist() == [1, 2, 3]  # "cat": exact
    assert m[5].tolist() == [4, 5, 6]  # "paris": lowercase vocab, file has only "Paris"
    assert m[6].tolist() == [7, 8, 9]  # "DOG" -> "dog"
    # 5 of the 7 non-special rows; tokens: (10 + 2 + 3 + 1 + 1) of 25, "oov" (not in the vocab) counts as uncovered
    assert stats == {"vocab_coverage": 5 / 7, "token_coverage": 17 / 25, "found": 5, "total": 7}
    _, no_counts = build_embedding_matrix(ITOS, write_txt(tmp_path), 3, tmp_path / "cache")
    assert no_counts["token_coverage"] is None


def test_unknown_rows_random_but_seeded(tmp_path):
    spec = write_txt(tmp_path)
    a, _ = build_embedding_matrix(ITOS, spec, 3, tmp_path / "c1", seed=7)
    b, _ = build_embedding_matrix(ITOS, spec, 3, tmp_path / "c2", seed=7)
    c, _ = build_embedding_matrix(ITOS, spec, 3, tmp_path / "c3", seed=8)
    assert torch.equal(a, b)
    assert torch.equal(a[2:7], c[2:7]) and torch.equal(a[0], c[0])  # pad and found rows do not depend on the seed
    assert not torch.equal(a[7:], c[7:]) and not torch.equal(a[1], c[1])
    assert not torch.equal(a[7], a[8])


def test_cache_hit_does_not_reread(tmp_path, monkeypatch):
    spec, cache_dir = write_txt(tmp_path), tmp_path / "cache"
    first, s1 = build_embedding_matrix(ITOS, spec, 3, cache_dir, train_counts=COUNTS)
    assert len(list((cache_dir / "vectors").glob("matrix-*.pt"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("read_vectors called despite a cached matrix")

    monkeypatch.setattr(V, "read_vectors", boom)
    again, s2 = build_embedding_matrix(ITOS, spec, 3, cache_dir, train_counts=COUNTS)
    assert torch.equal(first, again) and s1 == s2
    with pytest.raises(AssertionError):  # another vocabulary is another cache entry
        build_embedding_matrix([*ITOS, "extra"], spec, 3, cache_dir)
    monkeypatch.undo()
    Path(spec).write_text(TEXT.replace("1 2 3", "3 2 1 "), encoding="utf-8")  # a changed file is re-read
    changed, _ = build_embedding_matrix(ITOS, spec, 3, cache_dir)
    assert changed[4].tolist() == [3, 2, 1]


def test_dim_mismatch_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"embedding_dim is 4 .* 3-dimensional .* set model.embedding_dim=3"):
        build_embedding_matrix(ITOS, write_txt(tmp_path), 4, tmp_path / "cache")
    with pytest.raises(ConfigError, match=r"set model.embedding_dim=50"):  # a known name fails before downloading
        build_embedding_matrix(ITOS, "glove.6B.50d", 100, tmp_path / "cache")


@pytest.mark.parametrize(("content", "pattern"), [
    (b"a 1 2 3\nb 1 2\nc 1 2 3\n", r"line 2 has 2 values but the file's vectors have 3"),
    (b"5 3\na 1 2 3\nb 1 2 3 4 5 6\nc 1 2\n", r"line 4 has 2 values"),
    (b"a 1 2 3\nb 1 x 3\n", r"line 2 has a value that is not a number"),
    (b"a 1 2 3\ncaf\xe9 1 2 3\n", r"line 2 is not valid UTF-8"),
    (b"\n\n", r"holds no vectors"),
])
def test_malformed_lines_name_the_line(tmp_path, content, pattern):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as exc:
        read_vectors(path)
    assert str(path) in str(exc.value)


def test_corrupt_gzip_is_data_error(tmp_path):
    data = gzip.compress(TEXT.encode() * 200)
    (tmp_path / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_vectors(tmp_path / "cut.txt.gz")


def test_missing_files_and_members(tmp_path):
    with pytest.raises(DataError, match=r"Vectors file .*nope.txt not found; .*glove.6B.50d"):
        resolve_vectors(str(tmp_path / "nope.txt"), tmp_path)
    with pytest.raises(DataError, match="not found"):
        resolve_vectors("glove.6B.75d", tmp_path)  # not a known name, nor a file
    member = write_zip_member(tmp_path)
    archive = member.rsplit(":", 1)[0]
    with pytest.raises(DataError, match=r"holds 2 .txt files .*name one as"):
        resolve_vectors(archive, tmp_path)
    with pytest.raises(DataError, match=r"has no member 'x.txt'.*vec.txt"):
        resolve_vectors(f"{archive}:x.txt", tmp_path)
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip archive"):
        resolve_vectors(str(tmp_path / "broken.zip"), tmp_path)


def make_fake_glove_zip(path: Path, dim: int = 50) -> Path:
    rows = [f"{w} " + " ".join(f"{(i + 1) / 10 + j / 1000:.4f}" for j in range(dim)) for i, w in enumerate(WORDS)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"glove.6B.{dim}d.txt", "\n".join(rows) + "\n")
        zf.writestr("glove.6B.100d.txt", "the " + " ".join(["0"] * 100) + "\n")
    return path


def test_known_name_uses_cached_archive(tmp_path, monkeypatch):
    zpath = make_fake_glove_zip(tmp_path / "vectors" / "glove.6B.zip")
    monkeypatch.setattr(V, "download", lambda *a, **k: pytest.fail("downloaded although the archive is cached"))
    assert resolve_vectors("glove.6B.50d", tmp_path) == Path(f"{zpath}:glove.6B.50d.txt")
    m, stats = build_embedding_matrix(ITOS, "glove.6B.50d", 50, tmp_path)
    assert m.shape == (len(ITOS), 50) and stats["found"] == 5
    assert m[2, 0].item() == pytest.approx(0.1)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def glove_server(tmp_path):
    """A local HTTP server (127.0.0.1) serving a fake glove.6B.zip; yields (url, sha256 checksum)."""
    root = tmp_path / "www"
    zpath = make_fake_glove_zip(root / "glove.6B.zip")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield (f"http://127.0.0.1:{httpd.server_address[1]}/glove.6B.zip",
               "sha256:" + hashlib.sha256(zpath.read_bytes()).hexdigest())
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_known_name_downloads_when_absent(tmp_path, monkeypatch, glove_server):
    url, checksum = glove_server
    monkeypatch.setattr(V, "GLOVE_6B_URL", url)
    monkeypatch.setattr(V, "GLOVE_6B_CHECKSUM", checksum)
    m, stats = build_embedding_matrix(ITOS, "glove.6B.50d", 50, tmp_path / "cache")
    assert (tmp_path / "cache" / "vectors" / "glove.6B.zip").is_file() and stats["found"] == 5
    monkeypatch.setattr(V, "GLOVE_6B_CHECKSUM", "sha256:" + "0" * 64)  # a bad download is refused, nothing kept
    with pytest.raises(DataError, match="Checksum mismatch"):
        resolve_vectors("glove.6B.100d", tmp_path / "other")
    assert not (tmp_path / "other" / "vectors" / "glove.6B.zip").exists()


def test_known_name_downloads_the_pinned_archive_with_its_checksum(tmp_path, monkeypatch):
    """What a known name asks for: the official URL, verified against the pinned sha256, into cache_dir/vectors."""
    calls = []

    def fake_download(url, dest, checksum, **kw):
        calls.append((url, Path(dest), checksum))
        return make_fake_glove_zip(Path(dest))

    monkeypatch.setattr(V, "download", fake_download)
    assert resolve_vectors("glove.6B.50d", tmp_path) == Path(f"{tmp_path / 'vectors/glove.6B.zip'}:glove.6B.50d.txt")
    assert calls == [(V.GLOVE_6B_URL, tmp_path / "vectors/glove.6B.zip", V.GLOVE_6B_CHECKSUM)]
    assert re.fullmatch("sha256:[0-9a-f]{64}", V.GLOVE_6B_CHECKSUM)  # a well-formed pin: download refuses others
    resolve_vectors("glove.6B.100d", tmp_path)  # the archive holds every size: no second download
    assert len(calls) == 1


@pytest.mark.slow
@pytest.mark.skipif(not REAL_GLOVE.is_file(), reason=f"{REAL_GLOVE} not available")
def test_real_glove_6b_50d(tmp_path):
    itos = ["<pad>", "<unk>", "the", "The", "movie", "film", "qwxzqwxzq"]
    m, stats = build_embedding_matrix(itos, str(REAL_GLOVE), 50, tmp_path, train_counts={"the": 3, "qwxzqwxzq": 1})
    assert m.shape == (7, 50)
    assert m[2, 0].item() == pytest.approx(0.418)  # GloVe 6B 50d's first line: "the 0.418 0.24968 ..."
    assert torch.equal(m[2], m[3])  # "The" -> "the" (the 6B vocabulary is lowercased)
    assert stats == {"vocab_coverage": 4 / 5, "token_coverage": 3 / 4, "found": 4, "total": 5}


def test_extend_vocab_keeps_the_words_the_vectors_know_with_their_vectors(tmp_path):
    """model.extend_vocab: a test-only word and a rare training word that the vectors know get rows initialised
    with their vectors; a test-only word the vectors do not know stays <unk>; the test-only word's row never moves
    (no training batch holds it), the rare training word's row trains."""
    import json

    from conftest import REPO, make_imdb_tree
    from hydra import compose, initialize_config_dir

    from seqlab.train import train

    root = tmp_path / "imdb"
    make_imdb_tree(root)
    (root / "aclImdb/test/pos/900_9.txt").write_text("zyzzyva marvellous qwxqwx", encoding="utf-8")
    (root / "aclImdb/train/neg/900_2.txt").write_text("a dismal movie", encoding="utf-8")  # 'dismal' once
    vec = tmp_path / "vecs.txt"
    known = {"zyzzyva": 0.5, "dismal": -0.25, "movie": 0.125}
    vec.write_text("".join(f"{w} " + " ".join([str(v)] * 8) + "\n" for w, v in known.items()), encoding="utf-8")
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"data.root={root}", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'run'}",
            "model.embedding_dim=8", "model.hidden_size=8", f"model.vectors={vec}", "model.extend_vocab=true",
            "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "threads=1", "data.tokenizer_workers=1"])
    metrics = train(cfg)
    assert metrics["vocab_extended_by"] == 2  # zyzzyva (test only) and dismal (below min_freq 2)
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=True)
    vocab = ckpt["seqlab"]["metadata"]["vocab"]
    assert vocab[-2:] == sorted(["zyzzyva", "dismal"], key=vocab.index) and "qwxqwx" not in vocab
    emb = ckpt["state_dict"]["net.encoder.embedding.weight"]
    assert torch.equal(emb[vocab.index("zyzzyva")], torch.full((8,), known["zyzzyva"]))  # exactly the vector
    dismal = emb[vocab.index("dismal")]
    assert not torch.equal(dismal, torch.full((8,), known["dismal"]))  # trained from its vector...
    torch.testing.assert_close(dismal, torch.full((8,), known["dismal"]), atol=0.05, rtol=0)  # ...a few steps
    assert json.loads((tmp_path / "run/metrics.json").read_text())["vocab_extended_by"] == 2
