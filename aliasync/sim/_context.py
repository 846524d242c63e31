"""What every emulated service shares: clock, regions, keys, faults, and the other services."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aliasync.sim._clock import Clock
from aliasync.sim._faults import FaultEngine
from aliasync.sim._keys import KeyStore
from aliasync.sim._regions import RegionMap


def new_request_id() -> str:
    """A request ID in the cloud's uppercase UUID style."""
    h = secrets.token_hex(16).upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class SimContext:
    """Shared emulator state. Services find each other's models here (``models['oss']``)."""

    clock: Clock
    regions: RegionMap
    keys: KeyStore
    faults: FaultEngine
    account_id: str
    data_dir: str  # where OSS object bytes and FC code live (objects are never held in memory)
    proxy_url: str = ""  # set once the server listens; FC workers reach OSS through it
    # What makes a client trust the emulator's CA (SSL_CERT_FILE, ...): FC workers get it, as
    # a real function trusts the public roots the cloud's certificates chain to.
    trust_env: dict[str, str] = field(default_factory=dict)
    # Whether the account accepted the community-image terms, which publishing needs.
    community_terms: bool = True
    models: dict[str, Any] = field(default_factory=dict)
