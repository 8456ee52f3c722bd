"""The image downloader's network options: :class:`pipeline.core.net.FetchConfig` with its
fields declared as ``wit shards`` options. The defaults are FetchConfig's own (the crawl's
live crawler has other defaults and its own options, so core's FetchConfig declares none)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.cliargs import non_negative_float, non_negative_int, positive_float, positive_int
from pipeline.core.net import FetchConfig
from pipeline.core.options import option
from pipeline.shards.option_groups import DOWNLOAD


@dataclass(frozen=True)
class FetchOptions(FetchConfig):
    """A FetchConfig built from the command line; ``connections_per_host`` is given by the
    caller (``--threads``)."""

    timeout: float = option(FetchConfig.timeout, type=positive_float, group=DOWNLOAD,
                            help="seconds for a whole request incl. body")
    retries: int = option(FetchConfig.retries, type=non_negative_int, group=DOWNLOAD,
                          help="retries for 429/5xx/timeouts within a run")
    max_backoff: float = option(
        FetchConfig.max_backoff, type=non_negative_float, group=DOWNLOAD,
        help="longest wait between retries, also the cap on Retry-After; a longer Retry-After "
             "fails the row (retry later with --retry-failed)")
    max_bytes: int = option(FetchConfig.max_bytes, type=positive_int, group=DOWNLOAD,
                            help="largest response body accepted")
    user_agent_token: str = option(
        FetchConfig.user_agent_token, group=DOWNLOAD,
        help="token in the User-Agent, matched by robots.txt and X-Robots-Tag")
    disallowed_header_directives: tuple[str, ...] = option(
        FetchConfig.disallowed_header_directives, nargs="*", group=DOWNLOAD,
        help="X-Robots-Tag directives that forbid use")
    respect_robots_txt: bool = option(
        FetchConfig.respect_robots_txt, flag="--ignore-robots-txt", group=DOWNLOAD,
        help="do not fetch robots.txt of image hosts (default: honoured)")
    allow_private: bool = option(
        FetchConfig.allow_private, group=DOWNLOAD,
        help="allow private/loopback/link-local targets (default: blocked)")
    allowed_networks: tuple[str, ...] = option(
        (), flag="--allow-network", append=True, metavar="CIDR", group=DOWNLOAD,
        help="trust this network despite the SSRF guard, e.g. 10.1.0.0/16 for an intranet "
             "mirror; repeatable (default: none)")
