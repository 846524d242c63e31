"""RAM, for account setup: roles and their policy attachments, over the official client.

Every call is retried and its errors mapped at the boundary; an "already exists" answer (a
retried call whose first answer was lost) counts as done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from alibabacloud_ram20150501 import models as m
from alibabacloud_ram20150501.client import Client

from aliasync._exceptions import CloudError
from aliasync.cloud._credentials import CredentialSource, tea_config
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary

__all__ = ["RamApi"]


class RamApi:
    """The RAM calls account setup needs, retried and mapped at the boundary."""

    def __init__(self, endpoints: Endpoints, credentials: CredentialSource) -> None:
        self._client = Client(tea_config(endpoints, credentials, endpoints.ram))
        self._retry: RetryPolicy = DEFAULT.scaled(endpoints.time_scale)

    async def _call(self, action: str, fn: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            with boundary("ram", action):
                response = await fn()
                body: dict[str, Any] = response.body.to_map() if response.body else {}
                return body

        return await self._retry.call_as(f"ram:{action}", once)

    async def get_role(self, name: str) -> dict[str, Any] | None:
        """The role's wire fields, or None if there is no such role."""
        request = m.GetRoleRequest(role_name=name)
        try:
            body = await self._call("GetRole", lambda: self._client.get_role_async(request))
        except CloudError as exc:
            if exc.code == "EntityNotExist.Role":
                return None
            raise
        role: dict[str, Any] = body.get("Role") or {}
        return role

    async def create_role(self, name: str, trust_policy: str, description: str) -> None:
        """Create a role; one that already exists (a retried call) counts as created."""
        request = m.CreateRoleRequest(
            role_name=name, assume_role_policy_document=trust_policy, description=description
        )
        try:
            await self._call("CreateRole", lambda: self._client.create_role_async(request))
        except CloudError as exc:
            if exc.code != "EntityAlreadyExists.Role":
                raise

    async def policies(self, name: str) -> set[str]:
        """The names of the policies attached to a role."""
        request = m.ListPoliciesForRoleRequest(role_name=name)
        body = await self._call(
            "ListPoliciesForRole", lambda: self._client.list_policies_for_role_async(request)
        )
        return {str(p.get("PolicyName")) for p in (body.get("Policies") or {}).get("Policy") or []}

    async def attach(self, name: str, policy: str) -> None:
        """Attach a system policy; one already attached counts as attached."""
        request = m.AttachPolicyToRoleRequest(
            policy_type="System", policy_name=policy, role_name=name
        )
        try:
            await self._call(
                "AttachPolicyToRole", lambda: self._client.attach_policy_to_role_async(request)
            )
        except CloudError as exc:
            if exc.code != "EntityAlreadyExists.Role.Policy":
                raise
