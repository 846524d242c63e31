"""OSS (Object Storage Service) emulated through its S3-compatible API."""

from __future__ import annotations

from aliasync.sim.oss._models import ObjectInfo, OssError, OssModel
from aliasync.sim.oss._responses import OssService

__all__ = ["ObjectInfo", "OssError", "OssModel", "OssService"]
