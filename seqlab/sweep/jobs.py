"""A sweep job's folder and its records.

A sweep directory holds one folder per job (`<num>_<run name>/`, see seqlab.naming) with Hydra's
`.hydra/overrides.yaml` and, once the job has ended, either `metrics.json` (written by train()) or `error.json`
(written by scripts/train.py when train() raised).
"""

from __future__ import annotations

import json
import math
import traceback
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from seqlab.atomic import atomic_write_text
from seqlab.errors import SeqlabError

NOT_METRICS = {"best_checkpoint", "last_checkpoint", "overrides", "run_dir", "wall_time_s", "monitor", "monitor_mode"}
DEFAULT_MONITOR = ("val_acc", "max")  # a metrics.json that does not say what its task monitors


def write_error(run_dir: Path, exc: BaseException, wall_time_s: float, overrides: list[str]) -> Path:
    """Record why a job failed as `error.json` in its run directory (atomically): type, message, whether it is a
    user error (a SeqlabError: a bad config value or data file), traceback."""
    record = {"error_type": type(exc).__name__, "message": str(exc), "user_error": isinstance(exc, SeqlabError),
              "wall_time_s": round(wall_time_s, 2), "overrides": overrides,
              "traceback": "".join(traceback.format_exception(exc))}
    path = Path(run_dir) / "error.json"
    atomic_write_text(json.dumps(record, indent=2) + "\n", path)
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _overrides(job_dir: Path, record: dict) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    # without .hydra/ (hydra.output_subdir=null): what the job recorded itself
    items = OmegaConf.load(path) if path.is_file() else record.get("overrides", [])
    out = {}
    for item in map(str, items):
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def job_number(job_dir: Path) -> float:
    """The job number Hydra gave the folder (`<num>_...`); infinity for a folder not named so."""
    num = Path(job_dir).name.split("_", 1)[0]
    return int(num) if num.isdigit() else math.inf


def load_job(job_dir: Path) -> dict[str, Any]:
    """One job as a row: folder name and number, status (ok | failed | incomplete), overrides, numeric metrics,
    (monitored metric, mode), wall time, error message and whether it is a user error."""
    metrics, error = _read_json(job_dir / "metrics.json"), _read_json(job_dir / "error.json")
    row: dict[str, Any] = {"job": job_dir.name, "num": job_number(job_dir), "metrics": {}, "monitor": None,
                           "overrides": _overrides(job_dir, metrics or error or {}), "error": "", "user_error": False}
    if metrics is not None:
        row["status"] = "ok"
        row["metrics"] = {k: v for k, v in metrics.items()
                          if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}
        row["monitor"] = (str(metrics.get("monitor", DEFAULT_MONITOR[0])).replace("/", "_"),
                          str(metrics.get("monitor_mode", DEFAULT_MONITOR[1])))
        row["wall_time_s"] = metrics.get("wall_time_s")
    elif error is not None:
        row["status"] = "failed"
        row["error"] = f"{error.get('error_type', 'Error')}: {error.get('message', '')}"
        row["user_error"] = bool(error.get("user_error", False))
        row["wall_time_s"] = error.get("wall_time_s")
    else:  # killed, or still running
        row["status"], row["wall_time_s"] = "incomplete", None
    return row


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, in job order."""
    found = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and any(
        (p / name).exists() for name in (".hydra/overrides.yaml", "metrics.json", "error.json"))]
    return sorted(found, key=lambda p: (job_number(p), p.name))
