"""Fixtures: tiny generated datasets in the real on-disk layouts (no downloads, no shared data)."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POS_WORDS = ["great", "wonderful", "superb", "moving", "brilliant", "loved"]
NEG_WORDS = ["awful", "boring", "terrible", "dull", "waste", "hated"]
FILLER = ["the", "movie", "film", "was", "and", "a", "plot", "actors", "it", "this", "story", "i"]


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
