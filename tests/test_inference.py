"""Evaluate and predict with fixture-trained checkpoints: both tasks, both LSTM backends, the CLIs and bad input.

One multirun of scripts/train.py trains the four models once for the module (tiny sizes, a few seconds each).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, make_imdb_tree, make_pos_dir, raw_imdb_test, raw_pos_test
from omegaconf import OmegaConf

from seqlab.errors import ConfigError, DataError
from seqlab.evaluate import apply_overrides, evaluate, load_module, run_config
from seqlab.inference import Predictor, read_lines
from seqlab.train import build_datamodule

MAX_LENGTH = 40  # longer than every fixture review, so only the prediction tests' long input is truncated
TRAIN = ["data.download=false", "data.batch_size=8", f"data.max_length={MAX_LENGTH}", "data.lowercase=true",
         "data.tokenizer_workers=1", "model.embedding_dim=16", "model.hidden_size=16", "model.pooling=mean",
         "model.optimizer.lr=0.1", "trainer.max_epochs=4", "trainer.enable_progress_bar=false", "threads=1"]
MODELS = [(d, b) for d in ("imdb", "pos") for b in ("torch", "custom")]


@pytest.fixture(scope="module")
def top(tmp_path_factory) -> Path:
    """A folder with the data (data/), the processed-data cache (cache/) and the runs (runs/<job>/)."""
    return tmp_path_factory.mktemp("inference")


@pytest.fixture(scope="module")
def runs(top) -> dict[tuple[str, str], Path]:
    """(data, backend) -> run directory, trained in one `scripts/train.py -m` call."""
    make_imdb_tree(top / "data/imdb", n_per_class=40)
    make_pos_dir(top / "data/ud_english_ewt")
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(top / "cache"), "SEQLAB_DATA_DIR": str(top / "data"),
           "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO / "scripts/train.py"), "-m", "data=imdb,pos", "backend=torch,custom", *TRAIN,
           f"hydra.sweep.dir={top / 'runs'}", "hydra.sweep.subdir=${hydra.job.num}"]
    proc = subprocess.run(cmd, cwd=top, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    out = {}
    for run in (top / "runs").iterdir():
        if (run / "metrics.json").is_file():
            over = dict(o.split("=", 1) for o in OmegaConf.load(run / ".hydra/overrides.yaml"))
            out[over["data"], over["backend"]] = run
    assert sorted(out) == sorted(MODELS)
    return out


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def eval_cfg(top: Path, **kw):
    """configs/eval.yaml with `kw` set; the run's SEQLAB_* folders given as paths.* (this process has no env)."""
    cfg = OmegaConf.load(REPO / "configs/eval.yaml")
    del cfg["hydra"], cfg["defaults"]
    kw = {"paths.cache_dir": str(top / "cache"), "paths.data_dir": str(top / "data"), **kw}
    for key, value in kw.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def load_predict_cli():
    spec = importlib.util.spec_from_file_location("predict_cli", REPO / "scripts/predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


# -- evaluate ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, backend", MODELS)
def test_evaluate_reproduces_the_runs_metrics(top, runs, data, backend):
    run = runs[data, backend]
    m = metrics_of(run)
    test = evaluate(eval_cfg(top, ckpt=m["best_checkpoint"]))
    assert test["test_acc"] == m["test_acc"] and test["test_loss"] == m["test_loss"]
    assert json.loads(Path(test["written_to"]).read_text())["test_acc"] == m["test_acc"]
    assert Path(test["written_to"]).parent == run / "checkpoints"
    val = evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], split="val"))
    assert val["val_acc"] == m["val_acc"]  # the best checkpoint was chosen on exactly this number
    if data == "pos":
        assert test["test_oov_acc"] == m["test_oov_acc"]


