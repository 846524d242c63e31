"""ACS3 and RPC V1 verifiers, proven against what the official tea SDKs really send."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_tea_openapi.models import Config as TeaConfig
from darabonba.runtime import RuntimeOptions

from aliasync.sim import _signing as sig
from aliasync.sim._keys import KeyStore
from tests.sim.signing_capture import (
    AKID,
    SECRET,
    CaptureServer,
    ecs_calls,
    ecs_client,
    fails,
    run,
    set_header,
    unknown,
    verify,
    wrong_secret,
)

# --- ACS3-HMAC-SHA256 -----------------------------------------------------------------------


def test_acs3_ecs_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """ECS client V3 requests (query with spaces and '*') verify and return the root key."""
    run(ecs_calls(ecs_client(server)))
    regions, images = server.take()
    assert regions.method == "POST" and regions.path == "/" and regions.body == b""
    # The SDK urlencode()s ('+' for space) and aiohttp's yarl then un-escapes '*' and '/', so
    # the wire form differs from the signed form: the verifier must decode and re-encode.
    assert "ImageName=my+image+*v1/x~y" in images.query_string
    for req in (regions, images):
        assert sig.auth_scheme(req.query_string, req.headers) == "acs3"
        assert verify(req, store.lookup) is store.root


def test_acs3_rejections(server: CaptureServer, store: KeyStore) -> None:
    """Wrong secret, unknown key, tampered query and signed header, skew and no auth all fail."""
    run(ecs_calls(ecs_client(server)))
    _, images = server.take()
    fails(sig.SignatureMismatch, images, wrong_secret(store))
    err = fails(sig.UnknownAccessKey, images, unknown)
    assert AKID in err.reason
    tampered = replace(
        images, query_string=images.query_string.replace("PageSize=50", "PageSize=51")
    )
    fails(sig.SignatureMismatch, tampered, store.lookup)
    fails(sig.SignatureMismatch, set_header(images, "x-acs-action", "DeleteImage"), store.lookup)
    fails(sig.MissingAuth, set_header(images, "x-acs-date", None), store.lookup)
    fails(sig.ExpiredRequest, images, store.lookup, now=time.time() + 3600)
    fails(sig.MalformedAuth, set_header(images, "Authorization", "ACS3-HMAC-SM3 x"), store.lookup)
    bare = set_header(images, "Authorization", None)
    with pytest.raises(sig.MissingAuth):
        sig.verify_acs3("POST", "/", bare.query_string, bare.headers, b"", store.lookup)
    # Headers that are not signed may change freely.
    assert verify(set_header(images, "X-Forwarded-For", "10.0.0.1"), store.lookup) is store.root


def test_acs3_fc_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """FC create (JSON), invoke (raw bytes), list (query) and delete requests all verify."""
    fc = FcClient(
        TeaConfig(
            access_key_id=AKID,
            access_key_secret=SECRET,
            endpoint=f"127.0.0.1:{server.port}",
            protocol="http",
        )
    )
    code = fc_models.InputCodeLocation(zip_file="UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==")
    create = fc_models.CreateFunctionInput(
        function_name="relay-fn",
        runtime="python3.10",
        handler="index.handler",
        code=code,
        memory_size=128,
        environment_variables={"GREETING": "hello world & more"},
    )
    event = bytes(range(256)) + b" raw event"

    async def calls() -> None:
        await fc.create_function_async(fc_models.CreateFunctionRequest(body=create))
        await fc.invoke_function_with_options_async(
            "relay-fn",
            # The async client awaits body.read(), so a BytesIO fails there: pass bytes.
            fc_models.InvokeFunctionRequest(body=event, qualifier="LATEST"),
            fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Sync", x_fc_log_type="Tail"),
            RuntimeOptions(),
        )
        await fc.list_functions_async(
            fc_models.ListFunctionsRequest(prefix="relay fn*", limit=10, next_token="a+b/c=")
        )
        await fc.delete_function_async("relay-fn")

    run(calls())
    created, invoked, listed, deleted = server.take()
    assert created.headers["content-type"].startswith("application/json")
    assert invoked.headers["x-fc-log-type"] == "Tail"
    assert invoked.body == event and invoked.path == "/2023-03-30/functions/relay-fn/invocations"
    assert listed.method == "GET" and "prefix=relay+fn*" in listed.query_string
    assert deleted.method == "DELETE"
    for req in (created, invoked, listed, deleted):
        assert verify(req, store.lookup) is store.root
    # The signature covers x-acs-content-sha256, and the body must match that claim.
    fails(
        sig.SignatureMismatch,
        replace(created, body=created.body.replace(b"128", b"256")),
        store.lookup,
    )
    fails(sig.SignatureMismatch, replace(invoked, body=invoked.body + b"!"), store.lookup)
    fails(sig.SignatureMismatch, set_header(invoked, "x-fc-invocation-type", "Async"), store.lookup)
    fails(
        sig.SignatureMismatch,
        replace(invoked, path="/2023-03-30/functions/other/invocations"),
        store.lookup,
    )


def test_acs3_sts_token_rules(server: CaptureServer, store: KeyStore) -> None:
    """STS keys verify with their token; a missing, wrong or unexpected token is refused."""
    temp = store.issue_temporary("role/AliyunECSImageImportDefaultRole", expires_at=1e12)
    assert temp.security_token is not None
    sts = {"access_key_id": temp.access_key_id, "access_key_secret": temp.secret}
    run(ecs_calls(ecs_client(server, security_token=temp.security_token, **sts)))
    good = server.take()[1]
    assert good.headers["x-acs-security-token"] == temp.security_token
    assert verify(good, store.lookup) is temp
    hide = (temp.secret, temp.security_token)
    fails(
        sig.SignatureMismatch,
        set_header(good, "x-acs-security-token", "CAISforged"),
        store.lookup,
        hidden=hide,
    )
    run(ecs_calls(ecs_client(server, security_token="CAISwrong", **sts)))
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)
    run(ecs_calls(ecs_client(server, **sts)))  # the STS key, signed without its token
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)
    run(ecs_calls(ecs_client(server, security_token=temp.security_token)))  # root + a token
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=hide)


# --- RPC V1 ---------------------------------------------------------------------------------


def test_rpc_v1_ecs_requests_verify(server: CaptureServer, store: KeyStore) -> None:
    """ECS client with signature_algorithm='v2' sends RPC V1 HMAC-SHA1, which verifies."""
    run(ecs_calls(ecs_client(server, signature_algorithm="v2")))
    regions, images = server.take()
    assert "Authorization" not in images.headers
    assert "SignatureMethod=HMAC-SHA1" in images.query_string
    assert "ImageName=my+image+*v1/x~y" in images.query_string
    for req in (regions, images):
        assert sig.auth_scheme(req.query_string, req.headers) == "rpc_v1"
        assert verify(req, store.lookup) is store.root


def test_rpc_v1_rejections(server: CaptureServer, store: KeyStore) -> None:
    """RPC V1: wrong secret, unknown key, tampered value, skew, STS rules and no auth fail."""
    run(ecs_calls(ecs_client(server, signature_algorithm="v2")))
    _, images = server.take()
    fails(sig.SignatureMismatch, images, wrong_secret(store))
    fails(sig.UnknownAccessKey, images, unknown)
    tampered = images.query_string.replace("RegionId=cn-hangzhou", "RegionId=cn-beijing")
    assert tampered != images.query_string
    fails(sig.SignatureMismatch, replace(images, query_string=tampered), store.lookup)
    fails(sig.SignatureMismatch, replace(images, method="GET"), store.lookup)
    fails(sig.ExpiredRequest, images, store.lookup, now=time.time() - 3600)
    with pytest.raises(sig.MissingAuth):
        sig.verify_rpc_v1("POST", "Action=DescribeRegions&Version=2014-05-26", store.lookup)

    temp = store.issue_temporary("role/x", expires_at=1e12)
    sts = {"access_key_id": temp.access_key_id, "access_key_secret": temp.secret}
    run(
        ecs_calls(
            ecs_client(server, signature_algorithm="v2", security_token=temp.security_token, **sts)
        )
    )
    with_token = server.take()[1]
    assert "SecurityToken=" in with_token.query_string
    assert verify(with_token, store.lookup) is temp
    run(ecs_calls(ecs_client(server, signature_algorithm="v2", **sts)))
    assert temp.security_token is not None
    fails(sig.InvalidSecurityToken, server.take()[1], store.lookup, hidden=(temp.security_token,))


def test_no_auth_is_missing_auth_everywhere(store: KeyStore) -> None:
    """A request without any credentials is MissingAuth for every verifier."""
    headers: dict[str, str] = {"Host": "ecs.cn-hangzhou.aliyuncs.com"}
    query = "Action=DescribeRegions&Version=2014-05-26"
    assert sig.auth_scheme(query, headers) == "none"
    with pytest.raises(sig.MissingAuth):
        sig.verify_acs3("POST", "/", query, headers, b"", store.lookup)
    with pytest.raises(sig.MissingAuth):
        sig.verify_rpc_v1("POST", query, store.lookup)
    with pytest.raises(sig.MissingAuth):
        sig.verify_sigv4("GET", "/", "", headers, store.lookup)


def test_failure_reason_is_the_message(store: KeyStore) -> None:
    """AuthFailure subclasses carry a reason equal to str() and share the base class."""
    err = sig.UnknownAccessKey("key x does not exist")
    assert isinstance(err, sig.AuthFailure) and str(err) == err.reason
    assert all(
        issubclass(cls, sig.AuthFailure)
        for cls in (
            sig.MissingAuth,
            sig.MalformedAuth,
            sig.SignatureMismatch,
            sig.ExpiredRequest,
            sig.InvalidSecurityToken,
            sig.ChunkedUploadRefused,
        )
    )
