"""The status vocabulary: every status string a stage writes or reads, defined once.

Row statuses (``status`` column of the download Parquets in ``_work/`` and of
:data:`schemas.shards.SAMPLES`; every candidate has exactly one):

===============================  ============================================  ============
status                           meaning                                       written by
===============================  ============================================  ============
``success``                      downloaded, decoded, resized, kept so far     shards: download
``failed_to_download``           network/HTTP failure (img2dataset's name);    shards: download
                                 retried by ``--retry-failed``; also a         (core/net)
                                 ``--urls`` row without an http(s) URL or
                                 whose line cannot be read
``failed_to_resize``             the bytes do not decode (truncated, corrupt,  shards: download,
                                 not an image) or their pHash / CLIP input     Beam job
                                 cannot be computed; retried by
                                 ``--retry-failed``
``hash_mismatch``                the downloaded bytes do not have the hash     shards: download
                                 the URL list gives (``--verify-hash-col``);
                                 never kept, not retried
``filtered:<reason>``            dropped by a rule; ``<reason>`` below         shards: download,
                                                                               Beam job
``contaminated``                 pHash near an ``--eval-images`` image         shards: Beam job
``duplicate_of:<key>``           exact (sha256) or near (pHash) duplicate of   shards: Beam job
                                 the kept sample ``<key>`` (the kind is the
                                 first word of ``error_message``)
``removed``                      taken down: a takedown list entry matches     takedown;
                                 (its kind and line in ``error_message``):     shards: download
                                 ``wit takedown`` rewrote the shard without    (``--exclude``)
                                 it (the row keeps only key, uid and hashes),
                                 or ``--exclude`` refused it (URL, page,
                                 domain: before fetching; sha256, pHash:
                                 once the bytes were in hand, never written)
===============================  ============================================  ============

``failed_to_download:host_backoff`` (written by the download, ``pipeline.core.net.hosts``):
not fetched in this round because its host asked us to back off -- it answered 429 or 503
and stayed paused longer than ``--max-backoff``, or the row waited longer than
``--max-host-wait`` for its host's turn (connections, rate, ``Crawl-delay``); the
``error_message`` says which. Counted in the ``failed_to_download`` group and retried by
``--retry-failed``.

Filter reasons (``filtered:<reason>``; the manifest's ``filtered`` counts them by reason):

- download policy, decided before or while fetching (``pipeline.core.net``): ``robots_txt``
  (robots.txt disallows the image), ``x_robots_tag`` (``noai``/``noimageai``/``none``
  header), ``tdm_reservation`` (TDMRep: the origin's ``/.well-known/tdmrep.json`` or the
  ``tdm-reservation: 1`` response header reserves text and data mining; a tdmrep.json that
  does not answer makes the row ``failed_to_download``, like robots.txt), ``blocked_address`` (the URL or a redirect resolves to a private/reserved
  address, or is no http(s) URL a parser can read), ``blocked_userinfo`` (credentials in
  the URL);
- the header pixel bound (download): ``max_pixels``, ``aspect_ratio`` (the image could
  not be resized within the bound);
- the decode budget (download, ``pipeline.core.images``): ``decode_budget``, bytes whose
  decoding would loop too long (a JPEG with more scans, a PNG with more chunks, a GIF with
  more extension blocks than any real image has), refused before decoding;
- the basic filters (``pipeline.shards.filters``; caption rules already in the download):
  ``caption_words``, ``caption_chars``, ``language``, ``unknown_size``, ``min_side``,
  ``aspect_ratio``, ``min_bytes`` (:data:`FILTER_RULES`);
- the resource guard ``max_pixels`` (:data:`GUARDS`): no dataset's rule (DataComp has none),
  so the Beam job re-labels a guarded image that a rule would drop with that rule's reason,
  and ``max_pixels`` counts only the images the rules would have kept;
- ``clip_score`` (``--min-clip-score`` / ``--clip-top-fraction``);
- ``license`` (``--licenses``): the sample's ``license`` is none of the listed SPDX ids
  (Beam job, after the image rules and before the pixel guard);
- ``blocklist`` (download, ``pipeline.shards.blocklist``): the image's sha256 or pHash is on
  the ``--block-hashes`` list; its bytes are never written anywhere (docs/consent.md).

The same caption reasons name the *texts* an image loses while keeping another one (column
``text_filter_reasons`` of :data:`schemas.shards.SAMPLES`, ``filtered_texts`` counts).

Status groups (:func:`status_group`): the prefix before ``:`` (``failed_to_download`` for
``failed_to_download:host_backoff``), and ``duplicate`` for every ``duplicate_of:<key>``;
the per-shard ``_stats.json`` (:func:`schemas.shards.shard_stats`) and the report count by
group.

Crawl counters: a record or link the crawl could not use is counted as ``skipped:<reason>``
(:func:`skipped`), e.g. ``skipped:non_html``, ``skipped:bad_json_line``;
``OUT/candidates/stats.json`` shows them per source under ``skipped`` by reason
(docs/crawl.md lists the reasons).
"""

from __future__ import annotations