def test_eval_cli_with_another_cache_and_cwd(top, runs, tmp_path):
    m = metrics_of(runs["imdb", "torch"])
    env = {**os.environ, "SEQLAB_DATA_DIR": str(top / "data"), "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts/eval.py"), f"ckpt={m['last_checkpoint']}",
                           f"paths.cache_dir={tmp_path / 'cache'}", f"output={out}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = json.loads(proc.stdout)
    assert printed["split"] == "test" and json.loads(out.read_text())["test_acc"] == printed["test_acc"]
    assert list((tmp_path / "cache").glob("imdb-*.pt"))  # re-prepared in the given cache
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "metrics.json"]  # no Hydra litter


def test_evaluate_on_other_data_uses_the_checkpoint_vocabulary(top, runs, tmp_path, caplog):
    m = metrics_of(runs["imdb", "torch"])
    make_imdb_tree(tmp_path / "other", n_per_class=15, seed=7)  # same words, other frequencies: another order
    with caplog.at_level(logging.WARNING):
        out = evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], **{"data.root": str(tmp_path / "other")},
                                output=str(tmp_path / "m.json")))
    assert "encoded with the checkpoint's" in caplog.text
    # the same number as predicting the other data's raw test texts with the checkpoint alone
    texts, gold = raw_imdb_test(tmp_path / "other")
    preds = Predictor.from_checkpoint(m["best_checkpoint"]).predict(texts)
    assert out["examples"] == 30 == len(gold)
    assert out["test_acc"] == pytest.approx(sum(p.record["label"] == g for p, g in zip(preds, gold)) / 30, abs=1e-7)


def test_evaluate_reports_user_errors(top, runs, tmp_path):
    m = metrics_of(runs["imdb", "torch"])
    with pytest.raises(ConfigError, match="split must be one of test, val"):
        evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], split="train"))
    moved = tmp_path / "model.ckpt"
    moved.write_bytes(Path(m["best_checkpoint"]).read_bytes())
    with pytest.raises(ConfigError, match="No training config at .*run_config=PATH"):
        evaluate(eval_cfg(top, ckpt=str(moved)))
    with pytest.raises(ConfigError, match="data.test_file does not apply"):
        evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], **{"data.test_file": "x.conllu"}))
    with pytest.raises(ConfigError, match=r"trainer.accelerator='foo' is rejected by pytorch_lightning.Trainer"):
        evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], accelerator="foo"))
    with pytest.raises(ConfigError, match="threads must be a positive integer, auto or null, got 0"):
        evaluate(eval_cfg(top, ckpt=m["best_checkpoint"], threads=0))  # not taken as "unset"
    out = evaluate(eval_cfg(top, ckpt=str(moved), run_config=str(runs["imdb", "torch"] / ".hydra/config.yaml"),
                            output=str(tmp_path / "m.json")))
    assert out["test_acc"] == m["test_acc"]


# -- predict ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["imdb", "pos"])
def test_predicting_raw_test_text_gives_the_test_accuracy(top, runs, data):
    """Raw text -> tokenize -> vocabulary -> model agrees with the datamodule's test batches, example by example."""
    m = metrics_of(runs[data, "torch"])
    predictor = Predictor.from_checkpoint(m["best_checkpoint"])
    root = top / "data"
    if data == "imdb":
        texts, gold = raw_imdb_test(root / "imdb")
        preds = predictor.predict(texts, batch_size=7)
        right, total = sum(p.record["label"] == g for p, g in zip(preds, gold)), len(gold)
        # each probability is the trained module's softmax on the datamodule's own encoding of that review
        model, _ = load_module(torch.load(m["best_checkpoint"], weights_only=True))
        run = run_config(Path(m["best_checkpoint"]), None)
        apply_overrides(run, eval_cfg(top))
        dm = build_datamodule(run)
        dm.setup()
        ds, collate = dm.datasets["test"], dm.test_dataloader().collate_fn
        with torch.no_grad():
            ref = [model(**{k: v for k, v in collate([ds[i]]).items() if k in ("tokens", "lengths")}).softmax(-1)
                   .max().item() for i in range(len(ds))]
        assert [p.record["probability"] for p in preds] == pytest.approx(ref, abs=1e-6)
    else:
        texts, gold = raw_pos_test(root / "ud_english_ewt")
        preds = predictor.predict(texts, batch_size=7)
        assert all(len(p.record["tags"]) == len(g) for p, g in zip(preds, gold))
        right = sum(t == g for p, gs in zip(preds, gold) for t, g in zip(p.record["tags"], gs))
        total = sum(map(len, gold))
    assert right / total == pytest.approx(m["test_acc"], abs=1e-6)


