"""Takedown lists: what ``wit takedown --list`` removes from existing shards and what
``--exclude`` makes ``wit crawl`` / ``wit shards`` skip. Pure parsing and matching, no I/O
but reading the list files (docs/consent.md, "Takedown", shows the format).

One entry per line; ``#`` starts a comment, blank lines are ignored::

    url https://example.com/img/cat.jpg      # the image URL, exactly (scheme/host any case)
    page https://example.com/blog/post.html  # every image of that page
    domain example.com                       # the host or any subdomain, image or page
    sha256 9f86d081...                       # the downloaded bytes' SHA-256 (64 hex)
    phash c3a1f0e2d4b59687 6                 # a 64-bit pHash (16 hex) within 6 bits (default 0)

A line that is a JSON object is a record of ``OUT/shards/removals.jsonl``: its ``rule`` (the
list line that removed the sample) counts again, and the removed sample's ``url`` and
``sha256`` too, so that the same image is refused under another rule's reach.

URL, page and domain entries act before anything is fetched; sha256 and pHash ones only
once the bytes are in hand (the downloader refuses the image then, never writes it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import fsspec

from pipeline.core.errors import InputError

KINDS = ("url", "page", "domain", "sha256", "phash")
MAX_RADIUS = 32  # beyond this a 64-bit pHash matches unrelated images
HEX = frozenset("0123456789abcdef")
COMMENT = re.compile(r"(?:^|\s)#")


class TakedownListError(InputError):
    """A line of a takedown list that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class Rule:
    """One entry: its kind, its normalised value (pHash: 16 hex digits), the Hamming radius
    of a pHash entry, and where it was read (``FILE:LINE``)."""

    kind: str
    value: str
    radius: int = 0
    where: str = ""

    @property
    def line(self) -> str:
        """The entry as a list line (what removals.jsonl records as ``rule``)."""
        return f"{self.kind} {self.value}" + (f" {self.radius}" if self.kind == "phash" else "")


def normalize_url(url: str) -> str:
    """Scheme and host lower case, the fragment dropped: what a browser would fetch."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


def host_of(url: str | None) -> str:
    if not url:
        return ""
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def _hex(text: str, digits: int, what: str) -> str:
    value = text.lower()
    if len(value) != digits or not set(value) <= HEX:
        raise ValueError(f"{what} must be {digits} hex digits, got {text!r}")
    return value


def parse_rule(text: str, where: str = "") -> Rule | None:
    """One list line as a :class:`Rule`, None for a blank or comment line; ValueError
    (without the location) for a line that is neither."""
    # a comment: '#' at the start or after a space (a URL's fragment has no space before it)
    line = COMMENT.split(text.strip(), 1)[0].strip()
    if not line:
        return None
    first, *args = line.split()  # spaces or tabs between the fields
    kind = first.lower()
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)}, "
                         "then a value)")
    if not args:
        raise ValueError(f"{kind}: no value")
    if kind != "phash" and len(args) > 1:
        raise ValueError(f"{kind}: one value expected, got {len(args)}")
    value = args[0]
    if kind in ("url", "page"):
        if urlsplit(value).scheme not in ("http", "https") or not host_of(value):
            raise ValueError(f"{kind}: not an http(s) URL: {value!r}")
        return Rule(kind, normalize_url(value), where=where)
    if kind == "domain":
        domain = value.lower().rstrip(".")
        if "/" in domain or ":" in domain or "." not in domain.strip("."):
            raise ValueError(f"domain: expected a host name such as example.com, got {value!r}")
        return Rule(kind, domain, where=where)
    if kind == "sha256":
        return Rule(kind, _hex(value, 64, "sha256"), where=where)
    if len(args) > 2:
        raise ValueError(f"phash: expected 16 hex digits and an optional radius, got {len(args)} values")
    radius = 0
    if len(args) == 2:
        if not args[1].isdigit() or int(args[1]) > MAX_RADIUS:
            raise ValueError(f"phash: radius must be a whole number 0..{MAX_RADIUS}, got {args[1]!r}")
        radius = int(args[1])
    return Rule(kind, _hex(value, 16, "phash"), radius, where)


def rules_of_record(record: object, where: str = "") -> list[Rule]:
    """The rules a removals.jsonl record stands for: its ``rule``, then the removed
    sample's ``url`` and ``sha256``."""
    if not isinstance(record, dict) or not isinstance(record.get("rule"), str):
        raise ValueError("a JSON line must be a removals.jsonl record (an object with 'rule')")
    rules = []
    rule = parse_rule(record["rule"], where)
    if rule is not None:
        rules.append(rule)
    url = record.get("url")
    if isinstance(url, str) and url and urlsplit(url).scheme in ("http", "https"):
        rules.append(Rule("url", normalize_url(url), where=where))
    digest = record.get("sha256")
    if isinstance(digest, str) and digest:
        rules.append(Rule("sha256", _hex(digest, 64, "sha256"), where=where))
    return rules


