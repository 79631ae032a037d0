"""Who may use the control API and the live page.

On 127.0.0.1 the control API needs no token, so the browser of the operator
is the way in for anyone else: a web page they open can send requests to
127.0.0.1 (no-cors "simple" POSTs reach the server even though the page
cannot read the answer), and a DNS name rebound to 127.0.0.1 makes them
same-origin. Three checks close that, before the token check:

- the Host header must name this server (127.0.0.1, localhost or [::1] on
  its port, the address the connection arrived on, or a configured public
  name): a rebound name is refused;
- a browser's cross-site request is refused: ``Sec-Fetch-Site`` other than
  ``same-origin``/``none``, or an ``Origin`` that is not this server;
- a write (POST, PUT, PATCH) needs a JSON content type, which a page can only
  send after a CORS preflight that this server never grants.

Devices send no Origin and no Sec-Fetch-*; the device endpoints are not
guarded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_FETCH_SITES = ("same-origin", "none")
WRITES = ("POST", "PUT", "PATCH")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def split_host(value: str, default_port: int = 80) -> tuple[str, int] | None:
    """``host[:port]`` (``[v6]:port`` too) as (lower-case name, port); None when malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in " /\\@?#"):
        return None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        name, _, port_text = value.partition(":") if value.count(":") == 1 else (value, "", "")
        if value.count(":") > 1:
            return None  # an IPv6 literal must be bracketed in a Host header
    if port_text is None or not name:
        return None
    if port_text and not (port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) < 65536):
        return None
    return name.rstrip("."), int(port_text) if port_text else default_port


def _public(names: tuple[str, ...]) -> list[tuple[str, int | None]]:
    """Configured public names: ``name`` (any port) or ``name:port``."""
    out: list[tuple[str, int | None]] = []
    for entry in (n.strip() for n in names):
        parsed = split_host(entry)
        if parsed is None:
            continue
        has_port = ":" in (entry.rpartition("]")[2] if entry.startswith("[") else entry)
        out.append((parsed[0], parsed[1] if has_port else None))
    return out


class ControlGuard:
    """The Host, Origin/Sec-Fetch-Site and content-type checks of one server."""

    def __init__(self, bound_host: str, public_names: tuple[str, ...] = ()) -> None:
        self.bound_host = bound_host.strip("[]").lower()
        self.public = _public(public_names)

    def host_ok(self, request: Request) -> bool:
        host = split_host(request.headers.get("host", ""))
        if host is None:
            return False
        name, port = host
        local = request.scope.get("server") or ("", 0)
        local_name, local_port = str(local[0]).lower(), int(local[1] or 0)
        if any(name == n and (p is None or port == p) for n, p in self.public):
            return True
        own = {*LOOPBACK_NAMES, local_name}
        if self.bound_host not in ("", "0.0.0.0", "::"):
            own.add(self.bound_host)
        return name in own and port == local_port

    def origin_ok(self, request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site.lower() not in SAFE_FETCH_SITES:
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        parts = urlsplit(origin)
        if parts.scheme != request.url.scheme or parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
            return False  # another scheme, "null" (sandboxed frames, file:) and anything odd
        return split_host(parts.netloc, _DEFAULT_PORTS[parts.scheme]) == split_host(request.headers.get("host", ""))

    @staticmethod
    def content_type_ok(request: Request) -> bool:
        if request.method.upper() not in WRITES:
            return True
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))

    def refusal(self, request: Request) -> Refusal | None:
        """Why the request may not use the control API, or None."""
        if not self.host_ok(request):
            return Refusal(
                403,
                f"Host {request.headers.get('host', '')!r} is not this server's name or address "
                "(DNS rebinding?); use 127.0.0.1, localhost or the configured public name",
            )
        if not self.origin_ok(request):
            return Refusal(
                403,
                "cross-site request refused: the control API answers only its own pages "
                f"(Origin {request.headers.get('origin')!r}, "
                f"Sec-Fetch-Site {request.headers.get('sec-fetch-site')!r})",
            )
        return None

    def write_refusal(self, request: Request) -> Refusal | None:
        """Checked after the token: a write needs a JSON body type."""
        if not self.content_type_ok(request):
            return Refusal(
                415,
                f"{request.method} needs Content-Type: application/json (got "
                f"{request.headers.get('content-type', 'none')!r})",
            )
        return None