def test_batched_prediction_keeps_input_order_and_values(runs):
    predictor = Predictor.from_checkpoint(metrics_of(runs["imdb", "torch"])["best_checkpoint"])
    texts = ["Superb, wonderful, brilliant: I loved it.", "Awful, boring, terrible: I hated it.", "", "the plot " * 12,
             "Loved it!"]
    batched = predictor.predict(texts, batch_size=2)
    for text, p in zip(texts, batched):
        (alone,) = predictor.predict([text])
        assert p.record["label"] == alone.record["label"]
        assert p.record["probability"] == pytest.approx(alone.record["probability"], abs=1e-5)
    assert batched[2].record == {"label": None, "probability": None} and batched[2].tokens == []
    assert batched[0].record["label"] == "pos" and batched[1].record["label"] == "neg"


def test_streaming_through_a_tokenizer_process_equals_predict(runs):
    """predict.py's pipeline: chunks tokenized in a child process while the model runs on the previous chunk."""
    from seqlab.data.tokenize import TokenizerProcess

    predictor = Predictor.from_checkpoint(metrics_of(runs["pos", "torch"])["best_checkpoint"])
    texts = [f"The dog {i} sees a cat." if i % 4 else "" for i in range(23)]
    proc = TokenizerProcess()
    try:
        streamed = list(predictor.predict_stream(iter(texts), batch_size=4, chunk=5, tokenizer=proc))
    finally:
        proc.close()
    assert [(p.tokens, p.record) for p in streamed] == [(p.tokens, p.record) for p in predictor.predict(texts)]
    assert streamed[1].tokens == ["The", "dog", "1", "sees", "a", "cat", "."] and streamed[0].tokens == []


def test_tagging_looks_up_lowercased_but_prints_the_original_tokens(runs, capsys):
    ckpt = metrics_of(runs["pos", "torch"])["best_checkpoint"]
    main = load_predict_cli()
    assert main([f"ckpt={ckpt}", "text=THE BIG DOG SEES A CAT.", "format=json"]) == 0
    upper = json.loads(capsys.readouterr().out)
    assert upper["tokens"] == ["THE", "BIG", "DOG", "SEES", "A", "CAT", "."]
    assert main([f"ckpt={ckpt}", "text=the big dog sees a cat."]) == 0
    lower = capsys.readouterr().out.split()
    assert [w.split("/")[1] for w in lower] == upper["tags"] and lower[0].startswith("the/")


HEAVY = {"pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf", "torchmetrics"}


def test_predict_cli_streams_stdin_without_touching_any_dataset(runs, tmp_path):
    """The real script in a fresh process: JSON lines from stdin; no datamodule imported, no cache created."""
    ckpt = metrics_of(runs["imdb", "torch"])["best_checkpoint"]
    probe = ("import os, runpy, sys\n"
             f"sys.argv = ['predict.py', 'ckpt={ckpt}', 'input=-', 'format=json']\n"
             "pid, real_exit = os.getpid(), os._exit\n"
             "def _exit(code):\n    if os.getpid() != pid:\n        real_exit(code)  # the tokenizer process\n"
             "    raise SystemExit(code)\n"
             "os._exit = _exit  # the script ends with os._exit; this probe has more to print\n"
             "code = 0\n"
             "try:\n    runpy.run_path(%r, run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print('MODULES', sorted(m for m in sys.modules if m.startswith('seqlab.data')), file=sys.stderr)\n"
             "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in HEAVY), file=sys.stderr)\n"
             "sys.exit(code)\n") % str(REPO / "scripts/predict.py")
    probe = f"HEAVY = {sorted(HEAVY)!r}\n" + probe
    env = {**os.environ, "SEQLAB_CACHE_DIR": str(tmp_path / "no-cache"), "SEQLAB_DATA_DIR": str(tmp_path / "none")}
    stdin = "Superb, wonderful, brilliant: I loved it.\n\nAwful, boring, terrible: I hated it.\n"
    proc = subprocess.run([sys.executable, "-c", probe], input=stdin, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in lines] == ["pos", None, "neg"]
    in_process = Predictor.from_checkpoint(ckpt).predict(stdin.splitlines())
    assert [r["probability"] for r in lines] == [p.record["probability"] for p in in_process]
    loaded, heavy = proc.stderr.split("MODULES", 1)[1].split("HEAVY", 1)
    assert heavy.split() == ["[]"]  # the predict path pays for none of Lightning, Hydra, omegaconf
    assert "seqlab.data.imdb" not in loaded and "seqlab.data.pos" not in loaded and "seqlab.data.base" not in loaded
    assert not (tmp_path / "no-cache").exists() and sorted(os.listdir(tmp_path)) == []