SUCCESS = "success"
FAILED_TO_DOWNLOAD = "failed_to_download"
FAILED_TO_RESIZE = "failed_to_resize"
CONTAMINATED = "contaminated"
HASH_MISMATCH = "hash_mismatch"
REMOVED = "removed"

# groups (status_group) of the prefixed statuses
FILTERED = "filtered"
DUPLICATE = "duplicate"

FILTERED_PREFIX = "filtered:"
DUPLICATE_PREFIX = "duplicate_of:"
SKIPPED_PREFIX = "skipped:"

# the host's politeness kept the row from being fetched (pipeline.core.net.hosts)
HOST_BACKOFF = "host_backoff"
FAILED_HOST_BACKOFF = f"{FAILED_TO_DOWNLOAD}:{HOST_BACKOFF}"

# a latest attempt with one of these is downloaded again by --retry-failed
RETRYABLE = (FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE, FAILED_HOST_BACKOFF)

# filter reasons (the part after "filtered:")
ROBOTS_TXT = "robots_txt"
X_ROBOTS_TAG = "x_robots_tag"
TDM_RESERVATION = "tdm_reservation"
BLOCKLIST = "blocklist"
BLOCKED_ADDRESS = "blocked_address"
BLOCKED_USERINFO = "blocked_userinfo"
CAPTION_WORDS = "caption_words"
CAPTION_CHARS = "caption_chars"
LANGUAGE = "language"
UNKNOWN_SIZE = "unknown_size"
MIN_SIDE = "min_side"
ASPECT_RATIO = "aspect_ratio"
MAX_PIXELS = "max_pixels"
DECODE_BUDGET = "decode_budget"
MIN_BYTES = "min_bytes"
CLIP_SCORE = "clip_score"
LICENSE = "license"

# reasons of the --filter preset's rules, and of the resource guards no preset counts as a rule
FILTER_RULES = (CAPTION_WORDS, CAPTION_CHARS, LANGUAGE, UNKNOWN_SIZE, MIN_SIDE, ASPECT_RATIO,
                MIN_BYTES)
GUARDS = (MAX_PIXELS,)

STATUS_PREFIXES = (SUCCESS, FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE, HASH_MISMATCH,
                   FILTERED_PREFIX, DUPLICATE_PREFIX, CONTAMINATED, REMOVED)


def filtered(reason: str) -> str:
    """``filtered:<reason>``."""
    return FILTERED_PREFIX + reason


def basic_filter_message(reason: str) -> str:
    """The ``error_message`` of a row dropped by a basic filter (download or Beam job)."""
    return f"basic filter: {reason}"


def removed_message(kind: str, where: str, line: str) -> str:
    """A removed row's ``error_message``: ``takedown <kind>: <FILE:LINE>: <list line>``."""
    return f"takedown {kind}: {where}: {line}"


def duplicate_of(key: str) -> str:
    """``duplicate_of:<key>``: the row duplicates the kept sample ``key``."""
    return DUPLICATE_PREFIX + key


def skipped(reason: str) -> str:
    """``skipped:<reason>``, a crawl counter."""
    return SKIPPED_PREFIX + reason


def is_failed_download(status: str) -> bool:
    """``failed_to_download`` and ``failed_to_download:host_backoff``: not downloaded."""
    return status_group(status) == FAILED_TO_DOWNLOAD


def is_filtered(status: str) -> bool:
    return status.startswith(FILTERED_PREFIX)


def is_duplicate(status: str) -> bool:
    return status.startswith(DUPLICATE_PREFIX)


def is_skipped(key: str) -> bool:
    return key.startswith(SKIPPED_PREFIX)


def filtered_reason(status: str) -> str:
    """``filtered:min_side`` -> ``min_side``."""
    return status[len(FILTERED_PREFIX):]


def skipped_reason(key: str) -> str:
    """``skipped:non_html`` -> ``non_html``."""
    return key[len(SKIPPED_PREFIX):]


def status_group(status: str) -> str:
    """``filtered:min_side`` -> ``filtered``; ``duplicate_of:0001`` -> ``duplicate``."""
    if is_duplicate(status):
        return DUPLICATE
    return status.split(":", 1)[0]


# kinds of duplicate, the first word of a duplicate's error_message
EXACT = "exact"  # same sha256 of the downloaded bytes
NEAR = "near"  # pHash within --near-dup-bits


def duplicate_message(kind: str, keeper: str) -> str:
    """A duplicate's ``error_message``: ``exact duplicate of <key>``."""
    return f"{kind} duplicate of {keeper}"


def duplicate_kind(error_message: str | None) -> str:
    """``exact`` or ``near`` from a duplicate's ``error_message`` (``near`` when missing)."""
    return (error_message or NEAR).split(" ", 1)[0]


# filtered statuses the downloader's network policy decides, counted as "not downloaded" by
# the report's funnel (blocked_userinfo is not among them: kept as the report counted it)
DOWNLOAD_POLICY = (filtered(ROBOTS_TXT), filtered(X_ROBOTS_TAG), filtered(TDM_RESERVATION),
                   filtered(BLOCKED_ADDRESS))
# the site operators' opt-out signals the download honours (summary and report: "Consent")
OPT_OUT = (ROBOTS_TXT, X_ROBOTS_TAG, TDM_RESERVATION)
