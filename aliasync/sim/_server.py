"""The emulator's HTTP front: one loopback port that answers for every cloud hostname.

Clients keep the real endpoint hostnames (``ecs.cn-hangzhou.aliyuncs.com``,
``bucket.s3.oss-cn-beijing-internal.aliyuncs.com``, ...) and reach this server as their HTTP
proxy, so requests arrive in absolute form and are routed by host, exactly as DNS would route
them in the cloud. Virtual-hosted OSS buckets work without any DNS trickery. HTTPS clients
open ``CONNECT`` tunnels on the same port, and requests inside them are routed by their
``Host`` (:mod:`aliasync.sim._tunnel`). Requests sent straight to the port (not through the
proxy) can only reach the ``/_sim/`` introspection API.

Each request is routed to a service, logged, delayed by the latency model, possibly failed by
the fault engine, and handled. A hostname nobody serves, like a region without Function
Compute, gets its connection dropped, as an unresolvable name would.
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from aliasync.sim._context import SimContext, new_request_id
from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._service import Route, Service, SimRequest
from aliasync.sim._tls import ServerCertificates
from aliasync.sim._tunnel import ProxySite, Tunnel, origin_region

log = logging.getLogger("aliasync.sim")

_HOST_HEADER = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")

_INJECTED = {
    "internal": SimError(
        "InternalError", "The request processing has failed due to some unknown error.", 500
    ),
    "unavailable": SimError(
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
        503,
    ),
    "throttle": SimError("Throttling", "Request was denied due to request throttling.", 400),
}


@dataclass(frozen=True)
class CallRecord:
    """One call as the emulator saw it."""

    at: float  # virtual seconds
    service: str
    action: str
    region: str | None
    status: int  # HTTP status answered; 0 when the connection was dropped
    fault: str | None  # what the fault engine injected, if anything
    error: str | None = None  # the error code answered, if any
    origin: str | None = None  # the region of the emulated function that called; None: outside
    scheme: str = "http"  # "https" for a request that came through a TLS tunnel
    mutating: bool = False  # whether the call changes state (its route says so)


class CallLog:
    """Every call, with counts per (service, action, region).

    ``in_flight`` counts the calls being served (arrived, not yet answered) by
    ``(service, action, origin)``, ``arrivals`` every call that arrived by origin (None: from
    outside the cloud); each of ``watchers`` is called with every record as it is
    added, before the answer leaves, so that a test can act at an exact step (pause the clock).
    """

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.in_flight: Counter[tuple[str, str, str | None]] = Counter()
        self.arrivals: Counter[str | None] = Counter()
        self.watchers: list[Callable[[CallRecord], None]] = []

    def add(self, record: CallRecord) -> None:
        self.records.append(record)
        for watcher in list(self.watchers):
            watcher(record)

    def counts(self) -> Counter[tuple[str, str, str | None]]:
        return Counter((r.service, r.action, r.region) for r in self.records)

    def count(self, action: str | None = None, region: str | None = None) -> int:
        return sum(
            1
            for r in self.records
            if (action is None or r.action == action) and (region is None or r.region == region)
        )

    def summary(self) -> dict[str, Any]:
        by_action: Counter[str] = Counter(f"{r.service}:{r.action}" for r in self.records)
        by_scheme: Counter[str] = Counter(r.scheme for r in self.records)
        return {
            "total": len(self.records),
            "by_scheme": dict(sorted(by_scheme.items())),
            "by_action": dict(sorted(by_action.items())),
            "by_action_region": [
                {"service": s, "action": a, "region": g, "count": n}
                for (s, a, g), n in sorted(self.counts().items(), key=lambda kv: str(kv[0]))
            ],
        }


class SimServer:
    """Routes, logs, delays, fails and dispatches requests; serves ``/_sim/`` introspection."""

    def __init__(
        self,
        ctx: SimContext,
        services: Sequence[Service],
        calls: CallLog,
        introspect: Callable[[str], Any],
        certificates: ServerCertificates | None = None,
    ) -> None:
        self.ctx = ctx
        self.certificates = certificates
        self.services = list(services)
        self.calls = calls
        self._introspect = introspect
        self._runner: web.AppRunner | None = None
        self._site: ProxySite | None = None
        self.port = 0
        # Connections that carried a request: keep-alive reuse by clients shows as fewer.
        self.connections = 0
        self._seen: weakref.WeakSet[Any] = weakref.WeakSet()
        # Requests for hostnames nobody serves, by host: how hard clients knock on a door
        # that DNS would not even show them.
        self.unresolved: Counter[str] = Counter()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._entry)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = ProxySite(
            self._runner,
            host,
            port,
            certificates=self.certificates,
            on_unserved=self._count_unresolved,
        )
        await self._site.start()
        self.port = self._runner.addresses[0][1]
        return f"http://{host}:{self.port}"

    @property
    def tunnels_opened(self) -> int:
        """CONNECT tunnels opened since the start (TLS or plain)."""
        return 0 if self._site is None else self._site.tunnels_opened

    def _count_unresolved(self, host: str) -> None:
        self.unresolved[host] += 1

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.certificates is not None:
            self.certificates.close()

    async def _entry(self, raw: web.Request) -> web.StreamResponse:
        if raw.transport is not None and raw.transport not in self._seen:
            self._seen.add(raw.transport)
            self.connections += 1
        tunnel = None if self._site is None else self._site.tunnel(raw.transport)
        if tunnel is not None:
            return await self._route(raw, *_tunnel_target(raw, tunnel))
        target = raw.raw_path
        if target.startswith("/"):
            # Direct request, not through the proxy: only introspection lives here.
            url = URL(target, encoded=True)
            if url.path.startswith("/_sim/"):
                return self._serve_introspection(url)
            return web.json_response(
                {"error": "send cloud API requests through this server as an HTTP proxy"},
                status=404,
            )
        url = URL(target, encoded=True)
        return await self._route(raw, url, origin_region(raw.headers.get("Proxy-Authorization")))

    async def _route(self, raw: web.Request, url: URL, origin: str | None) -> web.StreamResponse:
        request = SimRequest(
            method=raw.method,
            host=(url.host or "").lower(),
            path=url.raw_path or "/",
            query_string=url.raw_query_string,
            headers=raw.headers,
            raw=raw,
            origin_region=origin,
            request_id=new_request_id(),
        )
        for service in self.services:
            try:
                route = service.route(request)
            except DropConnection:  # a service's hostname, for a region it is not in
                self.unresolved[request.host] += 1
                return self._drop(raw)
            except SimError as error:
                return service.error_response(request, error)
            if route is not None:
                return await self._dispatch(service, request, route)
        # Nobody serves this hostname: as if DNS did not resolve it.
        self.unresolved[request.host] += 1
        return self._drop(raw)

    async def _dispatch(
        self, service: Service, request: SimRequest, route: Route
    ) -> web.StreamResponse:
        flight = (route.service, route.action, request.origin_region)
        self.calls.in_flight[flight] += 1
        self.calls.arrivals[request.origin_region] += 1
        try:
            return await self._serve(service, request, route)
        finally:
            self.calls.in_flight[flight] -= 1
            if not self.calls.in_flight[flight]:
                del self.calls.in_flight[flight]

    async def _serve(
        self, service: Service, request: SimRequest, route: Route
    ) -> web.StreamResponse:
        ctx = self.ctx
        now = ctx.clock.now()
        fault = ctx.faults.draw_call_fault(
            route.service, route.action, route.region, route.mutating, now
        )
        try:
            # The call's latency; answered while a test holds the clock, taking no virtual time.
            await ctx.clock.delay(ctx.faults.api_latency(route.service, route.action, route.region))
        except SimError as stopping:  # the emulator is shutting down
            self._log(request, route, stopping.status, None, stopping.code)
            return service.error_response(request, stopping)
        if fault is not None:
            ctx.faults.record(fault, route.service, route.action, route.region, now)
        if fault == "drop":
            self._log(request, route, 0, fault)
            return self._drop(request.raw)
        if fault in _INJECTED:
            error = _INJECTED[fault]
            self._log(request, route, error.status, fault, error.code)
            return service.error_response(request, error)
        try:
            response = await service.handle(request, route)
        except DropConnection:
            self._log(request, route, 0, fault)
            return self._drop(request.raw)
        except SimError as error:
            self._log(request, route, error.status, fault, error.code)
            return service.error_response(request, error)
        except ConnectionError:
            # The client went away while its request was being read (a killed process): there
            # is no one to answer, and it is no failure of the emulator's.
            self._log(request, route, 0, fault, "ClientGone")
            return self._drop(request.raw)
        except Exception:
            # A bug in the emulator must not become a traceback on the wire.
            log.exception("emulator failure in %s:%s", route.service, route.action)
            self._log(request, route, 500, fault, "InternalError")
            return service.error_response(request, _INJECTED["internal"])
        if fault == "lost":
            # The change is committed; the client never hears of it.
            self._log(request, route, 0, fault)
            return self._drop(request.raw)
        self._log(request, route, response.status, fault)
        return response

    def _log(
        self,
        request: SimRequest,
        route: Route,
        status: int,
        fault: str | None,
        error: str | None = None,
    ) -> None:
        self.calls.add(
            CallRecord(
                self.ctx.clock.now(),
                route.service,
                route.action,
                route.region,
                status,
                fault,
                error,
                origin=request.origin_region,
                scheme=request.raw.scheme,
                mutating=route.mutating,
            )
        )

    @staticmethod
    def _drop(raw: web.Request) -> web.StreamResponse:
        if raw.transport is not None:
            raw.transport.abort()
        return web.Response(status=204)

    def _serve_introspection(self, url: URL) -> web.Response:
        name = url.path.removeprefix("/_sim/").strip("/")
        try:
            payload = self._introspect(name)
        except KeyError:
            return web.json_response({"error": f"unknown introspection path {name!r}"}, status=404)
        return web.Response(
            text=json.dumps(payload, default=_jsonable, indent=1),
            content_type="application/json",
        )


def _tunnel_target(raw: web.Request, tunnel: Tunnel) -> tuple[URL, str | None]:
    """The URL a request inside a tunnel asks for: its ``Host`` (else the tunnel's), its path.

    The origin is the tunnel's: only its CONNECT carried the proxy credentials.
    """
    host = raw.headers.get("Host", "")
    if not _HOST_HEADER.fullmatch(host):
        host = tunnel.host
    path = raw.raw_path if raw.raw_path.startswith("/") else "/"
    url = URL(f"{'https' if tunnel.tls else 'http'}://{host}{path}", encoded=True)
    return url, tunnel.origin_region


def _jsonable(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