def test_predict_command_flushes_everything_before_its_fast_exit(runs, tmp_path):
    """The script as users run it: it ends with os._exit (no module teardown), so every line must still be written,
    through a pipe, and an error must still give exit code 2 and its message."""
    ckpt = metrics_of(runs["imdb", "torch"])["best_checkpoint"]
    texts = [f"Superb film number {i}, wonderful and brilliant." if i % 2 else f"Awful film {i}, boring." for i in
             range(3000)]  # two input chunks; ~60 kB of output, more than a pipe holds
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    cmd = [sys.executable, str(REPO / "scripts/predict.py"), f"ckpt={ckpt}", f"input={tmp_path / 'in.txt'}",
           "format=json", "threads=auto"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as for users
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = Predictor.from_checkpoint(ckpt).predict(texts)
    assert [r["label"] for r in records] == [p.record["label"] for p in expected]
    (tmp_path / "blank.txt").write_text("\n\n")  # an error after output: both must come out
    proc = subprocess.run(cmd[:3] + [f"input={tmp_path / 'blank.txt'}"], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 2 and proc.stdout == "\n\n" and proc.stderr.startswith("error: ")


def test_predict_threads_setting(runs, capsys, monkeypatch):
    """threads=auto takes the cores other processes leave free, measured over start-up; an integer is used as is."""
    from seqlab import threads

    ckpt = metrics_of(runs["imdb", "torch"])["best_checkpoint"]
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "allowed_cpus", lambda: [0, 1])
        monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 1.0)  # another process keeps a core busy
        assert run_cli(capsys, f"ckpt={ckpt}", "text=good")[0] == 0 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads.LoadProbe, "sample", lambda self: 0.0)  # idle
        assert run_cli(capsys, f"ckpt={ckpt}", "text=good", "threads=auto")[0] == 0 and torch.get_num_threads() == 2
        assert run_cli(capsys, f"ckpt={ckpt}", "text=good", "threads=1")[0] == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# -- bad input --------------------------------------------------------------------------------------------------------

def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = load_predict_cli()(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_bad_checkpoints_are_one_sentence_errors(tmp_path, capsys):
    code, _, err = run_cli(capsys, f"ckpt={tmp_path / 'nope.ckpt'}", "text=good")
    assert code == 2 and err.startswith("error: Checkpoint") and "not found" in err
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    code, _, err = run_cli(capsys, f"ckpt={tmp_path / 'notes.ckpt'}", "text=good")
    assert code == 2 and "is not a readable PyTorch checkpoint" in err
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "plain.ckpt")
    code, _, err = run_cli(capsys, f"ckpt={tmp_path / 'plain.ckpt'}", "text=good")
    assert code == 2 and "is not a seqlab checkpoint" in err and err.count("\n") == 1


