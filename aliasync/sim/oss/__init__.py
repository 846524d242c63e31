"""OSS (Object Storage Service) emulated through its S3-compatible API.

Routing in ``_routing``, requests and XML in ``_responses``, ``_objects`` and ``_xml``, state
in ``_models`` and ``_buckets``. May import the emulator's shared modules, never another
service.
"""

from __future__ import annotations

from aliasync.sim.oss._models import ObjectInfo, OssError, OssModel
from aliasync.sim.oss._responses import OssService

__all__ = ["ObjectInfo", "OssError", "OssModel", "OssService"]
