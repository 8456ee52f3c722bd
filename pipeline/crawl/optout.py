"""Page-level opt-out signals at crawl time (pure): a page that reserves TDM or says
``noai``/``noimageai`` to robots drops every image of the page -- its alt texts and captions
are the page's content -- before any pair is made (docs/consent.md, "Opt-out signals").

Signals, in the order they are checked (the first one found is the page's reason):

- ``tdm_reservation``: a ``tdm-reservation: 1`` response header (live pages, WARC records,
  WAT ``HTTP-Response-Metadata.Headers``) or ``<meta name="tdm-reservation" content="1">``
  (TDMRep; the live crawler also honours the origin's ``/.well-known/tdmrep.json`` before
  fetching a page: ``pipeline.crawl.live_crawler``);
- ``x_robots_tag``: an ``X-Robots-Tag`` response header carrying one of the directives, for
  every agent or for our token;
- ``robots_meta``: ``<meta name="robots" content="noai, noimageai">`` (or a meta named after
  our token), one of the directives.

Counters: ``opted_out:<reason>`` per image dropped, ``opted_out_pages`` per page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from urllib3 import HTTPHeaderDict

from pipeline.core.net.headers import x_robots_forbids
from pipeline.core.net.tdmrep import HEADER as TDM_HEADER
from pipeline.core.net.tdmrep import header_reserves, reservation_value

DEFAULT_ROBOTS_DIRECTIVES = ("noai", "noimageai")
TDM_RESERVATION, X_ROBOTS_TAG, ROBOTS_META = "tdm_reservation", "x_robots_tag", "robots_meta"
OPTED_OUT_PREFIX = "opted_out:"
OPTED_OUT_PAGES = "opted_out_pages"
MAX_META_CHARS = 1000  # a robots meta longer than this is read up to here
_SEPARATORS = re.compile(r"[\s,]+")


def opted_out(reason: str) -> str:
    """The per-image counter ``opted_out:<reason>``."""
    return OPTED_OUT_PREFIX + reason


@dataclass(frozen=True)
class PageOptOut:
    """Which page-level signals are honoured. ``robots_directives`` empty: robots meta and
    X-Robots-Tag ignored; ``respect_tdmrep`` False: TDMRep ignored."""

    robots_directives: tuple[str, ...] = DEFAULT_ROBOTS_DIRECTIVES
    respect_tdmrep: bool = True
    token: str = "webimagetext"  # a meta of this name and X-Robots-Tag "token: ..." apply too

    @property
    def active(self) -> bool:
        return bool(self.robots_directives) or self.respect_tdmrep


def header_dict(pairs: Iterable[tuple[object, object]]) -> HTTPHeaderDict:
    """Header (name, value) pairs of any source as one HTTPHeaderDict (non-strings dropped)."""
    headers = HTTPHeaderDict()
    for name, value in pairs:
        if isinstance(name, str) and isinstance(value, str):
            headers.add(name, value)
    return headers


def header_opt_out(headers: HTTPHeaderDict, policy: PageOptOut) -> str | None:
    """The reason a page's response headers opt it out, or None."""
    if policy.respect_tdmrep and header_reserves(headers):
        return TDM_RESERVATION
    directives = {d.lower() for d in policy.robots_directives}
    if directives and x_robots_forbids(headers, policy.token.lower(), directives):
        return X_ROBOTS_TAG
    return None


def meta_opt_out(metas: Iterable[tuple[object, object]], policy: PageOptOut) -> str | None:
    """The reason a page's ``<meta name content>`` pairs opt it out, or None."""
    directives = {d.lower() for d in policy.robots_directives}
    names = {"robots", policy.token.lower()}
    robots = False
    for name, content in metas:
        if not isinstance(name, str) or not isinstance(content, str):
            continue
        name = name.strip().lower()
        if policy.respect_tdmrep and name == TDM_HEADER and reservation_value(content) is True:
            return TDM_RESERVATION
        if directives and name in names and not robots:
            robots = any(d.lower() in directives
                         for d in _SEPARATORS.split(content[:MAX_META_CHARS]) if d)
    return ROBOTS_META if robots else None
