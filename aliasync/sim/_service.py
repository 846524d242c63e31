"""The contract between the emulator's HTTP core and each emulated service.

A service owns some hostnames. For each request the core asks every service to ``route`` it;
the one that recognises the host returns a :class:`Route` (what the call is, before it runs), so
the core can log it, inject faults and model latency uniformly. Then ``handle`` parses the
request, calls the service's model and serializes the answer. Errors are raised as
:class:`~aliasync.sim._errors.SimError` and turned into the service's own error format by
``error_response``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDictProxy

if TYPE_CHECKING:
    from aliasync.sim._errors import SimError


@dataclass
class SimRequest:
    """An HTTP request as the cloud sees it, whether it came through the proxy or directly."""

    method: str
    host: str  # lower case, without the port: routes on it
    path: str  # raw, percent-encoded path as sent, e.g. "/a%20b"
    query_string: str  # raw query string as sent
    headers: CIMultiDictProxy[str]
    raw: web.Request  # for streaming large bodies (OSS)
    # The region an emulated FC function runs in, when the request comes from one (the
    # function's proxy URL names it); None for requests from outside the cloud.
    origin_region: str | None = None
    request_id: str = ""
    _body: bytes | None = field(default=None, repr=False)

    @property
    def query(self) -> list[tuple[str, str]]:
        """Decoded query pairs, in order, blanks kept."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        for key, value in self.query:
            if key == name:
                return value
        return None

    async def body(self) -> bytes:
        """The whole body (small API requests only; OSS streams ``raw.content``)."""
        if self._body is None:
            self._body = await self.raw.read()
        return self._body


@dataclass(frozen=True)
class Route:
    """What a request is, known before it runs: for the call log, faults and latency."""

    service: str  # "ecs" | "oss" | "fc" | "sts" | "ram"
    action: str  # the API action name, e.g. "CopyImage", "PutObject", "InvokeFunction"
    region: str | None  # None for global services
    mutating: bool  # True if the call changes state (lost-response faults apply)
    endpoint: str = "public"  # "public" | "internal" (OSS)


class Service(Protocol):
    """One emulated cloud service."""

    name: str

    def route(self, request: SimRequest) -> Route | None:
        """Return the route if this service owns ``request.host``; None otherwise.

        May raise SimError for a request that is this service's but malformed (for example an
        ECS call without ``Action``).
        """
        ...

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        """Authenticate, parse, call the model, serialize. Raise SimError on failure."""
        ...

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        """Serialize an error in this service's own wire format."""
        ...
