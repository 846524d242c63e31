"""STS and RAM over HTTP: RPC style (ACS3 or RPC V1 signatures), region-less, JSON answers.

STS: GetCallerIdentity and AssumeRole. RAM: roles and their system policies, users and their
access keys.

The action comes from the ``x-acs-action`` header (ACS3) or the ``Action`` parameter (V1).
Parameters come from the query string, plus a form-encoded body when an ACS3 request has one
(the body is covered by ``x-acs-content-sha256``). Errors are
``{"RequestId","HostId","Code","Message","Recommend"}`` as for every Alibaba RPC product.

Choices: an assumed-role identity's session name is the third part of the key's principal
(``role/<name>/<session>``) when present, otherwise ``fc-<first 8 characters of the key
suffix>``; RAM permissions are not enforced (any valid key may call any action).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from aliasync.sim import _signing as sig
from aliasync.sim._auth import AuthErrors, authenticate
from aliasync.sim._context import SimContext
from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._keys import KeyRecord
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.ram._models import RamModel
from aliasync.sim.ram._sessions import StsModel

Params = dict[str, str]
Action = Callable[[Params, KeyRecord], dict[str, Any]]

_AUTH_ERRORS = AuthErrors(
    kinds=(
        (sig.UnknownAccessKey, "InvalidAccessKeyId.NotFound", 404, None),
        (sig.SignatureMismatch, "SignatureDoesNotMatch", 400, None),
        (sig.ExpiredRequest, "InvalidTimeStamp.Expired", 400, None),
        (sig.InvalidSecurityToken, "InvalidSecurityToken.MismatchWithAccessKey", 400, None),
        (sig.MissingAuth, "IncompleteSignature", 400, None),
        (sig.MalformedAuth, "IncompleteSignature", 400, None),
    ),
    fallback=("Forbidden", 403, None),
    expired=SimError("InvalidSecurityToken.Expired", "The security token has expired.", 400),
)
_STS_HOST = re.compile(r"sts(?:-vpc)?\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com")


def ram_model(ctx: SimContext) -> RamModel:
    """The context's RAM model, created and registered on first use."""
    model = ctx.models.get("ram")
    if not isinstance(model, RamModel):
        model = ctx.models["ram"] = RamModel(ctx)
    return model


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise SimError("MissingParameter", f"{name} is mandatory for this action.", 400)
    return value


class _RpcService:
    """Shared RPC plumbing: routing by host and action, authentication, errors."""

    name = ""
    product = ""
    mutating: frozenset[str] = frozenset()

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._actions: dict[str, Action] = {}

    def _owns(self, host: str) -> bool:
        raise NotImplementedError

    def route(self, request: SimRequest) -> Route | None:
        if not self._owns(request.host):
            return None
        action = request.headers.get("x-acs-action") or request.param("Action") or "Unknown"
        return Route(self.name, action, None, action in self.mutating)

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        params, key = await self._authenticate(request)
        action = self._actions.get(route.action)
        if route.action == "Unknown":
            raise SimError("MissingParameter", "Action is mandatory for this request.", 400)
        if action is None:
            raise SimError(
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
                404,
            )
        doc = {"RequestId": request.request_id, **action(params, key)}
        return web.Response(
            body=json.dumps(doc).encode(), content_type="application/json", charset="utf-8"
        )

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        doc = {
            "RequestId": request.request_id,
            "HostId": request.host,
            "Code": error.code,
            "Message": error.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={error.code}&product={self.product}"
                f"&requestId={request.request_id}"
            ),
        }
        return web.Response(
            status=error.status,
            body=json.dumps(doc).encode(),
            content_type="application/json",
            charset="utf-8",
            headers=error.headers,
        )

    async def _authenticate(self, request: SimRequest) -> tuple[Params, KeyRecord]:
        body = await request.body()
        key = authenticate(self.ctx, request, body, _AUTH_ERRORS, rpc_v1=True)
        params: Params = dict(request.query)
        content_type = request.headers.get("content-type", "")
        if body and content_type.startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params, key


