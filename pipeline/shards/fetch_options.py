"""The image downloader's network options: :class:`pipeline.core.net.FetchConfig` with its
fields declared as ``wit shards`` options. The defaults are FetchConfig's own (the crawl's
live crawler has other defaults and its own options, so core's FetchConfig declares none)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.core.cliargs import non_negative_float, non_negative_int, positive_float, positive_int
from pipeline.core.net import FetchConfig
from pipeline.core.net.fetcher import check_contact, check_token
from pipeline.core.options import option
from pipeline.shards.option_groups import DOWNLOAD


def contact_text(text: str) -> str:
    """argparse type of ``--contact`` ("" for none, the default)."""
    try:
        return check_contact(text) if text else ""
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def token_text(text: str) -> str:
    """argparse type of ``--user-agent-token``."""
    try:
        return check_token(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
             "fails the row, and a host paused longer after 429/503 answers is backed off "
             "as a whole: its rows end as failed_to_download:host_backoff (retry later with "
             "--retry-failed)")
    max_bytes: int = option(FetchConfig.max_bytes, type=positive_int, group=DOWNLOAD,
                            help="largest response body accepted")
    user_agent_token: str = option(
        FetchConfig.user_agent_token, type=token_text, group=DOWNLOAD,
        help="token in the User-Agent, matched by robots.txt and X-Robots-Tag")
    contact: str = option(
        FetchConfig.contact, type=contact_text, metavar="EMAIL_OR_URL", group=DOWNLOAD,
        help="how site operators reach you, sent in the User-Agent: "
             "'webimagetext/VERSION (+https://github.com/webimagetext; contact: EMAIL_OR_URL)' "
             "(default: none; please set it for any real download)")
    max_connections_per_host: int = option(
        FetchConfig.max_connections_per_host, type=non_negative_int, metavar="N",
        group=DOWNLOAD,
        help="requests in flight to one host at once, across every thread and process of "
             "this machine; 0 = no limit")
    max_requests_per_second_per_host: float = option(
        FetchConfig.max_requests_per_second_per_host, type=non_negative_float, metavar="R",
        group=DOWNLOAD,
        help="request starts per second to one host, across every thread and process of "
             "this machine (robots.txt Crawl-delay, up to 60 s, slows a host further); "
             "0 = no limit")
    max_host_wait: float = option(
        FetchConfig.max_host_wait, type=positive_float, metavar="SECONDS", group=DOWNLOAD,
        help="longest a download shard waits for a host's turn; rows still waiting then, and "
             "rows of a host paused longer than --max-backoff after 429/503 answers, end "
             "as failed_to_download:host_backoff for --retry-failed")
    dns_ttl: float = option(
        FetchConfig.dns_ttl, type=non_negative_float, metavar="SECONDS", group=DOWNLOAD,
        help="seconds a DNS answer is reused by a download process; 0 = no DNS cache "
             "(every answer is checked by the SSRF guard at each connect either way)")
    dns_negative_ttl: float = option(
        FetchConfig.dns_negative_ttl, type=non_negative_float, metavar="SECONDS",
        group=DOWNLOAD, help="seconds a failed DNS lookup is reused")
    disallowed_header_directives: tuple[str, ...] = option(
        FetchConfig.disallowed_header_directives, nargs="*", group=DOWNLOAD,
        help="X-Robots-Tag directives that forbid use, checked before the image body is "
             "read (filtered:x_robots_tag); give the option with no value to ignore the header")
    respect_robots_txt: bool = option(
        FetchConfig.respect_robots_txt, flag="--ignore-robots-txt", group=DOWNLOAD,
        help="do not fetch robots.txt of image hosts (default: honoured)")
    respect_tdmrep: bool = option(
        FetchConfig.respect_tdmrep, flag="--ignore-tdmrep", group=DOWNLOAD,
        help="do not honour TDMRep: neither the origin's /.well-known/tdmrep.json nor the "
             "tdm-reservation response header (default: honoured, before the image body is "
             "read; a reserved image is filtered:tdm_reservation)")
    allow_private: bool = option(
        FetchConfig.allow_private, group=DOWNLOAD,
        help="allow private/loopback/link-local targets (default: blocked)")
    allowed_networks: tuple[str, ...] = option(
        (), flag="--allow-network", append=True, metavar="CIDR", group=DOWNLOAD,
        help="trust this network despite the SSRF guard, e.g. 10.1.0.0/16 for an intranet "
             "mirror; repeatable (default: none)")
