"""The one boundary where foreign exceptions become aliasync's.

Every call into an SDK (tea/darabonba for ECS, FC and STS; aiobotocore for OSS's S3 API and
alibabacloud-oss-v2 for its native one; aiohttp under all of them; the credentials chain) runs
inside :func:`boundary`, which maps whatever escapes to the
tree in :mod:`aliasync._exceptions` with ``raise ... from``:

* throttling (``Throttling*``, ``SlowDown``, ``ResourceThrottled``, ``ResourceExhausted``, 429)
  -> :class:`ThrottledError`, with the server's retry hint when it gave one;
* 5xx, ``InternalError``, ``ServiceUnavailable``, dropped connections, timeouts
  -> :class:`TransientCloudError`;
* a host that cannot be reached at all (a name that does not resolve, a refused connection, a
  proxy that cannot reach it) -> :class:`UnreachableError`, naming the host, and saying whether
  a retry can help (not for a name that does not exist);
* ``*NotFound``, ``NoSuch*`` -> :class:`NotFoundError`;
* anything else the cloud said -> :class:`PermanentCloudError`;
* a credentials chain that found nothing -> :class:`ConfigurationError`.

Secrets: SDK exceptions can carry the signed request (the tea SDK keeps it, with the STS token
header), error bodies that echo a string-to-sign, or URLs with a presigned signature. Messages
are rebuilt from the error code, message and request ID only, passed through :func:`redact`,
and the chained foreign exceptions are scrubbed in place before they are attached as
``__cause__`` (a logged traceback prints them too).
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import aiohttp
import alibabacloud_oss_v2.exceptions as oss_exc
import botocore.exceptions as boto_exc
from alibabacloud_credentials.exceptions import CredentialException
from darabonba.exceptions import RetryError as DaraRetryError
from Tea.exceptions import RetryError as TeaRetryError
from Tea.exceptions import TeaException, UnretryableException

from aliasync._exceptions import (
    AliasyncError,
    CloudError,
    ConfigurationError,
    NotFoundError,
    PermanentCloudError,
    ThrottledError,
    TransientCloudError,
    UnreachableError,
)

__all__ = ["boundary", "classify", "redact", "register_secret", "translate"]

log = logging.getLogger("aliasync.credentials")

_MASK = "***"
_known_secrets: set[str] = set()

# name=value / name: value pairs whose value is a credential, in URLs, headers, JSON and XML.
_SECRET_PAIR = re.compile(
    r"(?i)((?:x-amz-signature|x-amz-security-token|x-amz-credential|x-acs-security-token"
    r"|x-oss-signature|x-oss-security-token|signature|securitytoken|security_token"
    r"|accesskeysecret|access_key_secret|aws_secret_access_key)"
    r"[\"']?\s*(?:=|:|>)\s*[\"']?)[^&\s\"',;<}]+"
)
_AUTHORIZATION = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\n}]+")
_THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "ResourceThrottled",
        "ResourceExhausted",
        "TooManyRequests",
        "RequestLimitExceeded",
    }
)
# Codes whose HTTP status (often 4xx) understates that a retry can cure them.
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceBusy",
        "RequestTimeout",
        "LastTokenProcessing",
        "OperationConflict",
        "ConcurrentUpdateError",
    }
)
# "*NotFound" codes that mean bad credentials or a bad region, not a missing resource: an
# idempotent delete must never read them as "already gone".
_NOT_RESOURCES = ("InvalidAccessKeyId", "InvalidRegionId", "InvalidSecurityToken")


def register_secret(value: str | None) -> None:
    """Remember a secret (access key secret, STS token) so :func:`redact` removes it anywhere."""
    # Very short strings would mask innocent text; real secrets are far longer.
    if value and len(value) >= 8:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """``text`` without credentials: known secrets, signatures, tokens, Authorization values."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + _MASK, text)
    return _AUTHORIZATION.sub(lambda m: m.group(1) + _MASK, text)


