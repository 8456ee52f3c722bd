"""`wit demo` runs the stages that exist end to end and ends with a summary."""

import json

from pipeline.cli import main


def test_demo_on_the_sample_dump(tmp_path, wiki_sample, capsys):
    assert main(["demo", "--wiki", str(wiki_sample), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "demo summary" in out
    metadata = json.loads((tmp_path / "queries" / "metadata.json").read_text())
    assert len(metadata) > 86_654
