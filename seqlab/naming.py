"""Run names that say what differs: `hidden_size=128,backend=custom,seed=2`; never a path separator.

A single run is named by its command-line overrides, less locations and display settings
(`hydra.job.config.override_dirname.exclude_keys`). A sweep job is named by the overrides that vary across its sweep
(`-m model.hidden_size=64,128 seed=1,2` names jobs `hidden_size=64,seed=1`, ...), found from the sweep's own
specification, which every job can read whatever the launcher (in-process, joblib workers, SLURM jobs):
- the sweep's command line, `hydra.overrides.task` of `<sweep dir>/multirun.yaml` (Hydra's basic sweeper writes it
  before the first job starts, seqlab's sweep_summary callback for other sweepers such as Optuna): a sweep value
  (`a,b`, `range()`, `choice()`, `interval()`, `glob()`) varies, a plain value does not;
- the search space in the config, `hydra.sweeper.params` (the basic sweeper's and Optuna's), which varies unless the
  command line fixes the key.
If neither says anything varies (no multirun.yaml, or a sweep of one job), a job is named like a single run.

In a name, a key is shortened to its last part when that is unambiguous (`model.optimizer.lr` -> `lr`), a path to its
file stem (`../glove/glove.6B.50d.txt.gz` -> `glove.6B.50d`), a long float to 4 significant digits (Optuna's
samples); a name that is still too long for a file name is cut and a hash of the whole appended. Exact values stay in
each run's `.hydra/overrides.yaml` and `metrics.json`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

COMPRESSION = {".gz", ".bz2", ".xz", ".zip", ".zst", ".lzma"}
NAME_LIMIT = 200  # bytes: a job folder is `<num>_<name>`, and a file name holds 255


def short_value(value: str) -> str:
    """An override value as it appears in a run name."""
    if ("/" in value or "\\" in value) and not value.startswith(("{", "[", "(")):  # a path (or URL): its file stem
        path = PurePosixPath(value.replace("\\", "/").rstrip("/"))
        if path.suffix.lower() in COMPRESSION:
            path = path.with_suffix("")
        return path.stem or path.name or "_"
    try:
        if "." in value and len(value) > 8:
            return f"{float(value):.4g}"
    except ValueError:
        pass
    return value.replace("/", "_").replace("\\", "_")  # e.g. {monitor: val/acc}: no separator in a file name


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each key to its last dotted part where no other key of the name has the same last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (tail if last.count(tail) == 1 else k) for k, tail in zip(keys, last)}


def fit_name(name: str, limit: int = NAME_LIMIT) -> str:
    """`name` cut to `limit` bytes with a hash of the whole appended when longer (distinct names stay distinct)."""
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return name.encode()[:limit - 9].decode(errors="ignore") + "-" + digest


def split_override(override: str) -> tuple[str, str]:
    """`+model.x=1` -> ("model.x", "1"); `~key` -> ("key", "~")."""
    key, _, value = override.partition("=")
    if key.startswith("~"):
        value = value or "~"
    return key.lstrip("+~"), value


def name_of(overrides: list[str], keys: set[str] | None = None, exclude: set[str] = frozenset()) -> str:
    """The run name of `overrides` ("k=v" strings, in command-line order): those whose key is in `keys` (all if
    None) and not in `exclude`; "" if none is left."""
    pairs = [split_override(o) for o in overrides]
    pairs = [(k, v) for k, v in pairs if (keys is None or k in keys) and k not in exclude]
    short = short_keys([k for k, _ in pairs])
    return fit_name(",".join(f"{short[k]}={short_value(v)}" for k, v in pairs))


def _sweep_keys(overrides: list[str]) -> tuple[set[str], set[str]]:
    """(keys given a sweep value, keys given a plain value) in a list of overrides; the last one of a key counts."""
    swept: set[str] = set()
    fixed: set[str] = set()
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.get_key_element().lstrip("+~")
        value = o.value() if o.is_sweep_override() else None
        varies = o.is_sweep_override() and not (isinstance(value, ChoiceSweep) and len(value.list) == 1)
        (swept if varies else fixed).add(key)
        (fixed if varies else swept).discard(key)
    return swept, fixed


def varying_keys(hc: DictConfig) -> set[str]:
    """The override keys that vary across the sweep of job `hc` (a job's Hydra config); empty when unknown."""
    params = OmegaConf.select(hc, "sweeper.params", default=None)
    params = OmegaConf.to_container(params, resolve=False) if isinstance(params, DictConfig) else {}
    spec = [f"{k}={v}" for k, v in params.items() if isinstance(v, (str, int, float))]
    sweep_yaml = Path(str(hc.sweep.dir)) / "multirun.yaml"
    if sweep_yaml.is_file():
        spec += [str(o) for o in OmegaConf.select(OmegaConf.load(sweep_yaml), "hydra.overrides.task", default=[])]
    try:
        return _sweep_keys(spec)[0]
    except HydraException:  # a sweep syntax this Hydra does not parse (another sweeper's): name it like a single run
        return set()


def _is_multirun(hc: DictConfig) -> bool:
    mode = OmegaConf.select(hc, "mode", default=None)
    return getattr(mode, "name", mode) == "MULTIRUN"


def task_overrides(hc: DictConfig) -> list[str]:
    """The command-line overrides of the run whose Hydra config is `hc`, as typed: a value holding `${...}` is kept
    as written (iterating the ListConfig would resolve it, and fail on one that does not resolve)."""
    return [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]


def run_name(hc: DictConfig | None) -> str:
    """The name of the run whose Hydra config is `hc` (HydraConfig.get(), or a job config's `hydra` node)."""
    if hc is None:
        return "defaults"
    overrides = task_overrides(hc)
    exclude = set(OmegaConf.select(hc, "job.config.override_dirname.exclude_keys", default=[]) or [])
    if _is_multirun(hc):
        keys = varying_keys(hc) & {split_override(o)[0] for o in overrides}
        if keys:  # what differs across the sweep, even a location (a sweep over data.root names its roots)
            return name_of(overrides, keys) or "defaults"
    return name_of(overrides, exclude=exclude) or "defaults"


def tensorboard_location(run_dir: Path, hc: DictConfig | None) -> dict[str, Any]:
    """Where a run's TensorBoard events go, as TensorBoardLogger's save_dir, name and version.

    A sweep job writes them in its own folder, `<sweep>/<num>_<run name>/`, so `tensorboard --logdir <sweep dir>`
    lists one run per job under that name; a single run (its folder named by time) in `<run>/tensorboard/<run name>/`.
    """
    job_dir = hc is not None and _is_multirun(hc) and Path(run_dir) == Path(str(hc.runtime.output_dir))
    if job_dir:
        return {"save_dir": str(run_dir), "name": "", "version": ""}
    return {"save_dir": str(run_dir), "name": "tensorboard", "version": run_name(hc)}


def _job_run_name(*, _root_: DictConfig) -> str:
    return run_name(_root_.hydra)


# `hydra.sweep.subdir: ${hydra.job.num}_${seqlab_run_name:}` (configs/train.yaml): registered on import, which
# scripts/train.py does in the launching process and joblib/submitit workers do when they unpickle the task.
OmegaConf.register_new_resolver("seqlab_run_name", _job_run_name, replace=True)
