"""Emulated RAM (roles and system policies) and STS (GetCallerIdentity), both RPC style.

May import the emulator's shared modules, never another service.
"""

from __future__ import annotations

from aliasync.sim.ram._models import IMPORT_POLICY, IMPORT_ROLE, RamModel, RoleRecord, trust_policy
from aliasync.sim.ram._responses import RamService, StsService

__all__ = [
    "IMPORT_POLICY",
    "IMPORT_ROLE",
    "RamModel",
    "RamService",
    "RoleRecord",
    "StsService",
    "trust_policy",
]
