"""Wikitext -> plain text (and the article links in it), with mwparserfromhell.

Pure functions, no Beam. Templates, tables, references, comments and file/category links
are dropped; link labels, headings and running text are kept.

Speed (see docs/benchmarks.md): before parsing, a balanced-brace scanner removes templates,
tables and <ref>s — they are dropped anyway and make up a third of article wikitext. Then
mwparserfromhell's C tokenizer splits the rest into tokens, and :func:`to_plain_text` walks
that token stream directly instead of letting mwparserfromhell build its node tree (building
Python node objects costs three times the tokenizing). :func:`to_plain_text_tree` is the same
conversion over the node tree; tests check that both agree.
"""

from __future__ import annotations

import html
import re

import mwparserfromhell
from mwparserfromhell.nodes import (
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Tag,
    Text,
    Wikilink,
)
from mwparserfromhell.parser import CTokenizer, ParserError
from mwparserfromhell.parser import tokens as tk

# Tags whose contents are not running text.
DROPPED_TAGS = frozenset(
    "ref references table gallery math chem score timeline graph imagemap inputbox "
    "syntaxhighlight source pre code templatedata categorytree mapframe maplink "
    "section hiero poem".split()
)
# Tags after which a line ends (so bigrams do not span them).
BLOCK_TAGS = frozenset("br p div li dd dt tr td th blockquote center ul ol dl".split())

# Namespace prefixes of links that are not articles (besides the dump's own namespaces).
EXTRA_LINK_PREFIXES = frozenset(
    "image media wp wt wikt wiktionary w s q n b v voy commons meta mw species "
    "wikisource wikiquote wikinews wikibooks wikiversity wikivoyage wikidata d "
    "special user talk".split()
)
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]+)*$")
_REF = re.compile(r"<ref\b[^>]*/>|<ref\b[^>]*>.*?</ref\s*>", re.S | re.I)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_QUOTES = re.compile(r"'{2,}")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _drop_balanced(text: str, open_mark: str, close_mark: str) -> str:
    """Remove every balanced ``open_mark ... close_mark`` span (nesting aware)."""
    if open_mark not in text:
        return text
    out, pos, n = [], 0, len(text)
    while True:
        start = text.find(open_mark, pos)
        if start < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        depth, k = 1, start + len(open_mark)
        while depth and k < n:
            next_open = text.find(open_mark, k)
            next_close = text.find(close_mark, k)
            if next_close < 0:  # unbalanced: drop to the end, as MediaWiki shows it as text
                k = n
                break
            if 0 <= next_open < next_close:
                depth, k = depth + 1, next_open + len(open_mark)
            else:
                depth, k = depth - 1, next_close + len(close_mark)
        pos = k
    return "".join(out)


def prestrip(wikitext: str) -> str:
    """Drop comments, references, templates/parser functions and tables."""
    text = _COMMENT.sub("", wikitext)
    text = _REF.sub("", text)
    text = _drop_balanced(text, "{{", "}}")
    return _drop_balanced(text, "{|", "|}")


def normalize_title(title: str) -> str:
    """A link target as MediaWiki names the page: no anchor, ``_`` -> space, collapsed
    spaces, first letter upper-case."""
    title = title.split("#", 1)[0].replace("_", " ")
    if "  " in title or "\t" in title or "\u00a0" in title:  # else sub() changes nothing
        title = _SPACES.sub(" ", title)
    title = title.strip()
    return title[:1].upper() + title[1:] if title else ""


def is_article_link(title: str, namespaces: frozenset[str]) -> bool:
    """False for File:/Category:/interwiki/interlanguage and other non-article links."""
    title = title.strip()
    if not title or title.startswith(":") or title.startswith("#"):
        return False
    if ":" in title:
        prefix = title.split(":", 1)[0].strip().lower()
        if prefix in namespaces or prefix in EXTRA_LINK_PREFIXES or _LANGUAGE_CODE.match(prefix):
            return False
    return True


def _render(nodes, out: list[str], links: list[str], namespaces: frozenset[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Wikilink):
            title = html.unescape(str(node.title))
            if not is_article_link(title, namespaces):
                continue
            links.append(title)
            if node.text is not None:
                _render(node.text.nodes, out, links, namespaces)
            else:
                out.append(title)
        elif isinstance(node, ExternalLink):
            if node.title is not None:
                _render(node.title.nodes, out, links, namespaces)
        elif isinstance(node, Tag):
            tag = str(node.tag).strip().lower()
            if tag in DROPPED_TAGS:
                continue
            if node.contents is not None and not node.self_closing:
                _render(node.contents.nodes, out, links, namespaces)
            if tag in BLOCK_TAGS:
                out.append("\n")
        elif isinstance(node, Heading):
            out.append("\n")
            _render(node.title.nodes, out, links, namespaces)
            out.append("\n")
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, Comment):
            continue
        # Template, Argument and anything else: not running text.


def to_plain_text_tree(
    wikitext: str, namespaces: frozenset[str] = frozenset()
) -> tuple[str, list[str]]:
    """:func:`to_plain_text` over mwparserfromhell's node tree (slower; the reference)."""
    code = mwparserfromhell.parse(prestrip(wikitext), skip_style_tags=True)
    out: list[str] = []
    links: list[str] = []
    _render(code.nodes, out, links, namespaces)
    text = _QUOTES.sub("", "".join(out))
    return text, links


