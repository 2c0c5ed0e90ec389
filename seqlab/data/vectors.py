"""Pretrained word vectors (GloVe / word2vec text format) -> an embedding matrix aligned with a vocabulary.

`build_embedding_matrix(vocab.itos, "glove.6B.100d", 100, cache_dir)` returns a (V, 100) float32 matrix whose row i
is the pretrained vector of `itos[i]`, ready for `nn.Embedding.from_pretrained` or `embedding.weight.copy_`.

A vectors *spec* is a known name (`glove.6B.{50,100,200,300}d`, read from `cache_dir/vectors/glove.6B.zip`, which is
downloaded and checksum-verified when absent) or a path: a text file (`.txt`, `.vec`, ...), a gzipped one (`.gz`),
or a zip member written `archive.zip:member.txt` (plain `archive.zip` when it holds exactly one `.txt`).

File format: one vector per line, `word v1 ... vd`, separated by single spaces; an optional word2vec header line
`<count> <dim>`. The first vector line fixes d. A line with more than d+1 fields is a word containing spaces (as in
glove.840B): its last d fields are the vector and the rest, joined by spaces, the word.
"""

from __future__ import annotations

import array
import gzip
import hashlib
import io
import logging
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from seqlab.arguments import check_positive_int
from seqlab.data import cache
from seqlab.data.download import download
from seqlab.data.vocab import PAD, UNK
from seqlab.errors import ConfigError, DataError

__all__ = ["KNOWN_VECTORS", "build_embedding_matrix", "read_vectors", "resolve_vectors", "words_with_vectors"]

log = logging.getLogger(__name__)

GLOVE_6B_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
# sha256 of the official glove.6B.zip (862,182,613 bytes) as listed in CHECKSUMS_GLOVE of pytorch/text,
# torchtext/experimental/vectors.py; the same digest is pinned by Keras `get_file` examples and other projects.
GLOVE_6B_CHECKSUM = "sha256:617afb2fe6cbd085c235baf7a465b96f4112bd7f7ccb2b2cbd649fed9cbcf2fb"
KNOWN_VECTORS = {f"glove.6B.{d}d": (f"glove.6B.{d}d.txt", d) for d in (50, 100, 200, 300)}
MATRIX_VERSION = 1  # bump when _match changes the matrix it caches: cached matrices of other versions are not reused
_HELP = "give a path to a GloVe/word2vec text file (.txt, .gz or .zip:member) or one of " + ", ".join(KNOWN_VECTORS)


def _split_zip(spec: str | Path) -> tuple[Path, str | None]:
    """'a.zip:m.txt' -> (a.zip, 'm.txt'); 'a.zip' -> (a.zip, '') (member still to choose); else (path, None)."""
    s = str(spec)
    i = s.lower().rfind(".zip:")
    if i >= 0:
        return Path(s[:i + 4]).expanduser(), s[i + 5:]
    path = Path(s).expanduser()
    return path, ("" if path.suffix.lower() == ".zip" else None)


def _locate(spec: str | Path) -> Path:
    """Check that a path spec exists (and its zip member, choosing the only `.txt` when none is named)."""
    path, member = _split_zip(spec)
    if not path.is_file():
        raise DataError(f"Vectors file {path} not found; {_HELP}.")
    if member is None:
        return path
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it and download it again.") from exc
    txt = [n for n in names if n.lower().endswith(".txt")]
    if member == "":
        if len(txt) != 1:
            raise DataError(f"{path} holds {len(txt)} .txt files ({', '.join(txt[:6])}); name one as {path}:<member>.")
        member = txt[0]
    elif member not in names:
        raise DataError(f"{path} has no member {member!r}; write it as {path}:<member> with one of: {', '.join(txt)}.")
    return Path(f"{path}:{member}")


def resolve_vectors(spec: str, cache_dir: Path) -> Path:
    """The local file for a vectors spec, downloading glove.6B.zip into `cache_dir/vectors` for a known name.

    Returns a path, or `archive.zip:member` (as a Path) for a zip member, accepted by `read_vectors`.
    """
    spec = str(spec).strip()
    if spec in KNOWN_VECTORS:
        archive = Path(cache_dir) / "vectors" / "glove.6B.zip"
        if not archive.is_file():
            hint = f"if this machine is offline, download {GLOVE_6B_URL} elsewhere and place it at {archive}"
            download(GLOVE_6B_URL, archive, GLOVE_6B_CHECKSUM, offline_hint=hint)
        return _locate(f"{archive}:{KNOWN_VECTORS[spec][0]}")
    return _locate(spec)


