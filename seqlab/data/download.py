"""Verified downloads and safe archive extraction.

Every file is written to a temporary file in the destination directory and moved into place with ``os.replace``
only once it is complete (and its checksum matches), so an interrupted run never leaves a half-written file behind.
Archives are validated member by member before anything is extracted, and extracted into a temporary directory
that is removed whatever happens.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from seqlab.errors import ConfigError, DataError

__all__ = ["download", "ensure_file", "file_checksum", "safe_extract"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_ALGOS = ("sha256", "md5")


def file_checksum(path: Path | str, algo: str = "sha256") -> str:
    """Return the hex digest of ``path`` with hash ``algo`` ("sha256" or "md5"), reading it in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """Split "sha256:<hex>" / "md5:<hex>" into (algo, lowercase hex), raising ConfigError if malformed."""
    algo, sep, digest = checksum.partition(":")
    algo, digest = algo.strip().lower(), digest.strip().lower()
    size = {"sha256": 64, "md5": 32}.get(algo)
    if not sep or size is None or len(digest) != size or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(
            f"checksum must look like 'sha256:<64 hex digits>' or 'md5:<32 hex digits>', got '{checksum}'."
        )
    return algo, digest


def _network_reason(exc: BaseException) -> str:
    """A short human-readable reason for a failed download."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} bytes"
    return str(exc) or type(exc).__name__


def download(url: str, dest: Path, checksum: str | None, *, offline_hint: str = "", timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying ``checksum`` ("sha256:<hex>", "md5:<hex>" or None).

    If ``dest`` already exists with the right checksum it is returned without downloading. The body is streamed to
    a ``.part`` temp file next to ``dest`` while being hashed and is moved into place only if the hash matches; on any
    failure the temp file is deleted. Network failures and checksum mismatches raise :class:`DataError`.
    """
    dest = Path(dest)
    algo, expected = _parse_checksum(checksum) if checksum else ("sha256", None)
    if expected is not None and dest.is_file() and file_checksum(dest, algo) == expected:
        log.info("%s already present with the right checksum, not downloading it again", dest)
        return dest
    if expected is None:
        log.warning("downloading %s without a checksum: its contents will not be verified", url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hint = (offline_hint or f"if this machine is offline, download it elsewhere and place it at {dest}").rstrip(". ")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    moved = False
    try:
        h = hashlib.new(algo)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                received = 0
                with tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=None, leave=False
                ) as bar:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                if total is not None and received < total:
                    raise ConnectionError(f"connection closed after {received} of {total} bytes")
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
            raise DataError(f"Could not download {url} ({_network_reason(exc)}); {hint}.") from exc
        got = h.hexdigest()
        if expected is not None and got != expected:
            raise DataError(
                f"Checksum mismatch for {url}: expected {algo} {expected}, got {got}; the download is corrupt or the "
                f"file changed upstream — nothing was saved, retry or place a verified copy at {dest}."
            )
        os.chmod(tmp, 0o644)  # mkstemp creates the file private (0600); a dataset should be readable like any file
        os.replace(tmp, dest)
        moved = True
    finally:
        if not moved:
            Path(tmp).unlink(missing_ok=True)
    return dest


def ensure_file(dest: Path, url: str, checksum: str | None, *, offline_hint: str = "", verify: bool = False) -> Path:
    """Return ``dest`` if it exists (re-hashing it only when ``verify`` is true), else download it from ``url``."""
    dest = Path(dest)
    if dest.is_file() and not (verify and checksum):
        return dest
    return download(url, dest, checksum, offline_hint=offline_hint)


def _inside(path: str) -> bool:
    """True if the normalised relative POSIX ``path`` stays inside the extraction root."""
    return path != ".." and not path.startswith("../")


