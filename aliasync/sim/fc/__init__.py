"""Emulated Function Compute 3.0 (API version 2023-03-30), running deployed handlers for real.

Routing and wire shapes in ``_responses``, state in ``_models``, the worker processes in
``_runner`` and ``_worker``. May import the emulator's shared modules, never another service.
"""

from __future__ import annotations

from aliasync.sim.fc._models import FcModel, FunctionRecord
from aliasync.sim.fc._responses import FcService

__all__ = ["FcModel", "FcService", "FunctionRecord"]
