"""The ECS endpoint: routing by host and action, authentication, dispatch, JSON answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from aliasync.sim import _signing as sig
from aliasync.sim._auth import AuthErrors, authenticate
from aliasync.sim._context import SimContext, new_request_id
from aliasync.sim._errors import SimError
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.ecs._models import EcsModel
from aliasync.sim.ecs._params import Params, missing
from aliasync.sim.ecs._responses import EcsResponses

VERSION = "2014-05-26"
ACTIONS = frozenset(
    {
        "DescribeRegions",
        "ImportImage",
        "DescribeTasks",
        "DescribeImages",
        "CopyImage",
        "CancelCopyImage",
        "DeleteImage",
        "ModifyImageAttribute",
        "ModifyImageSharePermission",
        "DescribeImageSharePermission",
        "TagResources",
        "UntagResources",
        "ListTagResources",
        "DescribeSnapshots",
        "DeleteSnapshot",
    }
)
MUTATING = frozenset(
    {
        "ImportImage",
        "CopyImage",
        "CancelCopyImage",
        "DeleteImage",
        "ModifyImageAttribute",
        "ModifyImageSharePermission",
        "TagResources",
        "UntagResources",
        "DeleteSnapshot",
    }
)
# ecs.aliyuncs.com, ecs.<region>.aliyuncs.com, ecs-<region>.aliyuncs.com, ecs-vpc.<region>...
# (never a bucket's native OSS host such as ecs.oss-cn-hangzhou.aliyuncs.com)
_HOST = re.compile(r"ecs(?:-vpc)?(?:[.-](?!oss-)([a-z0-9-]+))?\.aliyuncs\.com")
_JSON = "application/json;charset=utf-8"
_INCOMPLETE = "The request signature does not conform to Aliyun standards."


def snake_case(action: str) -> str:
    """``CopyImage`` -> ``copy_image``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


_AUTH_ERRORS = AuthErrors(
    kinds=(
        (
            sig.UnknownAccessKey,
            "InvalidAccessKeyId.NotFound",
            404,
            "Specified access key is not found.",
        ),
        (
            sig.SignatureMismatch,
            "SignatureDoesNotMatch",
            400,
            "Specified signature is not matched with our calculation.",
        ),
        (
            sig.ExpiredRequest,
            "InvalidTimeStamp.Expired",
            400,
            "Specified time stamp or date value is expired.",
        ),
        (
            sig.InvalidSecurityToken,
            "InvalidSecurityToken.Malformed",
            400,
            "Specified SecurityToken is malformed.",
        ),
        (
            sig.MalformedTimestamp,
            "InvalidTimeStamp.Format",
            400,
            "Specified time stamp or date value is not well formatted.",
        ),
    ),
    fallback=("IncompleteSignature", 400, _INCOMPLETE),
    expired=SimError("InvalidSecurityToken.Expired", "Specified SecurityToken is expired."),
)


class EcsService:
    """ECS RPC (2014-05-26) for the image actions aliasync uses."""

    name = "ecs"

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.model = EcsModel(ctx)
        self.responses = EcsResponses(self.model)

    def route(self, request: SimRequest) -> Route | None:
        match = _HOST.fullmatch(request.host)
        if match is None:
            return None
        action = request.headers.get("x-acs-action") or request.param("Action")
        if not action:
            raise missing("Action")
        if action not in ACTIONS:
            raise SimError(
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
                404,
            )
        region = request.param("RegionId") or match.group(1) or None
        return Route("ecs", action, region, action in MUTATING)

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        body = await request.body()
        scheme = self._authenticate(request, body)
        version = (
            request.headers.get("x-acs-version") if scheme == "acs3" else request.param("Version")
        )
        if not version:
            raise missing("Version")
        if version != VERSION:
            raise SimError("InvalidVersion", "Specified parameter Version is not valid.")
        method: Callable[[Params], dict[str, Any]] = getattr(
            self.responses, snake_case(route.action)
        )
        answer = method(Params(request.query))
        return self._json(request, 200, answer)

    def _authenticate(self, request: SimRequest, body: bytes) -> str:
        scheme = sig.auth_scheme(request.query_string, request.headers)
        if scheme == "rpc_v1":
            for name in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce"):
                if not request.param(name):
                    raise missing(name)
        elif scheme == "none":
            raise missing("AccessKeyId")
        elif scheme != "acs3":
            raise SimError("IncompleteSignature", _INCOMPLETE)
        authenticate(self.ctx, request, body, _AUTH_ERRORS, rpc_v1=True)
        return scheme

    def _json(self, request: SimRequest, status: int, answer: dict[str, Any]) -> web.Response:
        request_id = request.request_id or new_request_id()
        payload = {"RequestId": request_id, **answer}
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": _JSON, "x-acs-request-id": request_id},
        )

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        request_id = request.request_id or new_request_id()
        payload = {
            "RequestId": request_id,
            "HostId": request.host or "ecs.aliyuncs.com",
            "Code": error.code,
            "Message": error.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={error.code}&product=Ecs"
                f"&requestId={request_id}"
            ),
        }
        headers = {"Content-Type": _JSON, "x-acs-request-id": request_id, **error.headers}
        return web.Response(status=error.status, body=json.dumps(payload).encode(), headers=headers)
