"""OSS (Object Storage Service) on both of its faces: the S3-compatible API and the native one.

Routing in ``_routing``; authentication, the mainland rule and errors in ``_responses`` (OSS's
own V1/V4 signatures in ``_signing``); handlers in ``_bucket_ops``, ``_objects`` and
``_multipart``; HTTP and XML helpers in ``_http`` and ``_xml``; state in ``_models`` and
``_buckets``. May import the emulator's shared modules, never another service.
"""

from __future__ import annotations

from aliasync.sim.oss._models import ObjectInfo, OssError, OssModel
from aliasync.sim.oss._responses import OssService

__all__ = ["ObjectInfo", "OssError", "OssModel", "OssService"]
