"""TDMRep, the W3C TDM Reservation Protocol (https://www.w3.org/community/reports/tdmrep/):
a rightsholder reserves text-and-data-mining rights with ``tdm-reservation: 1`` -- in the
origin's ``/.well-known/tdmrep.json``, in a response header, or in an HTML
``<meta name="tdm-reservation" content="1">`` (the crawl reads the meta).

``tdmrep.json`` is a JSON array of rules ``{"location": PATTERN, "tdm-reservation": 0|1,
"tdm-policy": URL}``; the first rule whose pattern matches the URL's path (and query)
decides; no match leaves the reservation unset. Patterns follow robots.txt's: ``*`` is any
run of characters, a final ``$`` anchors the end, otherwise a pattern is a prefix; matching
is case sensitive, after percent-escapes of unreserved characters are decoded on both sides.
``1`` (or ``"1"``, ``true``) reserves, ``0`` (``"0"``, ``false``) does not; any other value
is a protocol error the spec says to treat as unset (the rule is skipped).

Failure policy, the same as robots.txt's (:mod:`pipeline.core.net.robots`):

- **2xx** with a JSON array: its rules (at most :data:`MAX_RULES`; the first
  :data:`TDMREP_MAX_BYTES` bytes are read);
- **2xx that is not such a JSON array** (malformed JSON, another JSON value, larger than
  :data:`TDMREP_MAX_BYTES`): no rules, as the spec says of an origin that does not provide
  the file (robots.txt's parse of garbage allows all too); counted as ``malformed``;
- **4xx** (404 included): no rules (the origin does not implement the protocol);
- **5xx or unreachable** (timeout, connection, TLS, DNS failure): nothing of that origin is
  fetched for now -- its URLs fail with reason ``tdmrep_unavailable``
  (``failed_to_download``, retried by ``--retry-failed``), like robots.txt's disallow-all;
- the file's URL refused by the SSRF guard: the URL is refused as blocked.

One deliberate strictness: a URL the file reserves is refused *before* it is requested; the
spec lets a later ``tdm-reservation: 0`` header supersede the file, which we never ask for.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3 import HTTPHeaderDict

from pipeline.core.net.client import FetchError, Gate, HttpClient
from pipeline.core.net.origin_cache import OriginCache

WELL_KNOWN = "/.well-known/tdmrep.json"
HEADER = "tdm-reservation"
TDMREP_MAX_BYTES = 512 * 1024
MAX_RULES = 10_000
MAX_PATTERN_CHARS = 2_000
CACHE_ORIGINS = 10_000
CACHE_BYTES = 16 * 1024 * 1024
RULE_BYTES, BASE_BYTES = 200, 512  # estimated bytes per kept rule (plus its pattern), per entry
POLICIES = ("rules", "none", "malformed", "unavailable", "blocked")  # TdmRules.policy values
RESERVED_REASON = "tdm_reservation"  # the FetchError reason (filtered:tdm_reservation)
UNAVAILABLE_REASON = "tdmrep_unavailable"  # failed_to_download, retried later
_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


def reservation_value(value: object) -> bool | None:
    """True for a reservation (``1``, ``"1"``, ``true``), False for ``0``/``"0"``/``false``,
    None (unset: a protocol error) for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        return {"1": True, "0": False}.get(value.strip())
    return None


def header_reserves(headers: HTTPHeaderDict | dict, name: str = HEADER) -> bool:
    """True when a ``tdm-reservation`` response header says ``1`` (any field of several)."""
    values: Iterable[str]
    if isinstance(headers, HTTPHeaderDict):
        values = headers.getlist(name)
    else:  # a plain mapping (a WAT record's headers): case-insensitive lookup
        values = [str(v) for k, v in headers.items() if str(k).lower() == name]
    return any(reservation_value(part) is True for value in values for part in value.split(","))


def _normalise(path: str) -> str:
    """Percent-escapes of unreserved characters decoded, the others upper-cased (RFC 3986's
    equivalence), so ``/%7Ea`` and ``/~a`` compare equal."""
    def one(m: re.Match) -> str:
        char = chr(int(m.group(1), 16))
        if char.isascii() and (char.isalnum() or char in "-._~"):
            return char
        return "%" + m.group(1).upper()
    return _UNRESERVED.sub(one, path)


def pattern_matches(pattern: str, path: str) -> bool:
    """robots.txt-style match of ``pattern`` against a URL's path (and query): ``*`` any run,
    a final ``$`` the end, else a prefix. Linear-time greedy wildcard matching (a hostile
    pattern of many ``*`` cannot make it backtrack exponentially)."""
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    parts = pattern.split("*")
    if not anchored:
        parts.append("")  # a prefix: anything may follow
    if len(parts) == 1:
        return path == parts[0]
    if not path.startswith(parts[0]):
        return False
    pos = len(parts[0])
    for middle in parts[1:-1]:
        found = path.find(middle, pos)
        if found < 0:
            return False
        pos = found + len(middle)
    last = parts[-1]
    return len(path) - pos >= len(last) and path.endswith(last)


