"""Fetch a document by its link: http and https only, with a time limit, a size limit, a redirect limit
and a content-type check. Redirects are followed here, one hop at a time, so that every hop is checked.

Where a visitor of the chat page chooses the link, the server must not become a way into the network
behind it: unless ``allow_private``, a host whose address (after DNS resolution, at every hop) is
loopback, private, link-local or otherwise not public is refused. The request then goes to the very
address that was checked (the host name kept for the Host header and TLS), so a DNS answer that
changes between the check and the connection cannot lead elsewhere."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message

import httpx

from ..errors import FetchError
from .formats import KIND_OF_MEDIA_TYPE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "Mozilla/5.0 (compatible; rag-seeds article fetcher)"
ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.5"
NOT_PUBLIC_HINT = "links to this machine or its private network are refused here"


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an address written in the link is its own answer)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"the host {host} cannot be found ({exc.strerror or exc})") from None
    seen: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a public internet address (not loopback, private, link-local, shared, reserved...)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. ``resolve`` and ``is_public`` are the DNS answer and the address rule; tests
    replace them to play a public site on the loopback interface."""

    allow_private: bool = True
    timeout: float = 20.0  # seconds for the whole fetch, redirects included; also each connect and read
    max_bytes: int = 10_000_000
    max_redirects: int = 5
    resolve: Callable[[str, int], list[IPAddress]] = field(default=resolve_host, repr=False)
    is_public: Callable[[IPAddress], bool] = field(default=is_public_address, repr=False)


@dataclass(frozen=True)
class Fetched:
    url: str  # where the document was found, after redirects
    media_type: str  # e.g. 'text/html' ('' when the server did not say)
    body: bytes
    name_hint: str = ""  # the file name the server suggests (Content-Disposition), if any

    @property
    def kind(self) -> str:
        """The kind the server's media type names ('' when only the content can tell)."""
        return KIND_OF_MEDIA_TYPE.get(self.media_type, "")


def fetch(url: str, policy: FetchPolicy | None = None) -> Fetched:
    """GET ``url``, following redirects; FetchError with a reason a person can act on."""
    policy = policy or FetchPolicy()
    deadline = time.monotonic() + policy.timeout
    current = _parse(url)
    visited = {str(current)}
    with httpx.Client(timeout=policy.timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(policy.max_redirects + 1):
            with _get(client, current, policy) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    target = _parse(str(current.join(response.headers["location"])), after=str(current))
                    if str(target) in visited:
                        raise FetchError(f"the link {url} redirects in a loop (back to {target})")
                    visited.add(str(target))
                    current = target
                    continue
                if response.status_code >= 400 or response.status_code in range(300, 400):
                    raise FetchError(
                        f"the server answered {response.status_code} {response.reason_phrase} for {current}"
                    )
                media_type, name_hint = _headers(response)
                if media_type and media_type not in KIND_OF_MEDIA_TYPE:
                    raise FetchError(
                        f"the link {current} serves {media_type}, not a web page, a PDF, a Word document or text"
                    )
                body = _read_body(response, policy, deadline, str(current))
                return Fetched(str(current), media_type, body, name_hint)
    raise FetchError(f"the link {url} redirects more than {policy.max_redirects} times")


def _parse(url: str, after: str = "") -> httpx.URL:
    where = f" (redirected from {after})" if after else ""
    try:
        parsed = httpx.URL(str(url).strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"“{str(url)[:200]}” is not a valid link{where} ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        scheme = f"{parsed.scheme}:" if parsed.scheme else "no scheme"
        raise FetchError(f"only http:// and https:// links can be added, not {scheme} (“{str(url)[:200]}”){where}")
    if not parsed.host:
        raise FetchError(f"the link “{str(url)[:200]}” names no host{where}")
    return parsed


def _checked_addresses(url: httpx.URL, policy: FetchPolicy) -> list[IPAddress]:
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = policy.resolve(url.host, port)
    if not addresses:
        raise FetchError(f"the host {url.host} cannot be found")
    if not policy.allow_private:
        for ip in addresses:
            if not policy.is_public(ip):
                where = f"{url.host} is at {ip}, which is" if url.host.strip("[]") != str(ip) else f"{ip} is"
                raise FetchError(f"{where} not a public internet address; {NOT_PUBLIC_HINT}")
    return addresses


@contextmanager
def _get(client: httpx.Client, url: httpx.URL, policy: FetchPolicy) -> Iterator[httpx.Response]:
    """The streamed response to a GET of ``url``, sent to an address that passed the check."""
    headers = {"Host": url.netloc.decode("ascii"), "User-Agent": USER_AGENT, "Accept": ACCEPT,
               "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    response = None
    last: Exception | None = None
    for ip in _checked_addresses(url, policy):
        request = client.build_request("GET", url.copy_with(host=str(ip)), headers=headers, extensions=extensions)
        try:
            response = client.send(request, stream=True)
            break
        except httpx.ConnectError as exc:  # the next address may answer
            last = exc
        except httpx.TimeoutException:
            raise FetchError(f"{url.host} did not answer within {policy.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"the link {url} cannot be fetched ({type(exc).__name__}: {exc})") from None
    if response is None:
        raise FetchError(f"cannot connect to {url.host} ({last})")
    try:
        yield response
    finally:
        response.close()


def _headers(response: httpx.Response) -> tuple[str, str]:
    message = Message()
    message["content-type"] = response.headers.get("content-type", "")
    message["content-disposition"] = response.headers.get("content-disposition", "")
    media_type = message.get_content_type() if response.headers.get("content-type") else ""
    name = message.get_param("filename", header="content-disposition") or ""
    return media_type, str(name) if isinstance(name, str) else ""


def _read_body(response: httpx.Response, policy: FetchPolicy, deadline: float, url: str) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"the document at {url} is {int(declared):,} bytes; the limit is {policy.max_bytes:,}")
    body = bytearray()
    try:
        for block in response.iter_bytes():
            body += block
            if len(body) > policy.max_bytes:
                raise FetchError(f"the document at {url} is over the limit of {policy.max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise FetchError(f"the document at {url} took longer than {policy.timeout:g} s to arrive")
    except httpx.TimeoutException:
        raise FetchError(f"the server stopped sending {url} (nothing for {policy.timeout:g} s)") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"the document at {url} was cut off ({type(exc).__name__})") from None
    return bytes(body)