class StsService(_RpcService):
    """Security Token Service: GetCallerIdentity (any key) and AssumeRole (users, roles)."""

    name = "sts"
    product = "Sts"

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.sessions = StsModel(ram_model(ctx))
        self._actions = {
            "GetCallerIdentity": self._get_caller_identity,
            "AssumeRole": self._assume_role,
        }

    def _owns(self, host: str) -> bool:
        if host == "sts.aliyuncs.com":
            return True
        match = _STS_HOST.fullmatch(host)
        if match is None:
            return False
        if match.group("region") not in self.ctx.regions:
            raise DropConnection(f"no STS endpoint at {host}")
        return True

    def _assume_role(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        duration = params.get("DurationSeconds") or "3600"
        if not (duration.isascii() and duration.isdigit() and len(duration) <= 9):
            raise SimError(
                "InvalidParameter.DurationSeconds", "DurationSeconds must be a number.", 400
            )
        role, temporary, expiration = self.sessions.assume_role(
            key,
            _required(params, "RoleArn"),
            _required(params, "RoleSessionName"),
            int(duration),
            policy=params.get("Policy"),
            external_id=params.get("ExternalId"),
        )
        session = temporary.principal.split("/", 2)[2]
        return {
            "AssumedRoleUser": {
                "AssumedRoleId": f"{role.role_id}:{session}",
                "Arn": f"{role.arn}/{session}",
            },
            "Credentials": {
                "AccessKeyId": temporary.access_key_id,
                "AccessKeySecret": temporary.secret,
                "SecurityToken": temporary.security_token,
                "Expiration": expiration,
            },
        }

    def _get_caller_identity(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        account = self.ctx.account_id
        parts = key.principal.split("/")
        if parts[0] == "user" and len(parts) == 2:
            user = ram_model(self.ctx).user(parts[1])
            user_id = user.user_id if user else ""
            return {
                "IdentityType": "RAMUser",
                "AccountId": account,
                "PrincipalId": user_id,
                "UserId": user_id,
                "Arn": f"acs:ram::{account}:user/{parts[1]}",
            }
        if parts[0] != "role" or len(parts) < 2:
            return {
                "IdentityType": "Account",
                "AccountId": account,
                "PrincipalId": account,
                "UserId": account,
                "Arn": f"acs:ram::{account}:root",
            }
        role_name = parts[1]
        session = parts[2] if len(parts) > 2 else f"fc-{key.access_key_id[4:12]}"
        role = ram_model(self.ctx).role(role_name)
        role_id = str(role["RoleId"]) if role else ""
        principal = f"{role_id}:{session}"
        return {
            "IdentityType": "AssumedRoleUser",
            "AccountId": account,
            "PrincipalId": principal,
            "UserId": principal,
            "RoleId": role_id,
            "Arn": f"acs:ram::{account}:assumed-role/{role_name.lower()}/{session}",
        }


class RamService(_RpcService):
    """Resource Access Management: roles and the attachment of system policies."""

    name = "ram"
    product = "Ram"
    mutating = frozenset({"CreateRole", "AttachPolicyToRole", "CreateUser", "CreateAccessKey"})

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.model = ram_model(ctx)
        self._actions = {
            "GetRole": self._get_role,
            "CreateRole": self._create_role,
            "AttachPolicyToRole": self._attach_policy_to_role,
            "ListPoliciesForRole": self._list_policies_for_role,
            "CreateUser": self._create_user,
            "GetUser": self._get_user,
            "CreateAccessKey": self._create_access_key,
        }

    def _owns(self, host: str) -> bool:
        return host == "ram.aliyuncs.com"

    def _get_role(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        return {"Role": self.model.get_role(_required(params, "RoleName")).to_json()}

    def _create_role(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        name = _required(params, "RoleName")
        document = _required(params, "AssumeRolePolicyDocument")
        duration = params.get("MaxSessionDuration") or "3600"
        if not (duration.isascii() and duration.isdigit() and len(duration) <= 9):
            raise SimError(
                "InvalidParameter.MaxSessionDuration", "MaxSessionDuration must be a number.", 400
            )
        role = self.model.create_role(name, document, params.get("Description", ""), int(duration))
        out = role.to_json()
        for absent in ("UpdateDate", "IsServiceLinkedRole", "RolePrincipalName"):
            out.pop(absent)
        return {"Role": out}

    def _attach_policy_to_role(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        self.model.attach_policy(
            _required(params, "RoleName"),
            _required(params, "PolicyType"),
            _required(params, "PolicyName"),
        )
        return {}

    def _list_policies_for_role(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        policies = self.model.policies_for_role(_required(params, "RoleName"))
        return {"Policies": {"Policy": policies}}

    def _create_user(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        user = self.model.create_user(_required(params, "UserName"), params.get("DisplayName", ""))
        return {"User": user.to_json()}

    def _get_user(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        return {"User": self.model.get_user(_required(params, "UserName")).to_json()}

    def _create_access_key(self, params: Params, key: KeyRecord) -> dict[str, Any]:
        # Without UserName the caller's own key would be made; the root account's keys are
        # not emulated beyond the one the emulator starts with (guess: the stricter reading).
        name = params.get("UserName")
        if not name and key.principal.startswith("user/"):
            name = key.principal.split("/", 1)[1]
        if not name:
            raise SimError("MissingParameter", "UserName is mandatory for this action.", 400)
        _, key_id, secret, created = self.model.create_access_key(name)
        return {
            "AccessKey": {
                "AccessKeyId": key_id,
                "AccessKeySecret": secret,
                "Status": "Active",
                "CreateDate": created,
            }
        }
