"""The Hydra callback that writes and prints a sweep's summary when a multirun ends, and the multirun's exit status.

Exit status of `scripts/train.py -m ...` (after every job has run and the summary is printed): 0 when every job
finished; 2 when some failed and every failure was a user error (a bad config value or data file, as a single run
exits 2); 1 when a job failed otherwise (an exception, a NaN loss) or did not finish.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError
from seqlab.sweep.summary import Summary, summarize
from seqlab.sweep.tables import write_summary

log = logging.getLogger(__name__)
_multirun: dict[str, Any] = {}  # the multirun of this process (Hydra calls callbacks where the sweep is launched)


class SweepSummary(Callback):
    """Write summary.csv and summary.md in the sweep folder when a multirun ends, ranked by `metric` (None: the
    metric the jobs monitor), `mode` first (None: the monitor's mode, else min for losses and max for the rest)."""

    def __init__(self, metric: str | None = None, mode: str | None = None):
        self.metric, self.mode = metric, mode

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _multirun.clear()
        _multirun.update(sweep_dir=sweep_dir, metric=self.metric, mode=self.mode)
        # Optuna opens its SQLite storage before any job directory exists; create the folder of a relative path.
        storage = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
        if isinstance(storage, str) and storage.startswith("sqlite:///"):
            Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Jobs name themselves by what varies (seqlab.naming), read from the sweep's multirun.yaml: Hydra's basic
        # sweeper writes it before the first job, other sweepers (Optuna) do not.
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarize_multirun()


def summarize_multirun() -> Summary | None:
    """Write and print the summary of this process's multirun, once; None without one (or without any job)."""
    if "sweep_dir" not in _multirun or "summary" in _multirun:
        return _multirun.get("summary")
    _multirun["summary"] = None
    try:
        summary = summarize(_multirun["sweep_dir"], _multirun["metric"], _multirun["mode"])
        md = write_summary(summary)
    except ConfigError as e:
        log.warning("No sweep summary: %s", e)
        return None
    print("\n" + md, flush=True)
    if summary.note:
        log.warning("%s", summary.note)
    log.info("Sweep summary written to %s (summary.csv, summary.md)", summary.sweep_dir)
    _multirun["summary"] = summary
    return summary


def exit_status(code: int | str | None = 0) -> int:
    """The exit status of a command whose hydra.main returned (`code` 0) or exited with `code`: for a multirun, 1 or
    2 when jobs failed (module docstring), with one `error:` line on stderr; else `code`."""
    code = code if isinstance(code, int) else (0 if code is None else 1)
    summary = summarize_multirun()  # not yet written when the sweeper raised (Optuna once no trial has completed)
    bad = [r for r in summary.rows if r["status"] != "ok"] if summary else []
    if not bad:
        return code
    failed, unfinished = sum(r["status"] == "failed" for r in bad), sum(r["status"] == "incomplete" for r in bad)
    n = len(summary.rows)
    what = f"{failed} of {n} jobs failed" if failed else ""
    if unfinished:
        what += f" and {unfinished} did not finish" if failed else f"{unfinished} of {n} jobs did not finish"
    print(f"error: {what}; see {summary.sweep_dir / 'summary.md'}", file=sys.stderr)
    return 2 if all(r["user_error"] for r in bad) else 1
