"""Tokenizers (`data.tokenizer`), run in parallel with progress for whole corpora.

- `spacy` / `spacy:<lang>`: spaCy's rule-based tokenizer of a blank pipeline (`spacy.blank(lang)`: no model
  download) for any language the installed spaCy has; `spacy` is `spacy:en`. HTML line breaks (`<br />`, frequent
  in IMDB reviews) become spaces first.
- `whitespace`: split on runs of whitespace, for text that is already tokenized.

The spec is part of every corpus cache fingerprint (with spaCy's version) and of the checkpoint's metadata, so
prediction tokenizes as training did. `nlp.pipe(n_process=2)` ships whole Docs back between processes and was slower
than one process here; a pool of workers that each run the bare tokenizer and return plain token lists reached ~1.5x
one process on 2 cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from seqlab.errors import ConfigError

_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def canonical(spec: str, key: str = "data.tokenizer") -> str:
    """`spacy` -> `spacy:en`; other specs as given, after checking their form. Errors name `key`, the setting the
    spec came from (`tokenizer` for scripts/predict.py)."""
    if spec == "spacy":
        return "spacy:en"
    if spec == "whitespace" or (isinstance(spec, str) and spec.startswith("spacy:") and len(spec) > 6):
        return spec
    raise ConfigError(f"{key} must be spacy, spacy:<language code> (e.g. spacy:de) or whitespace; got {spec!r}.")


class _Unavailable(Exception):
    """A well-formed spec this installation cannot tokenize with (get_tokenizer names the key)."""


def get_tokenizer(spec: str = "spacy:en", key: str = "data.tokenizer") -> Callable[[str], list[str]]:
    """A function text -> tokens for `spec` (built once per process); errors name `key`, as `canonical`'s do."""
    spec = canonical(spec, key)
    try:
        return _build_tokenizer(spec)
    except _Unavailable as e:
        raise ConfigError(f"{key}={spec}: {e}") from None


@lru_cache(maxsize=8)
def _build_tokenizer(spec: str) -> Callable[[str], list[str]]:
    if spec == "whitespace":
        return str.split
    lang = spec.split(":", 1)[1]
    import importlib.util

    import spacy

    if not lang.isidentifier() or importlib.util.find_spec(f"spacy.lang.{lang}") is None:
        raise _Unavailable(f"spaCy {spacy.__version__} has no language {lang!r}; use a code from "
                           "https://spacy.io/usage/models#languages (e.g. de, fr, es), or whitespace.")
    try:
        nlp = spacy.blank(lang)
    except ImportError as e:  # e.g. ja, zh, th, ko, vi need a word segmenter package
        raise _Unavailable(f"spaCy's blank {lang!r} pipeline needs a package that is not installed ({e}); install "
                           "it or choose another tokenizer.") from None
    tokenizer = nlp.tokenizer

    def tokenize_text(text: str) -> list[str]:
        return [t.text for t in tokenizer(_HTML_BREAK.sub(" ", text)) if not t.is_space]

    return tokenize_text


def tokenize(text: str, lowercase: bool = True, spec: str = "spacy:en") -> list[str]:
    """Tokens of one text, optionally lowercased."""
    toks = get_tokenizer(spec)(text)
    return [t.lower() for t in toks] if lowercase else toks


def _tokenize_chunk(args: tuple[list[str], bool, str]) -> list[list[str]]:
    texts, lowercase, spec = args
    return [tokenize(t, lowercase, spec) for t in texts]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def tokenize_many(texts: Sequence[str], lowercase: bool = True, workers: int | None = None,
                  desc: str = "tokenizing", chunk_size: int = 250, spec: str = "spacy:en") -> list[list[str]]:
    """Tokenize `texts` in order with a pool of `workers` processes (default: all cores) and a progress bar."""
    from tqdm.auto import tqdm  # here, not at import: the prediction path does not need it

    get_tokenizer(spec)  # a bad spec fails here, once, not in every worker
    workers = default_workers() if workers is None else workers
    if spec == "whitespace":
        workers = 1  # str.split is faster than shipping texts to other processes
    chunks = [(list(texts[i:i + chunk_size]), lowercase, spec) for i in range(0, len(texts), chunk_size)]
    out: list[list[str]] = []
    with tqdm(total=len(texts), desc=desc, unit="doc", dynamic_ncols=True) as bar:
        if workers <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                out.extend(_tokenize_chunk(chunk))
                bar.update(len(chunk[0]))
        else:
            # fork is cheap and the children touch only spaCy; spawn elsewhere (macOS, Windows).
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with mp.get_context(method).Pool(workers) as pool:
                for toks in pool.imap(_tokenize_chunk, chunks):
                    out.extend(toks)
                    bar.update(len(toks))
    return out


class TokenizerProcess:
    """spaCy in a child process, for prediction: it imports spaCy while the parent imports torch and loads the
    model, then tokenizes the next chunk of input while the parent runs the model on the previous one.

    Start it before importing torch (the child is then a fork of a small process, and blocks spaCy's optional torch
    import: thinc imports torch when it can, which doubled spaCy's import time here). `imap(spec, chunks)` yields each
    chunk's token lists in order, keeping one chunk in flight. A spec the child cannot build is the same ConfigError
    as in process. Without fork (macOS, Windows) `available` is False and callers tokenize in process.
    """

    available = "fork" in mp.get_all_start_methods()

    def __init__(self):
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="seqlab-tokenizer")
        self._proc.start()
        child.close()

    def imap(self, spec: str, chunks: Iterable[list[str]], key: str = "data.tokenizer") -> Iterator[list[list[str]]]:
        spec = canonical(spec, key)
        pending = 0
        for chunk in chunks:
            self._conn.send((spec, key, chunk))
            pending += 1
            if pending == 2:  # the child works on this chunk while the caller uses the previous one
                yield self._receive()
                pending -= 1
        if pending:
            yield self._receive()

    def _receive(self) -> list[list[str]]:
        try:
            result = self._conn.recv()
        except EOFError:
            raise RuntimeError("the tokenizer process ended unexpectedly") from None
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
        self._conn.close()


def _serve(conn) -> None:
    """The child of TokenizerProcess: import spaCy (without torch), then tokenize chunks until told to stop.

    A reader thread takes each request off the pipe as soon as it comes: the parent sends the next chunk while this
    process sends back the last one's tokens, and with both pipes full neither side would ever read (a deadlock,
    once chunks outgrow the pipe's buffer)."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # thinc's optional torch support: an ImportError it handles
    with contextlib.suppress(Exception):  # a broken install is reported when a chunk asks for spaCy
        import spacy  # noqa: F401  (the expensive part, done while the parent imports torch)
    requests: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        message = None
        with contextlib.suppress(EOFError, OSError):  # EOF: the parent has gone
            while (message := conn.recv()) is not None:
                requests.put(message)
        requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while (message := requests.get()) is not None:
            spec, key, texts = message
            try:
                tokenize_text = get_tokenizer(spec, key)
                result: Any = [tokenize_text(t) for t in texts]
            except Exception as e:  # noqa: BLE001  (sent to the parent, raised there)
                result = e
            conn.send(result)
    except (KeyboardInterrupt, BrokenPipeError, OSError):  # Ctrl-C reaches the whole process group; the parent went
        pass
    conn.close()


def tokenizer_version(spec: str = "spacy:en") -> str:
    """Part of every cache fingerprint: a new spaCy may split text differently."""
    spec = canonical(spec)
    if spec == "whitespace":
        return spec
    import spacy

    return f"spacy-{spacy.__version__}-blank-{spec.split(':', 1)[1]}"
