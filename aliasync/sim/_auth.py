"""Authentication for the Alibaba OpenAPI services (ECS, FC, STS, RAM), written once.

Each service verifies the request's signature (ACS3, or RPC V1 where it takes it), refuses a
temporary key past its expiry, and names every failure with its own error code. Only the
naming differs between services, so that is what they pass in: a table from failure kind to
code and status, and the error for an expired key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aliasync.sim import _signing as sig
from aliasync.sim._context import SimContext
from aliasync.sim._errors import SimError
from aliasync.sim._keys import KeyRecord
from aliasync.sim._service import SimRequest

__all__ = ["AuthErrors", "authenticate"]


@dataclass(frozen=True)
class AuthErrors:
    """How one service names authentication failures."""

    # (failure kind, code, HTTP status), first match wins; ``message`` None: the reason.
    kinds: Sequence[tuple[type[sig.AuthFailure], str, int, str | None]]
    fallback: tuple[str, int, str | None]  # any other failure
    expired: SimError  # a temporary key used after its expiry

    def error(self, failure: sig.AuthFailure) -> SimError:
        for kind, code, status, message in self.kinds:
            if isinstance(failure, kind):
                return SimError(code, message or failure.reason, status)
        code, status, message = self.fallback
        return SimError(code, message or failure.reason, status)


def authenticate(
    ctx: SimContext, request: SimRequest, body: bytes, errors: AuthErrors, *, rpc_v1: bool
) -> KeyRecord:
    """The key that signed ``request``: ACS3, or RPC V1 if ``rpc_v1`` and the request uses it.

    Raises the service's SimError for a missing, malformed, wrong or stale signature, an
    unknown key, a bad security token, or an expired temporary key.
    """
    lookup = ctx.keys.lookup
    try:
        if rpc_v1 and sig.auth_scheme(request.query_string, request.headers) == "rpc_v1":
            record = sig.verify_rpc_v1(request.method, request.query_string, lookup)
        else:
            record = sig.verify_acs3(
                request.method, request.path, request.query_string, request.headers, body, lookup
            )
    except sig.AuthFailure as failure:
        raise errors.error(failure) from None
    if record.expires_at is not None and ctx.clock.now() >= record.expires_at:
        raise errors.expired
    return record
