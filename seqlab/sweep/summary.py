"""A sweep's jobs ranked by their monitored metric, and grouped over seeds.

Ranking: by the metric each job's `metrics.json` names as `monitor` (`"monitor_mode"`: max | min; a metrics.json
without them monitors val_acc, max), unless a metric is given. Jobs that monitor different metrics are not ranked
(job order, and a note saying how to choose one). Failed and incomplete jobs come last, in job order.

Seeds: when `seed` varies and some jobs differ only in it (`-m seed=1,2,3 model.hidden_size=64,128`), the jobs form
groups, one per setting; a group's value of a metric is the mean over its ok jobs, with the sample standard
deviation (n - 1 in the denominator; none for a single job), and the groups are ranked by the mean.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlab.errors import ConfigError
from seqlab.sweep.jobs import job_dirs, load_job

SEED = "seed"
FIRST_METRICS = ("val_acc", "test_acc")
STATUS_ORDER = {"ok": 0, "failed": 1, "incomplete": 2}


@dataclass
class Group:
    """The jobs of one setting that differ only in the seed."""

    overrides: dict[str, str]  # the jobs' overrides except the seed
    rows: list[dict]  # its jobs: ok ones by seed, then the others
    # column -> (mean, sample standard deviation (None for one value), whether every value is an integer)
    stats: dict[str, tuple[float, float | None, bool]] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)


@dataclass
class Summary:
    sweep_dir: Path
    rows: list[dict]  # best first, failed and incomplete jobs last (grouped: group by group, each per seed)
    columns: list[str]  # metric columns, the ranking metric first
    metric: str | None  # the ranking metric; None when the jobs are not ranked
    mode: str  # max | min: which end of `metric` is best
    monitored: bool  # `metric` is the jobs' own monitored metric (not chosen by the user)
    groups: list[Group] | None = None  # best first; None unless seeds vary
    note: str = ""  # why the jobs are not ranked

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)


def default_mode(metric: str) -> str:
    """Losses are minimised, everything else (accuracy, F1) maximised."""
    return "min" if "loss" in metric else "max"


def _number(v: Any) -> float | int | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) else None


def _best_first_key(value: float | None, mode: str) -> tuple[bool, float]:
    return (value is None, 0.0 if value is None else (-value if mode == "max" else value))


def _ranking(rows: list[dict], metric: str | None, mode: str | None) -> tuple[str | None, str, bool, str]:
    """(metric, mode, monitored, note) from the jobs' monitors and the user's choice."""
    monitors: dict[str, list[dict]] = {}
    for r in rows:
        if r["monitor"] is not None:
            monitors.setdefault(r["monitor"][0], []).append(r)
    if mode is not None and mode not in ("max", "min"):
        raise ConfigError(f"Sort mode must be max or min, got {mode!r}.")
    if metric is None:
        if len(monitors) > 1:
            which = "; ".join(f"{m}: job{'s' if len(rs) > 1 else ''} " + ", ".join(r["job"].split("_")[0] for r in rs)
                              for m, rs in monitors.items())
            return None, "max", True, (
                f"Not ranked: the jobs monitor different metrics ({which}); rank them by one with "
                "hydra.callbacks.sweep_summary.metric=<key> or scripts/summarize_sweep.py --metric <key>.")
        if not monitors:  # no job finished: nothing to rank
            return "val_acc", mode or "max", True, ""
        (metric, rs), = monitors.items()
        return metric, mode or rs[0]["monitor"][1], True, ""
    metric = metric.replace("/", "_")
    monitored = list(monitors) == [metric]
    return metric, mode or (monitors[metric][0]["monitor"][1] if monitored else default_mode(metric)), monitored, ""


def _seed_groups(rows: list[dict], columns: list[str], metric: str, mode: str) -> list[Group] | None:
    if len({r["overrides"].get(SEED) for r in rows}) < 2:
        return None
    by_setting: dict[tuple, Group] = {}
    for r in rows:
        rest = {k: v for k, v in r["overrides"].items() if k != SEED}
        by_setting.setdefault(tuple(sorted(rest.items())), Group(rest, [])).rows.append(r)
    groups = list(by_setting.values())
    if all(len(g.rows) == 1 for g in groups):  # e.g. an Optuna search over the seed too: nothing to average
        return None

    def seed_key(r: dict) -> tuple:  # ok jobs first, then by seed: 2 before 10
        seed = r["overrides"].get(SEED, "")
        return STATUS_ORDER[r["status"]], int(seed) if seed.lstrip("-").isdigit() else math.inf, seed, r["num"]

    for g in groups:
        g.rows.sort(key=seed_key)
        for c in [*columns, "wall_time_s"]:
            values = [v for r in g.rows if r["status"] == "ok"
                      and (v := _number(r["wall_time_s"] if c == "wall_time_s" else r["metrics"].get(c))) is not None]
            if values:
                g.stats[c] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None,
                              all(isinstance(v, int) for v in values))
    groups.sort(key=lambda g: (g.n_ok == 0, *_best_first_key(g.stats.get(metric, (None,))[0], mode),
                               min(r["num"] for r in g.rows)))
    return groups


def summarize(sweep_dir: Path, metric: str | None = None, mode: str | None = None) -> Summary:
    """The jobs of `sweep_dir`, ranked by `metric` (None: the jobs' monitored metric), `mode` first (None: the
    monitor's mode, else min for losses and max for the rest)."""
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir} is a file; pass the sweep folder, such as outputs/multirun/<time>.")
    if not sweep_dir.is_dir():
        raise ConfigError(f"Sweep directory {sweep_dir} does not exist; pass a folder such as outputs/multirun/<time>.")
    rows = [load_job(d) for d in job_dirs(sweep_dir)]
    if not rows:
        raise ConfigError(f"No job directories in {sweep_dir}; pass the sweep folder that holds <num>_<name>/.")
    metric, mode, monitored, note = _ranking(rows, metric, mode)
    columns = [m for m in dict.fromkeys((metric, *FIRST_METRICS)) if m and any(m in r["metrics"] for r in rows)]
    for r in rows:
        columns += [k for k in r["metrics"] if k not in columns]
    if metric is not None and metric not in columns and any(r["status"] == "ok" for r in rows):
        raise ConfigError(f"Metric {metric!r} is in no job's metrics.json; choose one of {', '.join(columns)}.")
    summary = Summary(sweep_dir, rows, columns, metric, mode, monitored, note=note)
    if metric is None:
        return summary
    summary.rows = sorted(rows, key=lambda r: (STATUS_ORDER[r["status"]], *_best_first_key(
        _number(r["metrics"].get(metric)), mode), r["num"]))
    summary.groups = _seed_groups(rows, columns, metric, mode)
    if summary.groups:
        summary.rows = [r for g in summary.groups for r in g.rows]
    return summary