@contextmanager
def _open_text(spec: Path) -> Iterator[io.TextIOBase]:
    """Stream a located spec as text. Undecodable bytes become surrogates so the caller can name the bad line."""
    path, member = _split_zip(spec)
    kw = {"encoding": "utf-8-sig", "errors": "surrogateescape"}  # -sig: a leading BOM is not part of the 1st word
    if member is not None:
        with zipfile.ZipFile(path) as zf, zf.open(member) as raw:
            yield io.TextIOWrapper(raw, **kw)
    elif path.suffix.lower() == ".gz":
        with gzip.open(path, "rt", **kw) as f:
            yield f
    else:
        with open(path, **kw) as f:
            yield f


def read_vectors(path_spec: str | Path, wanted: set[str] | None = None) -> tuple[list[str], torch.Tensor]:
    """Read a vectors text file: (words, vectors) with vectors (n, d) float32, row i the vector of words[i].

    With `wanted`, only rows whose word or its lowercase is in `wanted` are kept (and only their numbers parsed), so
    reading 400k GloVe lines for a 25k vocabulary costs little memory and time. Words keep file order (GloVe and
    word2vec files are sorted by frequency) and may repeat if the file repeats them. Raises DataError naming the
    file and line for a non-UTF-8 line, a line with fewer than d values, a value that is not a number, or a
    truncated/corrupt archive.
    """
    spec = _locate(path_spec)
    words: list[str] = []
    values = array.array("f")  # flat, 4 bytes a value: a Python float list of 400k x 300 would need ~10 GB
    dim: int | None = None
    lineno = 0
    try:
        with _open_text(spec) as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.isascii():
                    try:
                        raw.encode("utf-8")
                    except UnicodeEncodeError:
                        raise DataError(f"Vectors file {spec} line {lineno} is not valid UTF-8; re-encode the "
                                        "file as UTF-8 (e.g. with iconv) or delete that line.") from None
                line = raw.rstrip()
                if not line:
                    continue
                n = line.count(" ")  # = number of values when the word has no space
                if dim is None:
                    head = line.split(" ")
                    if lineno == 1 and len(head) == 2 and head[0].isdigit() and head[1].isdigit():
                        dim = int(head[1])  # word2vec header "<count> <dim>"
                        continue
                    dim = n
                    if dim < 1:
                        raise DataError(f"Vectors file {spec} line {lineno} has no values; give a GloVe/word2vec "
                                        "text file with lines 'word v1 ... vd'.")
                if n == dim:
                    cut = line.find(" ")
                elif n > dim:  # a word with spaces: the last `dim` fields are the vector
                    cut = len(line.rsplit(" ", dim)[0])
                else:
                    raise DataError(f"Vectors file {spec} line {lineno} has {n} values but the file's vectors have "
                                    f"{dim}; fix or delete that line.")
                word = line[:cut]
                if wanted is not None and word not in wanted and word.lower() not in wanted:
                    continue  # the common case: skip without splitting the numbers
                try:
                    values.extend(map(float, line[cut + 1:].split(" ")))
                except ValueError:
                    raise DataError(f"Vectors file {spec} line {lineno} has a value that is not a number; fix or "
                                    "delete that line.") from None
                words.append(word)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"Could not read vectors file {spec} after line {lineno} ({exc}); it is truncated or "
                        "corrupt, replace it.") from exc
    if dim is None:
        raise DataError(f"Vectors file {spec} holds no vectors; {_HELP}.")
    if not words:
        return words, torch.zeros(0, dim)
    return words, torch.frombuffer(values, dtype=torch.float32).view(len(words), dim)


def _itos_hash(itos: list[str]) -> str:
    return hashlib.sha256("\0".join(itos).encode("utf-8", "surrogatepass")).hexdigest()