def parse_lines(lines: Iterable[str], name: str) -> Iterator[Rule]:
    """The rules of a list's lines; :class:`TakedownListError` names ``name:LINE``."""
    for number, text in enumerate(lines, 1):
        where = f"{name}:{number}"
        try:
            if text.lstrip().startswith("{"):
                yield from rules_of_record(json.loads(text), where)
                continue
            rule = parse_rule(text, where)
        except (ValueError, json.JSONDecodeError) as exc:
            raise TakedownListError(f"{where}: {exc}") from None
        if rule is not None:
            yield rule


@dataclass
class TakedownList:
    """Every rule of some lists, indexed for matching. Memory: the rules themselves (a list
    is small next to the dataset); pHash rules are compared one by one."""

    urls: dict[str, Rule] = field(default_factory=dict)
    pages: dict[str, Rule] = field(default_factory=dict)
    domains: dict[str, Rule] = field(default_factory=dict)
    sha256s: dict[str, Rule] = field(default_factory=dict)
    phashes: dict[tuple[int, int], Rule] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def add(self, rule: Rule) -> None:
        if rule.kind == "phash":
            self.phashes.setdefault((int(rule.value, 16), rule.radius), rule)
        else:
            index = {"url": self.urls, "page": self.pages, "domain": self.domains,
                     "sha256": self.sha256s}[rule.kind]
            index.setdefault(rule.value, rule)

    def __len__(self) -> int:
        return sum(self.counts().values())

    def counts(self) -> dict[str, int]:
        """Rules by kind (the summary's 'read' line)."""
        return {"url": len(self.urls), "page": len(self.pages), "domain": len(self.domains),
                "sha256": len(self.sha256s), "phash": len(self.phashes)}

    @property
    def acts_after_download(self) -> bool:
        return bool(self.sha256s or self.phashes)

    def _domain_rule(self, url: str | None) -> Rule | None:
        host = host_of(url)
        while host:
            if host in self.domains:
                return self.domains[host]
            host = host.partition(".")[2]
        return None

    def before_download(self, url: str | None, page_url: str | None) -> Rule | None:
        """The rule that removes an image known by its URL and page, before any fetch."""
        # the emptiness checks first: an empty list costs a download row no URL parsing
        if self.urls and url and (rule := self.urls.get(normalize_url(url))):
            return rule
        if self.pages and page_url and (rule := self.pages.get(normalize_url(page_url))):
            return rule
        if self.domains:
            return self._domain_rule(url) or self._domain_rule(page_url)
        return None

    def after_download(self, sha256: str | None, phash: str | None) -> Rule | None:
        """The rule that removes an image by its bytes' SHA-256 or its pHash (16 hex)."""
        if self.sha256s and sha256 and (rule := self.sha256s.get(sha256.lower())):
            return rule
        if phash and self.phashes:
            value = int(phash, 16)
            for (other, radius), rule in self.phashes.items():
                if (value ^ other).bit_count() <= radius:
                    return rule
        return None

    def match(self, url: str | None, page_url: str | None, sha256: str | None,
              phash: str | None) -> Rule | None:
        return self.before_download(url, page_url) or self.after_download(sha256, phash)


def from_rules(rules: Iterable[Rule], sources: tuple[str, ...] = ()) -> TakedownList:
    found = TakedownList(sources=sources)
    for rule in rules:
        found.add(rule)
    return found


def read_lists(paths: Iterable[str]) -> TakedownList:
    """Every rule of the list files (local or fsspec paths); :class:`TakedownListError`
    names the file and line of a bad entry, :class:`InputError` a missing file."""
    paths = tuple(paths)
    found = TakedownList(sources=paths)
    for path in paths:
        try:
            with fsspec.open(path, "rt", encoding="utf-8") as f:
                for rule in parse_lines(f, path):
                    found.add(rule)
        except FileNotFoundError:
            raise InputError(f"{path}: no such takedown list") from None
        except UnicodeDecodeError as exc:
            raise TakedownListError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
                from None
    return found


