"""`wit shards` on bad input: one line naming the file, exit 1, nothing downloaded."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main

pytestmark = pytest.mark.integration


def test_wrong_columns_name_the_file(tmp_path, capsys):
    folder = tmp_path / "candidates"
    folder.mkdir()
    pq.write_table(pa.table({"url": ["http://127.0.0.2:9/a.jpg"], "caption": ["a cat"]}),
                   folder / "part-00000.parquet")
    assert main(["shards", "--candidates", str(folder), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "part-00000.parquet: missing column 'uid'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "shards" / "_work" / "round0").exists()


def test_missing_folder_and_garbage_file(tmp_path, capsys):
    assert main(["shards", "--candidates", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "no such candidates file" in capsys.readouterr().err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    assert main(["shards", "--candidates", str(tmp_path / "bad.parquet"), "--out", str(tmp_path)]) == 1
    assert "bad.parquet: not a readable candidates Parquet file" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    try:
        main(["shards", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--near-dup-bits" in out and "default: 10" in out and "--allow-network" in out
