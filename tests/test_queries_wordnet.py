"""The WordNet source: MetaCLIP's 86,654 entries for WordNet 3.0 (Debian's wordnet-base)."""

import shutil

import pytest

from pipeline.core.errors import InputError
from queries import wordnet
from queries.select import Candidate, is_valid_entry, merge, numeral_candidates


def test_wordnet_gives_metaclip_table1_count():
    names, version = wordnet.wordnet_entries()
    kept = [n for n in dict.fromkeys(names) if is_valid_entry(n)]
    assert version == "3.0"
    assert len(kept) == 86_554
    # with the numerals the merge always adds: MetaCLIP's Table 1 count
    merged, _ = merge({"numeral": numeral_candidates(),
                       "wordnet": [Candidate(n, "wordnet") for n in names]}, 500_000)
    assert len(merged) == 86_654
    assert [c.entry for c in merged[:100]] == [str(i) for i in range(100)]
    known = set(kept)
    for name in ("dog", "hotdog", "hot spring", "new york", "cat"):
        assert name in known
    # "hot dog" is a lemma of frank.n.02, not a synset name: MetaCLIP's rule leaves it out
    assert "hot dog" not in known
    assert not any("_" in n for n in kept)


def test_wndb_directory_without_lexnames_is_prepared(tmp_path, monkeypatch):
    if not wordnet._is_wndb(wordnet.Path(wordnet.DEBIAN_WNDB)):
        pytest.skip("Debian wordnet-base is not installed")
    wndb = tmp_path / "wndb"
    shutil.copytree(wordnet.DEBIAN_WNDB, wndb)
    (wndb / "lexnames").unlink(missing_ok=True)
    monkeypatch.setenv("WIT_CACHE", str(tmp_path / "cache"))
    prepared = wordnet.locate(str(wndb))
    lines = (prepared / "lexnames").read_text().splitlines()
    assert len(lines) == 45 and lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"


def test_missing_wordnet_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no WordNet database"):
        wordnet.locate(str(tmp_path / "nowhere"))
