"""A small web server on 127.0.0.1 for the fetch tests: a page, a PDF, a redirect chain, a redirect loop, a
404, slow and trickling answers, oversized bodies, an image, and redirects to other schemes and to private
addresses. It runs in a thread of the test process; no test reaches any other host."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests import doc_factory as make
from tests.conftest import SEEDS

SEED_TEXT = (SEEDS / "000_7e6f9a2e3c46846f.txt").read_text(encoding="utf-8")
ARTICLE_TITLE = "Les leçons d'Amazon pour la culture made in France"


class Site:
    def __init__(self) -> None:
        self.page = make.article_page(SEED_TEXT, author="Abeline Majorel")
        self.pdf = make.pdf_document(make.paragraphs_of(SEED_TEXT), title=ARTICLE_TITLE)
        self.hosts: list[str] = []  # the Host header of every request
        self.base = ""


def _handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet tests
            pass

        def send(self, status: int, body: bytes = b"", media_type: str = "text/html; charset=utf-8", **headers) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up first (the time limit tests)
                self.wfile.write(body)

        def redirect(self, status: int, location: str) -> None:
            self.send(status, b"", Location=location)

        def do_GET(self) -> None:  # noqa: C901 - one branch per route
            site.hosts.append(self.headers.get("Host", ""))
            path = self.path
            if path == "/article.html":
                self.send(200, site.page)
            elif path == "/rapport.pdf":
                self.send(200, site.pdf, "application/pdf")
            elif path == "/telechargement":
                self.send(200, site.pdf, "application/octet-stream", Content_Disposition='attachment; filename="rapport annuel.pdf"')
            elif path == "/texte":
                self.send(200, SEED_TEXT.encode(), "text/plain; charset=utf-8")
            elif path == "/r1":
                self.redirect(302, "/r2")
            elif path == "/r2":
                self.redirect(301, "/r3")
            elif path == "/r3":
                self.redirect(307, "article.html")
            elif path == "/loop-a":
                self.redirect(302, "/loop-b")
            elif path == "/loop-b":
                self.redirect(302, "/loop-a")
            elif path.startswith("/hop/"):
                self.redirect(302, f"/hop/{int(path[5:]) + 1}")
            elif path == "/missing":
                self.send(404, b"<h1>Not Found</h1>")
            elif path == "/slow":
                time.sleep(3)
                self.send(200, site.page)
            elif path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(40):
                        self.wfile.write(b"<p>a</p>")
                        self.wfile.flush()
                        time.sleep(0.1)
                except OSError:
                    pass
            elif path == "/big-declared":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", "50000000")
                self.end_headers()
            elif path == "/big-chunked":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"<p>" + b"x" * 65_000 + b"</p>"
                try:
                    for _ in range(60):
                        self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client hung up at its limit
                    pass
            elif path == "/image.png":
                self.send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")
            elif path == "/to-file":
                self.redirect(302, "file:///etc/passwd")
            elif path == "/to-private":
                self.redirect(302, "http://10.1.2.3/intranet")
            elif path == "/to-metadata":
                self.redirect(302, "http://169.254.169.254/latest/meta-data/")
            else:
                self.send(404, b"")

    return Handler


@contextmanager
def web_site() -> Iterator[Site]:
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
