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


# path -> (status, Location)
REDIRECTS = {
    "/r1": (302, "/r2"),
    "/r2": (301, "/r3"),
    "/r3": (307, "article.html"),
    "/loop-a": (302, "/loop-b"),
    "/loop-b": (302, "/loop-a"),
    "/to-file": (302, "file:///etc/passwd"),
    "/to-private": (302, "http://10.1.2.3/intranet"),
    "/to-metadata": (302, "http://169.254.169.254/latest/meta-data/"),
}


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

        def head(self, media_type: str, **headers) -> None:
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()

        def stream(self, blocks, pause: float = 0.0) -> None:
            with contextlib.suppress(OSError):  # the client hung up at its limit
                for block in blocks:
                    self.wfile.write(block)
                    self.wfile.flush()
                    time.sleep(pause)

        def do_GET(self) -> None:
            site.hosts.append(self.headers.get("Host", ""))
            path = self.path
            if path in REDIRECTS:
                status, location = REDIRECTS[path]
                self.send(status, b"", Location=location)
            elif path.startswith("/hop/"):
                self.send(302, b"", Location=f"/hop/{int(path[5:]) + 1}")
            elif path == "/article.html":
                self.send(200, site.page)
            elif path == "/rapport.pdf":
                self.send(200, site.pdf, "application/pdf")
            elif path == "/telechargement":
                self.send(200, site.pdf, "application/octet-stream", Content_Disposition='attachment; filename="rapport annuel.pdf"')
            elif path == "/texte":
                self.send(200, SEED_TEXT.encode(), "text/plain; charset=utf-8")
            elif path == "/slow":
                time.sleep(3)
                self.send(200, site.page)
            elif path == "/trickle":
                self.head("text/html", Content_Length="100000")
                self.stream([b"<p>a</p>"] * 40, pause=0.1)
            elif path == "/big-declared":
                self.head("text/html", Content_Length="50000000")
            elif path == "/big-chunked":
                self.head("text/html", Transfer_Encoding="chunked")
                block = b"<p>" + b"x" * 65_000 + b"</p>"
                self.stream([f"{len(block):x}\r\n".encode() + block + b"\r\n"] * 60 + [b"0\r\n\r\n"])
            elif path == "/image.png":
                self.send(200, b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png")
            else:
                self.send(404, b"<h1>Not Found</h1>")

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
