"""Wikitext -> plain text, tokenization and per-page counting (pure functions)."""

from collections import Counter

from queries.dump import iter_pages
from queries.tokenize import count_text, tokenize
from queries.wikitext import (
    is_article_link,
    normalize_title,
    prestrip,
    to_plain_text,
    to_plain_text_tree,
)

NAMESPACES = frozenset({"file", "category", "template", "wikipedia", "help", "portal"})


def plain(wikitext: str) -> str:
    return to_plain_text(wikitext, NAMESPACES)[0]


def test_templates_refs_comments_and_tables_are_dropped():
    text = plain(
        "{{Infobox person|name={{nowrap|Ada}}|born=1815}}Ada Lovelace<ref name=a>{{cite "
        "book|title=X}}</ref> was a mathematician<ref name=a/>.<!-- hidden -->\n"
        "{| class=wikitable\n|-\n| cell one || cell two\n|}\nAfter table."
    )
    assert "Infobox" not in text and "cite" not in text and "1815" not in text
    assert "hidden" not in text and "cell" not in text
    assert "Ada Lovelace was a mathematician." in text
    assert "After table." in text


def test_links_keep_their_label_files_and_categories_go():
    text, links = to_plain_text(
        "The [[Analytical Engine|engine]] of [[Charles Babbage]]. "
        "[[File:Ada.jpg|thumb|A portrait of [[Ada Lovelace]]]] [[Category:Mathematicians]] "
        "[[de:Ada Lovelace]] [[Star Wars: Episode IV]]", NAMESPACES)
    assert "The engine of Charles Babbage." in text
    assert "portrait" not in text and "Mathematicians" not in text and "de:" not in text
    assert links == ["Analytical Engine", "Charles Babbage", "Star Wars: Episode IV"]


def test_markup_entities_headings_and_lists():
    text = plain("== History ==\n'''Bold''' and ''italic'' &amp; [http://x.org External "
                 "site] <span>inline</span>\n* item one\n<math>x^2</math>")
    assert "History" in text and "'''" not in text and "''" not in text
    assert "Bold and italic & External site inline" in text
    assert "item one" in text and "x^2" not in text


def test_unbalanced_template_is_dropped_to_the_end():
    assert prestrip("before {{broken template never closed") == "before "
    assert prestrip("a {{x|{{y}}}} b {{z}} c") == "a  b  c"


def test_normalize_title_and_article_links():
    assert normalize_title("ada_lovelace#Early life") == "Ada lovelace"
    assert normalize_title("  hot   dog ") == "Hot dog"
    assert normalize_title("#Section") == ""
    assert is_article_link("Star Wars: Episode IV", NAMESPACES)
    assert not is_article_link("Category:Dogs", NAMESPACES)
    assert not is_article_link(":Category:Dogs", NAMESPACES)
    assert not is_article_link("fr:Chien", NAMESPACES)
    assert not is_article_link("Image:Dog.jpg", NAMESPACES)


def test_tokenize_keeps_case_inner_apostrophes_and_hyphens():
    assert tokenize("O'Brien's rock-and-roll, in 1990!\nNext") == [
        "O'Brien's", "rock-and-roll", ",", "in", "1990", "!", "\n", "Next"]
    assert tokenize("Café naïve") == ["Café", "naïve"]


def test_bigrams_do_not_cross_punctuation_or_lines():
    unigrams, bigrams = Counter(), Counter()
    words = count_text("New York is big. Hot dog\nstand (New York)", unigrams, bigrams)
    assert words == 9
    assert unigrams["New"] == 2 and unigrams["York"] == 2 and unigrams["new"] == 0
    assert bigrams["New York"] == 2
    assert bigrams["big Hot"] == 0  # a full stop between them
    assert bigrams["dog stand"] == 0  # a line end between them
    assert bigrams["Hot dog"] == 1


def test_token_stream_walk_equals_node_tree_walk_on_real_articles(wiki_sample):
    """The fast token-stream conversion gives exactly what the node-tree one gives."""
    articles = 0
    for page, namespaces in iter_pages(str(wiki_sample)):
        if page.namespace == 0 and not page.redirect:
            articles += 1
            assert to_plain_text(page.text, namespaces) == to_plain_text_tree(
                page.text, namespaces), page.title
    assert articles == 106


def test_stream_and_tree_agree_on_tricky_markup():
    for wikitext in [
        "<gallery mode=packed>\nA.jpg|x\n</gallery>after",
        "[[OS&nbsp;X|the OS]] and [[OS&nbsp;X]] &#65;&#x42;",
        "<span class=\"x\">in</span><br/>line<br>two",
        "[http://x.org label] http://bare.org [[File:x.png|thumb|a [[Dog]]]]",
        "== Head ==\n* one\n# two\n; term : def",
        "{{{arg|default}}} <!-- c --> <ref>r</ref> [[:Category:Dogs]]",
    ]:
        assert to_plain_text(wikitext, NAMESPACES) == to_plain_text_tree(wikitext, NAMESPACES)