def classify(
    code: str,
    message: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    **where: Any,
) -> CloudError:
    """The aliasync error for a cloud error ``code`` (and HTTP ``status``)."""
    message = redact(message)
    if code.startswith("Throttling") or code in _THROTTLING_CODES or status == 429:
        return ThrottledError(code, message, retry_after=retry_after, status=status, **where)
    if code in _TRANSIENT_CODES or (status is not None and status >= 500):
        return TransientCloudError(code, message, status=status, **where)
    resource = not code.startswith(_NOT_RESOURCES)
    if resource and (code.endswith("NotFound") or code.startswith("NoSuch")):
        return NotFoundError(code, message, status=status, **where)
    return PermanentCloudError(code, message, status=status, **where)


@contextmanager
def boundary(service: str, action: str, region: str | None = None) -> Iterator[None]:
    """Map every foreign exception raised inside the block; let aliasync's own pass."""
    try:
        yield
    except AliasyncError:
        raise
    except Exception as exc:
        mapped = translate(exc, service=service, action=action, region=region)
        if mapped is None:
            raise  # not a cloud failure: a bug, which must surface as itself
        _scrub(exc)
        raise mapped from exc


def translate(
    exc: BaseException, *, service: str, action: str, region: str | None
) -> AliasyncError | None:
    """The aliasync error for a foreign exception, or None if it is not a cloud failure."""
    where: dict[str, Any] = {"service": service, "action": action, "region": region}
    if isinstance(exc, CredentialException):
        # Why each source of the chain had nothing: for -vv, not for the one-line error.
        text = redact(str(exc))
        log.debug("credential chain: %s", text)
        profile = _profile_failure(text)
        if profile:
            return ConfigurationError(
                f"the profile in ~/.aliyun/config.json gives no usable credentials: {profile}"
            )
        return ConfigurationError(
            "no usable Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and"
            " ALIBABA_CLOUD_ACCESS_KEY_SECRET, configure a profile in ~/.aliyun/config.json,"
            " run on ECS with a RAM role, or put credentials in the endpoints file"
        )
    if isinstance(exc, UnretryableException):
        # The tea SDK wraps whatever ended its (disabled) retry loop; the cause is inside.
        inner = getattr(exc, "inner_exception", None)
        if isinstance(inner, BaseException) and inner is not exc:
            return translate(inner, service=service, action=action, region=region)
        return TransientCloudError("ConnectionError", "request failed", **where)
    if isinstance(exc, DaraRetryError | TeaRetryError):
        # darabonba raises RetryError for any IOError of aiohttp: refused, reset, timed out,
        # a name that does not resolve. Its text is the IOError's (with an SSLContext's repr
        # in it); the IOError itself is the context it was raised in.
        original = exc.__context__
        if isinstance(original, aiohttp.ClientError | OSError):
            return translate(original, service=service, action=action, region=region)
        text = redact(str(getattr(exc, "message", "") or "connection failed"))
        return TransientCloudError("ConnectionError", text, **where)
    if isinstance(exc, TeaException):
        return _from_tea(exc, where)
    if isinstance(exc, boto_exc.ClientError):
        return _from_botocore(exc, where)
    if isinstance(exc, oss_exc.BaseError):
        return _from_oss_v2(exc, service=service, action=action, region=region)
    if isinstance(exc, boto_exc.NoCredentialsError | boto_exc.PartialCredentialsError):
        return ConfigurationError("OSS client has no usable credentials")
    unreachable = _unreachable(exc, where)
    if unreachable is not None:
        return unreachable
    if isinstance(exc, boto_exc.HTTPClientError | boto_exc.ConnectionError):
        # Refused, reset, closed mid-response, read/connect timeouts, proxy failures.
        return TransientCloudError("ConnectionError", type(exc).__name__, **where)
    if isinstance(exc, boto_exc.IncompleteReadError | boto_exc.ChecksumError):
        return TransientCloudError("IncompleteResponse", type(exc).__name__, **where)
    if isinstance(exc, boto_exc.BotoCoreError):
        return PermanentCloudError("ClientError", redact(str(exc)), **where)
    if isinstance(exc, aiohttp.ClientResponseError):
        return classify(f"HTTP{exc.status}", "unexpected HTTP status", status=exc.status, **where)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
        return TransientCloudError("ConnectionError", type(exc).__name__, **where)
    if isinstance(exc, json.JSONDecodeError):
        # A body cut short or garbled on the way: the tea SDK parses every answer as JSON.
        return TransientCloudError("MalformedResponse", "response is not valid JSON", **where)
    return None


