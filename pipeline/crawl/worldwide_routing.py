"""Language routing of every text (MetaCLIP 2): each text of an image (alt, title,
data-image-title, ...) gets its own LID call (fastText lid.176, top-1 label), the label is
merged to a metadata language (:func:`pipeline.core.language.route`: ``yue`` -> ``zh``, a
language without metadata -> ``other``) and the text is matched against that language's
query list only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pipeline.core.language import detect_language, route
from pipeline.crawl.elements import TextMatch
from pipeline.crawl.worldwide_matching import WorldwideMatcher


class WorldwideRouter:
    """LID + per-language matching; built once per worker (the automata and the model)."""

    def __init__(self, metadata: Mapping[str, Sequence[str]],
                 detect: Callable[[str], str] = detect_language):
        self.matcher = WorldwideMatcher(metadata)
        self.detect = detect

    def language(self, text: str) -> str:
        return route(self.detect(text), self.matcher.languages)

    def text_match(self, index: int, text: str) -> TextMatch:
        language = self.language(text)
        return TextMatch(index, tuple(self.matcher.match(language, text)), language)
