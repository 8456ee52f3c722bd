"""Config dataclasses as the single source of every stage's command line.

A stage declares each option once, as a field of its (frozen) config dataclass::

    @dataclass(frozen=True)
    class CrawlConfig:
        inputs: tuple[str, ...] = option(required=True, nargs="+", help="WARC/WAT files")
        max_pages: int = option(10_000, type=positive_int, help="pages per site")
        respect_robots_txt: bool = option(True, flag="--ignore-robots-txt",
                                          help="do not fetch robots.txt")

``add_options(parser, CrawlConfig)`` generates the argparse options from those fields (flag,
type, default, choices, help) and ``from_args(CrawlConfig, args)`` builds the config from the
parsed namespace. A default is written in one place, so the CLI, the config used from Python
and the docs cannot drift apart. Fields declared with ``dataclasses.field`` (or a plain
default) are not options: the stage fills them itself.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

_KEY = "wit_option"


@dataclasses.dataclass(frozen=True)
class Option:
    """How one config field appears on the command line (kept in the field's metadata)."""

    help: str
    flag: str | None = None  # default: --field-name
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    nargs: str | int | None = None
    append: bool = False  # repeatable option collecting a list
    group: str | None = None  # argparse argument group title
    # name of a mutually exclusive set of options; when its options are all ``required``,
    # exactly one of them must be given
    exclusive: str | None = None
    required: bool = False
    convert: Callable[[Any], Any] | None = None  # parsed value -> field value


def option(default: Any = dataclasses.MISSING, *, help: str,
           default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
           flag: str | None = None, type: Callable[[str], Any] | None = None,
           choices: tuple[Any, ...] | list[Any] | None = None, metavar: str | None = None,
           nargs: str | int | None = None, append: bool = False, group: str | None = None,
           exclusive: str | None = None, required: bool = False,
           convert: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring).

    A bool field is a switch: ``--flag`` sets it to ``not default``. A tuple default with
    ``nargs``/``append`` is converted back to a tuple. ``(default: ...)`` is appended to
    ``help`` unless the help already speaks of its default or there is nothing to show.
    Write ``help`` with a plain ``%`` ("5% of the steps"); ``%(default)s`` still works."""
    meta = Option(help=help, flag=flag, type=type,
                  choices=tuple(choices) if choices is not None else None, metavar=metavar,
                  nargs=nargs, append=append, group=group, exclusive=exclusive,
                  required=required or (default is dataclasses.MISSING
                                        and default_factory is dataclasses.MISSING),
                  convert=convert)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={_KEY: meta})
    if required and default is dataclasses.MISSING:
        default = None  # filled from the command line; keeps field order free
    return dataclasses.field(default=default, metadata={_KEY: meta})


def option_fields(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of config class ``cls`` that are command-line options, in order."""
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def flag_of(f: dataclasses.Field, meta: Option) -> str:
    return meta.flag or "--" + f.name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _shown(default: Any) -> bool:
    """Whether ``(default: ...)`` says something: not for a switch or an empty value (0 and 1
    are shown, although they compare equal to False and True)."""
    return not (default is None or isinstance(default, bool) or default in ((), ""))


def _help(meta: Option, default: Any) -> str:
    text = meta.help.replace("%", "%%").replace("%%(default)s", "%(default)s")
    if "default" in meta.help or meta.required or not _shown(default):
        return text
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else "%(default)s"
    return f"{text} (default: {shown})"


def add_options(parser: argparse.ArgumentParser, *classes: type,
                groups: Mapping[str, str] | None = None) -> None:
    """Add the options of every config class in ``classes`` to ``parser``.

    ``groups`` maps a group title to its description; groups appear in the order their
    first option does. Two classes declaring the same flag are a programming error."""
    made_groups: dict[str, argparse._ArgumentGroup] = {}
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    seen: dict[str, str] = {}
    for cls in classes:
        for f, meta in option_fields(cls):
            flag = flag_of(f, meta)
            if flag in seen:
                raise ValueError(f"{flag} is declared by both {seen[flag]} and {cls.__name__}")
            seen[flag] = cls.__name__
            container: Any = parser
            if meta.group is not None:
                if meta.group not in made_groups:
                    made_groups[meta.group] = parser.add_argument_group(
                        meta.group, (groups or {}).get(meta.group))
                container = made_groups[meta.group]
            kwargs = _argparse_kwargs(f, meta)
            if meta.exclusive is not None:
                if meta.exclusive not in exclusive:
                    exclusive[meta.exclusive] = container.add_mutually_exclusive_group(
                        required=meta.required)
                container = exclusive[meta.exclusive]
                if kwargs.pop("required", False):  # the group is required, not each option
                    kwargs["default"] = None
            container.add_argument(flag, **kwargs)


def _argparse_kwargs(f: dataclasses.Field, meta: Option) -> dict[str, Any]:
    default = default_of(f)
    kwargs: dict[str, Any] = {"dest": f.name, "help": _help(meta, default)}
    if isinstance(default, bool) and meta.type is None:
        kwargs["action"] = "store_false" if default else "store_true"
        kwargs["default"] = default
        return kwargs
    if meta.append:
        kwargs["action"] = "append"
        default = list(default) if isinstance(default, (tuple, list)) else default
    elif isinstance(default, tuple):
        default = list(default)
    if meta.required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    for name in ("type", "choices", "metavar", "nargs"):
        value = getattr(meta, name)
        if value is not None:
            kwargs[name] = value
    return kwargs


def from_args(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An instance of config class ``cls`` from the parsed ``args``; ``fixed`` gives the
    fields that are not options (or overrides them)."""
    values: dict[str, Any] = {}
    for f, meta in option_fields(cls):
        if f.name in fixed or not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if meta.convert is not None and value is not None:
            value = meta.convert(value)
        elif isinstance(value, list) and isinstance(default_of(f), (tuple, type(None))):
            value = tuple(value)
        values[f.name] = value
    return cls(**values, **fixed)