# The default chain's message lists "<Provider>: <reason>" per source; a profile that exists
# but fails (a RamRoleArn profile whose AssumeRole is refused) is worth saying instead of the
# generic advice. Its reason may quote the STS error body.
_PROFILE_REASON = re.compile(r"CLIProfileCredentialsProvider: (.*?)(?:', '|', \"|'\]|$)")
_PROFILE_ABSENT = ("unable to open credentials file", "cli credentials file is disabled")
_QUOTED_ERROR = re.compile(r'"Code": ?"([^"]+)", ?"Message": ?"([^"]*)"')


def _profile_failure(chain_message: str) -> str | None:
    """Why the Aliyun CLI profile failed, if there is a profile; None otherwise."""
    match = _PROFILE_REASON.search(chain_message)
    if match is None or match.group(1).startswith(_PROFILE_ABSENT):
        return None
    reason = match.group(1)
    quoted = _QUOTED_ERROR.search(reason)
    if quoted:
        return f"{quoted.group(1)}: {quoted.group(2)}"
    return reason if len(reason) <= 200 else reason[:200] + "…"


# getaddrinfo's answers for a name that does not exist (as opposed to EAI_AGAIN: no answer now).
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)


def _unreachable(exc: BaseException, where: dict[str, Any]) -> UnreachableError | None:
    """An UnreachableError if ``exc`` says that no connection to the host could be made."""
    if isinstance(exc, boto_exc.ProxyConnectionError | boto_exc.EndpointConnectionError):
        # aiobotocore wraps aiohttp's error as ``error``; only the host of the URL is named.
        inner = getattr(exc, "kwargs", {}).get("error")
        return _unreachable(inner, where) if isinstance(inner, BaseException) else None
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy answered the CONNECT itself: it cannot reach (or resolve) the host.
        host = exc.request_info.url.host or "the host"
        reason = f"the proxy answered {exc.status} {exc.message}".rstrip()
        return UnreachableError(host, reason, status=exc.status, **where)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return UnreachableError(
            f"the proxy {exc.host}:{exc.port}", _os_reason(exc.os_error), **where
        )
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError
    ):
        error = exc.os_error
        if isinstance(error, socket.gaierror):
            if error.errno in _NO_SUCH_NAME:
                return UnreachableError(
                    exc.host, "the name does not resolve", can_recover=False, **where
                )
            return UnreachableError(exc.host, "the name cannot be resolved now", **where)
        return UnreachableError(exc.host, _os_reason(error), **where)
    return None


def _os_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return (error.strerror or type(error).__name__).lower()


def _from_tea(exc: TeaException, where: dict[str, Any]) -> CloudError:
    data = exc.data if isinstance(exc.data, Mapping) else {}
    code = str(exc.code) if exc.code not in (None, "None", "") else ""
    code = code or str(data.get("Code") or data.get("code") or "Unknown")
    # The SDK's own message is "code: 400, <Message> request id: <id>"; rebuild it from the
    # body instead, which is what the server said and nothing else.
    message = data.get("Message") or data.get("message") or data.get("errorMessage")
    if not isinstance(message, str):
        message = str(exc.message or "")
    status = getattr(exc, "status_code", None) or data.get("statusCode")
    request_id = getattr(exc, "request_id", None) or data.get("RequestId")
    retry_after_ms = getattr(exc, "retry_after", None)
    retry_after = None
    if isinstance(retry_after_ms, int | float) and retry_after_ms > 0:
        # x-acs-retry-after is in milliseconds (darabonba sleeps that many ms).
        retry_after = retry_after_ms / 1000.0
        if not code.startswith("Throttling"):
            code = code if code != "Unknown" else "Throttling"
        return ThrottledError(
            code,
            redact(message),
            retry_after=retry_after,
            status=_int(status),
            request_id=_str(request_id),
            **where,
        )
    return classify(code, message, status=_int(status), request_id=_str(request_id), **where)