class _Frame:
    """An open construct while walking the token stream."""

    __slots__ = ("kind", "emit", "part", "parts", "name", "hex", "numeric")

    def __init__(self, kind: str, emit: bool):
        self.kind, self.emit, self.part = kind, emit, ""
        self.parts: list[str] = []
        self.name = ""
        self.hex = self.numeric = False


# frames whose text is collected (link titles, tag names, entity bodies), not output
_COLLECTING = frozenset({"link", "tagopen", "tagclose", "entity"})


def _entity(frame: _Frame) -> str:
    body = "".join(frame.parts)
    code = f"&#x{body};" if frame.hex else f"&#{body};" if frame.numeric else f"&{body};"
    return html.unescape(code)


def to_plain_text(
    wikitext: str, namespaces: frozenset[str] = frozenset()
) -> tuple[str, list[str]]:
    """Plain text of an article and the raw titles of its article links.

    ``namespaces``: lower-cased namespace names of the wiki (from the dump's siteinfo), so
    links into them are not taken for article links.
    """
    try:
        stream = CTokenizer().tokenize(prestrip(wikitext), 0, True)
    except (ParserError, RecursionError) as exc:  # pathological markup: use the tree path
        raise ValueError(f"wikitext not tokenized: {exc}") from exc
    out: list[str] = []
    links: list[str] = []
    stack = [_Frame("root", True)]
    for token in stream:
        kind = type(token)
        top = stack[-1]
        if kind is tk.Text:
            if top.kind in _COLLECTING:
                top.parts.append(token["text"])
            elif top.emit and top.kind != "tagattrs":
                out.append(token["text"])  # dict access: Token.__getattr__ is Python
        elif kind is tk.WikilinkOpen:
            stack.append(_Frame("link", top.emit))
        elif kind is tk.WikilinkSeparator and top.kind == "link" and top.part == "":
            title = "".join(top.parts)
            article = is_article_link(title, namespaces)
            if article and top.emit:
                links.append(title)
            top.kind, top.part, top.emit = "linktext", title, top.emit and article
        elif kind is tk.WikilinkClose and top.kind in ("link", "linktext"):
            stack.pop()
            if top.kind == "link":
                title = "".join(top.parts)
                if top.emit and is_article_link(title, namespaces):
                    links.append(title)
                    out.append(title)
        elif kind is tk.ExternalLinkOpen:
            stack.append(_Frame("exturl", False))
            stack[-1].part = "emit" if top.emit else ""
        elif kind is tk.ExternalLinkSeparator and top.kind == "exturl":
            top.kind, top.emit = "exttitle", top.part == "emit"
        elif kind is tk.ExternalLinkClose and top.kind in ("exturl", "exttitle"):
            stack.pop()
        elif kind is tk.TemplateOpen or kind is tk.ArgumentOpen or kind is tk.CommentStart:
            stack.append(_Frame("hidden", False))
        elif (kind is tk.TemplateClose or kind is tk.ArgumentClose
              or kind is tk.CommentEnd) and top.kind == "hidden":
            stack.pop()
        elif kind is tk.HeadingStart:
            out.append("\n") if top.emit else None
            stack.append(_Frame("heading", top.emit))
        elif kind is tk.HeadingEnd and top.kind == "heading":
            stack.pop()
            out.append("\n") if top.emit else None
        elif kind is tk.HTMLEntityStart:
            stack.append(_Frame("entity", top.emit))
        elif kind is tk.HTMLEntityNumeric and top.kind == "entity":
            top.numeric = True
        elif kind is tk.HTMLEntityHex and top.kind == "entity":
            top.hex = True
        elif kind is tk.HTMLEntityEnd and top.kind == "entity":
            stack.pop()
            if stack[-1].kind in _COLLECTING:
                stack[-1].parts.append(_entity(top))
            elif top.emit and stack[-1].kind != "tagattrs":
                out.append(_entity(top))
        elif kind is tk.TagOpenOpen:
            stack.append(_Frame("tagopen", top.emit))
        elif kind is tk.TagAttrStart and top.kind == "tagopen":
            top.name = top.name or "".join(top.parts).strip().lower()
            top.kind = "tagattrs"
        elif kind is tk.TagCloseOpen and top.kind in ("tagopen", "tagattrs"):
            name = top.name or "".join(top.parts).strip().lower()
            top.kind, top.name = "tag", name
            top.emit = top.emit and name not in DROPPED_TAGS
        elif kind is tk.TagCloseSelfclose and top.kind in ("tagopen", "tagattrs"):
            stack.pop()
            name = top.name or "".join(top.parts).strip().lower()
            if top.emit and name in BLOCK_TAGS:
                out.append("\n")
        elif kind is tk.TagOpenClose:
            stack.append(_Frame("tagclose", False))
        elif kind is tk.TagCloseClose and top.kind == "tagclose":
            stack.pop()
            if stack[-1].kind == "tag":
                tag = stack.pop()
                if stack[-1].emit and tag.name in BLOCK_TAGS:
                    out.append("\n")
        # anything else (attribute text, separators of hidden constructs) is not text
    text = _QUOTES.sub("", "".join(out))
    return text, links
