"""WordNet synset names through nltk (MetaCLIP's rule), from nltk data or a WNDB directory.

MetaCLIP takes, for every synset, its name up to the first ``.`` with ``_`` -> space: 86,554
entries for WordNet 3.0 (its Table 1 counts 86,654 with the numerals "0".."99", which the
merge adds whatever the sources, see select.py).

A WNDB directory such as Debian's ``/usr/share/wordnet`` (packages ``wordnet-base`` +
``wordnet-sense-index``) is copied once into a cache directory that nltk can read: nltk
refuses symlinks out of its root, and Debian omits the ``lexnames`` file (its 45 lines are
the standard list of lexicographer files in ``lexnames(5WN)``, rebuilt below).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

from pipeline.core.errors import InputError

DEBIAN_WNDB = "/usr/share/wordnet"
WNDB_FILES = (
    "data.noun data.verb data.adj data.adv index.noun index.verb index.adj index.adv "
    "noun.exc verb.exc adj.exc adv.exc index.sense"
).split()
OPTIONAL_FILES = ("cntlist", "cntlist.rev", "sents.vrb", "frames.vrb", "sentidx.vrb")
# The lexicographer files of WordNet 3.0, numbered 00..44 (lexnames(5WN)).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food "
    "noun.group noun.location noun.motive noun.object noun.person noun.phenomenon "
    "noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative "
    "verb.weather adj.ppl"
).split()
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def cache_dir() -> Path:
    root = os.environ.get("WIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "webimagetext")
    return Path(root)


def _is_wndb(path: Path) -> bool:
    return (path / "data.noun").is_file() and (path / "index.noun").is_file()


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    for name in WNDB_FILES:
        file = path / name
        if file.exists():
            stat = file.stat()
            digest.update(f"{name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def _prepare_from_wndb(wndb: Path) -> Path:
    """Copy a WNDB directory into ``<cache>/wordnet-<fp>/`` with a ``lexnames`` file."""
    missing = [name for name in WNDB_FILES if not (wndb / name).is_file()]
    if missing:
        raise InputError(f"{wndb}: incomplete WordNet database, missing {', '.join(missing)}"
                         " (Debian: apt-get install wordnet-base wordnet-sense-index)")
    # nltk only reads corpora inside a directory of its data path.
    target = cache_dir() / "nltk_data" / "corpora" / "wordnet"
    stamp = _fingerprint(wndb)
    if (target / "lexnames").is_file() and (target / ".source").is_file() \
            and (target / ".source").read_text() == f"{wndb}:{stamp}":
        return target
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (*WNDB_FILES, *OPTIONAL_FILES):
        if (wndb / name).is_file():
            shutil.copyfile(wndb / name, staging / name)
    if (wndb / "lexnames").is_file():
        shutil.copyfile(wndb / "lexnames", staging / "lexnames")
    else:
        lines = [f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}"
                 for i, name in enumerate(LEXNAMES)]
        (staging / "lexnames").write_text("\n".join(lines) + "\n")
    (staging / ".source").write_text(f"{wndb}:{stamp}")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def locate(wordnet: str | None = None) -> Path:
    """The directory nltk's WordNetCorpusReader should read.

    ``wordnet``: a WNDB directory or an nltk data directory (holding corpora/wordnet). Without
    it: nltk's data path, then Debian's /usr/share/wordnet.
    """
    candidates: list[Path] = []
    if wordnet:
        path = Path(wordnet)
        candidates = [path, path / "corpora" / "wordnet", path / "dict"]
        found = next((c for c in candidates if _is_wndb(c)), None)
        if found is None:
            raise InputError(f"{wordnet}: no WordNet database there (expected data.noun, "
                             "index.noun, ... or corpora/wordnet/ of an nltk data directory)")
        return found if (found / "lexnames").is_file() else _prepare_from_wndb(found)
    import nltk

    for root in nltk.data.path:
        path = Path(root) / "corpora" / "wordnet"
        if _is_wndb(path) and (path / "lexnames").is_file():
            return path
        if (Path(root) / "corpora" / "wordnet.zip").is_file():
            return Path(root) / "corpora" / "wordnet.zip"
    if _is_wndb(Path(DEBIAN_WNDB)):
        return _prepare_from_wndb(Path(DEBIAN_WNDB))
    raise InputError(
        "WordNet not found: install Debian's wordnet-base and wordnet-sense-index, or run "
        "python -c 'import nltk; nltk.download(\"wordnet\")', or pass --wordnet DIR")


def _reader(path: Path):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    for data_dir in (path.parent.parent, cache_dir() / "nltk_data"):
        if str(data_dir) not in nltk.data.path:
            nltk.data.path.append(str(data_dir))

    if path.suffix == ".zip":
        import zipfile

        extracted = cache_dir() / "nltk_data" / "corpora" / "wordnet-from-zip"
        if not (extracted / "wordnet" / "lexnames").is_file():
            with zipfile.ZipFile(path) as archive:
                archive.extractall(extracted)
        path = extracted / "wordnet"
    with warnings.catch_warnings():  # "multilingual functions are not available": no OMW
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(path), None)


def synset_names(reader) -> list[str]:
    """MetaCLIP's names: each synset's name up to the first '.', '_' -> ' ', first seen
    order, duplicates dropped (empty names are dropped by the merge)."""
    names, seen = [], set()
    for synset in reader.all_synsets():
        name = synset.name().split(".")[0].replace("_", " ")
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def wordnet_entries(wordnet: str | None = None) -> tuple[list[str], str]:
    """(synset names, WordNet version). Cached per database, since nltk
    takes ~20 s to walk all 117,659 synsets."""
    path = locate(wordnet)
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    cached = cache_dir() / f"wordnet-names-{key}-{_fingerprint(path) if path.is_dir() else 'zip'}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return data["names"], data["version"]
    try:
        reader = _reader(path)
        names, version = synset_names(reader), reader.get_version()
    except (OSError, LookupError, ValueError) as exc:
        raise InputError(f"{path}: unreadable WordNet database ({exc})") from exc
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": version, "names": names}))
    tmp.rename(cached)
    return names, version