def _check_member(m: tarfile.TarInfo, links: set[str]) -> str | None:
    """Return why member ``m`` is unsafe to extract, or None; ``links`` holds the symlinks seen so far."""
    name = m.name
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    norm = posixpath.normpath(name)
    if not _inside(norm):
        return "would be written outside the destination directory"
    parts = norm.split("/")
    if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
        return "is written through a symbolic link"
    if m.issym() or m.islnk():
        if m.linkname.startswith("/") or os.path.isabs(m.linkname):
            return f"is a link to the absolute path {m.linkname}"
        base = posixpath.dirname(norm) if m.issym() else ""
        stack: list[str] = [p for p in base.split("/") if p and p != "."]
        for part in m.linkname.split("/"):
            if "/".join(stack) in links and stack:
                return f"is a link ({m.linkname}) that goes through another link"
            if part == "..":
                if not stack:
                    return f"is a link to {m.linkname}, outside the destination directory"
                stack.pop()
            elif part and part != ".":
                stack.append(part)
        if m.issym():
            links.add(norm)
    elif m.isdev():
        return "is a device or FIFO"
    elif not (m.isreg() or m.isdir()):
        return "has an unsupported member type"
    return None


_CORRUPT_ERRORS = (tarfile.ReadError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
_READ_ERRORS = (*_CORRUPT_ERRORS, OSError)


def _publish(tmp: Path, dest_dir: Path) -> None:
    """Rename the complete extraction `tmp` to `dest_dir`, readable like a directory made with mkdir."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private (0700)
    try:
        os.rename(tmp, dest_dir)
    except OSError:
        if not dest_dir.is_dir():
            raise
        log.info("%s was extracted by another process meanwhile; keeping it", dest_dir)


def safe_extract(archive: Path, dest_dir: Path) -> None:
    """Validate every member of the tar ``archive`` and then extract it into ``dest_dir`` atomically.

    The archive is refused (:class:`DataError` naming the member) if any member has an absolute path, escapes
    ``dest_dir`` via ``..``, is a symlink/hardlink pointing outside it, or is a device/FIFO. Extraction goes into a
    hidden temp dir (beside ``dest_dir`` when it does not exist yet, else inside it); on success a new ``dest_dir`` is
    that temp dir renamed, an existing one receives its top-level entries. The temp dir is always removed, so a
    failure leaves nothing behind: no half-extracted tree, and no ``dest_dir`` that was not there before. A
    ``dest_dir`` that appears meanwhile (another process extracting the same archive, renamed whole) is kept.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise DataError(f"{archive} not found; download it first or check the path.")

    def unreadable(exc: BaseException) -> DataError:
        return DataError(f"{archive} is not a readable tar archive ({exc}); delete it and download it again.")

    try:
        tar = tarfile.open(archive, mode="r:*")  # noqa: SIM115 - closed by the `with tar` below
    except _READ_ERRORS as exc:
        raise unreadable(exc) from exc
    with tar:
        try:
            members = tar.getmembers()
        except _READ_ERRORS as exc:
            raise unreadable(exc) from exc
        links: set[str] = set()
        for m in members:
            why = _check_member(m, links)
            if why:
                raise DataError(
                    f"Refusing to extract {archive}: member '{m.name}' {why}; the archive is unsafe, "
                    "delete it and obtain a trusted copy."
                )
        fresh = not dest_dir.exists()
        (dest_dir.parent if fresh else dest_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest_dir.parent if fresh else dest_dir, prefix=".extract-"))
        try:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            bar = tqdm(members, desc=f"extracting {archive.name}", unit="file", disable=None, leave=False)
            try:
                tar.extractall(tmp, members=bar, **kwargs)
            except getattr(tarfile, "FilterError", ()) as exc:
                raise DataError(
                    f"Refusing to extract {archive}: {exc}; the archive is unsafe, delete it and obtain a trusted copy."
                ) from exc
            except _CORRUPT_ERRORS as exc:
                raise unreadable(exc) from exc
            except OSError as exc:
                if exc.errno is None:  # e.g. bz2 "Invalid data stream": the archive, not the disk
                    raise unreadable(exc) from exc
                raise DataError(
                    f"Could not extract {archive} into {dest_dir} ({exc}); check free disk space and "
                    "permissions, then try again."
                ) from exc
            finally:
                bar.close()
            if fresh:
                _publish(tmp, dest_dir)
                return
            entries = sorted(os.listdir(tmp))
            clash = [e for e in entries if os.path.lexists(dest_dir / e)]
            if clash:
                raise DataError(
                    f"Cannot extract {archive}: {dest_dir / clash[0]} already exists; delete it (or "
                    "choose another directory) and try again."
                )
            for e in entries:
                os.replace(tmp / e, dest_dir / e)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
