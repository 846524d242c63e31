"""Access keys the emulator accepts: the account's long-lived key and STS tokens it issued."""

from __future__ import annotations

import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyRecord:
    """One access key pair, possibly temporary (with an STS security token)."""

    access_key_id: str
    secret: str
    security_token: str | None = None
    expires_at: float | None = None  # virtual seconds; None: never
    # "root", "user/<UserName>", or "role/<RoleName>[/<session>]" for temporary keys
    principal: str = "root"


class KeyStore:
    """Looks up access keys by ID; issues RAM users' keys and temporary ones for roles."""

    def __init__(self, access_key_id: str, secret: str) -> None:
        self._keys: dict[str, KeyRecord] = {}
        self.root = KeyRecord(access_key_id, secret)
        self._keys[access_key_id] = self.root

    def lookup(self, access_key_id: str) -> KeyRecord | None:
        return self._keys.get(access_key_id)

    def issue_temporary(self, principal: str, expires_at: float) -> KeyRecord:
        record = KeyRecord(
            access_key_id="STS." + secrets.token_hex(10),
            secret=secrets.token_urlsafe(30),
            security_token="CAIS" + secrets.token_urlsafe(60),
            expires_at=expires_at,
            principal=principal,
        )
        self._keys[record.access_key_id] = record
        return record

    def issue_long_lived(self, principal: str) -> KeyRecord:
        """A RAM user's access key: no token, no expiry."""
        record = KeyRecord(
            access_key_id="LTAI" + secrets.token_hex(10),
            secret=secrets.token_urlsafe(22),
            principal=principal,
        )
        self._keys[record.access_key_id] = record
        return record

    def temporary(self) -> list[KeyRecord]:
        """Every temporary key issued so far (for tests that look for leaked secrets)."""
        return [k for k in self._keys.values() if k.security_token is not None]
