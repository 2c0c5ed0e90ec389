"""data=conll and the span task: files in IOB1 / IOB2 / BIOES, the scheme round trip through training, entity
scores equal to seqeval on a trained model's predictions, predict output, bad input, the real BTC files."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from hydra import compose, initialize_config_dir
from ner_fixtures import conll_text, make_conll_dir, read_gold
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities

from seqlab.data.conll import ConllDataModule
from seqlab.data.vocab import UNSEEN_LABEL
from seqlab.errors import ConfigError
from seqlab.inference import Predictor
from seqlab.tasks.schemes import Span, convert, find_violation, spans
from seqlab.tasks.spans import UNSEEN_START

BTC_DIR = REPO.parent / "shared" / "data" / "btc"


def ready(root: Path, tmp_path: Path, val: bool = True, **kw) -> ConllDataModule:
    files = {"train_file": str(root / "train.txt"), "test_file": str(root / "test.txt"),
             "val_file": str(root / "dev.txt") if val else None}
    dm = ConllDataModule(cache_dir=tmp_path / "cache", **{**files, **kw})
    dm.prepare_data()
    dm.setup()
    return dm


def label_lists(dm: ConllDataModule, split: str) -> list[list[int]]:
    ds = dm.datasets[split]
    return [ds[i]["label"].tolist() for i in range(len(ds))]


# -- data=conll --------------------------------------------------------------------------------------------------

def test_files_in_any_scheme_give_the_same_training_data(tmp_path):
    """The same entities written in IOB1, IOB2 and BIOES: identical labels and label ids, in the model's scheme."""
    got = {}
    for scheme in ("IOB1", "IOB2", "BIOES"):
        root = make_conll_dir(tmp_path / scheme, scheme)
        dm = ready(root, tmp_path, tag_scheme=scheme, train_scheme="BIOES")
        got[scheme] = (dm.labels, {s: label_lists(dm, s) for s in ("train", "val", "test")}, dm.vocab.itos)
        assert dm.metadata.task == "spans"
        assert dm.metadata.task_options == {"data_scheme": scheme, "model_scheme": "BIOES"}
    assert got["IOB1"] == got["IOB2"] == got["BIOES"]
    labels, ids, _ = got["IOB2"]
    assert labels == ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-ORG", "I-ORG", "E-ORG", "S-ORG",
                      "B-PER", "I-PER", "E-PER", "S-PER"]
    # the ids are the file's tags converted to BIOES (an independent reading of the IOB2 file)
    _, gold = read_gold(tmp_path / "IOB2/test.txt")
    assert [[labels[i] for i in row] for row in ids["test"]] == [convert(g, "BIOES") for g in gold]


def test_iob2_training_keeps_iob2_labels(tmp_path):
    dm = ready(make_conll_dir(tmp_path / "d"), tmp_path, train_scheme="IOB2")
    assert dm.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    _, gold = read_gold(tmp_path / "d/train.txt")
    assert sorted(sum(([dm.labels[i] for i in r] for r in label_lists(dm, "train")), [])) == sorted(sum(gold, []))


def test_comments_docstart_and_other_columns(tmp_path):
    plain = ready(make_conll_dir(tmp_path / "plain"), tmp_path)
    root = make_conll_dir(tmp_path / "extra", comments=True, extra_column=True)
    text = (root / "train.txt").read_text()
    assert text.startswith("-DOCSTART-\tO\n\n# sent_id = 0\n") and "\tX\t" in text
    dm = ready(root, tmp_path, token_column=0, tag_column=2)
    assert {s: len(dm.datasets[s]) for s in dm.datasets} == {"train": 80, "val": 16, "test": 20}
    assert label_lists(dm, "train") == label_lists(plain, "train") and dm.vocab.itos == plain.vocab.itos
    assert ready(root, tmp_path, tag_column=-1).labels == plain.labels  # -1: the last column


