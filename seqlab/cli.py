"""Hydra's and OmegaConf's own errors as seqlab's one `error:` line (exit 2), for the Hydra entry scripts.

Hydra composes the config before a `@hydra.main` function runs, and reports what it cannot compose (an unknown
config option `data=imbd`, an unknown key `model.hiden_size=4`, an override it cannot parse, an interpolation that
does not resolve) as a block of text with exit status 1. `run_hydra(main)` has Hydra raise those errors instead
(`HYDRA_FULL_ERROR=1`) and turns each into one sentence naming the key and what to do. A key the yaml does not set
but its `_target_` takes (`trainer.accumulate_grad_batches=2`: an argument of pytorch_lightning.Trainer) is not a
typo: the sentence says to add it with `+trainer.accumulate_grad_batches=...`.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from typing import Any

from seqlab.errors import ConfigError, report


def _close(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1)
    return f"did you mean {match[0]}? " if match else ""


def resolution_message(error: BaseException) -> str:
    """`<key>: <why>; fix ...` for an interpolation (`${...}`) that does not resolve."""
    text = str(getattr(error, "msg", None) or error).splitlines()[0]
    if " raised while resolving interpolation: " in text:  # a resolver's own error (oc.env: the variable is unset)
        text = text.split(" raised while resolving interpolation: ", 1)[1].strip("\"'")
    return f"{getattr(error, 'full_key', None) or 'the config'}: {text}; fix the ${{...}} interpolation or give a " \
           "plain value."


def _target_taking(node: Any, name: str) -> str | None:
    """The `_target_` of config `node` when its signature has an argument `name` (`trainer` is
    pytorch_lightning.Trainer: `accumulate_grad_batches` is one of its arguments, not in configs/trainer/)."""
    import inspect

    from seqlab.arguments import _import

    target = node.get("_target_") if hasattr(node, "get") else None
    if not isinstance(target, str):
        return None
    try:
        params = inspect.signature(_import(target)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    taken = name in params and params[name].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                         inspect.Parameter.VAR_KEYWORD)
    return target if taken else None


def describe(error: BaseException, script: str = "scripts/train.py") -> str:
    """One sentence for an error Hydra or OmegaConf raised while composing or resolving the config."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

    if isinstance(error, MissingConfigException) and error.options is not None and error.missing_cfg_file:
        group, name = os.path.split(str(error.missing_cfg_file))
        return (f"{group}={name} is not an option of the config group {group}; {_close(name, error.options)}"
                f"use one of {', '.join(sorted(error.options))}.")
    if isinstance(error, OverrideParseException):
        first = str(error).splitlines()[0]
        return (f"cannot parse the override {error.override!r} ({first}); quote values with brackets, braces or "
                "spaces for the shell, e.g. 'key=[1,2]'.")
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    text = str(getattr(cause, "msg", None) or cause).splitlines()[0]
    key = getattr(cause, "full_key", None)
    if isinstance(cause, OmegaConfBaseException) and "not in struct" in str(cause) and key:
        parent = getattr(cause, "parent_node", None)
        known = [str(k) for k in parent] if hasattr(parent, "keys") else []
        name = key.rsplit(".", 1)[-1]
        target = _target_taking(parent, name)
        if target:
            return (f"{key} is an argument of {target} that the config does not set; add it with +{key}=... "
                    f"(the + adds a key).")
        return (f"{key} is not a key of this config; {_close(name, known)}check the spelling (python {script} "
                f"--cfg job lists the keys), or add a new key with +{key}=...")
    if isinstance(cause, InterpolationResolutionError):
        return resolution_message(cause)
    return f"{key}: {text}" if key else text


def as_config_error(error: BaseException, script: str = "scripts/train.py") -> BaseException:
    """`error` as a ConfigError when Hydra or OmegaConf raised it about the config, else unchanged."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(error, (HydraException, OmegaConfBaseException)) and not isinstance(error, ConfigError):
        return ConfigError(describe(error, script))
    return error


def run_hydra(main: Callable[[], Any], script: str = "scripts/train.py") -> None:
    """Call a `@hydra.main` function; a config Hydra cannot compose is one `error:` line and exit status 2."""
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing its block and exiting 1
    try:
        main()
    except Exception as e:
        converted = as_config_error(e, script)
        if converted is e:
            raise
        sys.exit(report(converted))
    finally:  # a caller in the same process (a test, a notebook) keeps its environment
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