@dataclass(frozen=True)
class TdmRule:
    location: str  # normalised pattern
    reserved: bool
    index: int  # position in the file, for the row's error message


@dataclass(frozen=True)
class TdmRules:
    """What one origin's tdmrep.json says. ``policy``: ``rules`` (parsed; maybe none),
    ``none`` (4xx), ``malformed``, ``unavailable`` (5xx or unreachable) or ``blocked``."""

    origin: str
    policy: str
    rules: tuple[TdmRule, ...] = ()
    error: FetchError | None = None
    skipped: int = 0  # rules that were protocol errors

    @property
    def size(self) -> int:
        return BASE_BYTES + sum(RULE_BYTES + len(r.location) for r in self.rules)

    def match(self, url: str) -> TdmRule | None:
        """The first rule matching ``url`` (None: unset)."""
        parts = urlsplit(url)
        path = _normalise((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return next((r for r in self.rules if pattern_matches(r.location, path)), None)

    def check(self, url: str) -> None:
        """Raise :class:`FetchError` (``tdm_reservation``, ``tdmrep_unavailable`` or the
        blocked reason) unless TDM on ``url`` is not reserved by the file."""
        if self.policy == "blocked" and self.error is not None:
            raise FetchError(str(self.error), self.error.reason)
        if self.policy == "unavailable":
            why = f": {self.error}" if self.error is not None else ""
            raise FetchError(f"{WELL_KNOWN} unavailable{why} (not fetched until it answers)",
                             UNAVAILABLE_REASON)
        rule = self.match(url)
        if rule is not None and rule.reserved:
            raise FetchError(f"TDM rights reserved by {WELL_KNOWN} (rule {rule.index + 1}: "
                             f"{rule.location!r})", RESERVED_REASON)


def parse_tdmrep(origin: str, text: bytes) -> TdmRules:
    """The rules of a tdmrep.json body (see the module doc); never raises."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return TdmRules(origin, "malformed")
    if not isinstance(data, list):
        return TdmRules(origin, "malformed")
    rules: list[TdmRule] = []
    skipped = 0
    for index, item in enumerate(data[:MAX_RULES]):
        location = item.get("location") if isinstance(item, dict) else None
        reserved = reservation_value(item.get(HEADER)) if isinstance(item, dict) else None
        if (not isinstance(location, str) or not location or len(location) > MAX_PATTERN_CHARS
                or reserved is None):
            skipped += 1
            continue
        rules.append(TdmRule(_normalise(location), reserved, index))
    return TdmRules(origin, "rules", tuple(rules), skipped=skipped + max(0, len(data) - MAX_RULES))


class TdmRepCache(OriginCache[TdmRules]):
    """tdmrep.json per origin, fetched through ``client`` (and ``gate``); bounded (LRU)."""

    def __init__(self, client: HttpClient, gate: Gate | None = None, *,
                 max_origins: int = CACHE_ORIGINS, max_bytes: int = CACHE_BYTES):
        super().__init__(max_origins, max_bytes)
        self.client, self.gate = client, gate
        self._policies = dict.fromkeys(POLICIES, 0)  # files fetched, by outcome
        self._count_lock = threading.Lock()

    def counts(self) -> dict[str, int]:
        """Files fetched by outcome: ``rules`` (a JSON array), ``none`` (4xx), ``malformed``,
        ``unavailable``, ``blocked`` (an origin fetched again after eviction counts again)."""
        with self._count_lock:
            return dict(self._policies)

    def rules(self, url: str) -> TdmRules:
        return self.get(url)

    def check(self, url: str) -> None:
        self.rules(url).check(url)

    def _fetch(self, origin: str) -> TdmRules:
        rules = self._fetch_file(origin)
        with self._count_lock:
            self._policies[rules.policy] += 1
        return rules

    def _fetch_file(self, origin: str) -> TdmRules:
        try:
            response = self.client.get(origin + WELL_KNOWN, gate=self.gate,
                                       max_bytes=TDMREP_MAX_BYTES)
        except FetchError as exc:
            if exc.http_status is not None and 400 <= exc.http_status < 500:
                return TdmRules(origin, "none")
            if exc.reason == "too_large":
                return TdmRules(origin, "malformed")
            if exc.reason.startswith("blocked_"):
                return TdmRules(origin, "blocked", error=exc)
            return TdmRules(origin, "unavailable", error=exc)
        return parse_tdmrep(origin, response.body)
