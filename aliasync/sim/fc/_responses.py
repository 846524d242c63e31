"""Function Compute 3.0 over HTTP: ROA paths, ACS3 signatures, FC's JSON errors.

Choices where the public documentation is silent (see also ``_runner`` and ``_models``):

* A function error (unhandled exception, timeout, crashed process) is answered with HTTP 200,
  ``x-fc-error-type: UnhandledInvocationError`` and a JSON body ``{"errorMessage", ...}``: the
  documented header and body; the status is not documented.
* A timeout answers ``{"errorMessage": "Function timed out after N seconds (maxMemoryUsage:
  0.00MB)"}``; a process that died answers ``"Process exited unexpectedly before completing
  request (duration: Dms, maxMemoryUsage: MMB)"``, with ``"errorType": "MemoryError"`` when it ran
  out of memory.
* python3.x and nodejs20 (also nodejs18) runtimes run; invoking another runtime answers 400
  InvalidArgument. Without Node.js or its modules on the emulator's host, invoking a nodejs
  function answers 412 ``CAExited`` ("The function either cannot be started or exited. ..."),
  the documented code of a runtime that cannot start, naming what is missing. Only the
  ``LATEST`` qualifier exists. Asynchronous invocation (``x-fc-invocation-type: Async``) is
  refused with 400 InvalidArgument rather than run without a caller to collect it.
* python3.12 and later runtimes get no ``context.credentials`` (FC dropped it there); the
  ``ALIBABA_CLOUD_*`` variables carry the key for every runtime.
* The function role's temporary key lives 36 hours (virtual), and at least the function's
  timeout at the emulator's time scale, so it never expires during an invocation (FC documents
  36 hours).
* At most ``max_workers`` worker processes run at once (default 32); further invocations wait.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
from aiohttp import web

from aliasync.sim import _signing as sig
from aliasync.sim._auth import AuthErrors, authenticate
from aliasync.sim._context import SimContext
from aliasync.sim._errors import DropConnection, SimError
from aliasync.sim._keys import KeyRecord
from aliasync.sim._service import Route, SimRequest
from aliasync.sim.fc import _node
from aliasync.sim.fc._models import FcModel, FunctionRecord
from aliasync.sim.fc._runner import (
    InvocationResult,
    InvocationSpec,
    base_environment,
    function_environment,
    run_invocation,
)

API_VERSION = "2023-03-30"
MAX_SYNC_EVENT = 32 * 2**20
MAX_API_BODY = 140 * 2**20  # a 100 MB ZIP, base64-encoded, in a JSON document
CREDENTIAL_LIFETIME = 36 * 3600.0
_NODE_RUNTIMES = ("nodejs18", "nodejs20")  # async handlers; both run on the host's Node.js

_HOSTS = (
    re.compile(
        r"(?P<account>\d+)\.(?P<region>[a-z0-9-]+?)(?P<internal>-internal)?\.fc\.aliyuncs\.com"
    ),
    re.compile(r"(?:fcv3|fc)\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com"),
    re.compile(r"(?P<region>[a-z0-9-]+)\.fc\.aliyuncs\.com"),
)
_PATHS = (
    ("POST", re.compile(r"/2023-03-30/functions/?"), "CreateFunction", True),
    ("GET", re.compile(r"/2023-03-30/functions/?"), "ListFunctions", False),
    ("POST", re.compile(r"/2023-03-30/functions/([^/]+)/invocations/?"), "InvokeFunction", True),
    ("GET", re.compile(r"/2023-03-30/functions/([^/]+)/?"), "GetFunction", False),
    ("DELETE", re.compile(r"/2023-03-30/functions/([^/]+)/?"), "DeleteFunction", True),
)
_AUTH_ERRORS = AuthErrors(
    kinds=(
        (sig.MissingAuth, "MissingRequiredHeader", 400, None),
        (sig.MalformedAuth, "InvalidArgument", 400, None),
        (sig.UnknownAccessKey, "InvalidAccessKeyID", 403, None),
        (sig.SignatureMismatch, "SignatureNotMatch", 403, None),
        (sig.ExpiredRequest, "RequestTimeTooSkewed", 403, None),
        (sig.InvalidSecurityToken, "InvalidSecurityToken", 403, None),
    ),
    fallback=("AccessDenied", 403, None),
    expired=SimError("InvalidSecurityToken.Expired", "the security token has expired", 403),
)


def _match_action(method: str, path: str) -> tuple[str, bool, str]:
    """(action, mutating, function name) for a request; action "Unknown" if none matches."""
    for verb, pattern, action, mutating in _PATHS:
        match = pattern.fullmatch(path)
        if match and method == verb:
            return action, mutating, unquote(match.group(1)) if match.groups() else ""
    return "Unknown", False, ""


def _json(doc: Any, request: SimRequest, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(doc).encode(),
        content_type="application/json",
        headers={"x-fc-request-id": request.request_id},
    )


async def _read_body(request: SimRequest, limit: int) -> bytes:
    """The body, refused with EntityTooLarge past ``limit`` (independent of client_max_size).

    An oversized body is still read to its end (and dropped, up to 4 x ``limit``) so that the
    connection stays usable and the server does not linger on unread data.
    """
    too_large = SimError("EntityTooLarge", f"the request body exceeds {limit} bytes", 400)
    if request._body is not None:
        if len(request._body) > limit:
            raise too_large
        return request._body
    parts: list[bytes] = []
    total = 0
    async for chunk in request.raw.content.iter_chunked(2**16):
        total += len(chunk)
        if total <= limit:
            parts.append(chunk)
        elif total > 4 * limit:
            break
    if total > limit:
        raise too_large
    data = request._body = b"".join(parts)
    return data


class FcService:
    """Function Compute 3.0 in every region whose ``Region.fc`` is true."""

    name = "fc"

    def __init__(self, ctx: SimContext, *, max_workers: int = 32) -> None:
        self.ctx = ctx
        existing = ctx.models.get("fc")
        self.model: FcModel = existing if isinstance(existing, FcModel) else FcModel(ctx)
        ctx.models["fc"] = self.model
        self._workers = anyio.CapacityLimiter(max_workers)
        self._base_env = base_environment()
        self._running: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None  # set when the last invocation ends (aclose)

    async def aclose(self) -> None:
        """Stop every running invocation (their workers are killed) and wait for them."""
        if not self._running:
            return
        self._idle = anyio.Event()
        for scope in list(self._running):
            scope.cancel()
        with anyio.move_on_after(5):
            await self._idle.wait()

    # --- Service protocol -----------------------------------------------------------------

    def route(self, request: SimRequest) -> Route | None:
        for pattern in _HOSTS:
            match = pattern.fullmatch(request.host)
            if match:
                break
        else:
            return None
        region = self.ctx.regions.get(match.group("region"))
        if region is None or not region.fc:
            raise DropConnection(f"no Function Compute endpoint at {request.host}")
        internal = "internal" in match.groupdict() and bool(match.group("internal"))
        action, mutating, _ = _match_action(request.method, request.path)
        return Route("fc", action, region.id, mutating, "internal" if internal else "public")

    async def handle(self, request: SimRequest, route: Route) -> web.StreamResponse:
        action, _, name = _match_action(request.method, request.path)
        if action == "Unknown":
            raise SimError("NotFound", f"{request.method} {request.path[:200]} is not an API", 404)
        limit = MAX_SYNC_EVENT if action == "InvokeFunction" else MAX_API_BODY
        body = await _read_body(request, limit)
        self._authenticate(request, body)
        region = route.region or ""
        if action == "CreateFunction":
            try:
                doc = json.loads(body or b"null")
            except ValueError:
                raise SimError("InvalidArgument", "the body is not valid JSON", 400) from None
            code = await anyio.to_thread.run_sync(self.model.prepare_code, doc)
            record = self.model.create_function(region, doc, code)
            return _json(record.to_json(self.ctx.account_id), request)
        if action == "ListFunctions":
            return self._list(request, region)
        if action == "GetFunction":
            return _json(
                self.model.get_function(region, name).to_json(self.ctx.account_id), request
            )
        if action == "DeleteFunction":
            self.model.delete_function(region, name)
            return web.Response(status=204, headers={"x-fc-request-id": request.request_id})
        return await self._invoke(request, region, name, body)

    def error_response(self, request: SimRequest, error: SimError) -> web.Response:
        code, status = error.code, error.status
        if code == "Throttling":
            action = _match_action(request.method, request.path)[0]
            throttled = ("ResourceThrottled", 503) if action == "InvokeFunction" else None
            code, status = throttled or ("ResourceExhausted", 429)
        doc = {"Code": code, "Message": error.message, "RequestId": request.request_id}
        headers = {**error.headers, "x-fc-request-id": request.request_id}
        return web.Response(
            status=status,
            body=json.dumps(doc).encode(),
            content_type="application/json",
            headers=headers,
        )

    # --- actions --------------------------------------------------------------------------

    def _authenticate(self, request: SimRequest, body: bytes) -> KeyRecord:
        record = authenticate(self.ctx, request, body, _AUTH_ERRORS, rpc_v1=False)
        account = request.host.split(".", 1)[0]
        if account.isdigit() and account != self.ctx.account_id:
            raise SimError("AccessDenied", "the endpoint belongs to another account", 403)
        return record

    def _list(self, request: SimRequest, region: str) -> web.Response:
        raw_limit = request.param("limit") or "20"
        digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 9
        if not digits or not 1 <= int(raw_limit) <= 100:
            raise SimError("InvalidArgument", "limit must be an integer between 1 and 100", 400)
        page, token = self.model.list_functions(
            region, request.param("prefix") or "", int(raw_limit), request.param("nextToken") or ""
        )
        doc: dict[str, Any] = {"functions": [f.to_json(self.ctx.account_id) for f in page]}
        if token:
            doc["nextToken"] = token
        return _json(doc, request)

    async def _invoke(
        self, request: SimRequest, region: str, name: str, event: bytes
    ) -> web.Response:
        if (request.headers.get("x-fc-invocation-type") or "Sync").lower() == "async":
            raise SimError(
                "InvalidArgument", "the emulator supports synchronous invocation only", 400
            )
        if (request.param("qualifier") or "LATEST") != "LATEST":
            raise SimError("InvalidArgument", "the emulator supports qualifier LATEST only", 400)
        record = self.model.get_function(region, name)
        node: _node.NodeInstall | None = None
        if record.runtime in _NODE_RUNTIMES:
            try:
                node = await anyio.to_thread.run_sync(_node.locate, record.runtime)
            except _node.NodeUnavailable as missing:
                raise SimError(
                    "CAExited", f"The function either cannot be started or exited. {missing}", 412
                ) from None
        elif not record.runtime.startswith("python3"):
            raise SimError(
                "InvalidArgument",
                "the emulator runs python3, nodejs18 and nodejs20 runtimes only",
                400,
            )
        record.invocations += 1
        number, cold, record.warm = record.invocations, not record.warm, True
        faults = self.ctx.faults
        if cold:
            await self.ctx.clock.sleep(faults.profile.cold_start_seconds)
        tail = (request.headers.get("x-fc-log-type") or "").lower() == "tail"
        if faults.chance("fc_timeout", "function_timeout_rate", region, key=f"{name}#{number}"):
            faults.record(
                "function_timeout", "fc", "InvokeFunction", region, self.ctx.clock.now(), name
            )
            # The invocation hangs until its timeout: virtual seconds, to keep tests fast.
            await self.ctx.clock.sleep(record.timeout)
            return self._answer(request, record, InvocationResult("timeout"), tail)
        spec = self._spec(request, record, event)
        spec.node = node
        result: InvocationResult | None = None
        with anyio.CancelScope() as scope:
            self._running.add(scope)
            try:
                async with self._workers:
                    result = await run_invocation(spec, self.model.work_root())
            except FileNotFoundError:  # deleted during its cold start
                raise SimError(
                    "FunctionNotFound", f"function '{name}' does not exist", 404
                ) from None
            finally:
                self._running.discard(scope)
                if not self._running and self._idle is not None:
                    self._idle.set()
        if result is None:
            raise SimError("ServiceUnavailable", "the emulator is shutting down", 503)
        return self._answer(request, record, result, tail)

    def _spec(self, request: SimRequest, record: FunctionRecord, event: bytes) -> InvocationSpec:
        region, account = record.region, self.ctx.account_id
        platform = {
            "FC_REGION": region,
            "FC_ACCOUNT_ID": account,
            "FC_FUNCTION_NAME": record.name,
            "FC_FUNCTION_HANDLER": record.handler,
            "FC_FUNCTION_MEMORY_SIZE": str(record.memory_size),
            "FC_RUNTIME": record.runtime,
            "FC_INSTANCE_ID": uuid.uuid4().hex,
        }
        proxy = self.proxy_for(region)
        if proxy:
            for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
                platform[var] = proxy
        platform.update(self.ctx.trust_env)  # HTTPS through the proxy: the emulator's CA
        credentials = {"access_key_id": "", "access_key_secret": "", "security_token": ""}
        role = record.role_name
        if role:
            scale = self.ctx.clock.time_scale
            lifetime = max(CREDENTIAL_LIFETIME, record.timeout * scale + 60.0)
            key = self.ctx.keys.issue_temporary(
                f"role/{role}", expires_at=self.ctx.clock.now() + lifetime
            )
            credentials = {
                "access_key_id": key.access_key_id,
                "access_key_secret": key.secret,
                "security_token": key.security_token or "",
            }
            platform["ALIBABA_CLOUD_ACCESS_KEY_ID"] = key.access_key_id
            platform["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = key.secret
            platform["ALIBABA_CLOUD_SECURITY_TOKEN"] = key.security_token or ""
        return InvocationSpec(
            request_id=request.request_id,
            region=region,
            account_id=account,
            function_name=record.name,
            handler=record.handler,
            memory_mb=record.memory_size,
            timeout=float(record.timeout),
            code_zip=record.code_path,
            event=event,
            env=function_environment(self._base_env, record.environment, platform),
            runtime=record.runtime,
            credentials=credentials,
        )

    def proxy_for(self, region: str) -> str:
        """The emulator's proxy URL with the function's region as userinfo.

        ``http://fc-<region>:x@<host>:<port>``: urllib sends it as ``Proxy-Authorization:
        Basic base64("fc-<region>:x")``, which the core turns into ``origin_region``.
        """
        if not self.ctx.proxy_url:
            return ""
        parts = urlsplit(self.ctx.proxy_url)
        hostport = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"fc-{region}:x@{hostport}", parts.path, "", ""))

    def _answer(
        self, request: SimRequest, record: FunctionRecord, result: InvocationResult, tail: bool
    ) -> web.Response:
        headers = {
            "x-fc-request-id": request.request_id,
            "x-fc-code-checksum": record.code_checksum,
            "x-fc-invocation-service-version": "LATEST",
            "x-fc-invocation-duration": str(round(result.duration_ms)),
            "x-fc-max-memory-usage": f"{result.max_memory_mb:.2f}",
        }
        if tail:
            headers["x-fc-log-result"] = base64.b64encode(result.logs).decode()
        if result.outcome == "ok":
            return web.Response(
                status=200,
                body=result.body,
                content_type="application/octet-stream",
                headers=headers,
            )
        peak = record.memory_size if result.memory_exhausted else result.max_memory_mb
        memory = f"{peak:.2f}MB"
        if result.outcome == "timeout":
            error: dict[str, Any] = {
                "errorMessage": f"Function timed out after {record.timeout} seconds "
                f"(maxMemoryUsage: {memory})"
            }
        elif result.outcome == "crash":
            error = {
                "errorMessage": "Process exited unexpectedly before completing request "
                f"(duration: {round(result.duration_ms)}ms, maxMemoryUsage: {memory})"
            }
            if result.memory_exhausted:
                error["errorType"] = "MemoryError"
        else:
            error = dict(result.error or {})
        headers["x-fc-error-type"] = "UnhandledInvocationError"
        return web.Response(
            status=200,
            body=json.dumps(error).encode(),
            content_type="application/json",
            headers=headers,
        )
