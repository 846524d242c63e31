"""The credentials chain, each way it finds keys, in a process of its own (the chain reads its
environment once, at import): ``~/.aliyun/config.json`` profiles (AK, StsToken, RamRoleArn),
environment keys with an STS token, and an ECS instance's RAM role from the metadata service.

Every key is made as a user makes it (RAM CreateUser/CreateAccessKey, STS AssumeRole), and the
key the process ends up signing with is identified in the emulator's key store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from aliasync.sim import Simulator
from aliasync.sim.ram import trust_policy
from tests.accounts import (
    Key,
    account_trust_policy,
    assume_role,
    chain_environment,
    create_role,
    create_user_key,
    endpoints_without_keys,
    write_cli_profiles,
)

pytestmark = pytest.mark.anyio

# CredentialSource as the cloud clients use it: plain keys (OSS) and the chain object (tea).
_SCRIPT = """
import json, sys, anyio
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._credentials import CredentialSource
from aliasync._exceptions import AliasyncError
from aliasync.cloud._sts import caller_account_id

async def main():
    endpoints = Endpoints.load(sys.argv[1])
    try:
        source = CredentialSource(endpoints)
        current = await source.current()
        account = await caller_account_id(endpoints, source)
    except AliasyncError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return
    print(json.dumps({"account": account, "key_id": current.access_key_id,
                      "token": current.security_token is not None}))

anyio.run(main)
"""


async def resolve(sim: Simulator, home: Path, **env: str) -> dict[str, Any]:
    """What the chain finds in a process with ``home`` as HOME and ``env`` added."""
    endpoints = endpoints_without_keys(sim, home / "endpoints.json")
    result = await anyio.run_process(
        [sys.executable, "-c", _SCRIPT, str(endpoints)],
        env=chain_environment(sim, home, **env),
        check=True,
    )
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def principal(sim: Simulator, found: dict[str, Any]) -> str:
    """Whose key the process signed with, as the emulator's key store knows it."""
    assert found.get("account") == sim.account_id, found
    record = sim.ctx.keys.lookup(found["key_id"])
    assert record is not None, found
    return record.principal


@pytest.fixture
async def publisher(sim: Simulator) -> tuple[Key, str]:
    """A RAM user's key, and the ARN of a role that trusts the account."""
    user = await create_user_key(sim)
    return user, await create_role(sim, "Publisher", account_trust_policy(sim.account_id))


def ak_profile(name: str, key: Key) -> dict[str, Any]:
    return {
        "name": name,
        "mode": "AK",
        "access_key_id": key.access_key_id,
        "access_key_secret": key.access_key_secret,
        "region_id": "cn-hangzhou",
    }


async def test_an_ak_profile(sim: Simulator, tmp_path: Path, publisher: tuple[Key, str]) -> None:
    """mode AK: the current profile's key pair is used as it is."""
    user, _ = publisher
    write_cli_profiles(tmp_path, "ci", [ak_profile("other", Key("LTAIother", "x" * 30)),
                                         ak_profile("ci", user)])  # fmt: skip
    found = await resolve(sim, tmp_path)
    assert principal(sim, found) == "user/release-bot" and found["token"] is False
    # ALIBABA_CLOUD_PROFILE picks another profile than "current".
    found = await resolve(sim, tmp_path, ALIBABA_CLOUD_PROFILE="other")
    assert found["error"] == "PermanentCloudError", found
    assert "InvalidAccessKeyId" in found["message"] and "x" * 30 not in found["message"]


async def test_an_sts_token_profile(
    sim: Simulator, tmp_path: Path, publisher: tuple[Key, str]
) -> None:
    """mode StsToken: a temporary key with its token, both sent."""
    user, role = publisher
    session = await assume_role(sim, user, role, "ci-token")
    write_cli_profiles(tmp_path, "sts", [{
        "name": "sts", "mode": "StsToken", "access_key_id": session.access_key_id,
        "access_key_secret": session.access_key_secret, "sts_token": session.security_token,
    }])  # fmt: skip
    found = await resolve(sim, tmp_path)
    assert principal(sim, found) == "role/Publisher/ci-token" and found["token"] is True


async def test_a_ram_role_arn_profile(
    sim: Simulator, tmp_path: Path, publisher: tuple[Key, str]
) -> None:
    """mode RamRoleArn: the chain calls STS AssumeRole (over HTTPS) with the user's key."""
    user, role = publisher
    write_cli_profiles(tmp_path, "role", [{
        **ak_profile("role", user), "mode": "RamRoleArn", "ram_role_arn": role,
        "ram_session_name": "aliasync-ci", "expired_seconds": 43200,
    }])  # fmt: skip
    found = await resolve(sim, tmp_path)
    assert principal(sim, found) == "role/Publisher/aliasync-ci" and found["token"] is True
    (call,) = [r for r in sim.calls.records if r.action == "AssumeRole"]
    assert (call.service, call.scheme, call.status) == ("sts", "https", 200)


async def test_a_ram_role_arn_profile_the_role_refuses(
    sim: Simulator, tmp_path: Path, publisher: tuple[Key, str]
) -> None:
    """A role that does not trust the account: a usage error saying so, without the secret."""
    user, _ = publisher
    fc_only = await create_role(sim, "FcOnly", trust_policy("fc.aliyuncs.com"))
    write_cli_profiles(tmp_path, "role", [{
        **ak_profile("role", user), "mode": "RamRoleArn", "ram_role_arn": fc_only,
    }])  # fmt: skip
    found = await resolve(sim, tmp_path)
    assert found["error"] == "ConfigurationError", found
    assert "~/.aliyun/config.json" in found["message"] and "NoPermission" in found["message"]
    assert user.access_key_secret not in json.dumps(found)
    assert [r.error for r in sim.calls.records if r.action == "AssumeRole"] == ["NoPermission"]


async def test_environment_keys_with_an_sts_token(
    sim: Simulator, tmp_path: Path, publisher: tuple[Key, str]
) -> None:
    """ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET/SECURITY_TOKEN come first, before any profile."""
    user, role = publisher
    session = await assume_role(sim, user, role, "ci-env")
    write_cli_profiles(tmp_path, "ci", [ak_profile("ci", user)])
    found = await resolve(
        sim,
        tmp_path,
        ALIBABA_CLOUD_ACCESS_KEY_ID=session.access_key_id,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=session.access_key_secret,
        ALIBABA_CLOUD_SECURITY_TOKEN=str(session.security_token),
    )
    assert principal(sim, found) == "role/Publisher/ci-env" and found["token"] is True


@pytest.mark.parametrize("hardened", [False, True])
async def test_an_ecs_instance_ram_role(sim: Simulator, tmp_path: Path, hardened: bool) -> None:
    """Nothing configured, on an instance with a role: the metadata service's key is used."""
    found = await resolve(sim, tmp_path)
    assert found["error"] == "ConfigurationError"  # not an instance yet: nothing anywhere
    sim.ctx.models["ram"].create_role("ImageBuilder", trust_policy("ecs.aliyuncs.com"))
    sim.attach_instance_role("ImageBuilder", hardened=hardened)
    env = {"ALIBABA_CLOUD_IMDSV1_DISABLED": "true"} if hardened else {}
    found = await resolve(sim, tmp_path, **env)
    assert principal(sim, found) == "role/ImageBuilder" and found["token"] is True
    metadata = {r.action for r in sim.calls.records if r.service == "metadata"}
    assert {"CreateMetadataToken", "GetRoleName", "GetRoleCredentials"} <= metadata
