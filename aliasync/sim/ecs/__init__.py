"""Emulated ECS (RPC 2014-05-26): custom images, their snapshots, import tasks, image copies;
and the instance metadata service's RAM role credentials (``_metadata``).

Routing in ``_api``, wire shapes in ``_responses`` and ``_views``, pure state in ``_models``.
May import the emulator's shared modules (``aliasync.sim._*``), never another service.
"""

from __future__ import annotations

from aliasync.sim.ecs._api import EcsService
from aliasync.sim.ecs._metadata import METADATA_HOST, MetadataModel, MetadataService
from aliasync.sim.ecs._models import DiskSpec, EcsModel, ImportSpec

__all__ = [
    "METADATA_HOST",
    "DiskSpec",
    "EcsModel",
    "EcsService",
    "ImportSpec",
    "MetadataModel",
    "MetadataService",
]
