"""RAM users, STS AssumeRole and the ECS metadata service, driven by the official clients."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import pytest
from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider
from alibabacloud_credentials.utils import auth_util
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from aliasync.sim import Simulator
from aliasync.sim.ram import trust_policy
from tests.accounts import (
    Key,
    account_trust_policy,
    assume_role,
    caller_arn,
    create_role,
    create_user_key,
)
from tests.clients import ram_client, sts_client

pytestmark = pytest.mark.anyio


async def fails(call: Any) -> AlibabaCloudException:
    with pytest.raises(AlibabaCloudException) as info:
        await call
    return info.value


async def test_a_ram_user_assumes_a_role_that_trusts_the_account(sim: Simulator) -> None:
    """A user's key is a RAMUser; AssumeRole gives it a session key of the role, for a while."""
    user = await create_user_key(sim, "release-bot")
    assert await caller_arn(sim, user) == f"acs:ram::{sim.account_id}:user/release-bot"
    arn = await create_role(sim, "Publisher", account_trust_policy(sim.account_id), 3600)

    client = sts_client(
        sim, access_key_id=user.access_key_id, access_key_secret=user.access_key_secret
    )
    request = sts_models.AssumeRoleRequest(
        role_arn=arn, role_session_name="ci-42", duration_seconds=900
    )
    body = (await client.assume_role_async(request)).body
    assert body.assumed_role_user.arn == f"{arn}/ci-42"
    assert body.assumed_role_user.assumed_role_id.endswith(":ci-42")
    assert body.credentials.access_key_id.startswith("STS.")
    assert body.credentials.expiration.endswith("Z")
    session = Key(
        body.credentials.access_key_id,
        body.credentials.access_key_secret,
        body.credentials.security_token,
    )
    expected = f"acs:ram::{sim.account_id}:assumed-role/publisher/ci-42"
    assert await caller_arn(sim, session) == expected
    # A session may assume a role in turn (role chaining), when the role trusts the account.
    chained = await assume_role(sim, session, arn, "chained", 900)
    assert await caller_arn(sim, chained) == expected.replace("ci-42", "chained")

    await sim.clock.sleep(901)  # virtual time: the session's 900 seconds are over
    error = await fails(
        sts_client(
            sim,
            access_key_id=session.access_key_id,
            access_key_secret=session.access_key_secret,
            security_token=session.security_token,
        ).get_caller_identity_async()
    )
    assert (error.status_code, error.code) == (400, "InvalidSecurityToken.Expired")


async def test_assume_role_refuses_what_sts_refuses(sim: Simulator) -> None:
    """Root keys, untrusting roles, unknown roles and bad parameters are refused by code."""
    user = await create_user_key(sim)
    arn = await create_role(sim, "Publisher", account_trust_policy(sim.account_id), 7200)
    fc_only = await create_role(sim, "FcOnly", trust_policy("fc.aliyuncs.com"))
    as_user = sts_client(
        sim, access_key_id=user.access_key_id, access_key_secret=user.access_key_secret
    )

    def assume(client: Any = as_user, **fields: Any) -> Any:
        request = {"role_arn": arn, "role_session_name": "ci", **fields}
        return client.assume_role_async(sts_models.AssumeRoleRequest(**request))

    cases = [
        (sts_client(sim), {}, 403, "NoPermission"),  # the account's root key
        (as_user, {"role_arn": fc_only}, 403, "NoPermission"),
        (as_user, {"role_arn": f"acs:ram::{sim.account_id}:role/nobody"}, 404,
         "EntityNotExist.Role"),
        (as_user, {"role_arn": "acs:ram::1:role/publisher"}, 404, "EntityNotExist.Role"),
        (as_user, {"role_arn": "arn:aws:iam::1:role/x"}, 400, "InvalidParameter.RoleArn"),
        (as_user, {"role_session_name": "a"}, 400, "InvalidParameter.RoleSessionName"),
        (as_user, {"role_session_name": "a b"}, 400, "InvalidParameter.RoleSessionName"),
        (as_user, {"duration_seconds": 899}, 400, "InvalidParameter.DurationSeconds"),
        (as_user, {"duration_seconds": 7201}, 400, "InvalidParameter.DurationSeconds"),
        (as_user, {"policy": "{"}, 400, "InvalidParameter.PolicyGrammar"),
        (as_user, {"role_arn": None}, 400, "MissingParameter"),
    ]  # fmt: skip
    for client, fields, status, code in cases:
        error = await fails(assume(client, **fields))
        assert (error.status_code, error.code) == (status, code), fields
    assert (await assume(duration_seconds=7200)).body.credentials.security_token


