"""Errors as data: a code, a message and an HTTP status, serialized once per service."""

from __future__ import annotations


class SimError(Exception):
    """A cloud error answer. Raised by models and responses; the service serializes it."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        headers: dict[str, str] | None = None,
        ec: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        # Extra response headers, e.g. ``x-acs-retry-after`` on Throttling.
        self.headers = dict(headers or {})
        # OSS's "EC" detail code (e.g. 0048-00000401 for PublicEndpointForbidden).
        self.ec = ec


class DropConnection(Exception):
    """Abort the TCP connection without an answer (a lost response, a missing endpoint)."""
