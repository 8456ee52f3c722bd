"""Reading the worldwide metadata: one query list per language plus an index.

Layout (``wit queries`` with dumps of several languages writes it; docs/queries.md)::

    worldwide/index.json   {"languages": {"de": {"file": "de.json", "entries": 3}, ...}}
    worldwide/de.json      ["Bild", "Katze", "Hund"]       (a JSON list; index = entry id)

``file`` is relative to the index's folder. Language codes are merged codes
(:func:`pipeline.core.language.merge_code`: ``de``, ``zh``, ``other``).
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from pipeline.core.errors import InputError
from pipeline.core.language import OTHER, merge_code
from pipeline.crawl.matching import load_metadata

INDEX_FILE = "index.json"


def _read_json(path: str) -> Any:
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: worldwide metadata index not found (run `wit queries` "
                         "with --wiki dumps of several languages first)") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON file: {exc}") from exc


def index_files(index_path: str) -> dict[str, str]:
    """Language -> path of its query list, checked: a clear error naming the index when it
    is not the documented shape."""
    doc = _read_json(index_path)
    languages = doc.get("languages") if isinstance(doc, dict) else None
    if not isinstance(languages, dict) or not languages:
        raise InputError(f"{index_path}: expected {{\"languages\": {{code: {{\"file\": ...}}}}}}"
                         " with at least one language")
    folder = index_path.rsplit("/", 1)[0] if "/" in index_path else "."
    files = {}
    for code, item in sorted(languages.items()):
        if code != OTHER and merge_code(code) != code:
            raise InputError(f"{index_path}: language {code!r} is not a merged code "
                             f"(expected {merge_code(code)!r})")
        name = item.get("file") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
            raise InputError(f"{index_path}: language {code!r} needs a relative \"file\"")
        files[code] = f"{folder}/{name}"
    return files


def load_worldwide_metadata(index_path: str) -> dict[str, list[str]]:
    """Every language's query list, by language (sorted)."""
    return {code: load_metadata(path) for code, path in index_files(index_path).items()}