def _match(itos: list[str], spec: Path, dim: int, seed: int) -> dict:
    """Read the file and build the matrix; returns the cached record {"matrix", "found", "std", "stats"}.

    Matching rule for a vocabulary word w, first hit wins: (1) w itself; (2) w.lower() (vocab "The" -> file
    "the"); (3) the first word in file order whose lowercase equals w.lower() (lowercased vocab "paris" -> file
    "Paris" when the file has no "paris"; file order is frequency order). `<pad>` and `<unk>` are never matched.
    """
    wanted = set(itos) | {w.lower() for w in itos}
    words, vecs = read_vectors(spec, wanted)
    if vecs.shape[1] != dim:
        raise ConfigError(f"model.embedding_dim is {dim} but {spec} has {vecs.shape[1]}-dimensional vectors; "
                          f"set model.embedding_dim={vecs.shape[1]}.")
    exact: dict[str, int] = {}
    folded: dict[str, int] = {}
    for i, w in enumerate(words):
        exact.setdefault(w, i)
        folded.setdefault(w.lower(), i)
    rows, src = [], []
    for r, w in enumerate(itos):
        if w in (PAD, UNK):
            continue
        low = w.lower()
        i = exact.get(w, exact.get(low, folded.get(low)))
        if i is not None:
            rows.append(r)
            src.append(i)
    rows_t, src_t = torch.tensor(rows, dtype=torch.long), torch.tensor(src, dtype=torch.long)
    hits = vecs[src_t]
    std = float(hits.std()) if hits.numel() > 1 else 1.0  # nothing found: nn.Embedding's N(0, 1)
    g = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(itos), dim, generator=g) * std  # every row drawn, so a row's draw depends on seed only
    matrix[rows_t] = hits
    found = torch.zeros(len(itos), dtype=torch.bool)
    found[rows_t] = True
    if itos:
        matrix[0] = 0.0  # the pad row: padded steps contribute nothing
    total = sum(1 for w in itos if w not in (PAD, UNK))
    stats = {"found": len(rows), "total": total, "vocab_coverage": len(rows) / total if total else 0.0}
    return {"matrix": matrix.contiguous(), "found": found, "std": std, "stats": stats}


def words_with_vectors(words: list[str], spec: str, cache_dir: Path) -> set[str]:
    """The `words` that the vectors file has a vector for, by `_match`'s rule (exact, then case-insensitive)."""
    resolved = resolve_vectors(str(spec).strip(), Path(cache_dir))
    found, _ = read_vectors(resolved, set(words) | {w.lower() for w in words})
    known = set(found) | {w.lower() for w in found}
    return {w for w in words if w in known or w.lower() in known}


def build_embedding_matrix(itos: list[str], spec: str, dim: int, cache_dir: Path, *, seed: int = 0,
                           train_counts: dict[str, int] | None = None) -> tuple[torch.Tensor, dict]:
    """Embedding matrix (len(itos), dim) float32 for a vocabulary, from pretrained vectors, and coverage stats.

    Row i is the vector of itos[i] (matching rule in `_match`: exact, then case-insensitive); rows with no vector
    are drawn from N(0, std^2), std that of the found vectors, with a generator seeded by `seed`; row 0 (`<pad>`) is
    zero. The matrix is cached in `cache_dir/vectors` under a fingerprint of (vectors file signature, itos, dim,
    seed), so a second call does not read the vectors file.

    Stats: "found"/"total" vocabulary rows matched / rows other than `<pad>`, `<unk>`; "vocab_coverage" = found/total;
    "token_coverage" = share of training tokens (all keys of `train_counts`, so out-of-vocabulary tokens count as
    uncovered) whose vocabulary row was found, or None without `train_counts`.
    """
    check_positive_int("model.embedding_dim", dim)
    spec = str(spec).strip()
    if spec in KNOWN_VECTORS and KNOWN_VECTORS[spec][1] != dim:  # fail before an 822 MB download
        d = KNOWN_VECTORS[spec][1]
        raise ConfigError(f"model.embedding_dim is {dim} but {spec} has {d}-dimensional vectors; "
                          f"set model.embedding_dim={d}.")
    itos = list(itos)
    cache_dir = Path(cache_dir)
    resolved = resolve_vectors(spec, cache_dir)
    archive, member = _split_zip(resolved)
    key = cache.fingerprint({"kind": "vectors-matrix", "version": MATRIX_VERSION, "file": cache.file_signature(archive),
                             "member": member, "itos": _itos_hash(itos), "dim": dim, "seed": seed})
    path = cache_dir / "vectors" / f"matrix-{key}.pt"
    saved = cache.load(path)
    if saved is None or tuple(saved["matrix"].shape) != (len(itos), dim):
        t0 = time.perf_counter()
        saved = _match(itos, resolved, dim, seed)
        cache.atomic_save(saved, path)
        log.info("matched %s against %d vocabulary rows in %.1fs", resolved, len(itos), time.perf_counter() - t0)
    matrix, found = saved["matrix"], saved["found"]
    stats = {**saved["stats"], "token_coverage": None}  # token coverage depends on train_counts: not cached
    if train_counts is not None:
        denom = sum(c for w, c in train_counts.items() if w not in (PAD, UNK))
        hit = sum(train_counts.get(w, 0) for w, f in zip(itos, found.tolist()) if f)
        stats["token_coverage"] = hit / denom if denom else 0.0
    log.info("pretrained vectors %s: %d of %d vocabulary words found (%.1f%%)", spec, stats["found"],
             stats["total"], 100 * stats["vocab_coverage"])
    return matrix, stats
