"""Fixtures: tiny generated datasets in the real on-disk layouts (no downloads, no shared data)."""

from __future__ import annotations

import logging
import random
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POS_WORDS = ["great", "wonderful", "superb", "moving", "brilliant", "loved"]
NEG_WORDS = ["awful", "boring", "terrible", "dull", "waste", "hated"]
FILLER = ["the", "movie", "film", "was", "and", "a", "plot", "actors", "it", "this", "story", "i"]


@pytest.fixture(autouse=True)
def _root_log_handlers():
    """A script run in process (runpy, Hydra's job logging) leaves handlers on the root logger that write to this
    test's captured streams; once pytest closes them, a later test's log line fails ("I/O operation on closed
    file"). Each test ends with the root logger's handlers and level as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def make_imdb_tree(root: Path, n_per_class: int = 12, seed: int = 0) -> Path:
    """An `aclImdb/` tree with train/test x neg/pos reviews whose sentiment words make them learnable."""
    rng = random.Random(seed)
    tree = root / "aclImdb"
    for split in ("train", "test"):
        for label, words in (("neg", NEG_WORDS), ("pos", POS_WORDS)):
            d = tree / split / label
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                n = rng.randint(5, 30)
                toks = [rng.choice(FILLER) for _ in range(n)] + [rng.choice(words) for _ in range(rng.randint(1, 3))]
                rng.shuffle(toks)
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                text = " ".join(toks).capitalize() + ".<br /><br />" + rng.choice(FILLER).capitalize() + "!"
                (d / f"{i}_{rating}.txt").write_text(text, encoding="utf-8")
    (tree / "README").write_text("tiny generated IMDB fixture\n")
    return tree


def make_imdb_archive(root: Path, name: str = "aclImdb_v1.tar.gz", n_per_class: int = 12) -> Path:
    src = root / "src"
    make_imdb_tree(src, n_per_class)
    archive = root / name
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "aclImdb", arcname="aclImdb")
    return archive


@pytest.fixture
def imdb_tree(tmp_path: Path) -> Path:
    """A data root holding an extracted aclImdb/ tree."""
    root = tmp_path / "imdb"
    make_imdb_tree(root)
    return root


@pytest.fixture
def serve_dir():
    """Start a static HTTP server on 127.0.0.1 (free port) for a directory; returns its base URL."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    servers = []

    def start(directory: Path) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


TAGGED = {"DET": ["the", "a", "this"], "NOUN": ["dog", "cat", "movie", "plot"], "VERB": ["runs", "sees", "likes"],
          "ADJ": ["big", "good", "old"], "PUNCT": [".", "!"]}


def conllu_sentence(words_tags: list[tuple[str, str]], sent_id: str) -> str:
    lines = [f"# sent_id = {sent_id}", f"# text = {' '.join(w for w, _ in words_tags)}"]
    for i, (w, t) in enumerate(words_tags, 1):
        lines.append(f"{i}\t{w}\t{w.lower()}\t{t}\t{t[:2]}\t_\t0\tdep\t_\t_")
    return "\n".join(lines) + "\n\n"


def make_pos_dir(root: Path, n: dict[str, int] | None = None, seed: int = 0) -> Path:
    """EWT-named CoNLL-U files of learnable DET (ADJ) NOUN VERB DET NOUN PUNCT sentences, with a multi-word
    token line and an empty node in the first training sentence."""
    rng = random.Random(seed)
    n = n or {"train": 60, "dev": 12, "test": 12}
    root.mkdir(parents=True, exist_ok=True)
    for split, count in n.items():
        text = []
        for k in range(count):
            pattern = ["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
            if rng.random() < 0.5:
                pattern.remove("ADJ")
            s = conllu_sentence([(rng.choice(TAGGED[t]).capitalize() if i == 0 else rng.choice(TAGGED[t]), t)
                                 for i, t in enumerate(pattern)], f"{split}-{k}")
            if split == "train" and k == 0:
                lines = s.split("\n")
                lines.insert(2, "1-2\tthe_dog\t_\t_\t_\t_\t_\t_\t_\t_")
                lines.insert(5, "2.1\tghost\tghost\tNOUN\tNN\t_\t_\t_\t_\t_")
                s = "\n".join(lines)
            text.append(s)
        (root / f"en_ewt-ud-{split}.conllu").write_text("".join(text), encoding="utf-8")
    return root


def add_unseen_test_words(root: Path) -> None:
    """Append a test sentence of words absent from make_pos_dir's training data (for OOV accuracy)."""
    with (root / "en_ewt-ud-test.conllu").open("a", encoding="utf-8") as f:
        f.write(conllu_sentence([("Zorblax", "PROPN"), ("glimmed", "VERB"), (".", "PUNCT")], "unseen"))


def make_metadata(task: str = "classification", vocab_size: int = 30, labels=("neg", "pos"),
                  num_chars: int | None = None):
    """A Metadata for model tests: a vocabulary of `vocab_size` made-up words (ids 0/1 <pad>/<unk>)."""
    from seqlab.metadata import Metadata

    vocab = ["<pad>", "<unk>", *(f"w{i}" for i in range(2, vocab_size))]
    chars = None if num_chars is None else ["<pad>", "<unk>", *(chr(97 + i) for i in range(num_chars - 2))]
    return Metadata(task=task, vocab=vocab, labels=list(labels), chars=chars)


def raw_imdb_test(root: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label in ("neg", "pos"):
        for f in sorted((root / "aclImdb/test" / label).glob("*.txt")):
            texts.append(f.read_text(encoding="utf-8"))
            labels.append(label)
    return texts, labels


def raw_pos_test(root: Path) -> tuple[list[str], list[list[str]]]:
    sents, tags = [], []
    for block in (root / "en_ewt-ud-test.conllu").read_text(encoding="utf-8").strip().split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines() if not line.startswith("#")]
        rows = [r for r in rows if r[0].isdigit()]  # no multi-word token ranges (1-2) or empty nodes (2.1)
        sents.append(" ".join(r[1] for r in rows))
        tags.append([r[3] for r in rows])
    return sents, tags


@pytest.fixture(autouse=True)
def _torch_backend_flags_unfrozen():
    """Importing torch.testing._internal.common_utils (PyTorch's own test helpers, used by the seqlab.nn parity
    tests) freezes torch.backends flags for the whole process; Lightning's `deterministic=True` sets them."""
    import torch

    torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
    yield
