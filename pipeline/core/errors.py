"""User-facing errors: one line that names the file/record and what is wrong."""

from __future__ import annotations

import re


class WitError(Exception):
    """An error the user can act on (bad input, missing data). The CLI prints it as one line
    and exits non-zero, also when it was raised on a Beam worker."""


class InputError(WitError):
    """An input file is missing, unreadable or malformed."""


class UsageError(WitError):
    """Options that are valid one by one but not together (``--encode-format png
    --encode-quality 95``), or a bad setting from the environment (``WORLD_SIZE=-3``): the
    CLI reports it like argparse's own usage errors, one line and exit code 2."""


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found.add(sub)
        found |= _all_subclasses(sub)
    return found


def user_message(exc: BaseException) -> str | None:
    """The message of the :class:`WitError` behind ``exc``, or None.

    Beam runners re-raise worker exceptions as RuntimeError carrying the worker's traceback
    text, so besides the exception chain we look for ``SomeWitError: message`` in the text.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, WitError):
            return _without_step(str(current))
        current = current.__cause__ or current.__context__
    names = "|".join(sorted(c.__name__ for c in _all_subclasses(WitError) | {WitError}))
    match = re.search(rf"\b(?:{names}): (.+)", str(exc))
    return _without_step(match.group(1)) if match else None


def _without_step(message: str) -> str:
    """Beam appends " [while running 'Step']" to messages of worker exceptions."""
    return re.sub(r" \[while running '.*'\]$", "", message.strip().splitlines()[0])
