"""summary.csv and summary.md of a sweep (see seqlab.sweep.summary for the ranking and the seed groups).

summary.csv: one row per job, every override key, raw numbers; with seed groups, `rank` is the setting's rank and
`seeds`, `<metric>_mean`, `<metric>_std` repeat the group's figures on each of its rows. summary.md: the overrides
that vary (the others once, above the table), numbers rounded with thousands separators; with seed groups a table of
settings (mean ± standard deviation, number of seeds) and below it the per-seed rows.
"""

from __future__ import annotations

import csv
import io
import math
import shlex
from pathlib import Path
from typing import Any

from seqlab.atomic import atomic_write_text
from seqlab.naming import short_value
from seqlab.sweep.summary import SEED, Summary


def fmt(v: Any) -> str:
    """A number for a Markdown table: integers with thousands separators, floats to 4 decimals (large ones to 1)."""
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.4g}"


def fmt_stat(stat: tuple[float, float | None, bool] | None) -> str:
    """mean ± std, both to the mean's precision (`7,978.0 ± 480.8`, not `7,978 ± 480.8129`); a value that is the same
    in every job (e.g. num_parameters) as itself."""
    if stat is None:
        return ""
    mean, std, ints = stat
    if not std:
        return fmt(round(mean) if ints and mean == round(mean) else mean)
    if abs(mean) >= 1000:
        return f"{mean:,.1f} ± {std:,.1f}"
    return f"{fmt(float(mean))} ± {fmt(float(std))}"


def _wall(v: Any) -> str:
    return "" if v is None else f"{v:,.1f}"


def _md_table(head: list[str], body: list[list[str]], right: set[str]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in right else "---" for h in head) + "|"]
    for cells in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return lines


def _split_overrides(rows: list[dict]) -> tuple[list[str], list[str], dict[str, str]]:
    """(every override key, the keys that vary, the constant overrides) over the jobs (one job: all constant)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["overrides"] if k not in keys]
    first = rows[0]["overrides"]
    constant = {k: first[k] for k in keys if all(r["overrides"].get(k) == first.get(k) for r in rows)}
    return keys, [k for k in keys if k not in constant], constant


def _error(r: dict) -> str:
    return r["error"] if len(r["error"]) <= 120 else r["error"][:117] + "..."


def to_csv(s: Summary) -> str:
    keys, _, _ = _split_overrides(s.rows)
    grouped = s.groups is not None
    group_of = {id(r): (i, g) for i, g in enumerate(s.groups or [], 1) for r in g.rows}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "job", "status", *(["seeds"] if grouped else []), *keys, *s.columns,
                     *(f"{c}_{k}" for c in s.columns for k in ("mean", "std") if grouped), "wall_time_s", "error"])
    for i, r in enumerate(s.rows, 1):
        rank: Any = i if r["status"] == "ok" and s.metric is not None else ""
        stats: list[Any] = []
        if grouped:
            rank, g = group_of[id(r)]
            stats = [g.n_ok]
            for c in s.columns:
                mean, std, _ = g.stats.get(c, ("", "", False))
                stats += [mean, "" if std is None else std]
        writer.writerow([rank, r["job"], r["status"], *stats[:1], *(r["overrides"].get(k, "") for k in keys),
                         *(r["metrics"].get(c, "") for c in s.columns), *stats[1:],
                         "" if r["wall_time_s"] is None else r["wall_time_s"], r["error"]])
    return buf.getvalue()


def _header(s: Summary) -> list[str]:
    counts = [f"{n} {status}" for status in ("ok", "failed", "incomplete") if (n := s.count(status))]
    state = "all ok" if counts == [f"{len(s.rows)} ok"] else ", ".join(counts)
    where = f"{len(s.rows)} job{'s' if len(s.rows) > 1 else ''} in `{s.sweep_dir.resolve()}`"
    if s.groups:
        sizes = sorted({len(g.rows) for g in s.groups})
        seeds = f"{sizes[0]} seeds" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]} seeds each"
        where += f": {len(s.groups)} setting{'s' if len(s.groups) > 1 else ''} × {seeds}"
    if s.metric is None:
        ranking = s.note
    elif not s.count("ok"):
        ranking = ""
    else:
        best = "highest" if s.mode == "max" else "lowest"
        why = ", the jobs' monitored metric" if s.monitored else ""
        ranking = (f"Ranked by the mean over seeds of {s.metric}{why}, {best} first; ± is the sample standard "
                   "deviation over seeds." if s.groups else f"Ranked by {s.metric}{why}, {best} first.")
    return ["# Sweep summary", "", f"{where}, {state}. {ranking}".rstrip(), ""]


def to_markdown(s: Summary) -> str:
    _, varying, constant = _split_overrides(s.rows)
    lines = _header(s)
    if constant:
        label = "Common overrides: " if len(s.rows) > 1 else "Overrides: "
        lines += [label + " ".join(f"`{k}={v}`" for k, v in constant.items()), ""]
    failed = any(r["status"] != "ok" for r in s.rows)
    errors = any(r["error"] for r in s.rows)
    ranked = s.metric is not None
    right = {"rank", "seeds", "wall_time_s", *s.columns}
    if s.groups:
        settings = [k for k in varying if k != SEED]
        head = ["rank", *settings, "seeds", *s.columns, "wall_time_s"]
        body = [[str(i), *(short_value(g.overrides.get(k, "")) for k in settings),
                 str(g.n_ok) if g.n_ok == len(g.rows) else f"{g.n_ok} of {len(g.rows)}",
                 *(fmt_stat(g.stats.get(c)) for c in s.columns), _wall((g.stats.get("wall_time_s") or (None,))[0])]
                for i, g in enumerate(s.groups, 1)]
        lines += _md_table(head, body, right) + ["", "Per seed:", ""]
        ranks = [i for i, g in enumerate(s.groups, 1) for _ in g.rows]
        per_row = [*settings, SEED]
    else:
        ranks = [i if r["status"] == "ok" else "" for i, r in enumerate(s.rows, 1)]  # failed jobs: no rank
        per_row = varying
    head = [*(["rank"] if ranked else []), *per_row, *(["status"] if failed else []), *s.columns, "wall_time_s",
            "job", *(["error"] if errors else [])]
    body = [[*([str(rank)] if ranked else []), *(short_value(r["overrides"].get(k, "")) for k in per_row),
             *([r["status"]] if failed else []), *(fmt(r["metrics"].get(c)) for c in s.columns),
             _wall(r["wall_time_s"]), r["job"], *([_error(r)] if errors else [])]
            for rank, r in zip(ranks, s.rows)]
    lines += _md_table(head, body, right)
    lines += ["", f"TensorBoard: `tensorboard --logdir {shlex.quote(str(s.sweep_dir.resolve()))}` opens this sweep "
              "alone: one run per job, named by its folder, which holds its events. Per-epoch curves read best at "
              "`http://localhost:6006/?smoothing=0` with \"Ignore outliers in chart scaling\" unticked (Settings): "
              "with a few points a line, TensorBoard's defaults bend them and clip the best runs' last epochs."]
    return "\n".join(lines) + "\n"


def write_summary(s: Summary) -> str:
    """Write summary.csv and summary.md in the sweep directory; returns the Markdown text (callers print it)."""
    md = to_markdown(s)
    atomic_write_text(to_csv(s), Path(s.sweep_dir) / "summary.csv")
    atomic_write_text(md, Path(s.sweep_dir) / "summary.md")
    return md
