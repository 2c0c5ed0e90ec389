"""A small, strict CoNLL-U reader (words and UPOS/XPOS tags), plus the UD English-EWT release to download.

Only what sequence tagging needs is read: FORM (column 2) and UPOS (column 4) or XPOS (column 5) of each basic
token. Comment lines, multi-word token ranges (``3-4``) and empty nodes (``8.1``) are skipped. Anything malformed
raises :class:`~seqlab.errors.DataError` naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

from seqlab.data.textfiles import read_utf8
from seqlab.errors import ConfigError, DataError

__all__ = ["EWT_SHA256", "EWT_SPLITS", "EWT_URL", "ensure_ewt", "ewt_filename", "read_conllu"]

EWT_URL = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/r2.16/en_ewt-ud-{split}.conllu"
EWT_SHA256 = {
    "train": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
    "dev": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
    "test": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
}
EWT_SPLITS = tuple(EWT_SHA256)

_TAG_COLUMNS = {"upos": 3, "xpos": 4}

Sentence = tuple[list[str], list[str]]


def read_conllu(path: Path | str, tag_field: str = "upos") -> list[Sentence]:
    """Read a CoNLL-U file into a list of ``(words, tags)`` sentences.

    ``tag_field`` is "upos" (column 4) or "xpos" (column 5). Blank lines end sentences (the last sentence may or may
    not be followed by one). Raises :class:`ConfigError` for a bad ``tag_field`` and :class:`DataError` (with file
    and line number) for a missing, non-UTF-8, malformed or empty file.
    """
    if tag_field not in _TAG_COLUMNS:
        raise ConfigError(f"data.tag_field must be 'upos' or 'xpos', got '{tag_field}'.")
    col = _TAG_COLUMNS[tag_field]
    path = Path(path)
    text = read_utf8(path)

    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(
                f"{path}:{lineno}: expected 10 tab-separated columns, found {len(cols)}; fix or remove this line."
            )
        tok_id = cols[0]
        if "-" in tok_id or "." in tok_id:  # multi-word token range or empty node
            continue
        if not (tok_id.isascii() and tok_id.isdigit()):
            raise DataError(f"{path}:{lineno}: token ID '{tok_id}' is not an integer; fix or remove this line.")
        word, tag = cols[1], cols[col]
        if tag in ("", "_"):
            other = "xpos" if tag_field == "upos" else "upos"
            raise DataError(
                f"{path}:{lineno}: token '{word}' has no {tag_field.upper()} tag ('{tag}') in column {col + 1}; "
                f"fill it in, remove the sentence, or set data.tag_field={other}."
            )
        words.append(word)
        tags.append(tag)
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataError(f"{path} contains no sentences; check that it is a non-empty CoNLL-U file.")
    return sentences


def ewt_filename(split: str) -> str:
    """File name of a UD English-EWT split ("train", "dev" or "test")."""
    if split not in EWT_SHA256:
        raise ConfigError(f"UD English-EWT split must be one of {', '.join(EWT_SPLITS)}, got '{split}'.")
    return f"en_ewt-ud-{split}.conllu"


def ensure_ewt(split: str, data_dir: Path | str, *, verify: bool = False) -> Path:
    """Return the path of the EWT ``split`` under ``data_dir``, downloading (and verifying) it if it is missing."""
    from seqlab.data.download import ensure_file

    name = ewt_filename(split)
    dest = Path(data_dir) / name
    url = EWT_URL.format(split=split)
    hint = f"if this machine is offline, download {url} elsewhere and place it at {dest}"
    return ensure_file(dest, url, f"sha256:{EWT_SHA256[split]}", offline_hint=hint, verify=verify)
