"""ECS's instance metadata service at ``100.100.100.200``: an instance RAM role's credentials.

Only an ECS instance reaches that address. Here the machine the clients run on becomes an
instance with a RAM role once :meth:`MetadataModel.attach_role` (``Simulator.
attach_instance_role``) is called; until then nobody serves the address, and the emulator drops
the connection, as a machine outside ECS gets no answer. Clients reach it in plain HTTP through
the emulator's proxy (the credentials library honours ``HTTP_PROXY``).

* ``PUT /latest/api/token`` with ``X-aliyun-ecs-metadata-token-ttl-seconds`` (1 to 21600): a
  token for the hardened mode (IMDSv2).
* ``GET /latest/meta-data/ram/security-credentials/``: the attached role's name.
* ``GET /latest/meta-data/ram/security-credentials/<role>``: ``{"AccessKeyId",
  "AccessKeySecret", "Expiration", "SecurityToken", "LastUpdated", "Code": "Success"}``.

A request that carries ``X-aliyun-ecs-metadata-token`` must carry a live token (401 otherwise);
in hardened mode a request without one is refused (403). The role's key lives six hours (a
guess) and is replaced once less than half an hour of it is left (a guess). Errors are plain
text, as a web server's (a guess at their bodies).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

from aliasync.sim._context import SimContext
from aliasync.sim._errors import SimError
from aliasync.sim._keys import KeyRecord
from aliasync.sim._service import Route, SimRequest

__all__ = ["METADATA_HOST", "MetadataModel", "MetadataService"]

METADATA_HOST = "100.100.100.200"
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
MAX_TOKEN_TTL = 21600
CREDENTIALS_PATH = "/latest/meta-data/ram/security-credentials/"
ROLE_KEY_LIFETIME = 6 * 3600.0  # virtual seconds (guess)
ROLE_KEY_RENEWAL = 1800.0  # a new key once less than this is left (guess)


class MetadataModel:
    """The instance the clients run on: its RAM role, its role key, its metadata tokens."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.role: str | None = None
        self.hardened = False
        self._key: KeyRecord | None = None
        self._issued_at = 0.0
        self._tokens: dict[str, float] = {}  # token -> virtual expiry
        self._epoch = time.time() - ctx.clock.now()

    def attach_role(self, name: str, *, hardened: bool = False) -> None:
        """Attach a RAM role that trusts ``ecs.aliyuncs.com`` (AttachInstanceRamRole's rule)."""
        ram = self.ctx.models.get("ram")
        if ram is None or not ram.role_trusts(name, "ecs.aliyuncs.com"):
            raise ValueError(
                f"InvalidRamRole.NotEcsRole: role {name!r} does not exist or does not trust"
                " ecs.aliyuncs.com"
            )
        self.role = ram.role(name)["RoleName"]
        self.hardened = hardened
        self._key = None

    def issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.ctx.clock.now() + ttl
        return token

    def token_is_live(self, token: str) -> bool:
        expires = self._tokens.get(token)
        return expires is not None and self.ctx.clock.now() < expires

    def role_key(self) -> tuple[KeyRecord, str, str]:
        """The role's current key, with its expiry and issue timestamps."""
        assert self.role is not None
        now = self.ctx.clock.now()
        key = self._key
        if key is None or key.expires_at is None or key.expires_at - now < ROLE_KEY_RENEWAL:
            key = self.ctx.keys.issue_temporary(f"role/{self.role}", now + ROLE_KEY_LIFETIME)
            self._key, self._issued_at = key, now
        assert key.expires_at is not None
        return key, self._timestamp(key.expires_at), self._timestamp(self._issued_at)

    def _timestamp(self, virtual: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._epoch + virtual))

    def snapshot(self) -> dict[str, Any]:
        return {"role": self.role, "hardened": self.hardened}


def metadata_model(ctx: SimContext) -> MetadataModel:
    """The context's metadata model, created and registered on first use."""
    model = ctx.models.get("metadata")
    if not isinstance(model, MetadataModel):
        model = ctx.models["metadata"] = MetadataModel(ctx)
    return model


class MetadataService:
    """The metadata server's HTTP face (only its RAM role part)."""

    name = "metadata"

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.model = metadata_model(ctx)

    def route(self, request: SimRequest) -> Route | None:
        if request.host != METADATA_HOST or self.model.role is None:
            return None  # not an instance with a role: nobody answers at this address
        if request.path == "/latest/api/token":
            action = "CreateMetadataToken"
        elif request.path.startswith(CREDENTIALS_PATH):
            action = "GetRoleCredentials" if request.path != CREDENTIALS_PATH else "GetRoleName"
        else:
            action = "GetMetadata"
        return Route(self.name, action, None, False)

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        model = self.model
        if route.action == "CreateMetadataToken":
            if request.method != "PUT":
                raise SimError("MethodNotAllowed", "405 - Method Not Allowed", 405)
            ttl = request.headers.get(TOKEN_TTL_HEADER, "")
            if not (ttl.isascii() and ttl.isdigit() and 1 <= int(ttl) <= MAX_TOKEN_TTL):
                raise SimError("BadRequest", "400 - Bad Request", 400)
            return web.Response(text=model.issue_token(int(ttl)))
        token = request.headers.get(TOKEN_HEADER)
        if token is not None and not model.token_is_live(token):
            raise SimError("Unauthorized", "401 - Unauthorized", 401)
        if token is None and model.hardened:
            raise SimError("Forbidden", "403 - Forbidden", 403)
        if request.method != "GET":
            raise SimError("MethodNotAllowed", "405 - Method Not Allowed", 405)
        assert model.role is not None
        if route.action == "GetRoleName":
            return web.Response(text=model.role)
        name = request.path.removeprefix(CREDENTIALS_PATH).rstrip("/")
        if route.action != "GetRoleCredentials" or name.lower() != model.role.lower():
            raise SimError("NotFound", "404 - Not Found", 404)
        key, expiration, updated = model.role_key()
        doc = {
            "AccessKeyId": key.access_key_id,
            "AccessKeySecret": key.secret,
            "Expiration": expiration,
            "SecurityToken": key.security_token,
            "LastUpdated": updated,
            "Code": "Success",
        }
        return web.Response(text=json.dumps(doc), content_type="application/json")

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        return web.Response(status=error.status, text=error.message, headers=error.headers)
