"""Predict with a trained checkpoint: python scripts/predict.py ckpt=PATH text="..." | input=FILE|- [format=json]

Classification: the label and its probability per text. Tagging: the tokens (the model's tokenizer, or
`tokenizer=whitespace` for text that is already tokenized) with their tags. Spans (NER): the tokens, their tags in
the training files' scheme and the entities `{"text", "type", "start", "end"}` (token offsets, end exclusive) in
JSON; `token/TAG` in text. One output line per input line, in
order (an empty input line gives an empty result). Warnings (input cut to the model's max_length, text of unknown
words only) go to stderr as `warning: ...`; a problem with the checkpoint or input is one `error: ...` line on stderr
and exit code 2. Settings and defaults: configs/predict.yaml.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from pathlib import Path

import yaml

from seqlab.arguments import check_positive_int
from seqlab.errors import ConfigError, DataError, SeqlabError, report

# torch (via seqlab.inference) is imported in main(), once the arguments are known to be good.

DEFAULTS = Path(__file__).resolve().parents[1] / "configs" / "predict.yaml"


def parse(argv: list[str]) -> dict:
    """key=value arguments over configs/predict.yaml; values literal except the integer settings."""
    cfg = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))  # plain YAML: omegaconf costs ~0.3 s to import
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq or key not in cfg:
            raise ConfigError(f"Unknown argument {arg!r}; use key=value with keys {', '.join(cfg)} "
                              f"(see configs/predict.yaml).")
        cfg[key] = value
    if cfg["tokenizer"] in ("null", ""):
        cfg["tokenizer"] = None
    for key in ("batch_size", "chunk", "threads"):
        value = cfg[key]  # a string when given on the command line
        value = int(value) if isinstance(value, str) and value.isdigit() else None if value == "null" else value
        threads = key == "threads"
        check_positive_int(key, value, allow_none=threads, also=("auto",) if threads else ())
        cfg[key] = value
    if cfg["format"] not in ("text", "json"):
        raise ConfigError(f"format must be text or json, got {cfg['format']!r}.")
    if not cfg["ckpt"]:
        raise ConfigError("No checkpoint given; add ckpt=PATH (e.g. outputs/runs/<run>/checkpoints/last.ckpt).")
    if (cfg["text"] is None) == (cfg["input"] is None):
        raise ConfigError('Give either text="..." or input=FILE (one text per line; - for stdin), not both.')
    if cfg["text"] is not None and not cfg["text"].strip():
        raise DataError('text is empty; give the review or sentence to predict, text="...".')
    return cfg


def main(argv: list[str] | None = None, cold_start: bool = False) -> int:
    """`cold_start` (the command line): no garbage collection during start-up (importing torch and spaCy, loading the
    model), which creates about a million objects that live to the end: collecting among them cost ~0.4 s here. It
    is back on, with those objects frozen, for the input."""
    tokenizer = None
    try:
        cfg = parse(sys.argv[1:] if argv is None else argv)
        from seqlab.data.tokenize import TokenizerProcess
        from seqlab.threads import LoadProbe, configure

        if cold_start:
            gc.disable()
        if cold_start and cfg["tokenizer"] != "whitespace" and TokenizerProcess.available:
            tokenizer = TokenizerProcess()  # imports spaCy while this process imports torch; tokenizes from then on
        probe = LoadProbe()  # start-up (importing torch, loading the checkpoint) doubles as the load sample
        from seqlab.inference import Predictor, read_lines

        predictor = Predictor.from_checkpoint(cfg["ckpt"], cfg["device"], cfg["tokenizer"])
        configure(cfg["threads"], probe=probe)  # the tokenizer process is one of the loads it sees
        if tokenizer is None:
            predictor.tokenizer()  # spaCy's import, still part of start-up
        if cold_start:
            gc.enable()
            gc.freeze()
        texts = [cfg["text"]] if cfg["text"] is not None else read_lines(cfg["input"])
        lines = nonempty = 0
        for n, p in enumerate(predictor.predict_stream(texts, cfg["batch_size"], cfg["chunk"], tokenizer), 1):
            lines += 1
            nonempty += bool(p.tokens)
            where = "the text" if cfg["text"] is not None else f"line {n}"
            if p.truncated:
                print(f"warning: {where} has {len(p.tokens) + p.truncated} tokens; only the first "
                      f"{predictor.max_length} (the model's max_length) were read.", file=sys.stderr)
            if p.tokens and p.unknown == len(p.tokens):
                print(f"warning: none of the {len(p.tokens)} tokens of {where} is in the model's vocabulary; "
                      "the prediction rests on <unk> alone.", file=sys.stderr)
            json_out = cfg["format"] == "json"
            print(json.dumps(p.record, ensure_ascii=False) if json_out else predictor.task.text(p.record))
        if not nonempty:
            if cfg["text"] is not None:
                raise DataError("text has no tokens to predict (only spaces or line breaks); give a review or "
                                "sentence.")
            where = "stdin" if cfg["input"] == "-" else cfg["input"]
            raise DataError(f"{where} has no text to predict ({lines} lines, all empty); give one text per line.")
        sys.stdout.flush()
    except SeqlabError as e:
        return report(e)
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, nothing left to say
        sys.stderr.close()
        return 0
    finally:
        if tokenizer is not None:
            tokenizer.close()
    return 0


def leave(code: int) -> None:
    """Flush the output and end the process without tearing down torch and spaCy module by module: that teardown
    took ~1 s here, longer than a prediction. Nothing is left to write: predict writes only to stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # the reader has gone, or the stream was closed
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main(cold_start=True))
