"""The guarded fetch on its own: HTTPS through the guarded connection (a real TLS server
with a certificate made for the test), redirects checked hop by hop, the byte cap."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pytest
from helpers.shards import TRUSTED, Server, real_images, to_jpeg

from pipeline.core.net import FetchConfig, Fetcher, FetchError

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command missing")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.2", "-addext", "subjectAltName=IP:127.0.0.2",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts only this certificate
    yield server
    server.close()


def test_https_through_the_guard(tls_server):
    image = to_jpeg(real_images(1)[0][1])
    tls_server.routes["/a.jpg"] = image
    url = tls_server.url("/a.jpg").replace("http://", "https://")
    fetcher = Fetcher(FetchConfig(allowed_networks=(TRUSTED,), respect_robots_txt=False))
    assert fetcher.fetch(url) == image
    blocked = Fetcher(FetchConfig(respect_robots_txt=False))  # loopback not trusted
    with pytest.raises(FetchError) as info:
        blocked.fetch(url)
    assert info.value.status == "filtered:blocked_address"
    assert tls_server.hits["/a.jpg"] == 1


def test_byte_cap_and_non_http_schemes():
    server = Server()
    server.routes["/big.bin"] = b"x" * 5000
    try:
        fetcher = Fetcher(FetchConfig(allowed_networks=(TRUSTED,), respect_robots_txt=False,
                                      max_bytes=1000))
        with pytest.raises(FetchError, match="exceeds 1000 bytes"):
            fetcher.fetch(server.url("/big.bin"))
        with pytest.raises(FetchError) as info:
            fetcher.fetch("file:///etc/passwd")
        assert info.value.status == "filtered:blocked_address"
    finally:
        server.close()
