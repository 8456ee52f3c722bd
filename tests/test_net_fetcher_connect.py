"""The shards downloader after the connect-time guard moved to
``pipeline.core.net.guard.guarded_connect``: a host *name* that resolves to a blocked
address is refused at connect time (the fetch's own pre-check looks at the URL's syntax
only), and the same name connects once its network is trusted."""

from __future__ import annotations

import pytest
from helpers.shards import Server

from pipeline.core.net import FetchConfig, Fetcher, FetchError, system_resolver

pytestmark = pytest.mark.integration


def test_downloader_blocks_private_addresses_by_name_and_literal() -> None:
    if system_resolver("localhost", 80) != ["127.0.0.1"]:
        pytest.skip("localhost does not resolve to 127.0.0.1 alone on this machine")
    server = Server("127.0.0.1")
    server.routes["/a.jpg"] = b"image bytes"
    try:
        blocked = Fetcher(FetchConfig(respect_robots_txt=False, retries=0))
        for url in (f"http://localhost:{server.port}/a.jpg", server.url("/a.jpg")):
            with pytest.raises(FetchError) as info:
                blocked.fetch(url)
            assert info.value.status == "filtered:blocked_address", url
            assert "private_address" in str(info.value)
        with_robots = Fetcher(FetchConfig(retries=0))  # robots.txt goes through the guard too
        with pytest.raises(FetchError) as info:
            with_robots.fetch(f"http://localhost:{server.port}/a.jpg")
        assert info.value.status == "filtered:blocked_address"
        assert sum(server.hits.values()) == 0  # nothing reached the server
        trusted = Fetcher(FetchConfig(respect_robots_txt=False, allowed_networks=("127.0.0.1/32",)))
        assert trusted.fetch(f"http://localhost:{server.port}/a.jpg") == b"image bytes"
        assert server.hits["/a.jpg"] == 1
    finally:
        server.close()
