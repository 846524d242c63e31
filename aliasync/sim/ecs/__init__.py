"""Emulated ECS (RPC 2014-05-26): custom images, their snapshots, import tasks, image copies."""

from __future__ import annotations

from aliasync.sim.ecs._api import EcsService
from aliasync.sim.ecs._models import DiskSpec, EcsModel, ImportSpec

__all__ = ["DiskSpec", "EcsModel", "EcsService", "ImportSpec"]
