"""Identities in the emulated account, made as a user makes them: with the RAM and STS clients.

A RAM user with an access key (the root key may not assume roles), a role that trusts the
account, temporary keys from AssumeRole, and the credential files and environments the Alibaba
Cloud credentials chain reads (``~/.aliyun/config.json`` profiles, ``ALIBABA_CLOUD_*``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_sts20150401 import models as sts_models

from aliasync.sim import Simulator
from tests.clients import ram_client, sts_client


@dataclass(frozen=True)
class Key:
    """An access key pair, temporary when it has a token."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def secrets(self) -> list[str]:
        """The parts that must never be written anywhere."""
        return [s for s in (self.access_key_secret, self.security_token) if s]


def account_trust_policy(account_id: str) -> str:
    """A trust policy letting every RAM identity of the account assume the role."""
    statement = {
        "Action": "sts:AssumeRole",
        "Effect": "Allow",
        "Principal": {"RAM": [f"acs:ram::{account_id}:root"]},
    }
    return json.dumps({"Statement": [statement], "Version": "1"})


async def create_user_key(sim: Simulator, name: str = "release-bot") -> Key:
    """A RAM user and its access key, created with the root key through RAM's API."""
    ram = ram_client(sim)
    await ram.create_user_async(ram_models.CreateUserRequest(user_name=name))
    created = await ram.create_access_key_async(ram_models.CreateAccessKeyRequest(user_name=name))
    key = created.body.access_key
    return Key(key.access_key_id, key.access_key_secret)


async def create_role(
    sim: Simulator, name: str, trust_document: str, max_session: int = 43200
) -> str:
    """A role created through RAM's API; its ARN."""
    request = ram_models.CreateRoleRequest(
        role_name=name, assume_role_policy_document=trust_document, max_session_duration=max_session
    )
    created = await ram_client(sim).create_role_async(request)
    return str(created.body.role.arn)


async def assume_role(
    sim: Simulator, caller: Key, role_arn: str, session: str = "ci", duration: int = 43200
) -> Key:
    """Temporary keys of ``role_arn``, from STS AssumeRole called with ``caller``."""
    client = sts_client(
        sim,
        access_key_id=caller.access_key_id,
        access_key_secret=caller.access_key_secret,
        security_token=caller.security_token,
    )
    request = sts_models.AssumeRoleRequest(
        role_arn=role_arn, role_session_name=session, duration_seconds=duration
    )
    credentials = (await client.assume_role_async(request)).body.credentials
    return Key(credentials.access_key_id, credentials.access_key_secret, credentials.security_token)


async def caller_arn(sim: Simulator, key: Key) -> str:
    """The ARN GetCallerIdentity gives for ``key``."""
    client = sts_client(
        sim,
        access_key_id=key.access_key_id,
        access_key_secret=key.access_key_secret,
        security_token=key.security_token,
    )
    return str((await client.get_caller_identity_async()).body.arn)


def write_cli_profiles(home: Path, current: str, profiles: list[dict[str, Any]]) -> Path:
    """``<home>/.aliyun/config.json`` as the Aliyun CLI writes it, ``current`` selected."""
    folder = home / ".aliyun"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps({"current": current, "profiles": profiles}, indent=2))
    path.chmod(0o600)
    return path


def chain_environment(sim: Simulator, home: Path, **extra: str) -> dict[str, str]:
    """An environment for a subprocess whose credentials come from the chain only.

    No ``ALIBABA_CLOUD_*`` or ``OSS_*`` variable of the parent, ``HOME`` at ``home``, and the
    emulator's proxy and CA for what the chain itself fetches (STS AssumeRole over HTTPS, the
    ECS metadata service over HTTP): nothing leaves the machine.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "OSS_", "HOME"))
    }
    for name, value in sim.client_env.items():
        if not name.startswith(("ALIBABA_CLOUD_", "OSS_")):
            env[name] = value
    env["HOME"] = str(home)
    env.update(extra)
    return env


def endpoints_without_keys(sim: Simulator, path: Path, **changes: Any) -> Path:
    """The emulator's endpoints file minus its credentials (and with ``changes``)."""
    doc = dict(sim.endpoints)
    doc.pop("credentials")
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path
