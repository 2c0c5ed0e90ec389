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

import multiprocessing as mp
import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from tqdm.auto import tqdm

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


def tokenizer_version(spec: str = "spacy:en") -> str:
    """Part of every cache fingerprint: a new spaCy may split text differently."""
    spec = canonical(spec)
    if spec == "whitespace":
        return spec
    import spacy

    return f"spacy-{spacy.__version__}-blank-{spec.split(':', 1)[1]}"
