"""Tasks: what differs between sequence tasks (head, loss, decoding, metrics, outputs), one module per kind.

A task is a subclass of :class:`seqlab.tasks.base.Task` registered under a name with :func:`register_task`. The data
config names it (`data.task`, or the datamodule's default); the metadata carries the name into the model, the
checkpoint and prediction. A name resolves, in order, to: a registered task; the built-in module
`seqlab/tasks/<name>.py` (imported on demand, so a new built-in task is one new module); an import path
`package.module:Class` (or `package.module.Class`) of a task defined anywhere.
"""

from __future__ import annotations

import importlib
import pkgutil

from seqlab.errors import ConfigError

TASKS: dict[str, type] = {}


def register_task(name: str):
    """Class decorator: make a Task subclass available as `data.task=<name>`."""

    def register(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return register


def builtin_tasks() -> list[str]:
    """Names of the modules in seqlab/tasks/ that define a task (everything but the shared helpers)."""
    helpers = {"base", "metrics", "schemes", "span_metrics"}
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in helpers)


def get_task(name: str) -> type:
    """The Task class called `name` (see the module docstring for how names resolve)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"data.task must be a task name such as classification or tagging, got {name!r}.")
    if name in TASKS:
        return TASKS[name]
    if name in builtin_tasks():
        importlib.import_module(f"{__name__}.{name}")
        if name in TASKS:
            return TASKS[name]
    module, sep, attr = name.partition(":") if ":" in name else name.rpartition(".")
    if sep:
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"data.task={name}: cannot import it ({e}); give a registered task name "
                              f"({_known()}) or package.module:Class.") from None
        from seqlab.tasks.base import Task

        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ConfigError(f"data.task={name} is not a seqlab.tasks.base.Task subclass.")
        return cls
    raise ConfigError(f"data.task={name} is not a known task; use one of {_known()}, or package.module:Class.")


def _known() -> str:
    return ", ".join(sorted(set(TASKS) | set(builtin_tasks())))
