"""Emulated Function Compute 3.0 (API version 2023-03-30)."""

from __future__ import annotations

from aliasync.sim.fc._models import FcModel, FunctionRecord
from aliasync.sim.fc._responses import FcService

__all__ = ["FcModel", "FcService", "FunctionRecord"]
