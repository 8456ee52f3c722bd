"""The SSRF guard: literal addresses, names resolved by a resolver, schemes, allow-lists,
userinfo."""

from __future__ import annotations

import pytest

from pipeline.core.net import (
    BlockedURLError,
    check_address,
    check_url,
    is_public,
    redact,
    system_resolver,
)


def fixed_resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]
    return resolve


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://10.1.2.3/", "http://192.168.0.1:8080/x",
    "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://0.0.0.0/", "http://100.64.0.1/",
    "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/",
])
def test_private_literals_blocked(url: str) -> None:
    with pytest.raises(BlockedURLError) as info:
        check_url(url)
    assert info.value.reason == "private_address"
    check_url(url, allow_private=True)  # explicitly allowed


def test_public_and_resolved_names() -> None:
    check_url("https://93.184.216.34/")
    resolver = fixed_resolver({"good.test": ["93.184.216.34"],
                               "mixed.test": ["93.184.216.34", "10.0.0.1"],
                               "meta.test": ["169.254.169.254"]})
    check_url("http://good.test/a", resolver=resolver)
    for host in ("mixed.test", "meta.test"):  # one private address is enough to block
        with pytest.raises(BlockedURLError, match="private_address"):
            check_url(f"http://{host}/", resolver=resolver)
    with pytest.raises(BlockedURLError, match="dns_error"):
        check_url("http://nowhere.test/", resolver=resolver)


def test_real_resolver_localhost_blocked() -> None:
    with pytest.raises(BlockedURLError, match="private_address"):
        check_url("http://localhost:9/", resolver=system_resolver)


def test_schemes_and_networks() -> None:
    for url in ("ftp://93.184.216.34/", "file:///etc/passwd", "gopher://x/", "data:,x"):
        with pytest.raises(BlockedURLError, match="bad_scheme"):
            check_url(url)
    with pytest.raises(BlockedURLError, match="no_host"):
        check_url("http:///path")
    check_url("http://127.0.0.1:8000/", allowed_networks=["127.0.0.0/8"])
    with pytest.raises(BlockedURLError):
        check_url("http://10.0.0.1/", allowed_networks=["127.0.0.0/8"])
    check_address("::1", allowed_networks=["::1"])
    assert is_public(__import__("ipaddress").ip_address("8.8.8.8"))


@pytest.mark.parametrize("url", [
    "http://user:secret@93.184.216.34/a.jpg", "https://token@example.com/",
    "http://example.com@127.0.0.1/", "http://:pw@example.com:8080/x", "http://a\\@b.example/",
])
def test_userinfo_refused_never_resolved(url: str) -> None:
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"]

    with pytest.raises(BlockedURLError) as info:
        check_url(url, allow_private=True, resolver=resolver)
    assert info.value.reason == "userinfo"
    assert lookups == []
    assert "secret" not in str(info.value) and "pw" not in str(info.value)
    assert "***@" in str(info.value)


def test_redact() -> None:
    assert redact("http://u:p@h:1/x@y") == "http://***@h:1/x@y"
    assert redact("http://h/x@y") == "http://h/x@y"
    assert redact("not a url") == "not a url"


def test_live_crawler_counts_userinfo_urls_without_resolving_them() -> None:
    from collections import Counter

    from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site

    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    counts: Counter[str] = Counter()
    options = CrawlerOptions(delay=0.0, allow_private=True, resolver=resolver)
    seeds = ["http://user:secret@site.test/", "http://site.test@127.0.0.1:9/"]
    assert list(crawl_site(seeds, options, counts)) == []
    assert counts["skipped:blocked_userinfo"] == 2 and counts["requests"] == 0
    assert lookups == []
