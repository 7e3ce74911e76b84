"""Fetching by link against a real web server on 127.0.0.1: a page, a PDF, redirects (a chain, a loop, too
many, to another scheme, to private addresses), a 404, slow and oversized answers, a wrong content type;
private addresses refused when asked, after DNS resolution and at every hop."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from rag.documents.fetch import FetchPolicy, fetch, is_public_address, resolve_host
from rag.errors import FetchError
from tests.web_server import web_site

LOCAL = ipaddress.ip_address("127.0.0.1")


@pytest.fixture(scope="module")
def site():
    with web_site() as running:
        yield running


def _plays_public(ip) -> bool:
    """The loopback test server plays a public site; every other private address stays private."""
    return ip == LOCAL or is_public_address(ip)


def test_a_page_is_fetched(site):
    got = fetch(f"{site.base}/article.html")
    assert (got.url, got.media_type, got.kind, got.body) == (f"{site.base}/article.html", "text/html", "html", site.page)


def test_a_pdf_and_a_download_are_fetched_with_their_kind(site):
    assert fetch(f"{site.base}/rapport.pdf").kind == "pdf"
    got = fetch(f"{site.base}/telechargement")
    assert (got.media_type, got.kind, got.name_hint, got.body[:5]) == ("application/octet-stream", "", "rapport annuel.pdf", b"%PDF-")


def test_a_redirect_chain_is_followed_hop_by_hop(site):
    got = fetch(f"{site.base}/r1")
    assert got.url == f"{site.base}/article.html" and got.body == site.page


@pytest.mark.parametrize("path, message", [
    ("/loop-a", "redirects in a loop (back to http://127.0.0.1:{port}/loop-a)"),
    ("/hop/0", "redirects more than 5 times"),
    ("/missing", "the server answered 404 Not Found for"),
    ("/image.png", "serves image/png, not a web page, a PDF, a Word document or text"),
    ("/to-file", "only http:// and https:// links can be added, not file:"),
])
def test_what_cannot_be_fetched_says_why(site, path, message):
    with pytest.raises(FetchError) as caught:
        fetch(site.base + path)
    assert message.format(port=site.base.rsplit(":", 1)[1]) in str(caught.value)


def test_a_slow_server_and_a_trickle_hit_the_time_limit(site):
    with pytest.raises(FetchError, match=r"did not answer within 0.5 s|stopped sending"):
        fetch(f"{site.base}/slow", FetchPolicy(timeout=0.5))
    with pytest.raises(FetchError, match=r"took longer than 1 s to arrive"):
        fetch(f"{site.base}/trickle", FetchPolicy(timeout=1))


def test_an_oversized_body_is_refused_whether_declared_or_not(site):
    with pytest.raises(FetchError, match=r"is 50,000,000 bytes; the limit is 1,000,000"):
        fetch(f"{site.base}/big-declared", FetchPolicy(max_bytes=1_000_000))
    with pytest.raises(FetchError, match=r"is over the limit of 1,000,000 bytes"):
        fetch(f"{site.base}/big-chunked", FetchPolicy(max_bytes=1_000_000))


@pytest.mark.parametrize("url", ["ftp://example.com/a.pdf", "file:///etc/passwd", "javascript:alert(1)", "www.example.com/a",
                                 "http://"])
def test_only_http_and_https_links(url):
    with pytest.raises(FetchError, match=r"only http:// and https:// links|names no host|not a valid link"):
        fetch(url)


def test_a_closed_port_is_a_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect to 127.0.0.1"):
        fetch(f"http://127.0.0.1:{port}/")


def test_loopback_is_refused_unless_allowed(site):
    strict = FetchPolicy(allow_private=False)
    with pytest.raises(FetchError, match=r"^127.0.0.1 is not a public internet address; links to this machine"):
        fetch(f"{site.base}/article.html", strict)
    port = site.base.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match=r"^localhost is at (127.0.0.1|::1), which is not a public internet address"):
        fetch(f"http://localhost:{port}/article.html", strict)
    assert fetch(f"{site.base}/article.html", FetchPolicy(allow_private=True)).body == site.page


@pytest.mark.parametrize("path, address", [("/to-private", "10.1.2.3"), ("/to-metadata", "169.254.169.254")])
def test_a_redirect_to_a_private_address_is_refused_at_its_hop(site, path, address):
    policy = FetchPolicy(allow_private=False, is_public=_plays_public)
    with pytest.raises(FetchError, match=rf"^{address} is not a public internet address"):
        fetch(site.base + path, policy)


def test_a_name_resolving_to_a_private_address_is_refused_and_the_checked_address_is_the_one_used(site):
    port = int(site.base.rsplit(":", 1)[1])
    answers = {"intranet.test": [ipaddress.ip_address("192.168.1.20")], "news.test": [LOCAL]}
    calls: list[str] = []

    def resolve(host, _port):
        calls.append(host)
        return answers[host]

    policy = FetchPolicy(allow_private=False, resolve=resolve, is_public=_plays_public)
    with pytest.raises(FetchError, match=r"^intranet.test is at 192.168.1.20, which is not a public internet address"):
        fetch(f"http://intranet.test:{port}/article.html", policy)
    # one DNS answer per hop, checked, then connected to: the request reaches the server with its host name
    got = fetch(f"http://news.test:{port}/r1", policy)
    assert got.body == site.page and got.url == f"http://news.test:{port}/article.html"
    assert calls.count("news.test") == 4 and site.hosts[-4:] == [f"news.test:{port}"] * 4


@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("93.184.216.34", True), ("2606:4700:4700::1111", True),
])
def test_public_addresses(address, public):
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_resolve_host_reads_literals_and_local_names():
    assert resolve_host("[::1]", 80) == [ipaddress.ip_address("::1")]
    assert LOCAL in resolve_host("localhost", 80) or ipaddress.ip_address("::1") in resolve_host("localhost", 80)
