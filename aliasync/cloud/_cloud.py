"""One handle on the account: credentials, endpoints and a client per service and region.

A Cloud also scopes the tea SDK's connection reuse (:mod:`aliasync.cloud._teasession`): the ECS, FC,
STS and RAM calls made in the task that opened it, and in tasks started from there, share one
pooled aiohttp session, closed by :meth:`Cloud.aclose`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import anyio

from aliasync._exceptions import ConfigurationError
from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._ecs import EcsApi
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._fc import FcApi
from aliasync.cloud._oss import OssApi
from aliasync.cloud._sts import caller_account_id
from aliasync.cloud._teasession import TeaSession

# DescribeRegions takes no RegionId; any regional ECS endpoint answers it.
_REGIONLESS = "cn-hangzhou"


class Cloud:
    """Clients for ECS (per region), OSS and FC, sharing credentials and one retry policy."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        account: str,
        *,
        tea: TeaSession | None = None,
    ) -> None:
        if tea is None:
            tea = TeaSession()
            tea.activate()
        self._tea = tea
        self.endpoints = endpoints
        self.credentials = credentials
        self._account = account
        self._ecs: dict[str, EcsApi] = {}
        self.oss = OssApi(endpoints, credentials, account_id=account)
        self.fc = FcApi(endpoints, credentials, account_id=account)

    @classmethod
    async def open(cls, endpoints: Endpoints) -> Cloud:
        """Resolve credentials and the account ID (a cheap proof that the credentials work).

        The tea calls made from here on in the calling task, and in the tasks it starts
        afterwards, reuse connections until :meth:`aclose`.
        """
        tea = TeaSession()
        tea.activate()  # before the STS call below, and before the caller starts any task
        try:
            credentials = CredentialSource(endpoints)
            account = await caller_account_id(endpoints, credentials)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await tea.aclose()
            raise
        return cls(endpoints, credentials, account, tea=tea)

    @property
    def account(self) -> str:
        """The account ID the credentials belong to."""
        return self._account

    def ecs(self, region: str | None) -> EcsApi:
        """The ECS client for ``region`` (None: for region-less calls like DescribeRegions)."""
        key = region or _REGIONLESS
        client = self._ecs.get(key)
        if client is None:
            client = self._ecs[key] = EcsApi(
                self.endpoints, self.credentials, key, account_id=self._account
            )
        return client

    async def select_regions(self, wanted: Sequence[str] | None) -> list[str]:
        """The regions to work on: ``wanted`` (checked against DescribeRegions) or all."""
        available = await self.ecs(None).describe_regions()
        if not wanted:
            return available
        unknown = [r for r in wanted if r not in available]
        if unknown:
            raise ConfigurationError(
                f"unknown region(s): {', '.join(unknown)}; DescribeRegions offers "
                f"{', '.join(sorted(available))}"
            )
        return list(dict.fromkeys(wanted))

    @property
    def cache_scope(self) -> str:
        """A key for what is learnt about this account's regions: the account and where its
        endpoints point (the emulator's regions are not the cloud's)."""
        identity = json.dumps(
            [self._account, self.endpoints.ecs, self.endpoints.proxy or ""], sort_keys=True
        )
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    async def aclose(self) -> None:
        """Close the OSS clients and the tea session; tea calls still made later reconnect."""
        with anyio.CancelScope(shield=True):
            try:
                await self.oss.aclose()
            finally:
                await self._tea.aclose()
