"""Account setup: the RAM roles ImportImage and the relay function need, created or repaired.

Idempotent: a role that exists is kept, a missing policy attachment is added, and an
"already exists" answer (a retried call whose first answer was lost) counts as done. A call the
credentials may not make is reported, not raised, so the rest of the setup still happens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aliasync._exceptions import CloudError
from aliasync.cloud._credentials import CredentialSource
from aliasync.cloud._endpoints import Endpoints
from aliasync.cloud._ram import RamApi
from aliasync.cloud._teasession import TeaSession

__all__ = ["ROLES", "RoleSpec", "SetupReport", "SetupStep", "setup_account"]

State = Literal["existed", "created", "would create", "failed"]


@dataclass(frozen=True)
class RoleSpec:
    """A role, the service that assumes it and the system policy it needs."""

    name: str
    service: str
    policy: str
    description: str


ROLES = (
    RoleSpec(
        "AliyunECSImageImportDefaultRole",
        "ecs.aliyuncs.com",
        "AliyunECSImageImportRolePolicy",
        "Lets ECS read disk images from OSS for ImportImage.",
    ),
    RoleSpec(
        "AliasyncRelayRole",
        "fc.aliyuncs.com",
        "AliyunOSSFullAccess",
        "aliasync relay function: writes disk images into OSS buckets.",
    ),
)


@dataclass(frozen=True)
class SetupStep:
    """One role or policy attachment and what setup found or did about it."""

    role: str
    item: str  # "role", "trust <service>" or "policy <name>"
    state: State
    detail: str = ""


@dataclass
class SetupReport:
    steps: list[SetupStep] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(s.state == "failed" for s in self.steps) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "error" if self.exit_code else "success",
            "steps": [asdict(s) for s in self.steps],
        }


def trust_policy(service: str) -> str:
    """A trust policy letting ``service`` assume the role."""
    statement = {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": [service]}}
    return json.dumps({"Statement": [statement], "Version": "1"})


def _trusted(document: str) -> set[str]:
    try:
        doc = json.loads(document)
    except ValueError:
        return set()
    services: set[str] = set()
    for statement in doc.get("Statement") or [] if isinstance(doc, dict) else []:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        named = principal.get("Service") if isinstance(principal, dict) else None
        services.update([named] if isinstance(named, str) else named or [])
    return services


async def setup_account(
    endpoints: Endpoints,
    credentials: CredentialSource | None = None,
    *,
    dry_run: bool = False,
) -> SetupReport:
    """Create or repair every role in :data:`ROLES`; report what existed, was made or failed."""
    ram = RamApi(endpoints, credentials or CredentialSource(endpoints))
    report = SetupReport()
    async with TeaSession():  # setup runs outside any Cloud: its RAM calls share one session too
        for spec in ROLES:
            report.steps.extend(await _ensure(ram, spec, dry_run))
    return report


async def _ensure(ram: RamApi, spec: RoleSpec, dry_run: bool) -> list[SetupStep]:
    steps: list[SetupStep] = []
    created = False
    try:
        role = await ram.get_role(spec.name)
        if role is None:
            if not dry_run:
                await ram.create_role(spec.name, trust_policy(spec.service), spec.description)
            created = True
            steps.append(SetupStep(spec.name, "role", "would create" if dry_run else "created"))
        else:
            steps.append(SetupStep(spec.name, "role", "existed"))
            trusted = _trusted(str(role.get("AssumeRolePolicyDocument") or ""))
            if spec.service not in trusted:
                steps.append(
                    SetupStep(
                        spec.name,
                        f"trust {spec.service}",
                        "failed",
                        f"the role does not trust {spec.service}: fix its trust policy by hand",
                    )
                )
    except CloudError as exc:
        steps.append(SetupStep(spec.name, "role", "failed", f"{exc.code}: {exc.message}"))
        return steps
    item = f"policy {spec.policy}"
    try:
        attached = set() if created else await ram.policies(spec.name)
        if spec.policy in attached:
            steps.append(SetupStep(spec.name, item, "existed"))
        else:
            if not dry_run:
                await ram.attach(spec.name, spec.policy)
            steps.append(SetupStep(spec.name, item, "would create" if dry_run else "created"))
    except CloudError as exc:
        steps.append(SetupStep(spec.name, item, "failed", f"{exc.code}: {exc.message}"))
    return steps
