"""Function Compute 3.0: deploy, invoke and remove the relay function, over the official client.

Invocations are retried on transient failures although an invocation may have partly run before
its answer was lost: that is safe only because the relay is idempotent by design (it re-checks
the target object, and a repeated copy writes the same bytes to the same key). Do not use
:meth:`FcApi.invoke` for functions without that property.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from functools import partial
from typing import Any

from alibabacloud_fc20230330 import models as m
from alibabacloud_fc20230330.client import Client
from darabonba.runtime import RuntimeOptions

from aliasync._exceptions import NotFoundError, PermanentCloudError, TransientCloudError
from aliasync.cloud._credentials import CredentialSource, tea_config
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._retry import DEFAULT, RetryPolicy
from aliasync.cloud._transport import boundary, redact

__all__ = ["FcApi", "FunctionFailedError"]

RUNTIME = "python3.10"  # the relay needs context.credentials, which python3.12 dropped
_PROBE = RetryPolicy(attempts=3, timeout=60.0, wait_initial=0.5, wait_max=2.0, wait_jitter=0.5)


class FunctionFailedError(PermanentCloudError):
    """The function ran and raised (FC answered with ``x-fc-error-type``)."""

    def __init__(self, error_type: str, error_message: str, **where: Any) -> None:
        super().__init__(error_type, error_message, **where)
        self.error_type = error_type
        self.error_message = error_message


class FcApi:
    """Function Compute in any region."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: CredentialSource,
        *,
        account_id: str,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._credentials = credentials
        self._account_id = account_id
        self._retry = retry or DEFAULT.scaled(endpoints.time_scale)
        self._clients: dict[str, Client] = {}

    def __repr__(self) -> str:
        return f"FcApi(account_id={self._account_id!r})"

    def _client(self, region: str) -> Client:
        client = self._clients.get(region)
        if client is None:
            host = self._endpoints.region(region, self._account_id).fc
            config = tea_config(self._endpoints, self._credentials, host, region=region)
            client = self._clients[region] = Client(config)
        return client

    async def _call(
        self,
        region: str,
        action: str,
        fn: Callable[[Client], Awaitable[Any]],
        *,
        policy: RetryPolicy | None = None,
    ) -> Any:
        async def once() -> Any:
            client = self._client(region)
            with boundary("fc", action, region):
                return await fn(client)

        return await (policy or self._retry).call_as(f"fc:{action} {region}", once)

    async def create_function(
        self,
        region: str,
        name: str,
        *,
        code_zip: bytes,
        handler: str,
        timeout: int,  # noqa: ASYNC109 - the function's own timeout, not this call's
        memory_mb: int,
        role_arn: str | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Create a python3.10 function; one that already exists counts as created."""
        body = m.CreateFunctionInput(
            function_name=name,
            runtime=RUNTIME,
            handler=handler,
            timeout=timeout,
            memory_size=memory_mb,
            role=role_arn or None,
            environment_variables=dict(env or {}) or None,
            internet_access=True,  # the relay downloads from other regions' public endpoints
            code=m.InputCodeLocation(zip_file=base64.b64encode(code_zip).decode("ascii")),
        )
        request = m.CreateFunctionRequest(body=body)
        try:
            await self._call(region, "CreateFunction", lambda c: c.create_function_async(request))
        except PermanentCloudError as exc:
            # Also what the retry of a create whose answer was lost sees.
            if exc.code != "FunctionAlreadyExists":
                raise

    async def invoke(
        self,
        region: str,
        name: str,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 - bounds the invocation: FC enforces it, we wait it out
    ) -> bytes:
        """Invoke synchronously and return the function's answer.

        ``timeout`` (seconds) bounds one invocation; the HTTP read waits a little longer so the
        function's own timeout is reported by FC rather than cut off by us. Raises
        FunctionFailedError if the function raised.
        """
        runtime = RuntimeOptions(read_timeout=int((timeout + 30.0) * 1000))
        headers = m.InvokeFunctionHeaders(x_fc_invocation_type="Sync", x_fc_log_type="None")

        async def invoke(c: Client) -> bytes:
            request = m.InvokeFunctionRequest(body=payload)
            response = await c.invoke_function_with_options_async(name, request, headers, runtime)
            body = bytes(response.body.read()) if response.body is not None else b""
            raw_headers: Mapping[str, str] = response.headers or {}
            error_type = {k.lower(): v for k, v in raw_headers.items()}.get("x-fc-error-type")
            if not error_type:
                return body
            message = _error_message(body)
            where: dict[str, Any] = {"service": "fc", "action": "InvokeFunction", "region": region}
            if "timeout" in error_type.lower() or message.startswith("Function timed out"):
                # The instance hung or ran out of time: a fresh invocation may well succeed,
                # so this is raised inside the retry loop.
                raise TransientCloudError(error_type, message, **where)
            raise FunctionFailedError(error_type, message, **where)

        # Each attempt may legitimately run for the whole function timeout: fewer attempts, and
        # a total-time cap that leaves room for them.
        policy = replace(
            self._retry,
            attempts=min(self._retry.attempts, 4),
            timeout=self._retry.timeout + 4 * (timeout + 60.0),
        )
        answer: bytes = await self._call(region, "InvokeFunction", invoke, policy=policy)
        return answer

    async def delete_function(self, region: str, name: str) -> None:
        """Delete a function; one that is already gone counts as deleted."""
        with suppress(NotFoundError):
            await self._call(region, "DeleteFunction", lambda c: c.delete_function_async(name))

    async def list_functions(self, region: str, prefix: str) -> list[str]:
        """Names of the region's functions starting with ``prefix`` (all pages)."""
        names: list[str] = []
        token: str | None = None
        while True:
            request = m.ListFunctionsRequest(prefix=prefix or None, limit=100, next_token=token)
            response = await self._call(
                region, "ListFunctions", partial(Client.list_functions_async, request=request)
            )
            body: dict[str, Any] = response.body.to_map() if response.body else {}
            names.extend(
                str(f["functionName"]) for f in body.get("functions") or [] if f.get("functionName")
            )
            token = body.get("nextToken") or None
            if not token:
                return [n for n in names if n.startswith(prefix)]

    async def probe(self, region: str) -> bool:
        """Whether FC answers in ``region``: False if every quick attempt fails transiently."""
        request = m.ListFunctionsRequest(limit=1)
        policy = _PROBE.scaled(self._endpoints.time_scale)
        try:
            await self._call(
                region, "ListFunctions", lambda c: c.list_functions_async(request), policy=policy
            )
        except TransientCloudError:
            return False
        return True


def _error_message(body: bytes) -> str:
    """``errorType: errorMessage`` from a function error body, secrets masked."""
    try:
        doc = json.loads(body)
    except ValueError:
        return redact(body[:500].decode("utf-8", "replace"))
    if not isinstance(doc, dict):
        return redact(str(doc)[:500])
    return redact(str(doc.get("errorMessage") or doc.get("message") or "")[:2000])
