"""data=text: classification from the user's CSV / TSV / JSON Lines / JSON files, and every kind of bad input."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from seqlab.data.text import TextDataModule
from seqlab.errors import ConfigError, DataError

ROWS = [("A superb, moving film.", "pos"), ("Dull and boring, I hated it", "neg"), ("Loved it!\nBrilliant.", "pos"),
        ("awful waste", "neg"), ("great great great", "pos"), ("terrible, dull plot", "neg")] * 4


def write_csv(path: Path, rows, header=("text", "label"), delimiter=","):
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows, keys=("text", "label")):
    path.write_text("".join(json.dumps(dict(zip(keys, r))) + "\n" for r in rows), encoding="utf-8")
    return path


def append(path: Path, text: str) -> Path:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
    return path


def ready(tmp_path: Path, **kw) -> TextDataModule:
    kw.setdefault("tokenizer_workers", 1)
    kw.setdefault("min_freq", 1)
    dm = TextDataModule(cache_dir=tmp_path / "cache", batch_size=4, seed=0, **kw)
    dm.prepare_data()
    dm.setup()
    return dm


def texts_of(dm, split):
    ds = dm.datasets[split]
    return [" ".join(dm.vocab.itos[i] for i in ds[k]["ids"].tolist()) for k in range(len(ds))]


def labels_of(dm, split):
    ds = dm.datasets[split]
    return [dm.labels[ds[k]["label"]] for k in range(len(ds))]


def test_csv_with_quoted_commas_and_newlines(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS)
    test = write_csv(tmp_path / "test.csv", ROWS[:6])
    dm = ready(tmp_path, train_file=str(train), test_file=str(test))
    assert dm.labels == ["neg", "pos"] and dm.metadata.task == "classification"
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 22, "val": 2, "test": 6}
    assert sorted(labels_of(dm, "val")) == ["neg", "pos"]  # stratified carve
    assert texts_of(dm, "test")[:3] == ["a superb , moving film .", "dull and boring , i hated it",
                                        "loved it ! brilliant ."]
    assert labels_of(dm, "test") == ["pos", "neg", "pos", "neg", "pos", "neg"]


def test_tsv_without_header_integer_labels_and_fields_by_index(tmp_path):
    rows = [(y, t) for t, y in ROWS]
    ints = [(1 if y == "pos" else 0, t) for y, t in rows]
    train = write_csv(tmp_path / "train.tsv", ints, header=None, delimiter="\t")
    val = write_csv(tmp_path / "val.tsv", ints[:4], header=None, delimiter="\t")
    dm = ready(tmp_path, train_file=str(train), val_file=str(val), header=False, text_field=1, label_field=0)
    assert dm.labels == ["0", "1"] and len(dm.datasets["val"]) == 4 and "test" not in dm.datasets
    assert labels_of(dm, "val") == ["1", "0", "1", "0"]


def test_numeric_labels_sort_numerically_and_names_can_be_given(tmp_path):
    rows = [(t, str(k % 11)) for k, (t, _) in enumerate(ROWS * 2)]
    train = write_csv(tmp_path / "train.csv", rows)
    dm = ready(tmp_path, train_file=str(train))
    assert dm.labels == [str(i) for i in range(11)]  # 0, 1, ..., 10 (not 0, 1, 10, 2)
    two = write_csv(tmp_path / "two.csv", [(t, "1" if y == "pos" else "0") for t, y in ROWS])
    dm = ready(tmp_path / "b", train_file=str(two), label_names={0: "negative", 1: "positive"})
    assert dm.labels == ["negative", "positive"]


def test_jsonl_multi_column_text_and_gzip(tmp_path):
    rows = [(f"Title {k}", t, y) for k, (t, y) in enumerate(ROWS)]
    train = tmp_path / "train.jsonl.gz"
    train.write_bytes(gzip.compress("".join(json.dumps({"title": a, "body": b, "y": c}) + "\n"
                                            for a, b, c in rows).encode()))
    dm = ready(tmp_path, train_file=str(train), text_field=["title", "body"], label_field="y")
    first = [texts_of(dm, s) for s in ("train", "val")]
    assert "title 0 a superb , moving film ." in first[0] + first[1]


def test_json_array_and_booleans_as_labels(tmp_path):
    data = [{"text": t, "label": y == "pos"} for t, y in ROWS]
    train = tmp_path / "train.json"
    train.write_text(json.dumps(data), encoding="utf-8")
    assert ready(tmp_path, train_file=str(train)).labels == ["false", "true"]


def test_per_file_field_names_as_in_sst2(tmp_path):
    train = write_csv(tmp_path / "train.tsv", [(y, t) for t, y in ROWS], header=("label", "sentence"),
                      delimiter="\t")
    dev = write_csv(tmp_path / "dev.tsv", [(y, t) for t, y in ROWS[:4]], header=("label", "content"),
                    delimiter="\t")
    dm = ready(tmp_path, train_file=str(train), val_file=str(dev),
               text_field={"train": "sentence", "val": "content"})
    assert texts_of(dm, "val")[0] == "a superb , moving film ."


def test_german_tokenizer_splits_like_spacy_de(tmp_path):
    rows = [("Das war's, oder?", "a"), ("Ich mag's nicht.", "b")] * 6
    train = write_csv(tmp_path / "train.csv", rows)
    dm = ready(tmp_path, train_file=str(train), tokenizer="spacy:de", lowercase=False)
    import spacy

    expected = [t.text for t in spacy.blank("de").tokenizer("Das war's, oder?")]
    assert expected != ["Das", "war's,", "oder?"]  # a real difference from whitespace splitting
    assert all(t in dm.vocab for t in expected) and dm.metadata.tokenizer == "spacy:de"
    ws = ready(tmp_path / "ws", train_file=str(train), tokenizer="whitespace", lowercase=False)
    assert "war's," in ws.vocab and ws.metadata.tokenizer == "whitespace"


def test_empty_texts_are_skipped_and_counted(tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", [*ROWS, ("", "pos"), ("   ", "neg")])
    with caplog.at_level(logging.WARNING):
        dm = ready(tmp_path, train_file=str(train))
    assert "2 rows with an empty text skipped" in caplog.text
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == len(ROWS)


def test_cache_is_reused_and_keyed_by_the_tokenizer(tmp_path, caplog):
    train = write_csv(tmp_path / "train.csv", ROWS)
    a = ready(tmp_path, train_file=str(train))
    b = ready(tmp_path, train_file=str(train))
    c = ready(tmp_path, train_file=str(train), tokenizer="whitespace")
    assert a.cache_path() == b.cache_path() != c.cache_path()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted({a.cache_path().name,
                                                                               c.cache_path().name})


@pytest.mark.parametrize("make, kw, error, message", [
    (lambda p: p / "nope.csv", {}, DataError, r"nope.csv not found"),
    (lambda p: write_csv(p / "train.txt", ROWS), {}, ConfigError, r"Cannot tell the format of .*train.txt"),
    (lambda p: write_csv(p / "train.csv", ROWS), {"format": "xml"}, ConfigError, r"data.format must be one of"),
    (lambda p: write_csv(p / "train.csv", ROWS), {"text_field": "review"}, DataError,
     r"no column 'review' for the text; the header has 'text', 'label'"),
    (lambda p: write_csv(p / "train.csv", ROWS), {"label_field": "sentiment"}, DataError,
     r"no column 'sentiment' for the label"),
    (lambda p: write_csv(p / "train.csv", ROWS), {"label_field": 5}, DataError,
     r"label column index 5 is out of range; the file has 2 columns"),
    (lambda p: write_csv(p / "train.csv", ROWS, header=None), {"header": False}, ConfigError,
     r"give data.text_field and data.label_field as 0-based column indices"),
    (lambda p: append(write_csv(p / "train.csv", ROWS), "only one field\n"), {},
     DataError, r"train.csv:30: 1 fields, expected 2"),  # 24 rows, 4 of them over 2 lines
    (lambda p: append(write_jsonl(p / "train.jsonl", ROWS), '{"text": "x",\n'), {},
     DataError, r"train.jsonl:25: not valid JSON"),
    (lambda p: append(write_jsonl(p / "train.jsonl", ROWS), '["a", "b"]\n'), {},
     DataError, r"train.jsonl:25: a JSON list, not an object"),
    (lambda p: write_jsonl(p / "train.jsonl", ROWS, keys=("review", "label")), {}, DataError,
     r"train.jsonl:1: no key 'text'; the record has 'review', 'label'"),
    (lambda p: (p / "train.csv").write_bytes("text,label\ngood,pos\nmauvais caf\xe9,neg\n".encode("latin-1"))
     and p / "train.csv", {}, DataError, r"train.csv:3: not valid UTF-8 \(byte b'\\xe9' at byte 12 of the line\)"),
    (lambda p: (p / "train.csv").write_text("") or p / "train.csv", {}, DataError, r"train.csv is empty"),
    (lambda p: write_csv(p / "train.csv", []), {}, DataError, r"train.csv has no rows with a text"),
    (lambda p: write_csv(p / "train.csv", [(t, "pos") for t, _ in ROWS]), {}, DataError,
     r"every row has the label 'pos'; a classifier needs at least two classes"),
    (lambda p: write_csv(p / "train.csv", [*ROWS[:4], ("no label here", "")]), {}, DataError,
     r"train.csv:7: the label is empty"),  # the third row spans lines 4-5
])
def test_bad_input_is_one_sentence_naming_file_and_line(tmp_path, make, kw, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message):
        ready(tmp_path, train_file=str(path), **kw)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.pt"))  # no cache written


def test_label_in_test_that_train_lacks_names_it_file_and_line(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS)
    test = write_csv(tmp_path / "test.csv", [*ROWS[:3], ("so-so", "neutral")])
    with pytest.raises(DataError, match=r"test.csv:6: label 'neutral' does not occur in the training file"):
        ready(tmp_path, train_file=str(train), test_file=str(test))


def test_cli_errors_exit_2_without_traceback_or_cache(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS)
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), "data=text", f"data.train_file={train}",
           "data.text_field=review", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {train}: no column 'review' for the text; the header has 'text', 'label'; set data.text_field."]
    assert not list((tmp_path / "cache").glob("*.pt"))
    proc = subprocess.run(cmd[:3] + [f"hydra.run.dir={tmp_path / 'run2'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "error: data.train_file must be set" in proc.stderr  # ??? in text.yaml
