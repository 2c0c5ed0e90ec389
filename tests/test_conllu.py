"""Tests for the CoNLL-U reader (generated fixtures, plus the real UD English-EWT files when present)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import REPO

from seqlab.data import conllu
from seqlab.data.conllu import EWT_SHA256, EWT_URL, ensure_ewt, ewt_filename, read_conllu
from seqlab.data.download import file_checksum
from seqlab.errors import ConfigError, DataError

SHARED = REPO.parent / "shared" / "data"  # the real data staged beside the checkout (../shared/data), if any
EWT_DIR = SHARED / "ud_english_ewt"


def row(i, form, upos, xpos):
    return "\t".join([str(i), form, form.lower(), upos, xpos, "_", "0", "dep", "_", "_"])


FIXTURE_LINES = [
    "# newdoc id = fixture",  # 1
    "# sent_id = s1",  # 2
    "# text = I really don't know.",  # 3
    row(1, "I", "PRON", "PRP"),  # 4
    row(2, "really", "ADV", "RB"),  # 5
    "3-4\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",  # 6
    row(3, "do", "AUX", "VBP"),  # 7
    row(4, "n't", "PART", "RB"),  # 8
    row(5, "know", "VERB", "VB"),  # 9
    row(6, ".", "PUNCT", "."),  # 10
    "",  # 11
    "# sent_id = s2",  # 12
    row(1, "Mary", "PROPN", "NNP"),  # 13
    row(2, "likes", "VERB", "VBZ"),  # 14
    row(3, "tea", "NOUN", "NN"),  # 15
    row(4, "and", "CCONJ", "CC"),  # 16
    row(5, "John", "PROPN", "NNP"),  # 17
    row(6, "coffee", "NOUN", "NN"),  # 18
    row(7, "too", "ADV", "RB"),  # 19
    row(8, "!", "PUNCT", "."),  # 20
    "8.1\tlikes\tlike\tVERB\tVBZ\t_\t_\t_\t2:conj\tCopyOf=2",  # 21
    "",  # 22
    "# sent_id = s3",  # 23
    row(1, "Ok", "INTJ", "UH"),  # 24
]
FIXTURE = "\n".join(FIXTURE_LINES)
WORDS = [
    ["I", "really", "do", "n't", "know", "."],
    ["Mary", "likes", "tea", "and", "John", "coffee", "too", "!"],
    ["Ok"],
]
UPOS = [
    ["PRON", "ADV", "AUX", "PART", "VERB", "PUNCT"],
    ["PROPN", "VERB", "NOUN", "CCONJ", "PROPN", "NOUN", "ADV", "PUNCT"],
    ["INTJ"],
]
XPOS = [["PRP", "RB", "VBP", "RB", "VB", "."], ["NNP", "VBZ", "NN", "CC", "NNP", "NN", "RB", "."], ["UH"]]


def write(tmp_path: Path, text: str | bytes, name: str = "fixture.conllu") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def with_line(n: int, line: str) -> str:
    """The fixture with (1-based) line ``n`` replaced."""
    lines = list(FIXTURE_LINES)
    lines[n - 1] = line
    return "\n".join(lines)


@pytest.mark.parametrize("ending", ["", "\n", "\n\n\n"], ids=["no-final-blank", "final-newline", "blank-lines"])
def test_read_upos(tmp_path, ending):
    sents = read_conllu(write(tmp_path, FIXTURE + ending))
    assert [w for w, _ in sents] == WORDS
    assert [t for _, t in sents] == UPOS


def test_read_xpos(tmp_path):
    sents = read_conllu(write(tmp_path, FIXTURE + "\n"), tag_field="xpos")
    assert [w for w, _ in sents] == WORDS
    assert [t for _, t in sents] == XPOS


def test_crlf_bom_and_extra_blank_lines(tmp_path):
    text = "\ufeff" + FIXTURE.replace("\n\n", "\n\n\n").replace("\n", "\r\n") + "\r\n"
    sents = read_conllu(write(tmp_path, text))
    assert [w for w, _ in sents] == WORDS and [t for _, t in sents] == UPOS


def test_bad_tag_field(tmp_path):
    with pytest.raises(ConfigError, match="data.tag_field must be 'upos' or 'xpos', got 'deprel'"):
        read_conllu(write(tmp_path, FIXTURE), tag_field="deprel")


def test_wrong_column_count(tmp_path):
    p = write(tmp_path, with_line(15, "3 tea tea NOUN NN _ 2 obj _ _"))
    with pytest.raises(DataError, match="expected 10 tab-separated columns, found 1") as exc:
        read_conllu(p)
    assert f"{p}:15:" in str(exc.value)


@pytest.mark.parametrize("tag", ["_", ""])
def test_missing_upos(tmp_path, tag):
    p = write(tmp_path, with_line(17, row(5, "John", tag, "NNP")))
    with pytest.raises(DataError, match="token 'John' has no UPOS tag") as exc:
        read_conllu(p)
    assert f"{p}:17:" in str(exc.value)
    assert read_conllu(p, tag_field="xpos")[1][1][4] == "NNP"  # the other column is still usable


def test_missing_xpos(tmp_path):
    p = write(tmp_path, with_line(8, row(4, "n't", "PART", "_")))
    with pytest.raises(DataError, match="token 'n't' has no XPOS tag") as exc:
        read_conllu(p, tag_field="xpos")
    assert f"{p}:8:" in str(exc.value)


def test_non_integer_id(tmp_path):
    p = write(tmp_path, with_line(19, row("seven", "too", "ADV", "RB")))
    with pytest.raises(DataError, match="token ID 'seven' is not an integer") as exc:
        read_conllu(p)
    assert f"{p}:19:" in str(exc.value)


def test_bad_utf8_line(tmp_path):
    data = FIXTURE.encode("utf-8").replace(b"coffee", b"caf\xe9")  # a latin-1 byte on line 18
    p = write(tmp_path, data)
    with pytest.raises(DataError, match="not valid UTF-8") as exc:
        read_conllu(p)
    assert f"{p}:18:" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.conllu not found"):
        read_conllu(tmp_path / "nope.conllu")


@pytest.mark.parametrize("text", ["", "\n\n", "# a comment\n# and another\n\n"], ids=["empty", "blank", "comments"])
def test_no_sentences(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match="contains no sentences") as exc:
        read_conllu(p)
    assert str(p) in str(exc.value)


def test_ewt_file_names_and_urls_agree():
    for split in ("train", "dev", "test"):  # the release URL of a split ends in the file name we look for
        assert EWT_URL.format(split=split).rsplit("/", 1)[1] == ewt_filename(split)
    with pytest.raises(ConfigError, match="got 'validation'"):
        ewt_filename("validation")


@pytest.mark.skipif(not (SHARED / "SHA256SUMS").is_file(), reason=f"{SHARED / 'SHA256SUMS'} not available")
def test_pinned_checksums_match_an_independent_record():
    """../shared/data/SHA256SUMS was written when the released files were staged, not from this code."""
    record = dict(reversed(line.split()) for line in (SHARED / "SHA256SUMS").read_text().splitlines() if line)
    assert {s: record[f"ud_english_ewt/{ewt_filename(s)}"] for s in EWT_SHA256} == EWT_SHA256


def test_missing_ewt_file_is_downloaded_from_the_release_and_verified(tmp_path, serve_dir, monkeypatch):
    (tmp_path / "www/r2.16").mkdir(parents=True)
    (tmp_path / "www/r2.16/en_ewt-ud-dev.conllu").write_text(FIXTURE, encoding="utf-8")
    base = serve_dir(tmp_path / "www")
    monkeypatch.setattr(conllu, "EWT_URL", base + "/r2.16/en_ewt-ud-{split}.conllu")
    monkeypatch.setitem(conllu.EWT_SHA256, "dev", hashlib.sha256(FIXTURE.encode()).hexdigest())
    path = ensure_ewt("dev", tmp_path / "data")
    assert path == tmp_path / "data/en_ewt-ud-dev.conllu" and read_conllu(path)[1][0] == WORDS[1]
    monkeypatch.setitem(conllu.EWT_SHA256, "dev", "0" * 64)  # a file that does not match the pin is refused
    with pytest.raises(DataError, match="Checksum mismatch"):
        ensure_ewt("dev", tmp_path / "other")
    assert not (tmp_path / "other/en_ewt-ud-dev.conllu").exists()
    with pytest.raises(DataError, match=r"404.*download .*/r2.16/en_ewt-ud-test.conllu elsewhere"):
        ensure_ewt("test", tmp_path / "data")  # the offline hint names the URL to fetch by hand


@pytest.mark.skipif(not (EWT_DIR / "en_ewt-ud-train.conllu").exists(), reason=f"{EWT_DIR} not available")
def test_real_ewt():
    expected = {"train": (12_544, 204_577), "dev": (2_001, 25_147), "test": (2_077, 25_094)}  # shared/data/README
    for split, (n_sents, n_words) in expected.items():
        sents = read_conllu(EWT_DIR / ewt_filename(split))
        assert len(sents) == n_sents
        assert sum(len(w) for w, _ in sents) == n_words
        assert all(len(w) == len(t) > 0 for w, t in sents)
        if split == "train":
            assert len({t for _, tags in sents for t in tags}) == 17
    for split in expected:  # the pinned checksums match the released files, so no download is attempted
        path = EWT_DIR / ewt_filename(split)
        assert file_checksum(path) == EWT_SHA256[split]
        assert ensure_ewt(split, EWT_DIR, verify=True) == path
