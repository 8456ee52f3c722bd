"""Strict parsers for the response headers the network layer acts on.

Header values arrive as latin-1 text, so a byte such as 0xB2 is ``'²'``, which
``str.isdigit()`` accepts and ``int()`` refuses; ``email.utils`` dates accept zone offsets
that overflow ``datetime``. Every parser here reads ASCII only, bounds the length of what it
converts, and for *any* string either returns a value or raises
:class:`~pipeline.core.net.errors.FetchError` — nothing else (property-tested with arbitrary
text in ``tests/test_net_headers.py``).
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from urllib.parse import urljoin

from urllib3 import HTTPHeaderDict

from pipeline.core.net.errors import FetchError

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
MAX_DIGITS = 18  # a longer number is "too large" for every purpose here (and int() is O(n^2))
TOO_LARGE = 10 ** MAX_DIGITS
MAX_RETRY_AFTER = 10.0 ** 9  # seconds (~31 years): any wait that long fails its request
MAX_DATE_CHARS = 64  # an HTTP-date is 29 characters
MAX_ZONE_OFFSET = 24 * 3600  # HTTP-dates are GMT; a zone beyond a day is not a date


def parse_digits(text: str) -> int | None:
    """``1*DIGIT`` (ASCII only, surrounding whitespace allowed) as an int, at most
    :data:`TOO_LARGE`; None for anything else (``'²'``, ``'+5'``, ``'1_0'``, ``''``)."""
    text = text.strip(" \t")
    if not _DIGITS.fullmatch(text):
        return None
    text = text.lstrip("0") or "0"
    return TOO_LARGE if len(text) > MAX_DIGITS else int(text)


def content_length(headers: HTTPHeaderDict) -> int | None:
    """The body length a response announces: None when it announces none, or when it has
    a ``Transfer-Encoding`` (which overrides ``Content-Length``, RFC 9112 section 6.3).
    A value that is not ``1*DIGIT`` -- or a list of different values -- makes the response's
    framing invalid: :class:`FetchError` ``bad_response``."""
    if "Transfer-Encoding" in headers:
        return None
    value = headers.get("Content-Length")  # several fields arrive joined by ", "
    if value is None:
        return None
    lengths = {parse_digits(part) for part in value.split(",")}
    if None in lengths or len(lengths) != 1:
        raise FetchError("invalid Content-Length header", "bad_response")
    return lengths.pop()


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date, never
    negative, at most :data:`MAX_RETRY_AFTER`; None when absent or unparseable."""
    if not value:
        return None
    seconds = parse_digits(value)
    if seconds is not None:
        return float(min(seconds, MAX_RETRY_AFTER))
    when = http_date(value)
    if when is None:
        return None
    return min(max(0.0, when - (time.time() if now is None else now)), MAX_RETRY_AFTER)


def http_date(value: str) -> float | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime form) as a Unix time; None when it is
    not one (non-ASCII, over-long, a zone offset beyond a day, a year out of range)."""
    value = value.strip()
    if not value.isascii() or len(value) > MAX_DATE_CHARS:
        return None
    try:
        parts = email.utils.parsedate_tz(value)
        if parts is None:
            return None
        year, month, day, hour, minute, second = parts[:6]
        offset = parts[9] or 0
        if not (1 <= year <= 9999 and 1 <= day <= 31 and 0 <= hour <= 24 and 0 <= minute <= 59
                and 0 <= second <= 61 and abs(offset) <= MAX_ZONE_OFFSET):
            return None
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 1, 0)) - offset)
    except (ValueError, TypeError, IndexError, OverflowError):  # email.utils' own corners
        return None


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a ``Location`` header points to from ``url``; a Location no URL
    parser can read (``http://[::1``) is :class:`FetchError` ``blocked_bad_url``."""
    try:
        return urljoin(url, location.strip())
    except ValueError as exc:
        raise FetchError("redirect to an invalid URL", "blocked_bad_url") from exc


def x_robots_forbids(headers: HTTPHeaderDict, token: str, directives: set[str]) -> bool:
    """True when an ``X-Robots-Tag`` header, for every agent or for ``token``, carries one
    of ``directives`` (``X-Robots-Tag: otherbot: noai`` does not apply to us)."""
    for value in headers.getlist("X-Robots-Tag"):
        agent, sep, rest = value.partition(":")
        if sep and agent.strip().lower() != token:
            continue
        if any(d.strip().lower() in directives for d in (rest if sep else value).split(",")):
            return True
    return False
