"""A strict reader for CoNLL column files (named-entity data such as CoNLL-2003 or the Broad Twitter Corpus).

One token per line, its fields in columns; a blank line (empty or only spaces/tabs) ends a sentence. Rules, chosen
so that no real token is ever dropped silently:

* **Separator** (``sep``): ``"tab"`` splits on every single tab (so a token may contain spaces, and an empty
  field is a field), ``"space"`` splits on runs of spaces and tabs, ``"auto"`` (the default) is ``"tab"`` when the
  file's first token line contains a tab and ``"space"`` otherwise. Decided once per file, not per line, so a tab
  file's line that lost its tab is an error and a ``# comment`` of a tab file can never pass for a token line. In
  tab mode, spaces around a field are stripped (``"MH17 \\tO"`` is the token ``MH17``). Only ASCII spaces and tabs
  separate or pad: other Unicode white space (no-break space, ideographic space) is part of the token.
* **Column count**: every token line must have as many columns as the file's first token line; otherwise a
  :class:`~seqlab.errors.DataError` names the file, the line and both counts.
* **Columns**: ``token_column`` and ``tag_column`` are 0-based; negative values count from the end (-1 = last).
* **Document markers**: a line whose first field is ``-DOCSTART-`` is skipped and ends the current sentence.
* **Comments**: a line is a comment, and skipped, when it starts with ``"# "`` (hash, space), comes before the
  first token of a sentence, *and* does not have the file's column count. So ``# sent_id = 3`` is a comment, while
  ``#\\tO`` or ``# O`` (the hashtag token ``#`` with its tag, common in tweets) is a token. A ``#`` line inside a
  sentence is always a token line (and an error if its column count is wrong).
* **Empty tokens** (``"\\tO"``, which the Broad Twitter Corpus has a few of) are kept as ``""``, so token counts
  match the corpus's own; an empty *tag* is an error.
* **Encoding**: UTF-8 (a leading BOM is dropped; CRLF line ends are accepted); invalid bytes raise a
  :class:`DataError` naming the line and byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from seqlab.data.textfiles import read_utf8
from seqlab.errors import ConfigError, DataError

__all__ = ["SEPARATORS", "read_columns"]

SEPARATORS = ("auto", "tab", "space")
_SPACES = re.compile(r"[ \t]+")


def _split(line: str, sep: str) -> list[str]:
    """The fields of a (non-blank) line; ``sep`` is "tab" or "space"."""
    if sep == "tab":
        return [field.strip(" ") for field in line.split("\t")]
    return _SPACES.split(line.strip(" \t"))


def _is_blank(line: str) -> bool:
    return not line.strip(" \t")


def _resolve(index: int, n: int, key: str, path: Path, lineno: int) -> int:
    """Column ``index`` (negative counts from the end) as a 0-based index into ``n`` columns."""
    if not -n <= index < n:
        raise DataError(f"{path}:{lineno}: {key}={index} is out of range: the file has {n} columns "
                        f"(0 to {n - 1}, or -1 to -{n} from the end); set {key} to one of those.")
    return index % n


def read_columns(path: Path | str, *, sep: str = "auto", token_column: int = 0, tag_column: int = -1,
                 with_lines: bool = False) -> list[tuple]:
    """Read a CoNLL column file into sentences (rules in the module docstring).

    Returns a list of ``(tokens, tags)`` pairs of equal-length lists of strings, or, with ``with_lines=True``,
    ``(tokens, tags, lines)`` triples where ``lines[i]`` is the 1-based line number of token ``i`` (for messages
    that name ``file:line``, e.g. a tag that does not fit the declared scheme). Raises :class:`ConfigError` for a
    bad ``sep`` or for token and tag columns that are the same column, and :class:`DataError` (file and line) for a
    missing, non-UTF-8 or empty file, a wrong column count, a column index out of range or an empty tag.
    """
    if sep not in SEPARATORS:
        raise ConfigError(f"data.sep must be one of {', '.join(SEPARATORS)}, got {sep!r}.")
    path = Path(path)
    lines = [line.rstrip("\r") for line in read_utf8(path).split("\n")]  # not splitlines(): U+2028 is text

    # The separator (for "auto") and the column count come from the file's first line that is surely a token line
    # (not blank, not a comment candidate, not a document marker); comments are told apart from '#' tokens by them.
    first = next((i for i, line in enumerate(lines)
                  if not (_is_blank(line) or line.startswith("#") or _split(line, "space")[0] == "-DOCSTART-")), None)
    if first is None:
        raise DataError(f"{path} contains no token lines; check that it is a non-empty CoNLL column file.")
    line, ref_line = lines[first], first + 1
    if sep == "auto":
        sep = "tab" if "\t" in line else "space"
    ncols = len(_split(line, sep))
    tok = _resolve(token_column, ncols, "data.token_column", path, ref_line)
    tag = _resolve(tag_column, ncols, "data.tag_column", path, ref_line)
    if tok == tag:
        raise ConfigError(f"data.token_column={token_column} and data.tag_column={tag_column} are the same "
                          f"column of {path} ({ncols} columns); point them at different columns.")

    sentences: list[tuple] = []
    tokens: list[str] = []
    tags: list[str] = []
    numbers: list[int] = []

    def end_sentence() -> None:
        nonlocal tokens, tags, numbers
        if tokens:
            sentences.append((tokens, tags, numbers) if with_lines else (tokens, tags))
            tokens, tags, numbers = [], [], []

    for lineno, line in enumerate(lines, start=1):
        if _is_blank(line):
            end_sentence()
            continue
        fields = _split(line, sep)
        if fields[0] == "-DOCSTART-":
            end_sentence()
            continue
        if len(fields) != ncols:
            if line.startswith("# ") and not tokens:
                continue  # a comment before a sentence
            hint = " (a '# ...' comment line is allowed only before a sentence)" if line.startswith("#") else ""
            sep_hint = "; if tokens contain spaces, separate columns with tabs" if sep != "tab" else ""
            raise DataError(f"{path}:{lineno}: expected {ncols} columns (as on line {ref_line}, the first "
                            f"token line), found "
                            f"{len(fields)}{hint}; fix this line{sep_hint}.")
        if not fields[tag]:
            raise DataError(f"{path}:{lineno}: empty tag in column {tag} (0-based); give every token a tag.")
        tokens.append(fields[tok])
        tags.append(fields[tag])
        numbers.append(lineno)
    end_sentence()
    return sentences