def _from_botocore(exc: boto_exc.ClientError, where: dict[str, Any]) -> CloudError:
    response: Mapping[str, Any] = exc.response if isinstance(exc.response, Mapping) else {}
    error: Mapping[str, Any] = response.get("Error") or {}
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    headers: Mapping[str, Any] = meta.get("HTTPHeaders") or {}
    status = _int(meta.get("HTTPStatusCode"))
    code = str(error.get("Code") or (f"HTTP{status}" if status else "Unknown"))
    message = str(error.get("Message") or "")
    request_id = _str(meta.get("RequestId") or headers.get("x-oss-request-id"))
    retry_after = _float(headers.get("retry-after"))
    return classify(
        code, message, status=status, retry_after=retry_after, request_id=request_id, **where
    )


def _from_oss_v2(
    exc: oss_exc.BaseError, *, service: str, action: str, region: str | None
) -> AliasyncError | None:
    """alibabacloud-oss-v2: OperationError wraps what went wrong (``unwrap()``)."""
    where: dict[str, Any] = {"service": service, "action": action, "region": region}
    inner = exc.unwrap() if isinstance(exc, oss_exc.OperationError) else exc
    if isinstance(inner, oss_exc.ServiceError):
        code = str(inner.code or f"HTTP{inner.status_code}")
        status = _int(inner.status_code)
        message = str(inner.message or "")
        return classify(code, message, status=status, request_id=_str(inner.request_id), **where)
    if isinstance(inner, oss_exc.CredentialsBaseError):
        return ConfigurationError("OSS client has no usable credentials")
    if isinstance(inner, oss_exc.RequestError):
        detail = inner.unwrap()
        unreachable = _unreachable(detail, where) if isinstance(detail, BaseException) else None
        if unreachable is not None:
            return unreachable
    if isinstance(inner, oss_exc.RequestError | oss_exc.ResponseError):
        # Refused, reset, timed out, or an answer cut short on the way.
        return TransientCloudError("ConnectionError", type(inner).__name__, **where)
    if isinstance(inner, oss_exc.DeserializationError | oss_exc.InconsistentError):
        return TransientCloudError("MalformedResponse", type(inner).__name__, **where)
    if isinstance(inner, BaseException) and inner is not exc:
        return translate(inner, service=service, action=action, region=region)
    return None  # a parameter the SDK refused: a bug here, which must surface as itself


# -- scrubbing foreign exceptions before they are chained --------------------------------------

# ``snapshot``: alibabacloud-oss-v2 keeps the raw error body, which may echo a string-to-sign.
_DROP_ATTRS = ("last_request", "http_request", "http_response", "_context", "snapshot")
_TEXT_ATTRS = ("message", "msg", "detail", "description", "fmt")
_DATA_ATTRS = ("data", "response", "kwargs", "accessDeniedDetail", "access_denied_detail")


def _scrub(exc: BaseException, depth: int = 0) -> None:
    """Remove credentials from ``exc`` and everything chained to it, in place."""
    if depth > 8:
        return
    with suppress(AttributeError, TypeError):
        exc.args = tuple(_redact_value(a) for a in exc.args)
    for name in _DROP_ATTRS:
        if getattr(exc, name, None) is not None:
            _set(exc, name, None)
    for name in _TEXT_ATTRS:
        value = getattr(exc, name, None)
        if isinstance(value, str):
            _set(exc, name, redact(value))
    for name in _DATA_ATTRS:
        value = getattr(exc, name, None)
        if isinstance(value, Mapping):
            _set(exc, name, _redact_value(value))
    if isinstance(exc, aiohttp.ClientResponseError):
        # request_info holds the request headers: Authorization, x-*-security-token.
        info = exc.request_info
        url = info.real_url.with_query(None)
        _set(exc, "request_info", aiohttp.RequestInfo(url, info.method, {}, url))  # type: ignore[arg-type]
    nested = (getattr(exc, "inner_exception", None), getattr(exc, "_error", None))
    for chained in (*nested, exc.__cause__, exc.__context__):
        if isinstance(chained, BaseException) and chained is not exc:
            _scrub(chained, depth + 1)


def _set(obj: object, name: str, value: object) -> None:
    with suppress(AttributeError, TypeError):
        setattr(obj, name, value)


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(repr(value))


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if result >= 0 else None


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "", "None") else None
