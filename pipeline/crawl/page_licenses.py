"""Licence signals of one HTML page (pure; lxml), as ``kind=raw`` strings
(:func:`pipeline.core.licenses.signal`), in document order, distinct, at most
:data:`~pipeline.core.licenses.MAX_SIGNALS`:

- ``rel_license``: ``<a rel="license" href>`` (rel is a space-separated list);
- ``link_license``: ``<link rel="license" href>``;
- ``dcterms_license``: ``<meta name="dcterms.license" | "dc.license" content>``;
- ``dc_rights``: ``<meta name="dc.rights" | "dcterms.rights" content>``;
- ``cc_url``: any other ``<a href>`` to ``creativecommons.org/licenses/...`` or
  ``/publicdomain/...`` (a licence badge without rel).

The same signals go with every image of the page (``page_licenses``); the shards stage adds
the image's own and picks the sample's ``license`` (:func:`pipeline.core.licenses.resolve`).
"""

from __future__ import annotations

import re

import lxml.html

from pipeline.core import licenses as lic
from pipeline.crawl.pairs import resolve_url

CC_HREF = re.compile(r"^https?://(?:www\.)?creativecommons\.org/(?:licenses|publicdomain)/", re.I)
_META_KINDS = {"dcterms.license": lic.DCTERMS_LICENSE, "dc.license": lic.DCTERMS_LICENSE,
               "dc.rights": lic.DC_RIGHTS, "dcterms.rights": lic.DC_RIGHTS}


def _rels(element: lxml.html.HtmlElement) -> set[str]:
    return {r.lower() for r in (element.get("rel") or "").split()}


def page_license_signals(doc: lxml.html.HtmlElement, base: str) -> tuple[str, ...]:
    """The licence signals of a parsed page whose links resolve against ``base``."""
    found: list[str] = []
    for element in doc.iter("a", "link", "meta"):
        if len(found) >= lic.MAX_SIGNALS:
            break
        if element.tag == "meta":
            kind = _META_KINDS.get((element.get("name") or element.get("property") or "")
                                   .strip().lower())
            content = element.get("content") or ""
            if kind and content.strip():
                found.append(lic.signal(kind, content))
            continue
        href = element.get("href")
        url = resolve_url(href, base) if href else None
        if url is None:
            continue
        if "license" in _rels(element):
            found.append(lic.signal(lic.REL_LICENSE if element.tag == "a" else lic.LINK_LICENSE,
                                    url))
        elif element.tag == "a" and CC_HREF.match(url):
            found.append(lic.signal(lic.CC_URL, url))
    return tuple(dict.fromkeys(found))[:lic.MAX_SIGNALS]
