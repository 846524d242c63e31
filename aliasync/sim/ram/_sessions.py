"""STS sessions: AssumeRole's checks and the temporary keys it issues. No HTTP here.

A role is assumed by a RAM user or by another role's session, never by the account's root key;
its trust policy must name the caller's account (``acs:ram::<account>:root``) or the caller
itself (``acs:ram::<account>:user/<name>``, ``...:role/<name>``). Trust-policy conditions
(``sts:ExternalId``) and the caller's own permission to call AssumeRole are not enforced.
Cross-account roles do not exist here: a role of another account is not found.
"""

from __future__ import annotations

import json
import re

from aliasync.sim._errors import SimError
from aliasync.sim._keys import KeyRecord
from aliasync.sim.ram._models import RamModel, RoleRecord

__all__ = ["MIN_SESSION_SECONDS", "StsModel"]

_ROLE_ARN = re.compile(r"acs:ram::([0-9]+):role/([A-Za-z0-9.\-]{1,64})", re.IGNORECASE)
_SESSION_NAME = re.compile(r"[A-Za-z0-9.@_\-]{2,64}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/\-]{2,1224}")
MIN_SESSION_SECONDS = 900


class StsModel:
    """Role sessions over the account's RAM roles."""

    def __init__(self, ram: RamModel) -> None:
        self.ram = ram

    def assume_role(
        self,
        caller: KeyRecord,
        role_arn: str,
        session: str,
        duration: int,
        *,
        policy: str | None = None,
        external_id: str | None = None,
    ) -> tuple[RoleRecord, KeyRecord, str]:
        """STS AssumeRole: (the role, its new temporary key, the key's expiry timestamp)."""
        match = _ROLE_ARN.fullmatch(role_arn)
        if match is None:
            raise SimError(
                "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.", 400
            )
        if not _SESSION_NAME.fullmatch(session):
            raise SimError(
                "InvalidParameter.RoleSessionName",
                "The parameter RoleSessionName is wrongly formed.",
                400,
            )
        if policy is not None:
            _check_session_policy(policy)
        if external_id is not None and not _EXTERNAL_ID.fullmatch(external_id):
            raise SimError(
                "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed.", 400
            )
        if caller.principal == "root":
            raise SimError("NoPermission", "Roles may not be assumed by root accounts.", 403)
        account, name = match.groups()
        role = self.ram.role_record(name) if account == self.ram.ctx.account_id else None
        if role is None:
            raise SimError("EntityNotExist.Role", f"The role not exists:{role_arn}", 404)
        if not MIN_SESSION_SECONDS <= duration <= role.max_session_duration:
            raise SimError(
                "InvalidParameter.DurationSeconds",
                f"The Min/Max value of DurationSeconds is 15min/{role.max_session_duration}s.",
                400,
            )
        if not self._trusts(role, caller):
            raise SimError(
                "NoPermission",
                "No permission perform sts:AssumeRole on this Role. Maybe the role has not"
                " been authorized to be assumed by the caller.",
                403,
            )
        expires_at = self.ram.ctx.clock.now() + duration
        key = self.ram.ctx.keys.issue_temporary(f"role/{role.name}/{session}", expires_at)
        return role, key, self.ram.timestamp(expires_at)

    def _trusts(self, role: RoleRecord, caller: KeyRecord) -> bool:
        """Whether the role's trust policy names the caller, or the caller's whole account."""
        account = self.ram.ctx.account_id
        kind, _, rest = caller.principal.partition("/")
        identity = f"acs:ram::{account}:{kind}/{rest.split('/')[0]}".lower()
        trusted = role.trusted_ram_principals()
        return bool({f"acs:ram::{account}:root", account, identity} & trusted)


def _check_session_policy(policy: str) -> None:
    if len(policy) > 2048:
        raise SimError(
            "InvalidParameter.PolicySize", "The size of Policy must be smaller than 2048.", 400
        )
    try:
        doc = json.loads(policy)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list):
        raise SimError(
            "InvalidParameter.PolicyGrammar",
            "The parameter Policy has not passed grammar check.",
            400,
        )
