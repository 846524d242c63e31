"""Hosts that cannot be reached: named, and retried only when a retry can help.

A name that does not resolve cannot be produced on loopback without asking a DNS server, so
these tests build aiohttp's own exceptions as the SDKs raise them (directly, wrapped by
darabonba's RetryError, or by aiobotocore) and hand them to the error boundary; the proxy
refusing a tunnel is produced for real, by the emulator.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import replace

import aiohttp
import botocore.exceptions as boto_exc
import pytest
from aiohttp.client_reqrep import ConnectionKey
from darabonba.exceptions import RetryError

from aliasync._exceptions import TransientCloudError, UnreachableError
from aliasync.cloud._retry import RetryPolicy
from aliasync.cloud._transport import boundary, translate
from aliasync.sim import Simulator

pytestmark = pytest.mark.anyio

HOST = "ecs.aliasync-test.invalid"
FAST = RetryPolicy(attempts=10, wait_initial=0.001, wait_max=0.001, wait_jitter=0.0)


def dns_error(errno: int) -> aiohttp.ClientConnectorDNSError:
    """What aiohttp raises when getaddrinfo fails for HOST (with a custom SSLContext, as tea)."""
    key = ConnectionKey(HOST, 443, True, ssl.create_default_context(), None, None, None, None)
    return aiohttp.ClientConnectorDNSError(key, socket.gaierror(errno, "resolution failed"))


def as_darabonba_raises_it(error: Exception) -> RetryError:
    """darabonba turns any IOError into RetryError(str(error)), raised inside the except."""
    try:
        raise error
    except OSError as exc:
        try:
            raise RetryError(str(exc))
        except RetryError as retry:
            return retry
    raise AssertionError("unreachable")


def mapped(exc: BaseException) -> UnreachableError:
    result = translate(exc, service="ecs", action="DescribeRegions", region=None)
    assert isinstance(result, UnreachableError), result
    return result


def test_a_name_that_does_not_exist_is_unreachable_for_good() -> None:
    """EAI_NONAME, however wrapped: the host named, no SSLContext repr, no retry worth it."""
    for raised in (
        dns_error(socket.EAI_NONAME),
        as_darabonba_raises_it(dns_error(socket.EAI_NONAME)),
        boto_exc.EndpointConnectionError(
            endpoint_url=f"https://{HOST}/?uploadId=1", error=dns_error(socket.EAI_NONAME)
        ),
    ):
        error = mapped(raised)
        assert (error.host, error.can_recover, error.code) == (HOST, False, "ConnectionError")
        assert str(error).endswith(
            f"ConnectionError: cannot reach {HOST}: the name does not resolve"
        )
        assert "object at 0x" not in str(error)


def test_no_answer_from_dns_or_a_refusal_may_recover() -> None:
    """EAI_AGAIN (no DNS answer now) and a refused connection are worth retrying."""
    assert mapped(dns_error(socket.EAI_AGAIN)).can_recover is True
    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    error = mapped(refused)
    assert (error.host, error.can_recover) == ("127.0.0.1", True)
    assert "connection refused" in str(error)


async def test_retries_stop_for_a_name_that_does_not_exist() -> None:
    """One attempt for a missing name; `unreachable_attempts` bounds the recoverable kind;
    other transient errors keep the whole policy."""
    for raised, policy, expected in (
        (dns_error(socket.EAI_NONAME), FAST, 1),
        (dns_error(socket.EAI_AGAIN), FAST, 10),
        (dns_error(socket.EAI_AGAIN), replace(FAST, unreachable_attempts=3), 3),
    ):
        attempts = 0

        async def call(raised: Exception = raised) -> None:
            nonlocal attempts
            attempts += 1
            with boundary("ecs", "DescribeRegions"):
                raise raised

        with pytest.raises(UnreachableError):
            await policy.call_as("test", call)
        assert attempts == expected, raised


async def test_a_proxy_refusing_the_tunnel_names_the_host(sim: Simulator) -> None:
    """The emulator's proxy refuses CONNECT to a host it does not serve: 502, host named."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientHttpProxyError) as info:
            await http.get(f"https://{HOST}/?Signature=secret", proxy=sim.proxy_url)
    error = mapped(info.value)
    assert (error.host, error.status) == (HOST, 502)
    assert "the proxy answered 502" in str(error) and "Signature" not in str(error)
    assert isinstance(error, TransientCloudError)
