"""The demo's embedded inputs, prepared from the package registries and cached.

- Wikipedia: the real English dump excerpt that ships inside the gensim wheel (106 articles),
  fetched with ``pip download`` (not installed) and cut out of the wheel.
- WordNet: nltk data or Debian's wordnet-base (see ``queries.wordnet``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pipeline.core.errors import WitError

GENSIM_WHEEL = "gensim==4.4.0"
WIKI_MEMBER = ("gensim/test/test_data/"
               "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
WIKI_FILE = "enwiki-sample-pages-articles.xml.bz2"


def wikipedia_sample(cache: Path) -> Path:
    """The dump excerpt, from the cache or from the gensim wheel on PyPI."""
    target = cache / WIKI_FILE
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", tmp, GENSIM_WHEEL],
            capture_output=True, text=True)
        wheels = list(Path(tmp).glob("gensim-*.whl"))
        if done.returncode != 0 or not wheels:
            raise WitError(f"could not fetch the Wikipedia sample: 'pip download {GENSIM_WHEEL}'"
                           f" failed ({done.stderr.strip().splitlines()[-1:] or 'no wheel'});"
                           " check that PyPI is reachable or pass --wiki DUMP")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(WIKI_MEMBER)
            except KeyError as exc:
                raise WitError(f"{wheels[0].name}: has no {WIKI_MEMBER}") from exc
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.rename(target)
    return target
