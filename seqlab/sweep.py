"""Sweeps: a failed job's error record, and the summary table of a multirun (summary.csv, summary.md, printed).

A sweep directory holds one sub-directory per job (`<num>_<overrides>/`) with Hydra's `.hydra/overrides.yaml` and,
once the job has ended, either `metrics.json` (written by train()) or `error.json` (written by scripts/train.py when
train() raised). `SweepSummary` is a Hydra callback that tabulates them when a multirun ends;
`scripts/summarize_sweep.py` does the same for an existing directory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from seqlab.errors import ConfigError
from seqlab.atomic import atomic_write_text

log = logging.getLogger(__name__)
NOT_METRICS = {"best_checkpoint", "last_checkpoint", "overrides", "run_dir", "wall_time_s"}
FIRST_METRICS = ("val_acc", "test_acc")
STATUS_ORDER = {"ok": 0, "failed": 1, "incomplete": 2}


def short_dirname(name: str, limit: int = 200) -> str:
    """A run name from Hydra's override_dirname that fits in a file name (255 bytes): kept as it is when short
    enough; else long float values are rounded (Optuna's samples), and if still too long the name is cut and a hash
    of the whole appended (distinct runs keep distinct names). Exact values stay in .hydra/overrides.yaml."""
    if len(name.encode()) <= limit:
        return name
    short = ",".join(key + sep + _short(value) for key, sep, value in (i.partition("=") for i in name.split(",")))
    if len(short.encode()) <= limit:
        return short
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return short.encode()[:limit - 9].decode(errors="ignore") + "-" + digest


# Resolvable in configs (hydra.sweep.subdir); registered on import, which scripts/train.py and joblib workers do.
OmegaConf.register_new_resolver("seqlab_dirname", short_dirname, replace=True)


def write_error(run_dir: Path, exc: BaseException, wall_time_s: float, overrides: list[str]) -> Path:
    """Record why a job failed as `error.json` in its run directory (atomically): type, message, traceback."""
    record = {"error_type": type(exc).__name__, "message": str(exc), "wall_time_s": round(wall_time_s, 2),
              "overrides": overrides, "traceback": "".join(traceback.format_exception(exc))}
    path = Path(run_dir) / "error.json"
    atomic_write_text(json.dumps(record, indent=2) + "\n", path)
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _parse_overrides(job_dir: Path, metrics: dict | None, error: dict | None) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        items = [str(o) for o in OmegaConf.load(path)]
    else:  # e.g. hydra.output_subdir=null: fall back to what the job recorded itself
        items = list((metrics or error or {}).get("overrides", []))
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def load_job(job_dir: Path) -> dict[str, Any]:
    """One row: job name and number, status (ok | failed | incomplete), overrides, metrics, wall time, error."""
    metrics, error = _read_json(job_dir / "metrics.json"), _read_json(job_dir / "error.json")
    num = job_dir.name.split("_", 1)[0]
    row: dict[str, Any] = {"job": job_dir.name, "num": int(num) if num.isdigit() else math.inf,
                           "overrides": _parse_overrides(job_dir, metrics, error), "metrics": {}, "error": ""}
    if metrics is not None:
        row["status"] = "ok"
        row["metrics"] = {k: v for k, v in metrics.items()
                          if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        row["wall_time_s"] = metrics.get("wall_time_s")
    elif error is not None:
        row["status"] = "failed"
        row["error"] = f"{error.get('error_type', 'Error')}: {error.get('message', '')}"
        row["wall_time_s"] = error.get("wall_time_s")
    else:  # killed, or still running
        row["status"], row["wall_time_s"] = "incomplete", None
    return row


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories of a sweep, in job order."""
    found = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and any(
        (p / name).exists() for name in (".hydra/overrides.yaml", "metrics.json", "error.json"))]
    return sorted(found, key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit() else math.inf,
                                        p.name))


def default_mode(metric: str) -> str:
    """Losses are minimised, everything else (accuracy, F1) maximised."""
    return "min" if "loss" in metric else "max"


