"""Tests for the CoNLL column-file reader (generated fixtures, plus the real Broad Twitter Corpus when present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.data.columns import read_columns
from seqlab.errors import ConfigError, DataError
from seqlab.tasks.schemes import spans, validate_sentences

REPO = Path(__file__).resolve().parents[1]
BTC_DIR = REPO.parent / "shared" / "data" / "btc"


def write(tmp_path: Path, text: str | bytes, name: str = "data.conll") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


CONLL03 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O
BRUSSELS NNP B-NP B-LOC
"""


@pytest.mark.parametrize("sep", ["auto", "space"])
def test_conll2003_layout(tmp_path, sep):
    p = write(tmp_path, CONLL03)
    sents = read_columns(p, sep=sep)
    assert sents == [
        (["EU", "rejects", "German", "call", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
        (["BRUSSELS"], ["B-LOC"]),  # -DOCSTART- right before it, with no blank line, still ends a document
    ]
    assert read_columns(p, sep=sep, tag_column=1)[1] == (["Peter", "Blackburn"], ["NNP", "NNP"])
    assert read_columns(p, sep=sep, token_column=-1, tag_column=0)[2] == (["B-LOC"], ["BRUSSELS"])
    assert read_columns(p, sep=sep, tag_column=3) == sents


@pytest.mark.parametrize("ending", ["", "\n", "\n\n \n\t\n"], ids=["no-final-newline", "newline", "blank-lines"])
def test_endings_crlf_bom(tmp_path, ending):
    text = "I\tO\nlove\tO\nParis\tB-LOC\n\n\n \t \nBye\tO" + ending
    want = [(["I", "love", "Paris"], ["O", "O", "B-LOC"]), (["Bye"], ["O"])]
    assert read_columns(write(tmp_path, text)) == want
    assert read_columns(write(tmp_path, "\ufeff" + text.replace("\n", "\r\n"))) == want


def test_tab_fields_keep_spaces_inside_and_strip_them_around(tmp_path):
    text = "New York\tB-LOC\nMH17 \tO\n  x  \t O \n10\u00a0000\tO\n"
    assert read_columns(write(tmp_path, text)) == [(["New York", "MH17", "x", "10\u00a0000"],
                                                    ["B-LOC", "O", "O", "O"])]
    assert read_columns(write(tmp_path, text), sep="tab")[0][0][0] == "New York"


def test_space_mode_splits_on_runs_of_spaces_and_tabs_only(tmp_path):
    text = "a   O\nb\t \tB-PER\n10\u00a0000  O\n"  # a no-break space is part of a token, not a separator
    assert read_columns(write(tmp_path, text), sep="space") == [(["a", "b", "10\u00a0000"], ["O", "B-PER", "O"])]


def test_line_separators_inside_tokens_are_text(tmp_path):
    text = "a\u2028b\tO\nc\x0cd\tB-PER\n"  # str.splitlines() would break these lines
    assert read_columns(write(tmp_path, text)) == [(["a\u2028b", "c\x0cd"], ["O", "B-PER"])]


def test_auto_decides_once_per_file(tmp_path):
    tabbed = write(tmp_path, "# c\n\nNew York\tB-LOC\nis O\n")  # a tab file whose line 4 lost its tab
    for sep in ("auto", "tab"):
        with pytest.raises(DataError, match=r":4: expected 2 columns \(as on line 3, the first token line\), found 1;"):
            read_columns(tabbed, sep=sep)
    spaced = write(tmp_path, "# c\n\nNew York B-LOC\nis O\n")
    for sep in ("auto", "space"):
        with pytest.raises(DataError, match=r":4: expected 3 columns .* found 2; .*separate columns with tabs"):
            read_columns(spaced, sep=sep)
    # a space file: tabs separate too, and a '# ' line with the file's column count would be a token line
    mixed = write(tmp_path, "# a comment\nis O\nYork\tB-LOC\n\n# O\n")
    assert read_columns(mixed) == [(["is", "York"], ["O", "B-LOC"]), (["#"], ["O"])]


def test_comments_and_hash_tokens(tmp_path):
    text = "\n".join([
        "# sent_id = 1",  # comment (before a sentence, 4 fields)
        "# text = # is a tag",  # comment
        "#\tO",  # the token '#' (2 fields)
        "love\tO",
        "",
        "#\tB-PER",  # a sentence that starts with the token '#'
        "#MH17\tO",
        "# \tO",  # '# ' then a tab: the token '#' again
        "",
        "#",  # a lone '#' before a sentence is not a comment (no '# ') and not a token line: error below
    ])
    p = write(tmp_path, text.rsplit("\n", 1)[0])
    assert read_columns(p) == [(["#", "love"], ["O", "O"]), (["#", "#MH17", "#"], ["B-PER", "O", "O"])]
    with pytest.raises(DataError, match=r":10: expected 2 columns .* found 1"):
        read_columns(write(tmp_path, text))
    spaced = write(tmp_path, "# a comment here\n# O\nx O\n\n# B-PER\n")  # space-separated: '# O' is a token
    assert read_columns(spaced) == [(["#", "x"], ["O", "O"]), (["#"], ["B-PER"])]


def test_comment_inside_a_sentence_is_an_error(tmp_path):
    p = write(tmp_path, "a\tO\n# note to self\nb\tO\n")
    with pytest.raises(DataError, match=r"data.conll:2: expected 2 columns .* found 1 \(a '# \.\.\.' comment line "
                                        r"is allowed only before a sentence\)"):
        read_columns(p)


def test_hashtag_missing_its_tag_is_not_taken_for_a_comment(tmp_path):
    p = write(tmp_path, "a\tO\n\n#MH17\nb\tO\n")
    with pytest.raises(DataError, match=r"data.conll:3: expected 2 columns \(as on line 1, the first token line\), fo"):
        read_columns(p)


def test_empty_token_kept_empty_tag_rejected(tmp_path):
    assert read_columns(write(tmp_path, "a\tO\n\tO\n \tO\n")) == [(["a", "", ""], ["O", "O", "O"])]
    with pytest.raises(DataError, match=r"data.conll:2: empty tag in column 1"):
        read_columns(write(tmp_path, "a\tO\nb\t\n"))


def test_with_lines(tmp_path):
    p = write(tmp_path, "# c\n\na\tO\nb\tB-PER\n\n\nc\tO\n")
    assert read_columns(p, with_lines=True) == [(["a", "b"], ["O", "B-PER"], [3, 4]), (["c"], ["O"], [7])]


def test_wrong_column_count(tmp_path):
    p = write(tmp_path, "a\tb\tO\nc\tO\n")
    with pytest.raises(DataError) as exc:
        read_columns(p)
    assert str(exc.value).startswith(f"{p}:2: expected 3 columns (as on line 1, the first token line), found 2;")


@pytest.mark.parametrize(("key", "kwargs"), [("data.tag_column=2", {"tag_column": 2}),
                                             ("data.tag_column=-3", {"tag_column": -3}),
                                             ("data.token_column=5", {"token_column": 5})])
def test_column_out_of_range(tmp_path, key, kwargs):
    p = write(tmp_path, "# c\na\tO\n")
    with pytest.raises(DataError) as exc:
        read_columns(p, **kwargs)
    assert str(exc.value).startswith(f"{p}:2: {key} is out of range: the file has 2 columns (0 to 1, or -1 to -2")


def test_config_errors(tmp_path):
    p = write(tmp_path, "a\tO\n")
    with pytest.raises(ConfigError, match="data.sep must be one of auto, tab, space, got 'comma'"):
        read_columns(p, sep="comma")
    with pytest.raises(ConfigError, match="data.token_column=1 and data.tag_column=-1 are the same column"):
        read_columns(p, token_column=1)


def test_bad_utf8_names_line_and_byte(tmp_path):
    p = write(tmp_path, "a\tO\n\ncaf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data.conll:3: not valid UTF-8 \(byte b'\\xe9' at byte 4 of the line\)"):
        read_columns(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="nope.conll not found"):
        read_columns(tmp_path / "nope.conll")
    with pytest.raises(DataError, match="is a directory"):
        read_columns(tmp_path)


@pytest.mark.parametrize("text", ["", "\n \n\n", "# a comment\n# another\n", "-DOCSTART- O\n\n-DOCSTART- O\n"],
                         ids=["empty", "blank", "comments", "docstart"])
def test_no_tokens(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(DataError) as exc:
        read_columns(p)
    assert str(exc.value) == f"{p} contains no token lines; check that it is a non-empty CoNLL column file."


BTC_COUNTS = {"train": (6_338, 99_933, 8_779), "dev": (1_001, 15_027, 1_730), "test": (2_001, 35_428, 4_376)}


@pytest.mark.skipif(not (BTC_DIR / "btc.train").exists(), reason="Broad Twitter Corpus not in ../shared/data/btc")
@pytest.mark.parametrize("split", BTC_COUNTS)
def test_real_btc(split):
    """Tweets, tokens and entities as the data README counts them; the tags are well-formed IOB2."""
    path = BTC_DIR / f"btc.{split}"
    sents = read_columns(path, with_lines=True)
    n_sents, n_tokens, n_entities = BTC_COUNTS[split]
    assert len(sents) == n_sents
    assert sum(len(tokens) for tokens, _, _ in sents) == n_tokens
    assert sum(len(spans(tags)) for _, tags, _ in sents) == n_entities
    assert {t for _, tags, _ in sents for t in tags} == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    validate_sentences(sents, "IOB2", path)
    raw = path.read_text(encoding="utf-8").split("\n")
    hashes = sum(tok == "#" for tokens, _, _ in sents for tok in tokens)  # '#' token lines are not comments
    assert hashes == sum(line.startswith("#\t") for line in raw) > 0
    assert read_columns(path, sep="tab") == [(tokens, tags) for tokens, tags, _ in sents]
    assert all(raw[n - 1].split("\t")[1] == tag for _, tags, lines in sents for tag, n in zip(tags, lines))
