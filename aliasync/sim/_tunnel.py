"""The proxy port's front door: plain proxy requests, and ``CONNECT`` tunnels with TLS inside.

Every connection starts here. One whose first request is not ``CONNECT`` goes, bytes and all,
to aiohttp's HTTP protocol unchanged (absolute-form proxy requests and ``/_sim/``). A
``CONNECT host:443`` is answered ``200``, then TLS is ended on the same connection with a
certificate for ``host`` (:mod:`aliasync.sim._tls`), and aiohttp serves the decrypted stream.
``CONNECT host:80`` tunnels plain HTTP the same way without TLS. Inside a tunnel requests are
in origin form (``GET /key``, ``Host: bucket...``); the tunnel remembers what its ``CONNECT``
said (target, and the ``Proxy-Authorization`` naming a function's region), because only the
``CONNECT`` carries it.

A target outside the emulated cloud's domain, another port, or a malformed ``CONNECT`` is
refused as a proxy refuses: ``502``/``400`` and the connection closed.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import logging
import ssl
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from aliasync.sim._tls import ServerCertificates, served_hostname

log = logging.getLogger("aliasync.sim")

_CONNECT = b"CONNECT "
MAX_CONNECT_HEAD = 16 * 1024  # the request line and headers of one CONNECT
HANDSHAKE_TIMEOUT = 60.0  # real seconds


@dataclass(frozen=True)
class Tunnel:
    """What the ``CONNECT`` that opened a connection said."""

    host: str  # lower case
    port: int
    origin_region: str | None  # the emulated FC region it comes from, if any
    tls: bool


def origin_region(proxy_authorization: str | None) -> str | None:
    """The region of the emulated FC function named by a proxy's ``Basic fc-<region>:x``."""
    scheme, _, token = (proxy_authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(token, validate=True).decode().partition(":")[0]
    except (ValueError, UnicodeDecodeError):  # binascii.Error; ValueError: not ASCII
        return None
    return user[3:] if user.startswith("fc-") else None


def parse_connect(head: bytes) -> Tunnel:
    """The tunnel a ``CONNECT`` request head asks for; ValueError if it is malformed."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        raise ValueError("malformed CONNECT request line")
    target = urlsplit("//" + parts[1])
    if not target.hostname or target.port is None or target.path or target.username:
        raise ValueError("CONNECT needs host:port")
    headers = http.client.parse_headers(io.BytesIO(rest))
    return Tunnel(
        host=target.hostname.lower(),
        port=target.port,
        origin_region=origin_region(headers.get("Proxy-Authorization")),
        tls=target.port == 443,
    )


class ProxySite(web.BaseSite):
    """An aiohttp site on a TCP port whose connections may become TLS tunnels.

    ``certificates`` None serves plain HTTP only (every ``CONNECT`` to 443 is refused).
    ``on_unserved(host)`` hears of every ``CONNECT`` to a host outside the emulated cloud.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        certificates: ServerCertificates | None,
        on_unserved: Callable[[str], None],
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self.certificates = certificates
        self._on_unserved = on_unserved
        self._tunnels: weakref.WeakKeyDictionary[asyncio.BaseTransport, Tunnel] = (
            weakref.WeakKeyDictionary()
        )
        self._opening: set[asyncio.Task[None]] = set()
        self.tunnels_opened = 0

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Front(self), self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        for task in list(self._opening):
            task.cancel()
        await super().stop()

    def tunnel(self, transport: asyncio.BaseTransport | None) -> Tunnel | None:
        """The tunnel a request's connection is, or None for a plain proxy connection."""
        return None if transport is None else self._tunnels.get(transport)

    # -- called by the connections ---------------------------------------------------------

    def serve_http(
        self, transport: asyncio.Transport, received: bytes, tunnel: Tunnel | None = None
    ) -> asyncio.Protocol | None:
        """Hand a connection to aiohttp, with the bytes already read from it."""
        server = self._runner.server
        if server is None or transport.is_closing():  # shutting down
            transport.abort()
            return None
        if tunnel is not None:
            self._tunnels[transport] = tunnel
        handler = server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if received:
            handler.data_received(received)
        return handler

    def open_tunnel(self, transport: asyncio.Transport, head: bytes) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._open_tunnel(transport, head))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)
        return task

    async def _open_tunnel(self, transport: asyncio.Transport, head: bytes) -> None:
        try:
            tunnel = parse_connect(head)
        except ValueError:
            _refuse(transport, b"400 Bad Request")
            return
        if not served_hostname(tunnel.host):
            self._on_unserved(tunnel.host)
            _refuse(transport, b"502 Bad Gateway")
            return
        if tunnel.port not in (80, 443) or (tunnel.tls and self.certificates is None):
            _refuse(transport, b"502 Bad Gateway")
            return
        transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.tunnels_opened += 1
        if not tunnel.tls:
            self.serve_http(transport, b"", tunnel)
            transport.resume_reading()
            return
        assert self.certificates is not None
        pending = _Pending()
        try:
            secured = await asyncio.get_running_loop().start_tls(
                transport,
                pending,
                self.certificates.context_for(tunnel.host),
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            # The client refused the certificate, or left: its side reports why.
            log.debug("TLS handshake for %s failed: %s", tunnel.host, type(exc).__name__)
            transport.abort()
            return
        if secured is None:  # the connection closed during the handshake
            return
        handler = self.serve_http(_as_transport(secured), b"", tunnel)
        if handler is not None:
            pending.replay_to(handler, secured)


def _as_transport(transport: asyncio.BaseTransport) -> asyncio.Transport:
    assert isinstance(transport, asyncio.Transport)
    return transport


def _refuse(transport: asyncio.Transport, status: bytes) -> None:
    transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    transport.close()


class _Front(asyncio.Protocol):
    """A new connection's first bytes: ``CONNECT`` opens a tunnel, anything else is HTTP."""

    def __init__(self, site: ProxySite) -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._decided = False
        self._opening: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = _as_transport(transport)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if self._decided or transport is None:
            return
        self._buffer += data
        known = min(len(self._buffer), len(_CONNECT))
        if self._buffer[:known] != _CONNECT[:known]:
            self._decided = True
            self._site.serve_http(transport, bytes(self._buffer))
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_CONNECT_HEAD:
                self._decided = True
                _refuse(transport, b"431 Request Header Fields Too Large")
            return
        self._decided = True
        head, early = bytes(self._buffer[: end + 4]), self._buffer[end + 4 :]
        if early:  # bytes before our 200: a client that does not wait for the tunnel
            _refuse(transport, b"400 Bad Request")
            return
        transport.pause_reading()
        self._opening = self._site.open_tunnel(transport, head)

    def eof_received(self) -> bool:
        if not self._decided and self._transport is not None:
            self._transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # Still this protocol's connection: the client left before its tunnel was up.
        if self._opening is not None:
            self._opening.cancel()


class _Pending(asyncio.Protocol):
    """The TLS side of a tunnel until aiohttp takes it: keeps what arrives meanwhile.

    The handshake can complete and the first request arrive before ``start_tls`` returns.
    """

    def __init__(self) -> None:
        self._received = bytearray()
        self._eof = False
        self._lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self._received += data

    def eof_received(self) -> bool:
        self._eof = True
        return False  # over TLS the transport closes after close_notify whatever we answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = (exc,)

    def replay_to(self, handler: asyncio.Protocol, transport: asyncio.BaseTransport) -> None:
        """Give aiohttp, now the transport's protocol, what arrived before it took over."""
        if self._received:
            handler.data_received(bytes(self._received))
        if self._eof and not handler.eof_received():
            transport.close()
        if self._lost is not None:
            handler.connection_lost(self._lost[0])
