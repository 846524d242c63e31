"""The tea SDK's HTTP hop over one pooled aiohttp session per :class:`~aliasync.cloud._cloud.Cloud`.

Every ``*_async`` call of the official clients (ECS, FC, STS, RAM) ends in the static method
``darabonba.core.DaraCore.async_do_action``, which opens a new ``ClientSession`` and connector
per call: a new TCP connection (and TLS handshake) every time and, over HTTPS, a new SSL
context with the CA bundle parsed again, about 57 ms of CPU per call. The SDK still builds,
signs and parses every request; only that last hop is replaced here, by one that sends the
same request over a long-lived session.

Scope: the replacement is installed process-wide (the SDK offers no per-client hook), but it
only reroutes calls made in a context where a :class:`TeaSession` is active, i.e. inside a
Cloud. Everything else (another tea client in an embedding application, aliasync code outside
a Cloud, a Cloud already closed) goes to darabonba's own method, unchanged.

The active session lives in a :class:`~contextvars.ContextVar`. Tasks copy their context when
they are created, so a Cloud activates its session when it is opened, before its caller starts
the tasks that make calls. Closing does not rely on ``ContextVar.reset`` (the token only works
in the context that set it, and a Cloud may be closed from another task): a closed session
stays visible to contexts that copied it, and is skipped, falling back to the session that
was active before it, or to darabonba's method.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import aiohttp
import anyio
import certifi
from darabonba.core import DaraCore
from darabonba.exceptions import RetryError
from darabonba.response import DaraResponse
from darabonba.utils.stream import BaseStream

__all__ = ["TeaSession", "install"]

# darabonba's defaults, in milliseconds, for runtimes that name no timeout.
_CONNECT_MS = 5000
_READ_MS = 10000
# Pooled connections idle longer than this are closed by us, under the 15 s idle timeout common
# on load balancers: a POST sent into a connection the server is closing fails (a transient
# error, retried), as aiohttp retries only idempotent methods on a fresh connection.
_KEEPALIVE_S = 10.0
_TLS_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}

_DoAction = Callable[[Any, Any], Awaitable[Any]]

_active: ContextVar[TeaSession | None] = ContextVar("aliasync_tea_session", default=None)
_install_lock = threading.Lock()
_original: _DoAction | None = None


class TeaSession:
    """One aiohttp session (one connector, SSL contexts built once) for a Cloud's tea calls."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._previous: TeaSession | None = None
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open" if self._session else "unused"
        return f"TeaSession({state})"

    def activate(self) -> None:
        """Route the tea calls made in the current context (and tasks it starts) through here."""
        install()
        current = _usable(_active.get())
        # Only open sessions are linked, so the chain stays as short as the nesting; and never
        # into a loop, should this session be activated again under one activated after it.
        if not any(scope is self for scope in _chain(current)):
            self._previous = current
        _active.set(self)

    async def __aenter__(self) -> TeaSession:
        """Active for the block (for code that runs outside a Cloud, e.g. account setup)."""
        self.activate()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def aclose(self) -> None:
        """Close the session; later calls in contexts that still see it use the previous one."""
        self.closed = True
        if _active.get() is self:
            _active.set(_usable(self._previous))
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession | None:
        """The session, created on first use in the running loop; None if it cannot serve."""
        loop = asyncio.get_running_loop()
        if self._session is None:
            if self.closed:
                return None
            self._loop = loop
            self._session = aiohttp.ClientSession(
                # No limit: darabonba's per-call connector never queued a request, and aliasync
                # bounds its own concurrency. maxIdleConns is therefore not a limit here.
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_S),
                # darabonba's sessions lived for one call, so no cookie ever outlived it.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        elif loop is not self._loop:
            # A context copied into another thread's event loop: aiohttp sessions are bound
            # to the loop they were made in.
            return None
        return self._session

    def ssl_context(self, runtime: Mapping[str, Any], https: bool) -> ssl.SSLContext | bool:
        """What darabonba verifies with, built once per distinct set of TLS options."""
        if not https or runtime.get("ignoreSSL"):
            return False
        ca = runtime.get("ca") or None
        cert = runtime.get("cert") or None
        tls_min = runtime.get("tlsMinVersion")
        tls_min = getattr(tls_min, "value", tls_min)  # darabonba accepts its TLSVersion enum
        key = (ca, tuple(cert) if isinstance(cert, list | tuple) else cert, tls_min)
        context = self._ssl.get(key)
        if context is None:
            context = self._ssl[key] = _ssl_context(ca, cert, tls_min)
        return context

    async def _send(
        self, session: aiohttp.ClientSession, request: Any, runtime: Mapping[str, Any]
    ) -> DaraResponse:
        url = DaraCore.compose_url(request)  # the SDK's own URL, as darabonba sends it
        https = str(request.protocol).upper() == "HTTPS"
        options: dict[str, Any] = {
            "data": _body(request.body),
            "headers": request.headers,
            "ssl": self.ssl_context(runtime, https),
            "proxy": _proxy(runtime, "https" if https else str(request.protocol).lower()),
            "timeout": _timeout(runtime),
        }
        try:
            async with session.request(request.method, url, **options) as response:
                answer = DaraResponse()
                answer.body = await response.read()
                answer.headers = {k.lower(): v for k, v in response.headers.items()}
                answer.status_code = response.status
                answer.status_message = response.reason
                answer.response = response
        except OSError as exc:
            # darabonba turns exactly these (refused, reset, timed out) into RetryError and
            # lets other aiohttp errors through; aliasync's boundary maps both kinds.
            raise RetryError(str(exc)) from exc
        return answer


