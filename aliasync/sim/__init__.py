"""A local emulator of the parts of Alibaba Cloud that image publishing touches.

ECS (RPC 2014-05-26), OSS (its S3-compatible and native APIs), Function Compute 3.0, STS and RAM,
faithful on the wire (the official SDKs drive it unmodified), with the cloud's failure modes
and slowness switchable on, and introspection to check what a client left behind.

One package per service (models: pure state; responses: parse, call the model, serialize;
routing), over a shared core. Imports nothing of the importer, which never imports it.
"""

from __future__ import annotations

from aliasync.sim._clock import Clock
from aliasync.sim._core import DEFAULT_TIME_SCALE, Simulator
from aliasync.sim._errors import SimError
from aliasync.sim._faults import PROFILES, FaultProfile, FaultRule, profile
from aliasync.sim._regions import Region, RegionMap
from aliasync.sim._server import CallLog, CallRecord

__all__ = [
    "DEFAULT_TIME_SCALE",
    "PROFILES",
    "CallLog",
    "CallRecord",
    "Clock",
    "FaultProfile",
    "FaultRule",
    "Region",
    "RegionMap",
    "SimError",
    "Simulator",
    "profile",
]
