"""Credentials: from the endpoints file if it has them, else Alibaba Cloud's default chain.

The default chain (``alibabacloud_credentials``) looks at, in order, the environment
(``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` /
``ALIBABA_CLOUD_SECURITY_TOKEN``), the Aliyun CLI profiles (``~/.aliyun/config.json``), the
credentials file, and the ECS instance's RAM role. Role credentials expire; they are refreshed
by the chain itself, so:

* the tea SDK clients (ECS, FC, STS, RAM) are given the chain object and ask it before every
  request;
* OSS clients (aiobotocore) take plain keys, so :meth:`CredentialSource.current` is asked before
  each client is created, and :class:`~aliasync.cloud._oss.OssApi` replaces clients whose keys went
  stale.

Every secret obtained is registered with :func:`aliasync.cloud._transport.register_secret`, so it is
masked should it ever appear in an error message.

The library gives its ``credentials`` logger handlers of its own (one per module, each writing
to stderr) and sets it to INFO, so each provider of the chain that finds nothing prints a
warning and a traceback, whatever the application configured. Importing this module takes
those handlers off and sets the level back to NOTSET: the records then go where the
application's logging sends them, like any library's. Why the chain found nothing is logged
at the error boundary, at debug level, with secrets masked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig

from aliasync._exceptions import ConfigurationError
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._transport import boundary, register_secret

__all__ = ["CredentialSource", "Credentials", "tea_config"]

_CHAIN_LOGGER = "credentials"  # the credentials library's logger


def _unhook_library_logging() -> None:
    chain_log = logging.getLogger(_CHAIN_LOGGER)
    for handler in list(chain_log.handlers):
        chain_log.removeHandler(handler)
    chain_log.setLevel(logging.NOTSET)


_unhook_library_logging()


@dataclass(frozen=True)
class Credentials:
    """One set of keys. Only the key ID is shown by ``repr``."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)


class CredentialSource:
    """Fresh credentials on demand: static ones from the endpoints file, or the default chain."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._static: Credentials | None = None
        self._chain: CredentialClient | None = None
        if endpoints.access_key_id and endpoints.access_key_secret:
            self._static = Credentials(endpoints.access_key_id, endpoints.access_key_secret)
            register_secret(endpoints.access_key_secret)
        else:
            with boundary("credentials", "DefaultChain"):
                # Building the chain reads no secret yet; it only decides which sources to try.
                self._chain = CredentialClient()

    def __repr__(self) -> str:
        return f"CredentialSource({'endpoints file' if self._static else 'default chain'})"

    @property
    def from_chain(self) -> bool:
        """True if the keys come from the default chain (and may change over time)."""
        return self._chain is not None

    async def current(self) -> Credentials:
        """The credentials to use now; ConfigurationError if none can be found."""
        if self._static is not None:
            return self._static
        assert self._chain is not None
        with boundary("credentials", "GetCredential"):
            model = await self._chain.get_credential_async()
        key_id = getattr(model, "access_key_id", None)
        secret = getattr(model, "access_key_secret", None)
        token = getattr(model, "security_token", None) or None
        if not key_id or not secret:
            raise ConfigurationError(
                "the Alibaba Cloud credential chain returned no access key"
                " (bearer tokens are not supported)"
            )
        register_secret(secret)
        register_secret(token)
        return Credentials(str(key_id), str(secret), str(token) if token else None)

    def tea_options(self) -> dict[str, Any]:
        """Keyword arguments for a tea-openapi ``Config`` that authenticate its requests."""
        if self._static is not None:
            return {
                "access_key_id": self._static.access_key_id,
                "access_key_secret": self._static.access_key_secret,
            }
        # The chain object itself: the SDK asks it before each request, so rotated role
        # credentials are picked up without rebuilding clients.
        return {"credential": self._chain}


def tea_config(
    endpoints: Endpoints,
    credentials: CredentialSource,
    host: str,
    *,
    region: str | None = None,
    read_timeout: float = 60.0,
    connect_timeout: float = 10.0,
) -> TeaConfig:
    """A tea-openapi ``Config`` for one endpoint: keys, protocol, proxy and timeouts.

    The SDK's own retries stay off (``retry_options`` unset): :mod:`aliasync.cloud._retry` retries.
    """
    options: dict[str, Any] = {
        **credentials.tea_options(),
        "endpoint": host,
        "protocol": endpoints.protocol,
        "read_timeout": int(read_timeout * 1000),
        "connect_timeout": int(connect_timeout * 1000),
    }
    if region:
        options["region_id"] = region
    if endpoints.proxy:
        options["http_proxy"] = endpoints.proxy
        options["https_proxy"] = endpoints.proxy
    return TeaConfig(**options)