def test_validation_carve_is_seeded_and_splits_the_training_file(tmp_path):
    root = make_conll_dir(tmp_path / "d")
    a, b = ready(root, tmp_path, val=False, seed=3), ready(root, tmp_path, val=False, seed=3)
    c = ready(root, tmp_path, val=False, seed=4)
    assert (len(a.datasets["train"]), len(a.datasets["val"])) == (72, 8)

    def sentences(dm, split):
        ds = dm.datasets[split]
        return [tuple(dm.full_itos[i] for i in ds[k]["forms"].tolist()) for k in range(len(ds))]

    tokens, _ = read_gold(root / "train.txt")
    assert sorted(sentences(a, "train") + sentences(a, "val")) == sorted(map(tuple, tokens))
    assert sentences(a, "val") == sentences(b, "val") and sentences(c, "val") != sentences(a, "val")


def test_entity_types_that_training_lacks_count_as_missed(tmp_path, caplog):
    root = make_conll_dir(tmp_path / "d")
    misc = [(["Nobel", "Prize", "for", "John"], [Span("MISC", 0, 2), Span("PER", 3, 4)]),
            (["Euro", "Cup", "World", "Cup", "!"], [Span("MISC", 0, 2), Span("MISC", 2, 4)])]  # adjacent MISC spans
    with open(root / "test.txt", "a", encoding="utf-8") as f:
        f.write(conll_text(misc))
    with caplog.at_level(logging.WARNING):
        dm = ready(root, tmp_path)
    assert "Entity types absent from the training file" in caplog.text and "MISC (3 spans)" in caplog.text
    assert not any("MISC" in t for t in dm.labels)
    rows = label_lists(dm, "test")[-2:]
    per = dm.labels.index("S-PER")
    assert rows == [[UNSEEN_START, UNSEEN_LABEL, 0, per], [UNSEEN_START, UNSEEN_LABEL, UNSEEN_START, UNSEEN_LABEL, 0]]
    # scores: the MISC spans are gold spans no prediction matches, exactly as seqeval counts them
    task = dm.metadata.make_task()
    ev = task.evaluator("test")
    preds = torch.tensor([[0, 0, 0, per, 0], [dm.labels.index("B-LOC"), dm.labels.index("E-LOC"), 0, 0, 0]])
    gold = torch.tensor([rows[0] + [-100], rows[1]])
    task.update(ev, preds, {"labels": gold, "lengths": torch.tensor([4, 5])})
    scores = ev.compute()
    gold_tags = [["B-MISC", "I-MISC", "O", "B-PER"], ["B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"]]
    pred_tags = [["O", "O", "O", "B-PER"], ["B-LOC", "I-LOC", "O", "O", "O"]]
    assert float(scores["recall"]) == pytest.approx(recall_score(gold_tags, pred_tags)) == 0.25
    assert float(scores["precision"]) == pytest.approx(precision_score(gold_tags, pred_tags)) == 0.5
    assert float(scores["f1"]) == pytest.approx(f1_score(gold_tags, pred_tags))
    assert (int(scores["missed"]), int(scores["wrong_type"])) == (2, 1)  # the LOC prediction has MISC's bounds
    assert "f1_MISC" not in scores and float(scores["acc"]) == pytest.approx(3 / 9)  # MISC tokens: errors


def test_a_checkpoints_labels_keep_the_codes_of_types_training_lacks(tmp_path):
    """Data encoded with another model's labels (eval.py): its other tags become UNSEEN_LABEL, the codes of a span
    type this training file lacks stay."""
    root = make_conll_dir(tmp_path / "d")
    with open(root / "test.txt", "a", encoding="utf-8") as f:
        f.write(conll_text([(["Nobel", "Prize", "!"], [Span("MISC", 0, 2)])]))
    small = make_conll_dir(tmp_path / "small")
    text = (small / "train.txt").read_text().replace("-ORG", "-PER")  # a model that never saw ORG
    (small / "train.txt").write_text(text, encoding="utf-8")
    given = ready(small, tmp_path).metadata
    dm = ConllDataModule(cache_dir=tmp_path / "cache", train_file=str(root / "train.txt"),
                         test_file=str(root / "test.txt"), metadata=given)
    dm.prepare_data()
    dm.setup()
    assert dm.labels == given.labels and not any("ORG" in t for t in dm.labels)
    rows = label_lists(dm, "test")
    assert rows[-1] == [UNSEEN_START, UNSEEN_LABEL, 0]
    _, gold = read_gold(root / "test.txt")
    org = [i for g, r in zip(gold[:-1], rows) for t, i in zip(g, r) if "ORG" in t]
    assert org and set(org) == {UNSEEN_LABEL}


