"""STS and RAM emulation, driven by the official sts20150401 and ram20150501 clients."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

from aliasync.sim import Simulator
from aliasync.sim.ram import IMPORT_POLICY, IMPORT_ROLE, trust_policy
from tests.clients import ram_client, sts_client

pytestmark = pytest.mark.anyio


async def fails(call: Any) -> AlibabaCloudException:
    with pytest.raises(AlibabaCloudException) as info:
        await call
    return info.value


@pytest.mark.parametrize("algorithm", [None, "v2"])
async def test_caller_identity_of_root_key(sim: Simulator, algorithm: str | None) -> None:
    """GetCallerIdentity names the account for the root key, with ACS3 and RPC V1 signatures."""
    client = sts_client(sim, signature_algorithm=algorithm)
    body = (await client.get_caller_identity_async()).body
    assert (body.identity_type, body.account_id) == ("Account", sim.account_id)
    assert body.arn == f"acs:ram::{sim.account_id}:root"
    assert body.principal_id == body.user_id == sim.account_id
    assert body.request_id


async def test_caller_identity_of_temporary_key(sim: Simulator) -> None:
    """A temporary (STS) key is an assumed role: role ARN, role ID and session."""
    sim.clock.pause()  # the live key's hour lasts for as long as the test
    ram = ram_client(sim)
    created = await ram.create_role_async(
        ram_models.CreateRoleRequest(
            role_name="Relay", assume_role_policy_document=trust_policy("fc.aliyuncs.com")
        )
    )
    key = sim.ctx.keys.issue_temporary("role/Relay", expires_at=sim.clock.now() + 3600)
    client = sts_client(
        sim,
        access_key_id=key.access_key_id,
        access_key_secret=key.secret,
        security_token=key.security_token,
    )
    body = (await client.get_caller_identity_async()).body
    assert body.identity_type == "AssumedRoleUser"
    assert body.arn.startswith(f"acs:ram::{sim.account_id}:assumed-role/relay/")
    assert body.role_id == created.body.role.role_id
    assert body.principal_id.startswith(f"{body.role_id}:")

    expired = sim.ctx.keys.issue_temporary("role/Relay", expires_at=sim.clock.now() - 1)
    client = sts_client(
        sim,
        access_key_id=expired.access_key_id,
        access_key_secret=expired.secret,
        security_token=expired.security_token,
    )
    error = await fails(client.get_caller_identity_async())
    assert (error.status_code, error.code) == (400, "InvalidSecurityToken.Expired")


async def test_sts_refuses_bad_credentials(sim: Simulator) -> None:
    """A wrong secret and an unknown key ID are refused with RPC error codes and bodies."""
    error = await fails(sts_client(sim, access_key_secret="wrong").get_caller_identity_async())
    assert (error.status_code, error.code) == (400, "SignatureDoesNotMatch")
    assert error.data["HostId"] == "sts.aliyuncs.com" and error.data["Recommend"]
    error = await fails(sts_client(sim, access_key_id="LTAI-nobody").get_caller_identity_async())
    assert (error.status_code, error.code) == (404, "InvalidAccessKeyId.NotFound")


async def test_ram_role_lifecycle(sim: Simulator) -> None:
    """Roles are created and read back; system policies attach and are listed."""
    client = ram_client(sim)
    document = trust_policy("ecs.aliyuncs.com")
    created = await client.create_role_async(
        ram_models.CreateRoleRequest(
            role_name="ImageImporter", assume_role_policy_document=document, description="d"
        )
    )
    role = created.body.role
    assert role.arn == f"acs:ram::{sim.account_id}:role/imageimporter"
    assert (role.role_name, role.description, role.max_session_duration) == (
        "ImageImporter",
        "d",
        3600,
    )
    got = (await client.get_role_async(ram_models.GetRoleRequest(role_name="ImageImporter"))).body
    assert got.role.role_id == role.role_id
    assert json.loads(got.role.assume_role_policy_document) == json.loads(document)

    for policy in ("AliyunOSSReadOnlyAccess", IMPORT_POLICY):
        await client.attach_policy_to_role_async(
            ram_models.AttachPolicyToRoleRequest(
                policy_type="System", policy_name=policy, role_name="ImageImporter"
            )
        )
    listed = await client.list_policies_for_role_async(
        ram_models.ListPoliciesForRoleRequest(role_name="ImageImporter")
    )
    policies = listed.body.policies.policy
    assert [p.policy_name for p in policies] == ["AliyunOSSReadOnlyAccess", IMPORT_POLICY]
    assert all(p.policy_type == "System" and p.attach_date for p in policies)
    model = sim.ctx.models["ram"]
    assert model.role_exists("imageimporter") and model.role_trusts(
        "ImageImporter", "ecs.aliyuncs.com"
    )


async def test_ram_errors(sim: Simulator) -> None:
    """Duplicate roles, unknown roles and policies, double attachment and bad documents fail."""
    client = ram_client(sim)
    request = ram_models.CreateRoleRequest(
        role_name="Dup", assume_role_policy_document=trust_policy("fc.aliyuncs.com")
    )
    await client.create_role_async(request)
    error = await fails(client.create_role_async(request))
    assert (error.status_code, error.code) == (409, "EntityAlreadyExists.Role")
    error = await fails(client.get_role_async(ram_models.GetRoleRequest(role_name="Nobody")))
    assert (error.status_code, error.code) == (404, "EntityNotExist.Role")

    def attach(policy: str, kind: str = "System") -> Any:
        return client.attach_policy_to_role_async(
            ram_models.AttachPolicyToRoleRequest(
                policy_type=kind, policy_name=policy, role_name="Dup"
            )
        )

    error = await fails(attach("AliyunNoSuchPolicy"))
    assert (error.status_code, error.code) == (404, "EntityNotExist.Policy")
    error = await fails(attach("MyPolicy", "Custom"))
    assert (error.status_code, error.code) == (404, "EntityNotExist.Policy")
    await attach("AliyunFCFullAccess")
    error = await fails(attach("AliyunFCFullAccess"))
    assert (error.status_code, error.code) == (409, "EntityAlreadyExists.Role.Policy")
    bad = ram_models.CreateRoleRequest(role_name="Bad", assume_role_policy_document="{not json")
    error = await fails(client.create_role_async(bad))
    assert (error.status_code, error.code) == (400, "MalformedPolicyDocument")
    error = await fails(client.get_role_async(ram_models.GetRoleRequest()))
    assert (error.status_code, error.code) == (400, "MissingParameter")


async def test_import_role_preset(sim: Simulator) -> None:
    """The preset import role trusts ECS and carries AliyunECSImageImportRolePolicy."""
    client = ram_client(sim)
    role = (await client.get_role_async(ram_models.GetRoleRequest(role_name=IMPORT_ROLE))).body
    assert "ecs.aliyuncs.com" in role.role.assume_role_policy_document
    listed = await client.list_policies_for_role_async(
        ram_models.ListPoliciesForRoleRequest(role_name=IMPORT_ROLE)
    )
    assert [p.policy_name for p in listed.body.policies.policy] == [IMPORT_POLICY]
    preset = {r["name"]: r for r in sim.state()["ram"]["roles"]}
    assert preset[IMPORT_ROLE]["trusts"] == ["ecs.aliyuncs.com"]
    assert preset[IMPORT_ROLE]["policies"] == [IMPORT_POLICY]


async def test_no_roles_without_preset() -> None:
    """Without preset roles the account starts with no RAM roles at all."""
    async with Simulator(seed=0, profile="none", preset_roles=False) as sim:
        assert sim.state()["ram"] == {"roles": []}
        assert not sim.ctx.models["ram"].role_exists(IMPORT_ROLE)