def test_bad_arguments_and_empty_text(runs, tmp_path, capsys):
    ckpt = metrics_of(runs["imdb", "torch"])["best_checkpoint"]
    for argv, message in [
        (["text=good"], "No checkpoint given"),
        ([f"ckpt={ckpt}"], "Give either text="),
        ([f"ckpt={ckpt}", "text=  "], "text is empty"),
        ([f"ckpt={ckpt}", "text=<br /><br />"], "text has no tokens"),
        ([f"ckpt={ckpt}", "text=good", "colour=red"], "Unknown argument 'colour=red'"),
        ([f"ckpt={ckpt}", "text=good", "batch_size=0"], "batch_size must be a positive integer"),
        ([f"ckpt={ckpt}", "text=good", "threads=many"], "threads must be a positive integer, auto or null"),
        ([f"ckpt={ckpt}", f"input={tmp_path / 'missing.txt'}"], "not found"),
        ([f"ckpt={ckpt}", f"input={tmp_path}"], f"Input {tmp_path} is a folder; give input=FILE"),
        ([f"ckpt={ckpt}", "text=good", "device=gpu0"], "device must be cpu, cuda or cuda:N"),
    ]:
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and err.startswith("error: ") and message in err, (argv, err)
    # predict's own key, `tokenizer`, not the training config's data.tokenizer; the shared positive-integer check
    for argv, line in [
        (["tokenizer=bogus"], "tokenizer must be spacy, spacy:<language code> (e.g. spacy:de) or whitespace; got "
                              "'bogus'."),
        (["chunk=0"], "chunk must be a positive integer, got 0."),
        (["batch_size=-3"], "batch_size must be a positive integer, got '-3'."),
        (["threads=0"], "threads must be a positive integer, auto or null, got 0."),
    ]:
        assert run_cli(capsys, f"ckpt={ckpt}", "text=good", *argv) == (2, "", f"error: {line}\n"), argv
    code, out, err = run_cli(capsys, f"ckpt={ckpt}", "text=good", "tokenizer=spacy:zz")
    assert (code, out) == (2, "") and err.startswith("error: tokenizer=spacy:zz: spaCy ") and err.endswith(
        " has no language 'zz'; use a code from https://spacy.io/usage/models#languages (e.g. de, fr, es), or "
        "whitespace.\n"), err
    (tmp_path / "blank.txt").write_text("\n\n")
    code, out, err = run_cli(capsys, f"ckpt={ckpt}", f"input={tmp_path / 'blank.txt'}")
    assert code == 2 and "has no text to predict (2 lines, all empty)" in err and out == "\n\n"


def test_unknown_words_long_input_and_non_utf8_files(runs, tmp_path, capsys):
    ckpt = metrics_of(runs["imdb", "torch"])["best_checkpoint"]
    code, out, err = run_cli(capsys, f"ckpt={ckpt}", "text=Zyzzyva qwerty xylophone", "format=json")
    assert code == 0 and "warning: none of the 3 tokens of the text is in the model's vocabulary" in err
    # what the trained module itself says of three <unk> ids
    model, metadata = load_module(torch.load(ckpt, weights_only=True))
    with torch.no_grad():
        probs = model(torch.full((1, 3), metadata.unk_index), torch.tensor([3])).softmax(-1)[0]
    record = json.loads(out)
    assert record["label"] == metadata.labels[int(probs.argmax())]
    assert record["probability"] == pytest.approx(probs.max().item(), abs=1e-6)
    long = " ".join(["superb"] * 100)
    code, out, err = run_cli(capsys, f"ckpt={ckpt}", f"text={long}")
    assert code == 0 and f"has 100 tokens; only the first {MAX_LENGTH}" in err and out.startswith("pos ")
    (tmp_path / "latin1.txt").write_bytes("A superb film.\nUn film très ennuyeux.\n".encode("latin-1"))
    code, out, err = run_cli(capsys, f"ckpt={ckpt}", f"input={tmp_path / 'latin1.txt'}")
    assert code == 2 and "line 2 is not valid UTF-8 (byte 11)" in err and err.startswith("error: ")
    with pytest.raises(DataError, match="line 2 is not valid UTF-8"):
        list(read_lines(str(tmp_path / "latin1.txt")))