def summarize(sweep_dir: Path, metric: str = "val_acc", mode: str | None = None) -> tuple[list[dict], list[str]]:
    """(rows best first by `metric`, metric columns). Failed and incomplete jobs come last, in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"Sweep directory {sweep_dir} does not exist; pass a folder such as outputs/multirun/<time>.")
    rows = [load_job(d) for d in job_dirs(sweep_dir)]
    if not rows:
        raise ConfigError(f"No job directories in {sweep_dir}; pass the sweep folder that holds <num>_<overrides>/.")
    metric = metric.replace("/", "_")
    mode = mode or default_mode(metric)
    if mode not in ("max", "min"):
        raise ConfigError(f"Sort mode must be max or min, got {mode!r}.")
    columns = [m for m in FIRST_METRICS if any(m in r["metrics"] for r in rows)]
    for r in rows:
        columns += [k for k in r["metrics"] if k not in columns]
    if metric not in columns and any(r["status"] == "ok" for r in rows):
        raise ConfigError(f"Metric {metric!r} is in no job's metrics.json; choose one of {', '.join(columns)}.")
    if metric in columns:  # the target metric first
        columns.insert(0, columns.pop(columns.index(metric)))

    def key(r):
        v = r["metrics"].get(metric)
        missing = not isinstance(v, (int, float)) or math.isnan(v)
        return (STATUS_ORDER[r["status"]], missing, 0.0 if missing else (-v if mode == "max" else v), r["num"])

    return sorted(rows, key=key), columns


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def _short(value: str) -> str:
    """An override value for tables and run names: long floats (Optuna's samples) to 4 significant digits."""
    try:
        return f"{float(value):.4g}" if "." in value and len(value) > 8 else value
    except ValueError:
        return value


def tables(rows: list[dict], columns: list[str]) -> tuple[str, str, dict[str, str]]:
    """(CSV text with every override key, Markdown text with the overrides that vary, the constant overrides)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["overrides"] if k not in keys]
    first = rows[0]["overrides"]
    constant = {k: first[k] for k in keys if len(rows) > 1 and all(r["overrides"].get(k) == first.get(k) for r in rows)}
    varying = [k for k in keys if k not in constant]

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "job", "status", *keys, *columns, "wall_time_s", "error"])
    for i, r in enumerate(rows, 1):
        wall = "" if r["wall_time_s"] is None else r["wall_time_s"]
        writer.writerow([i, r["job"], r["status"], *(r["overrides"].get(k, "") for k in keys),
                         *(r["metrics"].get(c, "") for c in columns), wall, r["error"]])

    head = ["rank", "job", *varying, "status", *columns, "wall_time_s", "error"]
    right = {"rank", "wall_time_s", *columns}
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in right else "---" for h in head) + "|"]
    for i, r in enumerate(rows, 1):
        wall = "" if r["wall_time_s"] is None else f"{r['wall_time_s']:.1f}"
        error = r["error"] if len(r["error"]) <= 120 else r["error"][:117] + "..."
        cells = [str(i), r["job"].split("_", 1)[0], *(_short(r["overrides"].get(k, "")) for k in varying),
                 r["status"], *(_fmt(r["metrics"].get(c)) for c in columns), wall, error]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return buf.getvalue(), "\n".join(lines) + "\n", constant


def write_summary(sweep_dir: Path, metric: str = "val_acc", mode: str | None = None) -> str:
    """Write summary.csv and summary.md in the sweep directory; returns the Markdown text (also printed by callers)."""
    sweep_dir = Path(sweep_dir)
    rows, columns = summarize(sweep_dir, metric, mode)
    csv_text, md_table, constant = tables(rows, columns)
    metric = metric.replace("/", "_")
    n_failed = sum(r["status"] != "ok" for r in rows)
    header = [f"# Sweep {sweep_dir.name}", "",
              f"{len(rows)} jobs, {len(rows) - n_failed} ok, {n_failed} failed or incomplete; "
              f"sorted by {metric} ({mode or default_mode(metric)} first).", ""]
    if constant and len(rows) > 1:
        header += ["Common overrides: " + " ".join(f"`{k}={v}`" for k, v in constant.items()), ""]
    md = "\n".join(header) + md_table
    atomic_write_text(csv_text, sweep_dir / "summary.csv")
    atomic_write_text(md, sweep_dir / "summary.md")
    return md


class SweepSummary(Callback):
    """Hydra callback: when a multirun ends, write and print the sweep's summary table sorted by `metric`."""

    def __init__(self, metric: str = "val_acc", mode: str | None = None):
        self.metric, self.mode = metric, mode

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Optuna opens its SQLite storage before any job directory exists; create the folder of a relative path.
        storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            md = write_summary(sweep_dir, self.metric, self.mode)
        except ConfigError as e:
            log.warning("No sweep summary: %s", e)
            return
        print("\n" + md, flush=True)
        log.info("Sweep summary written to %s (summary.csv, summary.md)", sweep_dir)


DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def ddp_ready_job(hc: DictConfig) -> Iterator[None]:
    """One job of a multirun, made safe for Lightning's `ddp` launcher.

    That launcher starts ranks 1.. by re-running this script with sys.argv plus `hydra.run.dir=<hydra.run.dir>`:
    in a multirun that would be the whole sweep again, in the wrong directory. Give it this job's overrides as a
    single run in this job's directory instead; afterwards leave no process group or rank variables behind, or the
    next job would wait for ranks that never come.
    """
    argv, env = sys.argv, {k: os.environ.get(k) for k in DDP_ENV}
    sys.argv = [argv[0], *hc.overrides.task, "hydra.mode=RUN"]
    with read_write(hc):
        hc.run.dir = hc.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        import torch.distributed  # here, not at the top: summaries stay free of torch imports

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