def test_no_entity_in_training_is_a_warning(tmp_path, caplog):
    root = make_conll_dir(tmp_path / "d")
    (root / "train.txt").write_text("the\tO\nsky\tO\n\nis\tO\nblue\tO\n\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        dm = ready(root, tmp_path)
    assert "has no entity (every tag is O): the model can only predict O" in caplog.text
    assert dm.labels == ["O"]


def test_merge_at_mentions_joins_a_lone_at_with_the_next_entity(tmp_path):
    root = make_conll_dir(tmp_path / "d")
    tokens, gold = read_gold(root / "test.txt")
    shipped = sum(len(spans(g)) for g in gold)
    ats = sum(t[i] == "@" and g[i] == "B-PER" and g[i + 1] == "B-PER" for t, g in zip(tokens, gold)
              for i in range(len(t) - 1))
    assert ats > 0
    dm = ready(root, tmp_path, merge_at_mentions=True, train_scheme="IOB2")
    merged = [[dm.labels[i] for i in row] for row in label_lists(dm, "test")]
    assert sum(len(spans(m)) for m in merged) == shipped - ats
    first = next(k for k, t in enumerate(tokens) if "@" in t)
    at = tokens[first].index("@")
    assert Span("PER", at, at + 2) in spans(merged[first])


@pytest.mark.parametrize("kw, message", [
    ({"tag_scheme": "BILOU"}, "data.tag_scheme must be IOB1, IOB2 (or BIO) or BIOES (or IOBES); got 'BILOU'"),
    ({"train_scheme": "xml"}, "model.tag_scheme must be IOB1, IOB2 (or BIO) or BIOES (or IOBES); got 'xml'"),
    ({"task": "tagging"}, "data=conll reads entity spans, so data.task must be spans"),
    ({"tag_column": "last"}, "data.tag_column must be a 0-based column index"),
    ({"merge_at_mentions": "yes"}, "data.merge_at_mentions must be true or false"),
])
def test_config_errors(tmp_path, kw, message):
    with pytest.raises(ConfigError) as exc:
        ready(make_conll_dir(tmp_path / "d"), tmp_path, **kw)
    assert message in str(exc.value)


BAD_FILES = {  # name: (text, the error after "error: <path>:")
    "columns.txt": ("John\tB-PER\nsaid\n", "2: expected 2 columns (as on line 1, the first token line), found 1"),
    "eper.txt": ("Mary\tB-PER\nSmith\tE-PER\n", "2: 'E-PER' is not an IOB2 tag (IOB2 uses O, B-TYPE, I-TYPE)"),
    "inside.txt": ("a\tO\n\nthe\tO\nYork\tI-LOC\n", "4: 'I-LOC' cannot come after 'O': in IOB2 an I-X tag continues"),
}


def test_bad_files_are_one_error_line_naming_file_and_line(tmp_path):
    """Each bad training file (a Hydra multirun: one job each) and a tag column out of range: `error: file:line`,
    exit code 2, no traceback, no cache."""
    root = make_conll_dir(tmp_path / "d")
    for name, (text, _) in BAD_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    base = ["data=conll", f"data.test_file={root / 'test.txt'}", "trainer.enable_progress_bar=false"]
    cli = [sys.executable, str(REPO / "scripts/train.py")]
    proc = subprocess.run([*cli, "-m", *base, f"data.train_file={','.join(str(tmp_path / n) for n in BAD_FILES)}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(errors) == len(BAD_FILES) + 1 and errors[-1].startswith("error: 3 of 3 jobs failed")
    for line, (name, (_, message)) in zip(errors, BAD_FILES.items()):
        assert line.startswith(f"error: {tmp_path / name}:{message}"), line
    proc = subprocess.run([*cli, *base, f"data.train_file={root / 'train.txt'}", "data.tag_column=5",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {root / 'train.txt'}:1: data.tag_column=5 is out of range: the file has 2 columns (0 to 1, or -1 to "
        "-2 from the end); set data.tag_column to one of those."]
    assert not list((tmp_path / "cache").glob("*.pt"))


# -- trained on the fixture: BIOES inside, IOB2 outside ------------------------------------------------------------

HEADS = ("linear", "crf")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """(data folder, head -> metrics) of tiny models trained in BIOES on IOB2 files, one per head."""
    from omegaconf import OmegaConf

    from seqlab.train import train

    top = tmp_path_factory.mktemp("ner")
    root = make_conll_dir(top / "data")
    out = {}
    for head in HEADS:
        with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
            cfg = compose("train", overrides=[
                "data=conll", f"data.train_file={root / 'train.txt'}", f"data.val_file={root / 'dev.txt'}",
                f"data.test_file={root / 'test.txt'}", "data.tokenizer=whitespace", f"model.head={head}",
                "model.tag_scheme=BIOES", "model.embedding_dim=16", "model.hidden_size=16", "model.optimizer.lr=0.02",
                "trainer.max_epochs=8", "trainer.enable_progress_bar=false", "threads=1",
                f"paths.cache_dir={top / 'cache'}", f"paths.output_dir={top / head}"])
        out[head] = train(cfg)
        (top / head / ".hydra").mkdir()
        OmegaConf.save(cfg, top / head / ".hydra/config.yaml")  # what a Hydra run leaves for eval.py
    return root, out


@pytest.mark.parametrize("head", HEADS)
def test_metrics_json_has_the_entity_scores_and_val_f1_selects(trained, head):
    _, runs = trained
    written = json.loads((Path(runs[head]["run_dir"]) / "metrics.json").read_text())
    assert written["monitor"] == "val_f1" and written["monitor_mode"] == "max"
    assert {"test_f1", "test_precision", "test_recall", "test_f1_LOC", "test_f1_ORG", "test_f1_PER",
            "test_acc"} <= set(written)
    assert Path(written["best_checkpoint"]).name.endswith(f"-f1{written['val_f1']:.4f}.ckpt")


@pytest.mark.parametrize("head", HEADS)
def test_scores_equal_seqeval_on_the_predictions_in_the_files_scheme(trained, head):
    """The checkpoint alone predicts the raw test sentences (another code path); its IOB2 tags, scored by seqeval,
    give metrics.json's figures."""
    root, runs = trained
    m = runs[head]
    tokens, gold = read_gold(root / "test.txt")
    predictor = Predictor.from_checkpoint(m["best_checkpoint"])
    records = [p.record for p in predictor.predict([" ".join(t) for t in tokens])]
    tags = [r["tags"] for r in records]
    assert [r["tokens"] for r in records] == tokens
    assert all(find_violation(t, "IOB2") is None for t in tags)  # written in the file's scheme
    # F1 by hand from seqeval's entity lists: 2 * exact matches / (gold + predicted); at least one match, so the
    # comparisons below are not between zeros
    gold_set = {(k, *e) for k, g in enumerate(gold) for e in get_entities(g)}  # (sentence, type, first, last)
    pred_set = {(k, *e) for k, p in enumerate(tags) for e in get_entities(p)}
    hits = len(gold_set & pred_set)
    assert hits > 0
    assert m["test_f1"] == pytest.approx(2 * hits / (len(gold_set) + len(pred_set)), abs=1e-6)
    assert m["test_f1"] == pytest.approx(f1_score(gold, tags), abs=1e-6)
    assert m["test_precision"] == pytest.approx(precision_score(gold, tags), abs=1e-6)
    assert m["test_recall"] == pytest.approx(recall_score(gold, tags), abs=1e-6)
    report = classification_report(gold, tags, output_dict=True, zero_division=0)
    for t in ("LOC", "ORG", "PER"):
        assert m[f"test_f1_{t}"] == pytest.approx(report[t]["f1-score"], abs=1e-6)
    flat = [(a, b) for g, p in zip(gold, tags) for a, b in zip(g, p)]  # token accuracy on the IOB2 tags
    assert m["test_acc"] == pytest.approx(sum(a == b for a, b in flat) / len(flat), abs=1e-6)
    for r in records:
        assert r["entities"] == [{"text": " ".join(r["tokens"][s.start:s.end]), "type": s.type, "start": s.start,
                                  "end": s.end} for s in spans(r["tags"])]


def test_test_report_in_tensorboard(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, runs = trained
    _, gold = read_gold(root / "test.txt")
    found = {}
    for f in (Path(runs["crf"]["run_dir"]) / "tensorboard").rglob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f), size_guidance={"images": 0, "tensors": 0})
        ea.Reload()
        found.update({t: ea for t in ea.Tags()["images"] + ea.Tags()["tensors"]})
    assert "test/per_type_f1" in found
    table = found["test/span_errors/text_summary"].Tensors("test/span_errors/text_summary")[0]
    text = table.tensor_proto.string_val[0].decode()
    assert f"| (gold spans) | {sum(len(spans(g)) for g in gold)} | |" in text
    assert [line.split(" | ")[0].strip("| ") for line in text.splitlines()[2:6]] == [
        "missed", "spurious", "wrong type", "wrong boundary"]


def test_predict_cli_prints_entities_in_json_and_token_tags_in_text(trained, capsys):
    import importlib.util

    _, runs = trained
    spec = importlib.util.spec_from_file_location("predict_cli", REPO / "scripts/predict.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    ckpt = runs["crf"]["best_checkpoint"]
    sentence_ = "Mary lives in New York ."
    assert cli.main([f"ckpt={ckpt}", f"text={sentence_}", "format=json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) == {"tokens", "tags", "entities"} and record["tokens"] == sentence_.split()
    assert record == Predictor.from_checkpoint(ckpt).predict([sentence_])[0].record
    assert record["entities"]
    for e in record["entities"]:  # token offsets, end exclusive
        assert set(e) == {"text", "type", "start", "end"}
        assert " ".join(record["tokens"][e["start"]:e["end"]]) == e["text"]
    assert cli.main([f"ckpt={ckpt}", f"text={sentence_}"]) == 0
    assert capsys.readouterr().out.strip() == " ".join(f"{t}/{g}" for t, g in zip(record["tokens"], record["tags"]))


def test_evaluate_reproduces_the_runs_entity_scores(trained):
    from omegaconf import OmegaConf

    from seqlab.evaluate import evaluate

    _, runs = trained
    m = runs["crf"]
    cfg = OmegaConf.load(REPO / "configs/eval.yaml")
    del cfg["hydra"], cfg["defaults"]
    cfg.ckpt = m["best_checkpoint"]
    cfg.paths.cache_dir = str(Path(m["run_dir"]).parent / "cache")
    got = evaluate(cfg)
    assert {k: got[k] for k in ("test_f1", "test_precision", "test_f1_PER", "test_acc")} == {
        k: m[k] for k in ("test_f1", "test_precision", "test_f1_PER", "test_acc")}


# -- the real Broad Twitter Corpus (../shared/data/btc) --------------------------------------------------------------

needs_btc = pytest.mark.skipif(not (BTC_DIR / "btc.train").exists(), reason="Broad Twitter Corpus not in "
                                                                             "../shared/data/btc")
BTC_ENTITIES = {False: {"train": 8_779, "val": 1_730, "test": 4_376},  # as shipped (the data README's counts)
                True: {"train": 7_364, "val": 1_126, "test": 2_996}}  # data.merge_at_mentions=true


@needs_btc
@pytest.mark.parametrize("merge", [False, True])
def test_real_btc_through_data_btc(tmp_path, merge):
    from seqlab.train import build_datamodule

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["data=btc", f"data.root={BTC_DIR}", f"data.merge_at_mentions={merge}",
                                          f"paths.cache_dir={tmp_path / 'cache'}"])
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    assert dm.labels == ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-ORG", "I-ORG", "E-ORG", "S-ORG",
                         "B-PER", "I-PER", "E-PER", "S-PER"]  # model.tag_scheme's default, BIOES
    assert dm.metadata.dataset == "btc" and dm.metadata.task_options == {"data_scheme": "IOB2", "model_scheme": "BIOES"}
    counts = {s: sum(len(spans(row)) for row in ([dm.labels[i] for i in r] for r in label_lists(dm, s)))
              for s in ("train", "val", "test")}
    assert counts == BTC_ENTITIES[merge]


@needs_btc
@pytest.mark.slow
def test_real_btc_recipe_trains_and_scores(tmp_path):
    """experiment=btc_cpu on the real files, 60 training batches: metrics.json's entity F1 is seqeval's on the tested
    checkpoint's decoded test tweets, one at a time, in the files' scheme (IOB2)."""
    from seqlab.evaluate import load_module
    from seqlab.train import build_datamodule, train

    glove = REPO.parent / "shared/data/glove/glove.6B.50d.txt.gz"
    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=btc_cpu", f"data.root={BTC_DIR}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.output_dir={tmp_path / 'run'}", "trainer.max_epochs=1", "trainer.limit_train_batches=60",
            "trainer.enable_progress_bar=false", "threads=1",
            f"model.vectors={glove if glove.is_file() else 'null'}"])
    metrics = train(cfg)
    assert metrics["monitor"] == "val_f1"
    assert {"test_f1_PER", "test_f1_LOC", "test_f1_ORG", "test_precision", "test_recall"} <= set(metrics)
    model, _ = load_module(torch.load(metrics["best_checkpoint"], weights_only=True))
    dm = build_datamodule(cfg)
    dm.setup()
    ds, collate = dm.datasets["test"], dm.test_dataloader().collate_fn
    # the test tweets and their IOB2 tags, read naively (a line of spaces, once in btc.test, ends a tweet too)
    blocks = re.split(r"\n[ \t]*\n", (BTC_DIR / "btc.test").read_text(encoding="utf-8").strip())
    rows = [[line.split("\t") for line in block.split("\n")] for block in blocks]
    tokens, gold = [[r[0] for r in b] for b in rows], [[r[-1] for r in b] for b in rows]
    assert len(ds) == len(gold) == 2_001  # the corpus's test tweets
    tags = []
    with torch.no_grad():
        for i in range(len(ds)):
            b = collate([ds[i]])
            scores = model.net(b["tokens"], b["lengths"], b.get("chars"))
            pred = model.net.head.decode(scores, b["lengths"])
            tags.append(model.task.record(tokens[i], pred[0], pred[0].float())["tags"])
    assert metrics["test_f1"] == pytest.approx(f1_score(gold, tags), abs=1e-6)
    assert metrics["test_precision"] == pytest.approx(precision_score(gold, tags), abs=1e-6)


def test_per_type_figure_and_tables():
    from seqlab.models import figures

    tp, fp, fn = torch.tensor([30, 10, 50]), torch.tensor([5, 8, 10]), torch.tensor([10, 20, 5])
    fig = figures.per_type_f1_figure(["LOC", "ORG", "PER"], tp, fp, fn)
    bars = [round(b.get_height(), 4) for b in fig.axes[0].patches]
    # per score, types by gold count (PER 55, LOC 40, ORG 30): precision, then recall, then F1
    assert bars == [round(x, 4) for x in (50 / 60, 30 / 35, 10 / 18, 50 / 55, 30 / 40, 10 / 30,
                                          2 * 50 / 115, 2 * 30 / 75, 2 * 10 / 48)]
    table = figures.per_type_table(["LOC", "ORG", "PER"], tp, fp, fn).splitlines()
    assert table[2] == "| PER | 55 | 60 | 50 | 0.8333 | 0.9091 | 0.8696 |" and table[4].startswith("| ORG | 30 | 18 |")
    errors = figures.span_error_table({"missed": 3, "spurious": 1, "wrong_type": 2, "wrong_boundary": 0}, 10, 9)
    assert "| wrong type | 2 |" in errors and errors.endswith("| (predicted spans) | 9 | |")