async def test_ram_users_have_at_most_two_keys(sim: Simulator) -> None:
    """CreateAccessKey makes two keys per user, then LimitExceeded; unknown users are 404."""
    ram = ram_client(sim)
    await ram.create_user_async(ram_models.CreateUserRequest(user_name="ops"))
    error = await fails(ram.create_user_async(ram_models.CreateUserRequest(user_name="OPS")))
    assert (error.status_code, error.code) == (409, "EntityAlreadyExists.User")
    request = ram_models.CreateAccessKeyRequest(user_name="ops")
    first = (await ram.create_access_key_async(request)).body.access_key
    second = (await ram.create_access_key_async(request)).body.access_key
    assert first.access_key_id != second.access_key_id and first.status == "Active"
    error = await fails(ram.create_access_key_async(request))
    assert (error.status_code, error.code) == (409, "LimitExceeded.User.AccessKey")
    nobody = ram_models.CreateAccessKeyRequest(user_name="nobody")
    error = await fails(ram.create_access_key_async(nobody))
    assert (error.status_code, error.code) == (404, "EntityNotExist.User")
    got = await ram.get_user_async(ram_models.GetUserRequest(user_name="ops"))
    assert got.body.user.user_name == "ops"
    assert sim.state()["ram"]["users"] == [{"name": "ops", "id": got.body.user.user_id, "keys": 2}]


async def test_metadata_service_hands_out_the_instance_role(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an instance with a role, the credentials library's ECS provider gets its session."""
    monkeypatch.setenv("HTTP_PROXY", sim.proxy_url)  # what reaches 100.100.100.200 here
    # The suite turns the metadata service off (tests/conftest.py); the library read that at
    # import, so it is turned back on where the library keeps it, with the proxy set above.
    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "false")
    provider = EcsRamRoleCredentialsProvider(async_update_enabled=False)
    with pytest.raises(Exception, match="Server disconnected"):
        await provider.get_credentials_async()  # no instance yet: nobody at the address
    assert sim.unresolved_hosts.get("100.100.100.200")

    with pytest.raises(ValueError, match="NotEcsRole"):
        sim.attach_instance_role("AliasyncRelayRole")  # trusts FC, not ECS
    sim.ctx.models["ram"].create_role("ImageBuilder", trust_policy("ecs.aliyuncs.com"))
    sim.attach_instance_role("ImageBuilder", hardened=True)
    provider = EcsRamRoleCredentialsProvider(async_update_enabled=False, disable_imds_v1=True)
    credentials = await provider.get_credentials_async()
    key = Key(
        credentials.get_access_key_id(),
        credentials.get_access_key_secret(),
        credentials.get_security_token(),
    )
    assert await caller_arn(sim, key) == (
        f"acs:ram::{sim.account_id}:assumed-role/imagebuilder/fc-{key.access_key_id[4:12]}"
    )
    assert {r.action for r in sim.calls.records if r.service == "metadata"} == {
        "CreateMetadataToken",
        "GetRoleName",
        "GetRoleCredentials",
    }


async def test_metadata_service_refuses_what_imds_refuses(sim: Simulator) -> None:
    """Hardened mode wants a token; bad tokens, TTLs and paths are refused as a web server does."""
    sim.ctx.models["ram"].create_role("ImageBuilder", trust_policy("ecs.aliyuncs.com"))
    sim.attach_instance_role("ImageBuilder", hardened=True)
    base = "http://100.100.100.200/latest"
    async with aiohttp.ClientSession() as http:

        async def status(method: str, path: str, **headers: str) -> tuple[int, str]:
            async with http.request(
                method, base + path, headers=headers, proxy=sim.proxy_url
            ) as answer:
                return answer.status, await answer.text()

        ttl = "X-aliyun-ecs-metadata-token-ttl-seconds"
        credentials = "/meta-data/ram/security-credentials/"
        assert (await status("GET", credentials))[0] == 403
        assert (await status("PUT", "/api/token", **{ttl: "21601"}))[0] == 400
        assert (await status("PUT", "/api/token"))[0] == 400
        code, token = await status("PUT", "/api/token", **{ttl: "60"})
        assert code == 200
        auth = {"X-aliyun-ecs-metadata-token": token}
        assert await status("GET", credentials, **auth) == (200, "ImageBuilder")
        assert (await status("GET", credentials + "Other", **auth))[0] == 404
        assert (await status("GET", credentials + "ImageBuilder", **auth))[0] == 200
        assert (await status("GET", credentials, **{"X-aliyun-ecs-metadata-token": "x"}))[0] == 401
        await sim.clock.sleep(61)  # virtual time: the token's minute is over
        assert (await status("GET", credentials, **auth))[0] == 401
    assert os.environ.get("HTTP_PROXY") != sim.proxy_url
