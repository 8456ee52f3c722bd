"""Licence signals -> SPDX ids (pure; table-tested in tests/test_licenses.py).

A *signal* is one piece of licence evidence found on a page or in an image, written
``kind=raw text`` (:func:`signal`), e.g. ``rel_license=https://creativecommons.org/licenses/by/4.0/``
or ``exif_copyright=(c) 2021 Jane Doe``. :data:`PAGE_KINDS` and :data:`IMAGE_KINDS` name
them. :func:`normalize` maps one raw text to an SPDX id when it names a known licence:

- Creative Commons URLs (``creativecommons.org/licenses/<elements>/<version>/<port>``), every
  version (1.0, 2.0, 2.1, 2.5, 3.0, 4.0) and element set; ports with an SPDX id of their own
  (``/by-sa/3.0/de/`` -> ``CC-BY-SA-3.0-DE``, ``/by/3.0/igo/`` -> ``CC-BY-3.0-IGO``) get it,
  the other ports ``LicenseRef-CC-BY-SA-3.0-ES`` (SPDX has no id for them; their terms are
  the unported licence's, a user who accepts them names them too);
- ``/publicdomain/zero/1.0/`` -> ``CC0-1.0``, ``/publicdomain/mark/1.0/`` -> ``CC-PDM-1.0``
  (the Public Domain Mark), ``/licenses/publicdomain/`` -> ``CC-PDDC``;
- texts: SPDX ids in any case (``cc-by-4.0``), short names (``CC BY-SA 4.0``, ``CC0``) and
  the licences' titles (``Creative Commons Attribution-NonCommercial 4.0 International``),
  also inside a longer sentence.

A text without a version (``CC BY``) names no single licence: it stays unknown, as any
other text. :func:`resolve` picks a sample's ``license`` from all its signals: the first one,
in :data:`PRIORITY` order, that normalises to an SPDX id; else the raw text of the first
licence-bearing signal (an EXIF copyright notice such as ``All rights reserved``); else None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# the longest raw text kept in a signal (a page's whole dc.rights paragraph is cut here)
MAX_SIGNAL_CHARS = 500
# signals kept per page or image (a page listing 10,000 licence links keeps these)
MAX_SIGNALS = 16

# page signals (pipeline.crawl.page_licenses)
REL_LICENSE = "rel_license"  # <a rel="license" href>
LINK_LICENSE = "link_license"  # <link rel="license" href>
CC_URL = "cc_url"  # any other link to a Creative Commons licence or tool
DCTERMS_LICENSE = "dcterms_license"  # <meta name="dcterms.license"> (and dc.license)
DC_RIGHTS = "dc_rights"  # <meta name="dc.rights"> / dcterms.rights
PAGE_KINDS = (REL_LICENSE, LINK_LICENSE, DCTERMS_LICENSE, CC_URL, DC_RIGHTS)

# image signals (pipeline.core.image_rights)
XMP_CC_LICENSE = "xmp_cc_license"  # cc:license
XMP_WEB_STATEMENT = "xmp_web_statement"  # xmpRights:WebStatement
XMP_USAGE_TERMS = "xmp_usage_terms"  # xmpRights:UsageTerms
XMP_DC_RIGHTS = "xmp_dc_rights"  # dc:rights
EXIF_COPYRIGHT = "exif_copyright"  # EXIF 0x8298
IPTC_COPYRIGHT = "iptc_copyright"  # IPTC 2:116 copyright notice
EXIF_ARTIST = "exif_artist"  # EXIF 0x013B: who made it, no licence
IMAGE_KINDS = (XMP_CC_LICENSE, XMP_WEB_STATEMENT, XMP_USAGE_TERMS, XMP_DC_RIGHTS,
               EXIF_COPYRIGHT, IPTC_COPYRIGHT, EXIF_ARTIST)

# which signal decides: what the image says of itself first (a page holds images of many
# origins), machine-readable before free text
PRIORITY = (XMP_CC_LICENSE, XMP_WEB_STATEMENT, XMP_USAGE_TERMS, REL_LICENSE, LINK_LICENSE,
            DCTERMS_LICENSE, CC_URL, XMP_DC_RIGHTS, EXIF_COPYRIGHT, IPTC_COPYRIGHT, DC_RIGHTS)
NOT_A_LICENCE = frozenset({EXIF_ARTIST})

# CC ports that have an SPDX id of their own (SPDX licence list 3.24)
SPDX_PORTS = frozenset({
    "CC-BY-2.5-AU", "CC-BY-3.0-AT", "CC-BY-3.0-AU", "CC-BY-3.0-DE", "CC-BY-3.0-IGO",
    "CC-BY-3.0-NL", "CC-BY-3.0-US", "CC-BY-NC-3.0-DE", "CC-BY-NC-ND-3.0-DE",
    "CC-BY-NC-ND-3.0-IGO", "CC-BY-NC-SA-2.0-DE", "CC-BY-NC-SA-2.0-FR", "CC-BY-NC-SA-2.0-UK",
    "CC-BY-NC-SA-3.0-DE", "CC-BY-NC-SA-3.0-IGO", "CC-BY-ND-3.0-DE", "CC-BY-SA-2.0-UK",
    "CC-BY-SA-2.1-JP", "CC-BY-SA-3.0-AT", "CC-BY-SA-3.0-DE", "CC-BY-SA-3.0-IGO",
})
VERSIONS = ("1.0", "2.0", "2.1", "2.5", "3.0", "4.0")
# element order in SPDX ids; CC 1.0 URLs also wrote "by-nd-nc"
_ORDER = {"by": 0, "nc": 1, "nd": 2, "sa": 3}
# unported ids SPDX lists (every BY licence of 1.0-4.0 but 2.1, which exists only as ports)
_UNPORTED_VERSIONS = ("1.0", "2.0", "2.5", "3.0", "4.0")

_CC_URL = re.compile(
    r"(?:https?:)?//(?:www\.)?creativecommons\.org/"
    r"(?:licenses/(?P<elements>[a-z+-]+)(?:/(?P<version>\d\.\d))?(?:/(?P<port>[a-z-]+))?"
    r"|publicdomain/(?P<tool>zero|mark)/(?P<tool_version>\d\.\d))", re.I)
_WORDS = (
    (r"creative\s*commons", "cc"), (r"attribution", "by"),
    (r"non[\s-]*commercial", "nc"), (r"no[\s-]*deriv(?:ative)?s?(?:\s*works)?", "nd"),
    (r"share[\s-]*alike", "sa"),
)
_SHORT = re.compile(
    r"\bcc[\s_-]*(?P<elements>by(?:[\s_-]*(?:nc|nd|sa)){0,2})[\s_-]*v?(?P<version>\d\.\d)"
    r"(?:[\s_-]+(?P<port>[a-z]{2,3})\b)?", re.I)
_CC0 = re.compile(r"\bcc[\s_-]*(?:zero|0)(?:[\s_-]*(?:1\.0|universal))?\b", re.I)
_PDM = re.compile(r"\bpublic[\s_-]*domain[\s_-]*mark\b|\bcc[\s_-]*pdm(?:[\s_-]*1\.0)?\b", re.I)
_PDDC = re.compile(r"\bcc[\s_-]*pddc\b", re.I)


def signal(kind: str, raw: str) -> str:
    """``kind=raw`` with the raw text's whitespace collapsed and cut to
    :data:`MAX_SIGNAL_CHARS` characters."""
    return f"{kind}={' '.join(raw.split())[:MAX_SIGNAL_CHARS]}"


def split_signal(value: str) -> tuple[str, str]:
    """``kind=raw`` -> ``(kind, raw)``."""
    kind, _, raw = value.partition("=")
    return kind, raw


def _cc_id(elements: str, version: str | None, port: str | None) -> str | None:
    parts = [p for p in re.split(r"[\s_+-]+", elements.lower()) if p]
    if version not in VERSIONS or not parts or any(p not in _ORDER for p in parts) \
            or len(set(parts)) != len(parts) or ("nd" in parts and "sa" in parts):
        return None
    if parts[0] != "by" and version != "1.0":  # BY became mandatory with 2.0
        return None
    name = "CC-" + "-".join(sorted(parts, key=_ORDER.__getitem__)).upper() + f"-{version}"
    port = (port or "").lower()
    if port in ("", "legalcode", "deed", "rdf") or port.startswith(("legalcode", "deed")):
        if parts[0] == "by" and version in _UNPORTED_VERSIONS:
            return name
        return "LicenseRef-" + name
    ported = f"{name}-{port.upper()}"
    return ported if ported in SPDX_PORTS else "LicenseRef-" + ported


def _from_url(text: str) -> str | None:
    match = _CC_URL.search(text)
    if not match:
        return None
    if match.group("tool"):
        if match.group("tool_version") != "1.0":
            return None
        return "CC0-1.0" if match.group("tool").lower() == "zero" else "CC-PDM-1.0"
    elements = match.group("elements").lower()
    if elements == "publicdomain":
        return "CC-PDDC"
    return _cc_id(elements, match.group("version"), match.group("port"))


def _from_text(text: str) -> str | None:
    plain = text.lower()
    for pattern, short in _WORDS:
        plain = re.sub(pattern, short, plain)
    if _PDM.search(plain):
        return "CC-PDM-1.0"
    if _PDDC.search(plain):
        return "CC-PDDC"
    if _CC0.search(plain):
        return "CC0-1.0"
    match = _SHORT.search(plain)
    if not match:
        return None
    port = match.group("port")
    if port and port in ("int", "international", "unported", "generic", "license", "licence"):
        port = None
    found = _cc_id(match.group("elements"), match.group("version"), port)
    if found and found.startswith("LicenseRef-") and port:  # "4.0 by" read as a port: no
        found = _cc_id(match.group("elements"), match.group("version"), None)
    return found


def normalize(raw: str | None) -> str | None:
    """The SPDX id (or ``LicenseRef-CC-...`` for a CC port SPDX lacks) that ``raw`` names,
    or None when it names no known licence."""
    if not raw or not isinstance(raw, str):
        return None
    text = raw.strip()[:MAX_SIGNAL_CHARS * 4]
    return _from_url(text) or _from_text(text)


def resolve(signals: Iterable[str]) -> str | None:
    """A sample's ``license`` from its signals (page and image): see the module doc."""
    by_kind: dict[str, list[str]] = {}
    for value in signals or ():
        kind, raw = split_signal(value)
        by_kind.setdefault(kind, []).append(raw)
    for kind in PRIORITY:
        for raw in by_kind.get(kind, ()):
            spdx = normalize(raw)
            if spdx:
                return spdx
    for kind in PRIORITY:
        for raw in by_kind.get(kind, ()):
            if raw.strip():
                return raw.strip()
    return None


def parse_license_list(text: str) -> tuple[str, ...]:
    """``CC0-1.0,CC-BY-4.0`` (``--licenses``) -> the ids, each also accepted in the forms
    :func:`normalize` knows (``cc-by-4.0``, a CC URL) and stored as its SPDX id; ValueError
    for an empty list."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        if part:
            ids.append(normalize(part) or part)
    if not ids:
        raise ValueError(f"{text!r} names no licence")
    return tuple(dict.fromkeys(ids))
