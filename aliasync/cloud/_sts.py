"""Who are we? The account ID, from STS GetCallerIdentity (official client).

It is the first call of every run, so it also says whether the cloud can be reached at all:
a host that cannot be (no network, a name that does not resolve, a proxy that cannot reach
it) is tried three times at most, within seconds, and named in the error; the cloud's own
transient errors get the full policy.
"""

from __future__ import annotations

from typing import Any

from alibabacloud_sts20150401.client import Client

from aliasync._exceptions import PermanentCloudError
from aliasync.cloud._credentials import CredentialSource, tea_config
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary

__all__ = ["caller_account_id"]


async def caller_account_id(
    endpoints: Endpoints,
    credentials: CredentialSource,
    *,
    retry: RetryPolicy | None = None,
) -> str:
    """The account ID the credentials belong to (also a cheap check that they work)."""
    client = Client(tea_config(endpoints, credentials, endpoints.sts))

    async def once() -> dict[str, Any]:
        with boundary("sts", "GetCallerIdentity"):
            response = await client.get_caller_identity_async()
            body: dict[str, Any] = response.body.to_map() if response.body else {}
            return body

    policy = retry or DEFAULT.first_contact().scaled(endpoints.time_scale)
    body = await policy.call_as("sts:GetCallerIdentity", once)
    account = body.get("AccountId")
    if not account:
        raise PermanentCloudError(
            "MissingAccountId",
            "GetCallerIdentity answered without an AccountId",
            service="sts",
            action="GetCallerIdentity",
            request_id=body.get("RequestId"),
        )
    return str(account)
