"""Reading labelled texts from the user's files: CSV, TSV, JSON Lines (and JSON arrays), optionally gzipped.

Strict by design: every problem is a DataError naming the file, the line (or JSON record) and what to do. Python's
`csv` and `json` modules do the parsing (the csv field size limit is raised: reviews can be long).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "jsonl", "json")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}
Field = str | int

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def read_utf8(path: Path) -> str:
    """The file's text (gunzipped if it ends in .gz); a byte that is not UTF-8 is a DataError naming line and byte.
    A leading byte-order mark is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} not found; check the file name in the data config.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory; give a file.") from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable gzip file ({e}); re-download or re-compress it.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte {data[start:start + 1]!r} at byte {column} of the "
                        "line); re-save the file as UTF-8.") from None


def file_format(path: Path, given: str | None) -> str:
    """`given`, or the format the file's extension names (a trailing .gz is looked through)."""
    if given is not None:
        if given not in FORMATS:
            raise ConfigError(f"data.format must be one of {', '.join(FORMATS)} or null (from the extension); "
                              f"got {given!r}.")
        return given
    suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    if suffix.lower() not in EXTENSIONS:
        raise ConfigError(f"Cannot tell the format of {path} from its extension {suffix or '(none)'}; name it "
                          f"{', '.join(EXTENSIONS)} or set data.format to one of {', '.join(FORMATS)}.")
    return EXTENSIONS[suffix.lower()]


@dataclass
class Row:
    where: str  # "file:line" or "file record N", for error messages
    texts: list[str]
    label: Any


def _records(path: Path, fmt: str, header: bool, quotechar: str | None) -> tuple[list[str] | None, Iterator]:
    """(column names or None, iterator of (where, record)) where a record is a list (csv/tsv) or a dict (json)."""
    text = read_utf8(path)
    if fmt in ("csv", "tsv"):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if fmt == "csv" else "\t",
                            quotechar=quotechar, quoting=csv.QUOTE_MINIMAL if quotechar else csv.QUOTE_NONE)

        def rows():
            start = 1  # a quoted field may span lines: name the line where the record starts
            try:
                for rec in reader:
                    where, start = f"{path}:{start}", reader.line_num + 1
                    if rec:
                        yield where, rec
            except csv.Error as e:
                raise DataError(f"{path}:{reader.line_num}: malformed {fmt.upper()} ({e}); check its quoting or "
                                "set data.quotechar=null for files without quoting.") from None

        it = rows()
        if not header:
            return None, it
        first = next(it, None)
        if first is None:
            raise DataError(f"{path} is empty; it needs a header line and at least one row (or data.header=false).")
        return [c.strip() for c in first[1]], it
    if fmt == "jsonl":
        def lines():
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{n}: not valid JSON ({e.msg} at character {e.colno}); each line must "
                                    "be one JSON object.") from None
                if not isinstance(rec, dict):
                    raise DataError(f"{path}:{n}: a JSON {type(rec).__name__}, not an object; each line must be "
                                    'one JSON object such as {"text": ..., "label": ...}.')
                yield f"{path}:{n}", rec
        return None, lines()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); a .json file must hold one array of objects "
                        "(or use JSON Lines, .jsonl).") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path} must hold one JSON array of objects (or be JSON Lines, .jsonl).")
    return None, ((f"{path} record {i}", r) for i, r in enumerate(data, 1))


def _resolve(path: Path, field: Field, columns: list[str] | None, role: str, key: str) -> Field:
    """A column index (csv/tsv) or key (json) for `field`."""
    if isinstance(field, bool) or not isinstance(field, (str, int)):
        raise ConfigError(f"data.{key} must be a column name, a 0-based column index or a list of them; got "
                          f"{field!r}.")
    if columns is None:
        return field
    if isinstance(field, int):
        if not 0 <= field < len(columns):
            raise DataError(f"{path}: {role} column index {field} is out of range; the file has {len(columns)} "
                            f"columns ({', '.join(columns)}); set data.{key}.")
        return field
    if field not in columns:
        raise DataError(f"{path}: no column {field!r} for the {role}; the header has {', '.join(map(repr, columns))}; "
                        f"set data.{key}.")
    return columns.index(field)


def read_labelled_texts(path: Path, fmt: str, text_fields: Sequence[Field], label_field: Field, header: bool = True,
                        quotechar: str | None = '"', keys: tuple[str, str] = ("text_field", "label_field")
                        ) -> Iterator[Row]:
    """Rows of (texts of `text_fields`, raw label) in file order. CSV/TSV fields are names (with a header) or
    0-based indices; JSON fields are keys. Raises DataError for a missing column or key, a short row, bad JSON."""
    columns, records = _records(path, fmt, header if fmt in ("csv", "tsv") else False, quotechar)
    json_like = fmt in ("jsonl", "json")
    if columns is None and not json_like and not all(isinstance(f, int) for f in (*text_fields, label_field)):
        raise ConfigError(f"{path} is read without a header (data.header=false): give data.{keys[0]} and "
                          f"data.{keys[1]} as 0-based column indices.")
    text_idx = [_resolve(path, f, columns, "text", keys[0]) for f in text_fields]
    label_idx = _resolve(path, label_field, columns, "label", keys[1])
    width = len(columns) if columns is not None else None
    need = 1 + max(i for i in (*text_idx, label_idx) if isinstance(i, int)) if not json_like else 0
    for where, rec in records:
        if json_like:
            missing = [str(k) for k in (*text_idx, label_idx) if k not in rec]
            if missing:
                raise DataError(f"{where}: no key {', '.join(map(repr, missing))}; the record has "
                                f"{', '.join(map(repr, rec)) or 'no keys'}; set data.{keys[0]} / data.{keys[1]}.")
            texts = ["" if rec[k] is None else str(rec[k]) for k in text_idx]
            label = rec[label_idx]
        else:
            if len(rec) < need or (width is not None and len(rec) != width):
                expected = width if width is not None else f"at least {need}"
                raise DataError(f"{where}: {len(rec)} fields, expected {expected}; quote fields that contain the "
                                f"delimiter, or fix the line.")
            texts = [rec[i] for i in text_idx]
            label = rec[label_idx]
        yield Row(where, texts, label)


def label_name(value: Any, where: str) -> str:
    """A label's name: strings stripped, integers and booleans as JSON writes them; no label is a DataError."""
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value
    elif isinstance(value, (bool, int)) or (isinstance(value, float) and value.is_integer()):
        return json.dumps(int(value) if isinstance(value, float) else value)
    elif value is not None:
        raise DataError(f"{where}: label {value!r} is not a string or an integer; use one label value per row.")
    raise DataError(f"{where}: the label is empty; give every row a label (or remove the row).")


def sort_labels(names: set[str]) -> list[str]:
    """A stable order: numerically when every label is an integer, else alphabetically."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)
