"""What the web server lets through, in front of Gradio (an ASGI middleware): the routes the page and the
named endpoints need and nothing else, writes only from this origin and with the write token, uploads
only of accepted types, sizes and numbers.

Gradio serves many more routes than this app uses (run history, file serving, OpenAPI, streaming, vibe
editing, ...) and runs any event by its ``fn_index``, the page's private ones included. Here:

- a route not in ``_GET_ROUTES``/``_POST_ROUTES`` is answered 404, whatever Gradio would do with it;
- an event is found by ``fn_index`` or name before Gradio sees it. The named endpoints (``/chat``,
  ``/add_document``, ``/rebuild_index``) are open to any client; the page's private events only to a
  browser holding the signed cookie this server set with the page (``SameSite=Strict``, so no other
  site's page can use it); any other number is 404, not Gradio's 500;
- a write (upload, ``/add_document``, ``/rebuild_index``) from another origin is refused (403), and so is
  one without the write token when the server has one (``Authorization: Bearer``, ``X-Rag-Token``, or the
  cookie the page's token box sets);
- an upload must name an accepted document type and stay within the per-request and per-hour limits.
Every refusal is a short plain-text reason; nothing here logs or echoes a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from starlette.datastructures import Headers, UploadFile
from starlette.requests import Request

# Named endpoints open without the token; any other named endpoint writes (so a new one fails closed).
READ_ENDPOINTS = frozenset({"chat"})
PAGE_COOKIE = "rag_page"
TOKEN_COOKIE = "rag_write_token"
TOKEN_HEADER = "x-rag-token"
MIN_TOKEN_CHARS = 16
MAX_JSON_BODY = 16 * 2**20  # a 1 MB question, JSON-escaped, fits; Gradio sets no limit of its own
_API = "/gradio_api"
# GET and HEAD: the page, its assets, the session stream, and what gradio_client reads to start
_GET_ROUTES = {"/", "/config", "/theme.css", "/favicon.ico", f"{_API}/info", f"{_API}/queue/data",
               f"{_API}/startup-events"}
_GET_PREFIXES = ("/assets/", "/static/", f"{_API}/heartbeat/")
_RUN_PREFIXES = (f"{_API}/run/", f"{_API}/call/")


@dataclass(frozen=True)
class UploadLimits:
    """What one client may upload: per file, per request and per hour."""

    extensions: tuple[str, ...] = (".txt", ".md")
    max_file_bytes: int = 2_000_000
    max_files_per_request: int = 1
    max_files_per_hour: int = 30
    max_bytes_per_hour: int = 20_000_000


@dataclass(frozen=True)
class Policy:
    """What the guard enforces. ``events`` maps each fn_index to its kind: ``read`` and ``write`` (named
    endpoints, by ``names``), ``page`` and ``page-write`` (the page's private events) or ``none``
    (browser-only code)."""

    events: dict[int, str]
    names: dict[str, int]
    read_only: bool
    write_token: str | None = field(default=None, repr=False)
    uploads: UploadLimits = UploadLimits()


def policy_for(
    blocks, read_only: bool, write_token: str | None, uploads: UploadLimits, write_group: str = ""
) -> Policy:
    """The policy of a built Gradio app: each event's kind from its visibility and name. An event in the
    ``write_group`` concurrency group writes, whatever its visibility: the page's own events need the
    token for that too."""
    events: dict[int, str] = {}
    names: dict[str, int] = {}
    for index, fn in blocks.fns.items():
        writes = bool(write_group) and fn.concurrency_id == write_group
        if fn.fn is None:
            events[index] = "none"
        elif fn.api_visibility == "public" and fn.api_name:
            events[index] = "read" if fn.api_name in READ_ENDPOINTS and not writes else "write"
            names[fn.api_name] = index
        else:
            events[index] = "page-write" if writes else "page"
    return Policy(events, names, read_only, write_token or None, uploads)


def exposure_problem(host: str, write_token: str | None, read_only: bool) -> str:
    """Why the server must not start as asked ('' when it may): beyond loopback, writes need a token."""
    if write_token is not None and len(write_token) < MIN_TOKEN_CHARS:
        return f"the write token must be at least {MIN_TOKEN_CHARS} characters long"
    if read_only or write_token or is_loopback(host):
        return ""
    return (f"--host {host} listens beyond this machine, so adding documents and rebuilding need a write "
            "token: give one with --token or RAG_SERVE_TOKEN, or serve with --read-only")


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class HourlyQuota:
    """Uploads per client over the last hour (a sliding window), in files and in bytes."""

    def __init__(self, limits: UploadLimits, window: float = 3600.0) -> None:
        self.limits = limits
        self.window = window
        self._seen: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def refuse(self, client: str, files: int, size: int, now: float | None = None) -> str:
        """Why this upload is over the hourly limit ('' when it is not); an admitted one is counted."""
        now = time.monotonic() if now is None else now
        seen = self._seen[client]
        while seen and seen[0][0] <= now - self.window:
            seen.popleft()
        if len(seen) + files > self.limits.max_files_per_hour:
            return f"no more than {self.limits.max_files_per_hour} uploads an hour; try again later"
        if sum(s for _, s in seen) + size > self.limits.max_bytes_per_hour:
            return f"no more than {self.limits.max_bytes_per_hour:,} bytes of uploads an hour; try again later"
        seen.extend([(now, size // max(files, 1))] * files)
        return ""


class Guard:
    """The ASGI middleware; see the module's docstring."""

    def __init__(self, app, policy: Policy) -> None:
        self.app = app
        self.policy = policy
        self.quota = HourlyQuota(policy.uploads)
        self._key = secrets.token_bytes(32)  # signs the page cookie; a restart invalidates old pages

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope["method"], _normal(scope["path"])
        if method in ("GET", "HEAD"):
            await self._get(path, scope, receive, send)
        elif method == "POST":
            await self._post(path, scope, receive, send)
        else:
            await _refuse(send, 404, "not found")

    async def _get(self, path: str, scope, receive, send) -> None:
        if path == "/":
            await self.app(scope, receive, self._with_page_cookie(send))
        elif self._may_get(path):
            await self.app(scope, receive, send)
        else:
            await _refuse(send, 404, "not found")

    def _may_get(self, path: str) -> bool:
        if path in _GET_ROUTES or path.startswith(_GET_PREFIXES):
            return True
        if path == f"{_API}/upload_progress":
            return not self.policy.read_only
        # the result stream of a call to a named endpoint
        return path.startswith(f"{_API}/call/") and path.split("/")[3] in self.policy.names

    async def _post(self, path: str, scope, receive, send) -> None:
        headers = Headers(scope=scope)
        if path == f"{_API}/upload":
            await self._upload(scope, headers, receive, send)
            return
        if path != f"{_API}/queue/join" and not path.startswith(_RUN_PREFIXES):
            await _refuse(send, 404, "not found")
            return
        if not _same_origin(headers):
            await _refuse(send, 403, "requests from another site are refused")
            return
        body = await _read_body(receive, headers, MAX_JSON_BODY)
        if body is None:
            await _refuse(send, 413, f"the request is larger than {MAX_JSON_BODY // 2**20} MB")
            return
        kind = self._event_kind(path, body, headers)
        if kind is None:
            await _refuse(send, 404, "no such endpoint")
        elif kind in ("write", "page-write") and not self._may_write(headers):
            await _refuse(send, 403, "adding documents and rebuilding need the write token")
        else:
            await self.app(scope, _replay(body, receive), send)

    def _event_kind(self, path: str, body: bytes, headers: Headers) -> str | None:
        """The kind of event a call targets, or None when the caller may not reach it."""
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            return None
        fn_index = payload.get("fn_index") if isinstance(payload, dict) else None
        if path.startswith(_RUN_PREFIXES):
            name = path.split("/")[3]
            if name in self.policy.names:
                index = self.policy.names[name]
                if fn_index is not None and fn_index != index:
                    return None
                return self.policy.events[index]
            if name != "predict":  # the page runs its unqueued events as run/predict with an fn_index
                return None
        if isinstance(fn_index, bool) or not isinstance(fn_index, int) or fn_index not in self.policy.events:
            return None
        kind = self.policy.events[fn_index]
        if kind == "none" or (kind.startswith("page") and not self._from_page(headers)):
            return None
        return kind

    async def _upload(self, scope, headers: Headers, receive, send) -> None:
        limits = self.policy.uploads
        if self.policy.read_only:
            await _refuse(send, 404, "not found")
            return
        if not _same_origin(headers):
            await _refuse(send, 403, "uploads from another site are refused")
            return
        if not self._may_write(headers):
            await _refuse(send, 403, "uploading documents needs the write token")
            return
        allowed = limits.max_file_bytes * limits.max_files_per_request + 64_000  # multipart framing
        body = await _read_body(receive, headers, allowed)
        if body is None:
            await _refuse(send, 413, f"uploads are limited to {limits.max_file_bytes:,} bytes")
            return
        files, problem, status = await _uploaded_files(scope, body, limits)
        if not problem:
            client = (scope.get("client") or ("?", 0))[0]
            problem, status = self.quota.refuse(client, len(files), sum(size for _, size in files)), 429
        if problem:
            await _refuse(send, status, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    def _may_write(self, headers: Headers) -> bool:
        expected = self.policy.write_token
        if not expected:
            return True
        bearer = headers.get("authorization", "")
        offered = [
            bearer[7:].strip() if bearer[:7].lower() == "bearer " else "",
            headers.get(TOKEN_HEADER, ""),
            unquote(_cookies(headers).get(TOKEN_COOKIE, "")),
        ]
        # constant time, and every candidate compared, so timing tells nothing about which was close
        matches = [hmac.compare_digest(o.encode("utf-8", "replace"), expected.encode("utf-8")) for o in offered]
        return any(matches)

    def _from_page(self, headers: Headers) -> bool:
        value = _cookies(headers).get(PAGE_COOKIE, "")
        nonce, _, signature = value.partition(".")
        return bool(nonce) and hmac.compare_digest(signature.encode(), self._sign(nonce).encode())

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]

    def _with_page_cookie(self, send):
        nonce = secrets.token_urlsafe(12)
        cookie = f"{PAGE_COOKIE}={nonce}.{self._sign(nonce)}; Path=/; HttpOnly; SameSite=Strict"

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        return send_with_cookie


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"


def _same_origin(headers: Headers) -> bool:
    """A browser names the page that sent a request in ``Origin`` (and ``Sec-Fetch-Site``); scripts send
    neither. A request whose page came from another host or port is not this app's page."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    try:
        return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()
    except ValueError:
        return False


def _cookies(headers: Headers) -> dict[str, str]:
    out = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


async def _read_body(receive, headers: Headers, limit: int) -> bytes | None:
    """The whole request body, or None when it is (or claims to be) longer than ``limit``."""
    try:
        if int(headers.get("content-length", "0")) > limit:
            return None
    except ValueError:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the already-read body over once, then listens for the disconnect."""
    pending = [body]

    async def replayed():
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


async def _uploaded_files(scope, body: bytes, limits: UploadLimits) -> tuple[list[tuple[str, int]], str, int]:
    """(name, size) of each file in a multipart upload, why it is refused ('' when it is not), and the
    HTTP status that says so."""
    request = Request(scope, _replay(body, _never))
    try:
        form = await request.form(max_files=limits.max_files_per_request + 1, max_fields=20)
    except Exception:  # starlette raises several kinds for malformed or oversized forms
        return [], "the upload is not a well-formed form with files", 400
    try:
        files = [(item.filename or "", item.size or 0) for _, item in form.multi_items() if isinstance(item, UploadFile)]
    finally:
        await form.close()
    if not files:
        return [], "the upload holds no file", 400
    if len(files) > limits.max_files_per_request:
        return files, f"no more than {limits.max_files_per_request} file(s) at once", 413
    for name, size in files:
        if not name.lower().endswith(limits.extensions):
            return files, f"only {', '.join(limits.extensions)} documents can be uploaded", 415
        if size > limits.max_file_bytes:
            return files, f"uploads are limited to {limits.max_file_bytes:,} bytes", 413
    return files, "", 200


async def _never():
    return {"type": "http.disconnect"}


async def _refuse(send, status: int, reason: str) -> None:
    body = reason.encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
