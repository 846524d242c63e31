"""RAM state: roles, their trust policies and attached policies; users. No HTTP here.

Roles are unique by name, case-insensitively; an ARN names the role in lower case, as RAM
prints it. Only system policies exist (there is no CreatePolicy), from :data:`SYSTEM_POLICIES`.
Users are unique by name too (case-insensitively: a guess) and hold up to two access keys, kept
in the emulator's key store with the principal ``user/<name>``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aliasync.sim._context import SimContext
from aliasync.sim._errors import SimError

IMPORT_ROLE = "AliyunECSImageImportDefaultRole"
IMPORT_POLICY = "AliyunECSImageImportRolePolicy"

SYSTEM_POLICIES: dict[str, str] = {
    "AdministratorAccess": "Provides full access to Alibaba Cloud services and resources.",
    "AliyunECSFullAccess": "Provides full access to Elastic Compute Service(ECS).",
    "AliyunECSReadOnlyAccess": "Provides read-only access to Elastic Compute Service(ECS).",
    "AliyunECSImageImportRolePolicy": "Default policy for the ECS image import role.",
    "AliyunECSImageExportRolePolicy": "Default policy for the ECS image export role.",
    "AliyunOSSFullAccess": "Provides full access to Object Storage Service(OSS).",
    "AliyunOSSReadOnlyAccess": "Provides read-only access to Object Storage Service(OSS).",
    "AliyunFCFullAccess": "Provides full access to Function Compute(FC).",
    "AliyunFCReadOnlyAccess": "Provides read-only access to Function Compute(FC).",
    "AliyunFCInvocationAccess": "Provides permission to invoke Function Compute(FC) functions.",
    "AliyunFCDefaultRolePolicy": "Default policy for the Function Compute role.",
    "AliyunLogFullAccess": "Provides full access to Log Service(Log).",
    "AliyunRAMFullAccess": "Provides full access to Resource Access Management(RAM).",
    "AliyunRAMReadOnlyAccess": "Provides read-only access to Resource Access Management(RAM).",
    "AliyunSTSAssumeRoleAccess": "Provides permission to call AssumeRole of STS.",
}

_ROLE_NAME = re.compile(r"[A-Za-z0-9.\-]{1,64}")
_USER_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
MAX_USER_KEYS = 2  # "A RAM user can have up to two AccessKey pairs" (RAM limits)
_POLICY_TYPES = ("System", "Custom")


def trust_policy(*services: str) -> str:
    """A trust policy document letting the given cloud services assume a role."""
    statement = {
        "Action": "sts:AssumeRole",
        "Effect": "Allow",
        "Principal": {"Service": list(services)},
    }
    return json.dumps({"Statement": [statement], "Version": "1"})


@dataclass
class RoleRecord:
    """One RAM role."""

    name: str
    role_id: str
    arn: str
    description: str
    trust_document: str
    max_session_duration: int
    create_date: str
    policies: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (type, date)

    def to_json(self) -> dict[str, Any]:
        return {
            "RoleId": self.role_id,
            "RoleName": self.name,
            "Arn": self.arn,
            "Description": self.description,
            "AssumeRolePolicyDocument": self.trust_document,
            "CreateDate": self.create_date,
            "UpdateDate": self.create_date,
            "MaxSessionDuration": self.max_session_duration,
            "IsServiceLinkedRole": False,
            "RolePrincipalName": f"{self.name}@role.{_account_domain(self.arn)}",
        }

    def trusted_services(self) -> set[str]:
        """The ``Principal.Service`` entries of every Allow statement of the trust policy."""
        try:
            doc = json.loads(self.trust_document)
        except ValueError:
            return set()
        services: set[str] = set()
        statements = doc.get("Statement", []) if isinstance(doc, dict) else []
        for statement in statements if isinstance(statements, list) else []:
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal")
            value = principal.get("Service", []) if isinstance(principal, dict) else []
            values = [value] if isinstance(value, str) else value
            if isinstance(values, list):  # anything else is not a service list: trusts none
                services.update(v for v in values if isinstance(v, str))
        return services

    def trusted_ram_principals(self) -> set[str]:
        """The ``Principal.RAM`` entries (account or identity ARNs) of every Allow statement."""
        try:
            doc = json.loads(self.trust_document)
        except ValueError:
            return set()
        principals: set[str] = set()
        statements = doc.get("Statement", []) if isinstance(doc, dict) else []
        for statement in statements if isinstance(statements, list) else []:
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal")
            value = principal.get("RAM", []) if isinstance(principal, dict) else []
            values = [value] if isinstance(value, str) else value
            if isinstance(values, list):
                principals.update(v.lower() for v in values if isinstance(v, str))
        return principals


@dataclass
class UserRecord:
    """One RAM user."""

    name: str
    user_id: str
    display_name: str
    create_date: str
    access_keys: list[str] = field(default_factory=list)  # key IDs, in the key store

    def to_json(self) -> dict[str, Any]:
        return {
            "UserId": self.user_id,
            "UserName": self.name,
            "DisplayName": self.display_name,
            "CreateDate": self.create_date,
        }


def _account_domain(arn: str) -> str:
    account = arn.split(":")[3] if arn.count(":") >= 4 else ""
    return f"{account}.onaliyunservice.com"


class RamModel:
    """The account's RAM roles."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._roles: dict[str, RoleRecord] = {}  # keyed by lower-case name
        self._users: dict[str, UserRecord] = {}  # keyed by lower-case name
        self._epoch = time.time() - ctx.clock.now()

    def timestamp(self, virtual: float | None = None) -> str:
        """The cloud's UTC time now (or at the virtual second ``virtual``)."""
        at = self.ctx.clock.now() if virtual is None else virtual
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._epoch + at))

    # --- API ------------------------------------------------------------------------------

    def create_role(
        self,
        name: str,
        trust_document: str,
        description: str = "",
        max_session_duration: int = 3600,
    ) -> RoleRecord:
        if not _ROLE_NAME.fullmatch(name):
            raise SimError(
                "InvalidParameter.RoleName.InvalidChars",
                "RoleName must be 1-64 letters, digits, '.' or '-'.",
                400,
            )
        try:
            doc = json.loads(trust_document)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list):
            raise SimError(
                "MalformedPolicyDocument", "The policy document is not valid JSON policy.", 400
            )
        if len(description) > 1024:
            raise SimError("InvalidParameter.Description.Length", "Description is too long.", 400)
        if not 3600 <= max_session_duration <= 43200:
            raise SimError(
                "InvalidParameter.MaxSessionDuration",
                "MaxSessionDuration must be between 3600 and 43200.",
                400,
            )
        if name.lower() in self._roles:
            raise SimError("EntityAlreadyExists.Role", f"The role already exists:{name}", 409)
        digest = hashlib.sha256(f"{self.ctx.account_id}/{name.lower()}".encode()).digest()
        role = RoleRecord(
            name=name,
            role_id=f"3{int.from_bytes(digest[:8], 'big') % 10**18:018d}",
            arn=f"acs:ram::{self.ctx.account_id}:role/{name.lower()}",
            description=description,
            trust_document=trust_document,
            max_session_duration=max_session_duration,
            create_date=self.timestamp(),
        )
        self._roles[name.lower()] = role
        return role

    def get_role(self, name: str) -> RoleRecord:
        role = self._roles.get(name.lower())
        if role is None:
            raise SimError("EntityNotExist.Role", f"The role not exists:{name}", 404)
        return role

    def attach_policy(self, role_name: str, policy_type: str, policy_name: str) -> None:
        if policy_type not in _POLICY_TYPES:
            raise SimError(
                "InvalidParameter.PolicyType", "PolicyType must be System or Custom.", 400
            )
        role = self.get_role(role_name)
        if policy_type != "System" or policy_name not in SYSTEM_POLICIES:
            raise SimError("EntityNotExist.Policy", f"The policy not exists:{policy_name}", 404)
        if policy_name in role.policies:
            raise SimError(
                "EntityAlreadyExists.Role.Policy",
                f"The policy already attached to the role:{policy_name}",
                409,
            )
        role.policies[policy_name] = (policy_type, self.timestamp())

    def policies_for_role(self, role_name: str) -> list[dict[str, Any]]:
        role = self.get_role(role_name)
        return [
            {
                "PolicyName": name,
                "PolicyType": kind,
                "Description": SYSTEM_POLICIES.get(name, ""),
                "DefaultVersion": "v1",
                "AttachDate": date,
            }
            for name, (kind, date) in role.policies.items()
        ]

    def create_user(self, name: str, display_name: str = "") -> UserRecord:
        if not _USER_NAME.fullmatch(name):
            raise SimError(
                "InvalidParameter.UserName.InvalidChars",
                "UserName must be 1-64 letters, digits, '.', '_' or '-'.",
                400,
            )
        if len(display_name) > 128:
            raise SimError("InvalidParameter.DisplayName.Length", "DisplayName is too long.", 400)
        if name.lower() in self._users:
            raise SimError("EntityAlreadyExists.User", f"The user already exists:{name}", 409)
        digest = hashlib.sha256(f"{self.ctx.account_id}/user/{name.lower()}".encode()).digest()
        user = UserRecord(
            name=name,
            user_id=f"2{int.from_bytes(digest[:8], 'big') % 10**15:015d}",
            display_name=display_name or name,
            create_date=self.timestamp(),
        )
        self._users[name.lower()] = user
        return user

    def get_user(self, name: str) -> UserRecord:
        user = self._users.get(name.lower())
        if user is None:
            raise SimError("EntityNotExist.User", f"The user not exists:{name}", 404)
        return user

    def create_access_key(self, user_name: str) -> tuple[UserRecord, str, str, str]:
        """A new active key of the user: (user, key ID, secret, creation date)."""
        user = self.get_user(user_name)
        if len(user.access_keys) >= MAX_USER_KEYS:
            raise SimError(
                "LimitExceeded.User.AccessKey",
                f"The count of access keys of the user exceeds the limit: {MAX_USER_KEYS}.",
                409,
            )
        record = self.ctx.keys.issue_long_lived(f"user/{user.name}")
        user.access_keys.append(record.access_key_id)
        return user, record.access_key_id, record.secret, self.timestamp()

    # --- for the other services -----------------------------------------------------------

    def ensure_role(
        self, name: str, services: tuple[str, ...], policies: tuple[str, ...], description: str = ""
    ) -> RoleRecord:
        """Create ``name`` trusting ``services`` if absent, and attach the system ``policies``."""
        role = self._roles.get(name.lower())
        if role is None:
            role = self.create_role(name, trust_policy(*services), description)
        for policy in policies:
            if policy not in role.policies:
                self.attach_policy(name, "System", policy)
        return role

    def ensure_import_role(self) -> RoleRecord:
        """The role ECS ImportImage needs, trusting ecs.aliyuncs.com, with its policy."""
        return self.ensure_role(
            IMPORT_ROLE,
            ("ecs.aliyuncs.com",),
            (IMPORT_POLICY,),
            "Default role for ECS image import.",
        )

    def role_exists(self, name: str) -> bool:
        return name.lower() in self._roles

    def role(self, name: str) -> dict[str, Any] | None:
        """A role's description with its attached policy names, or None."""
        role = self._roles.get(name.lower())
        if role is None:
            return None
        return {**role.to_json(), "Policies": sorted(role.policies)}

    def role_trusts(self, name: str, service: str) -> bool:
        """True if the role exists and its trust policy lets ``service`` assume it."""
        role = self._roles.get(name.lower())
        return role is not None and service in role.trusted_services()

    def role_record(self, name: str) -> RoleRecord | None:
        return self._roles.get(name.lower())

    def user(self, name: str) -> UserRecord | None:
        return self._users.get(name.lower())

    def role_has_policy(self, name: str, policy: str) -> bool:
        role = self._roles.get(name.lower())
        return role is not None and policy in role.policies

    def snapshot(self) -> dict[str, Any]:
        """Roles, and users when there are any."""
        out: dict[str, Any] = {
            "roles": [
                {
                    "name": r.name,
                    "arn": r.arn,
                    "trusts": sorted(r.trusted_services()),
                    "policies": sorted(r.policies),
                    "created": r.create_date,
                }
                for r in sorted(self._roles.values(), key=lambda r: r.name.lower())
            ]
        }
        if self._users:
            out["users"] = [
                {"name": u.name, "id": u.user_id, "keys": len(u.access_keys)}
                for u in sorted(self._users.values(), key=lambda u: u.name.lower())
            ]
        return out
