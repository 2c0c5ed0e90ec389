"""Tests for seqlab.data.download against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import socket
import tarfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seqlab.data.download import download, ensure_file, file_checksum, safe_extract
from seqlab.errors import ConfigError, DataError

FILES = {
    "corpus/README": b"a tiny corpus\n",
    "corpus/train/pos/1.txt": b"great film\n" * 50,
    "corpus/train/neg/2.txt": b"dull film\n" * 50,
}


def make_tar(path: Path, files: dict[str, bytes] = FILES, mode: str = "w:gz") -> Path:
    """Write a tar archive with the given regular files."""
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class _Handler(SimpleHTTPRequestHandler):
    """Serves the fixture directory, plus /truncated (short body) and /slow (answers after 2 s)."""

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        if self.path == "/slow":
            time.sleep(2)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) serving tmp_path/www with a small tar.gz; yields a dict."""
    root = tmp_path / "www"
    root.mkdir()
    archive = make_tar(root / "corpus.tar.gz")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = False

    def stop():
        nonlocal stopped
        if not stopped:
            httpd.shutdown()
            httpd.server_close()
            stopped = True

    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield {"base": base, "url": f"{base}/corpus.tar.gz", "archive": archive, "stop": stop}
    finally:
        stop()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_file_checksum(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1_000_000)
    assert file_checksum(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_checksum(p, "md5") == hashlib.md5(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_download_right_checksum(server, tmp_path, algo):
    dest = tmp_path / "dl" / "sub" / "corpus.tar.gz"
    digest = hashlib.new(algo, server["archive"].read_bytes()).hexdigest()
    assert download(server["url"], dest, f"{algo}:{digest.upper()}") == dest
    assert dest.read_bytes() == server["archive"].read_bytes()
    assert os.listdir(dest.parent) == ["corpus.tar.gz"]


def test_download_without_checksum(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    download(server["url"], dest, None)
    assert dest.read_bytes() == server["archive"].read_bytes()


def test_download_wrong_checksum_saves_nothing(server, tmp_path):
    dest_dir = tmp_path / "dl"
    with pytest.raises(DataError, match="Checksum mismatch") as exc:
        download(server["url"], dest_dir / "corpus.tar.gz", "sha256:" + "0" * 64)
    assert server["url"] in str(exc.value) and "0" * 64 in str(exc.value)
    assert os.listdir(dest_dir) == []


def test_download_replaces_a_stale_file_whose_hash_is_wrong(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    dest.write_bytes(b"stale")
    download(server["url"], dest, sha256(server["archive"]))  # the right checksum: the stale file is replaced
    assert dest.read_bytes() == server["archive"].read_bytes()


def test_download_wrong_checksum_never_replaces_the_existing_file(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    dest.write_bytes(b"stale")
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DataError, match="Checksum mismatch") as exc:
        download(server["url"], dest, wrong)
    got = hashlib.sha256(server["archive"].read_bytes()).hexdigest()  # what the server sent, named in the error
    assert f"got {got}" in str(exc.value) and wrong[7:] in str(exc.value)
    assert dest.read_bytes() == b"stale"  # the unverified download never took its place
    assert sorted(os.listdir(tmp_path)) == ["corpus.tar.gz", "www"]  # and no .part file is left


def test_download_404(server, tmp_path):
    dest_dir = tmp_path / "dl"
    with pytest.raises(DataError, match="404") as exc:
        download(server["base"] + "/missing.tar.gz", dest_dir / "x.tar.gz", "sha256:" + "0" * 64)
    assert "missing.tar.gz" in str(exc.value)
    assert os.listdir(dest_dir) == []


def test_download_unreachable_names_offline_hint(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/corpus.tar.gz"
    with pytest.raises(DataError, match="Could not download") as exc:
        download(url, tmp_path / "corpus.tar.gz", "sha256:" + "0" * 64, offline_hint="copy it from the shared disk")
    assert "copy it from the shared disk" in str(exc.value) and url in str(exc.value)
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataError, match="place it at") as exc:  # the default hint names the destination
        download(url, tmp_path / "corpus.tar.gz", None)
    assert str(tmp_path / "corpus.tar.gz") in str(exc.value)


def test_download_truncated_body(server, tmp_path):
    with pytest.raises(DataError, match="Could not download"):
        download(server["base"] + "/truncated", tmp_path / "t.bin", None)
    assert os.listdir(tmp_path) == ["www"]


def test_download_timeout(server, tmp_path):
    dest_dir = tmp_path / "dl"
    with pytest.raises(DataError, match="Could not download"):
        download(server["base"] + "/slow", dest_dir / "s.bin", None, timeout=0.3)
    assert os.listdir(dest_dir) == []


def test_existing_file_is_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    checksum = sha256(server["archive"])
    download(server["url"], dest, checksum)
    server["stop"]()
    mtime = dest.stat().st_mtime_ns
    assert download(server["url"], dest, checksum) == dest
    assert ensure_file(dest, server["url"], checksum, verify=True) == dest
    assert ensure_file(dest, server["url"], checksum) == dest
    assert dest.stat().st_mtime_ns == mtime


def test_ensure_file_downloads_when_missing(server, tmp_path):
    dest = tmp_path / "corpus.tar.gz"
    assert ensure_file(dest, server["url"], sha256(server["archive"])) == dest
    assert dest.exists()


def test_bad_checksum_spec(tmp_path):
    with pytest.raises(ConfigError, match="checksum must look like"):
        download("http://127.0.0.1:1/x", tmp_path / "x", "sha1:abc")


# ---------------------------------------------------------------- safe_extract


@pytest.mark.parametrize(
    "mode,suffix", [("w:gz", ".tar.gz"), ("w", ".tar"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")]
)
def test_safe_extract_normal(tmp_path, mode, suffix):
    archive = make_tar(tmp_path / ("corpus" + suffix), mode=mode)
    dest = tmp_path / "out"
    safe_extract(archive, dest)
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    assert os.listdir(dest) == ["corpus"]  # no temp dir left behind


def test_safe_extract_allows_internal_links(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("d/file.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        link = tarfile.TarInfo("d/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "file.txt"
        tar.addfile(link)
        hard = tarfile.TarInfo("d/hard.txt")
        hard.type, hard.linkname = tarfile.LNKTYPE, "d/file.txt"
        tar.addfile(hard)
    safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out/d/link.txt").read_text() == "hi" and (tmp_path / "out/d/hard.txt").read_text() == "hi"


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


EVIL = {
    "dotdot": [_member("../evil")],
    "nested-dotdot": [_member("ok/../../evil")],
    "absolute": [_member("/tmp/seqlab-evil-abs")],
    "symlink-abs": [_member("passwd", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink-up": [_member("x", tarfile.SYMTYPE, "../../x")],
    "hardlink-up": [_member("h", tarfile.LNKTYPE, "../evil")],
    "through-symlink": [_member("d", tarfile.SYMTYPE, "sub"), _member("d/evil")],
    "link-chain": [_member("l", tarfile.SYMTYPE, "."), _member("l2", tarfile.SYMTYPE, "l/..")],
    "chardev": [_member("dev", tarfile.CHRTYPE)],
    "fifo": [_member("fifo", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("tar_filter", [True, False], ids=["data-filter", "no-data-filter"])
@pytest.mark.parametrize("case", sorted(EVIL))
def test_safe_extract_refuses_unsafe_members(tmp_path, monkeypatch, case, tar_filter):
    if not tar_filter:  # our own validation must suffice on Pythons without tarfile's "data" filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        good = tarfile.TarInfo("good.txt")
        good.size = 4
        tar.addfile(good, io.BytesIO(b"good"))
        for m in EVIL[case]:
            data = b"evil" if m.isreg() else None
            m.size = 4 if data else 0
            tar.addfile(m, io.BytesIO(data) if data else None)
    dest = tmp_path / "a" / "b" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(DataError, match="Refusing to extract") as exc:
        safe_extract(archive, dest)
    assert f"'{EVIL[case][-1].name}'" in str(exc.value)
    assert os.listdir(dest) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "evil.tar.gz", "out"]
    assert not Path("/tmp/seqlab-evil-abs").exists()


def test_safe_extract_refuses_to_overwrite(tmp_path):
    archive = make_tar(tmp_path / "c.tar.gz")
    dest = tmp_path / "out"
    (dest / "corpus").mkdir(parents=True)
    with pytest.raises(DataError, match="already exists"):
        safe_extract(archive, dest)
    assert os.listdir(dest) == ["corpus"] and os.listdir(dest / "corpus") == []


def _truncated_gz(p: Path) -> bytes:
    data = make_tar(p / "full.tar.gz", {"big.bin": os.urandom(200_000)}).read_bytes()
    return data[: len(data) // 2]


def _truncated_tar(p: Path) -> bytes:
    data = make_tar(p / "full.tar", {"a.bin": os.urandom(100_000), "b.bin": b"b"}, mode="w").read_bytes()
    return data[:60_000]


@pytest.mark.parametrize(
    "make",
    [_truncated_gz, _truncated_tar, lambda p: os.urandom(5000), lambda p: b""],
    ids=["truncated-gz", "truncated-tar", "random", "empty"],
)
def test_safe_extract_corrupt_archive(tmp_path, make):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(make(tmp_path))
    dest = tmp_path / "out"
    with pytest.raises(DataError, match="is not a readable tar archive") as exc:
        safe_extract(archive, dest)
    assert str(archive) in str(exc.value) and "download it again" in str(exc.value)
    assert not dest.exists()  # the destination is made only when the extraction is complete
    assert not list(tmp_path.glob(".extract-*"))  # and the temp dir is gone


def test_safe_extract_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    """A failure after some members are written (here: the disk fills up) removes them with the temp dir."""
    archive = make_tar(tmp_path / "c.tar.gz")
    real = tarfile.TarFile.extractall

    def disk_full(self, path, members=None, **kw):
        members = list(members)
        real(self, path, members=members[:1], **kw)  # the first member is written, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", disk_full)
    with pytest.raises(DataError, match="check free disk space"):
        safe_extract(archive, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["c.tar.gz"]
    (tmp_path / "kept").mkdir()  # into an existing folder: it stays as it was
    with pytest.raises(DataError, match="check free disk space"):
        safe_extract(archive, tmp_path / "kept")
    assert os.listdir(tmp_path / "kept") == []


def test_safe_extract_missing_archive(tmp_path):
    with pytest.raises(DataError, match="not found"):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "out")
