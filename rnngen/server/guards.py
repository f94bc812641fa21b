"""Who may use the server: the Host a request names, the web page it comes from, and the API key.

A server on 127.0.0.1 is reachable by every web page its user opens: a page may POST to it without asking (a
`text/plain` body is a request a browser sends without a preflight), and by DNS rebinding (a name of the attacker's
that resolves to 127.0.0.1) read the answers too. Three checks close that, in one ASGI middleware before any route:

- the Host header must name this server: by default a loopback name or address (`localhost`, `*.localhost`,
  127.0.0.0/8, ::1) when it listens on loopback, any name otherwise, and the names of `--allowed-host` besides;
  a rebound name is refused with a 400 that names the option;
- a request that changes something (any method but GET, HEAD and OPTIONS) from a web page must come from the
  server's own page or an origin given with `--cors-origin`: a browser always sends `Origin` with such a request,
  and a foreign one is refused with a 403 naming the option. Clients that are not browsers send no `Origin`;
- with an API key, every route but the page and `/health` needs `Authorization: Bearer KEY` (the scheme's name in
  any case, RFC 7235), compared in constant time.

CORS headers are sent only for the origins of `--cors-origin` (Starlette's `CORSMiddleware`, added by the app).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from rnngen.server.responses import error_body

OPEN_PATHS = ("/", "/health")  # the page holds no data (its requests carry the key) and a health check needs none
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
ANY = "*"


def normal_origin(origin: str) -> str:
    """An origin as browsers send it (`https://app.example`): a user's `https://App.example/` is the same page."""
    return origin.rstrip("/").lower()


def host_name(host: str) -> str:
    """The name in a Host header or an address, without its port, brackets or final dot, in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """Whether a host name (`host_name`) is this machine's by definition: localhost (RFC 6761) or a loopback
    address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(listening_on: str, extra: Sequence[str] = ()) -> tuple[str, ...] | None:
    """The Host names a server listening on `listening_on` answers to besides loopback ones, or None for any: any
    name when it listens on another address and `extra` (`--allowed-host`) is empty, else `extra` and the address."""
    names = tuple(host_name(name) for name in extra)
    if ANY in names:
        return None
    if is_loopback_name(host_name(listening_on)):
        return names
    return (*names, host_name(listening_on)) if names else None


class Guard:
    """ASGI middleware: the Host, the Origin of a request that changes something, and the API key (see the
    module). `hosts` None allows any Host (loopback names always are); `origins` None checks no Origin, else the
    server's own page and these origins may POST; `key` None needs none."""

    def __init__(
        self,
        app: Callable,
        hosts: Sequence[str] | None = None,
        origins: Sequence[str] | None = None,
        key: str | None = None,
    ):
        self.app = app
        self.hosts = None if hosts is None else frozenset(host_name(name) for name in hosts)
        self.origins = None if origins is None else frozenset(normal_origin(origin) for origin in origins)
        self.key = key.encode() if key else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            refused = self._refusal(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict) -> JSONResponse | None:
        headers = {name.decode("latin-1"): value for name, value in scope["headers"]}
        host = headers.get("host", b"").decode("latin-1")
        if self.hosts is not None and host and not self._host_allowed(host_name(host)):
            message = (
                f"the Host header {host!r} is not a name this server answers to: start it with --allowed-host "
                f"{host_name(host)} if clients reach it by that name (a web page elsewhere may not use it)"
            )
            return JSONResponse(error_body(message, 400, None, "host_not_allowed"), 400)
        origin = headers.get("origin")
        if self.origins is not None and origin is not None and scope["method"] not in SAFE_METHODS:
            origin_text = normal_origin(origin.decode("latin-1"))
            if not self._origin_allowed(origin_text, host.lower()):
                message = (
                    f"a web page at {origin_text} may not use this server: start it with --cors-origin "
                    f"{origin_text} to let it"
                )
                return JSONResponse(error_body(message, 403, None, "origin_not_allowed"), 403)
        if self.key is not None and scope["path"] not in OPEN_PATHS and not self._key_given(headers):
            message = "a missing or wrong API key: send the header Authorization: Bearer YOUR_KEY"
            return JSONResponse(error_body(message, 401, None, "invalid_api_key"), 401)
        return None

    def _host_allowed(self, name: str) -> bool:
        return is_loopback_name(name) or name in self.hosts

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if ANY in self.origins or origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host

    def _key_given(self, headers: dict[str, bytes]) -> bool:
        scheme, _, token = headers.get("authorization", b"").strip().partition(b" ")
        # Compared whatever the scheme, so that the time taken says nothing about the key.
        matches = hmac.compare_digest(token.strip(), self.key)
        return matches and scheme.lower() == b"bearer"
