"""A `{_target_: class, arg: value}` config checked against the signature of the class it names.

`check_arguments` compares the keys with the signature (unknown key: the closest accepted one and the list; a
required argument missing) and the values with its type annotations (plain config data: an integer, a number,
true/false, a string, null, a list, a mapping, or one of a Literal's values; annotations not understood pass).
`build_checked` builds the object and turns what torch or Lightning raise into a ConfigError naming the key, found
by building with each setting alone.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import importlib
import inspect
import logging
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from seqlab.errors import ConfigError


def build_errors() -> tuple[type[BaseException], ...]:
    """What torch and Lightning raise for a bad argument (MisconfigurationException is Lightning's). Imported here,
    not at the top: the predict path imports this module (check_positive_int) and must not pay for Lightning."""
    from pytorch_lightning.utilities.exceptions import MisconfigurationException
    return (ValueError, TypeError, AttributeError, KeyError, RuntimeError, ImportError, ArithmeticError,
            MisconfigurationException)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_positive_int(key: str, value: Any, allow_none: bool = False, also: tuple[str, ...] = ()) -> None:
    """ConfigError naming `key` unless `value` is a positive integer (or None when allowed, or one of `also`)."""
    if (value is None and allow_none) or (isinstance(value, str) and value in also) or (is_int(value) and value > 0):
        return
    alternatives = "".join(f", {a}" for a in also) + (" or null" if allow_none else "")
    raise ConfigError(f"{key} must be a positive integer{alternatives}, got {value!r}.")


def _names(hint: Any) -> list[str]:
    """What values of annotation `hint` are called in a message (an integer, null, one of ...)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return [n for a in args for n in _names(a)]
    if origin is typing.Literal:
        return [f"{a!r}" for a in args]
    plain = {int: "an integer", float: "a number", bool: "true/false", str: "a string", type(None): "null",
             list: "a list", tuple: "a list", dict: "a mapping", datetime.timedelta: "a duration"}
    return [plain[origin or hint]] if (origin or hint) in plain else []  # a class: not written in a config


def _describe(hint: Any) -> str:
    names = list(dict.fromkeys(_names(hint)))
    return " or ".join(names) if len(names) < 4 else f"one of {', '.join(names[:-1])} or {names[-1]}"


def _matches(value: Any, hint: Any) -> bool:
    """Whether `value` (plain config data) can be of annotation `hint`; True for annotations not understood."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    kind = origin or hint
    if kind is int:
        return is_int(value)
    if kind is float:
        return is_int(value) or isinstance(value, float)
    if kind is tuple:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind) if isinstance(kind, type) else True  # Any, TypeVars, forward references


def check_arguments(where: str, target: Callable, given: Mapping[str, Any], provided: tuple[str, ...] = ()) -> None:
    """`given` (config key -> value) against the signature of `target`: unknown keys, missing required arguments,
    annotated types. `provided` are the arguments seqlab passes itself."""
    name = getattr(target, "__qualname__", str(target))
    params = inspect.signature(target).parameters
    hints = {}
    with contextlib.suppress(Exception):
        hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    accepted = [p for p, v in params.items() if p not in ("self", *provided) and v.kind not in (v.VAR_POSITIONAL,
                                                                                               v.VAR_KEYWORD)]
    open_ended = any(v.kind == v.VAR_KEYWORD for v in params.values())
    for key, value in given.items():
        if key in provided:
            raise ConfigError(f"{where}.{key} is set by seqlab; remove it from the config.")
        if key not in params and not open_ended:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"{where}.{key} is not an argument of {name}; {hint}accepted: {', '.join(accepted)}.")
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(f"{where}.{key} must be {_describe(hints[key])}, got {value!r}.")
    for key in accepted:
        if params[key].default is inspect.Parameter.empty and key not in given:
            raise ConfigError(f"{where} needs {key} (an argument of {name} without a default); add {where}.{key}=...")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's banners and warnings while a Trainer is built only to be checked."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def build_checked(where: str, build: Callable[..., Any], args: dict[str, Any], what: str) -> None:
    """Build with `args`; on an exception name the first key that fails alone (else `where` as a whole)."""
    errors = build_errors()
    try:
        with _quiet():
            build(**args)
        return
    except errors as e:
        error = e
    for key, value in args.items():
        try:
            with _quiet():
                build(**{key: value})
        except errors as e:
            raise ConfigError(f"{where}.{key}={value!r} is rejected by {what} ({_one_line(e)}); change or remove "
                              "it.") from None
    settings = ", ".join(f"{where}.{k}={v!r}" for k, v in args.items())
    raise ConfigError(f"{what} rejects the combination {settings} ({_one_line(error)}); change one of them.") from None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text.rstrip(".")


def resolve_target(where: str, spec: Any, base: type, example: str) -> tuple[type, dict[str, Any]]:
    """(class, arguments) of a `{_target_: ..., arg: value}` config, the class a subclass of `base`."""
    if not (isinstance(spec, dict) and isinstance(spec.get("_target_"), str)):
        raise ConfigError(f"{where} must be null or a mapping with a _target_ class path (e.g. {example}); "
                          f"got {spec!r}.")
    try:
        cls = _import(spec["_target_"])
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{where}._target_={spec['_target_']} cannot be imported; give a class path such as "
                          f"{example}.") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}._target_={spec['_target_']} is not a {base.__module__}.{base.__qualname__}; "
                          f"give one such as {example}.")
    return cls, {k: v for k, v in spec.items() if not k.startswith("_")}


def _import(path: str) -> Any:
    """The object at a dotted path (`torch.optim.Adam`), importing the longest module prefix, as Hydra does."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def has_nested_targets(args: dict[str, Any]) -> bool:
    return any(isinstance(v, dict) and "_target_" in v or isinstance(v, list) and any(
        isinstance(x, dict) and "_target_" in x for x in v) for v in args.values())