def install() -> None:
    """Put :func:`_routed` in place of ``DaraCore.async_do_action``, once per process."""
    global _original
    with _install_lock:
        if _original is None:
            _original = DaraCore.async_do_action
            DaraCore.async_do_action = staticmethod(_routed)


async def _routed(request: Any, runtime_option: Any = None) -> Any:
    scope = _usable(_active.get())
    session = scope._client() if scope is not None else None
    if scope is None or session is None:
        assert _original is not None  # installed before it can be called
        return await _original(request, runtime_option)
    return await scope._send(session, request, runtime_option or {})


def _chain(scope: TeaSession | None) -> Iterator[TeaSession]:
    while scope is not None:
        yield scope
        scope = scope._previous


def _usable(scope: TeaSession | None) -> TeaSession | None:
    """``scope``, or the closest still-open session that was active before it."""
    while scope is not None and scope.closed:
        scope = scope._previous
    return scope


def _ssl_context(ca: str | None, cert: Any, tls_min: Any) -> ssl.SSLContext:
    # As darabonba: the system trust store plus the caller's CA file, or plus certifi's bundle.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(ca or certifi.where())
    if tls_min in _TLS_VERSIONS:
        context.minimum_version = _TLS_VERSIONS[tls_min]
    if isinstance(cert, list | tuple):
        context.load_cert_chain(certfile=cert[0], keyfile=cert[1] if len(cert) > 1 else None)
    elif cert:
        context.load_cert_chain(certfile=cert)
    return context


def _proxy(runtime: Mapping[str, Any], scheme: str) -> str | None:
    """The runtime's proxy for ``scheme``, else the environment's (darabonba ignores noProxy)."""
    if scheme not in ("http", "https"):
        return None
    found = (
        runtime.get(f"{scheme}Proxy")
        or os.environ.get(f"{scheme.upper()}_PROXY")
        or os.environ.get(f"{scheme}_proxy")
    )
    return str(found) if found else None


def _timeout(runtime: Mapping[str, Any]) -> aiohttp.ClientTimeout:
    # Milliseconds; per socket operation, with no cap on the whole call, as darabonba does.
    fallback = runtime.get("timeout")
    connect = runtime.get("connectTimeout") or fallback or _CONNECT_MS
    read = runtime.get("readTimeout") or fallback or _READ_MS
    return aiohttp.ClientTimeout(sock_connect=int(connect) / 1000, sock_read=int(read) / 1000)


def _body(body: Any) -> Any:
    if isinstance(body, BaseStream):
        return b"".join(body)  # darabonba drains its own streams before sending
    if isinstance(body, str):
        return body.encode("utf-8")
    return body or b""
