"""aliasync: publish bootable disk images as ECS custom images in every Alibaba Cloud region."""

from __future__ import annotations

from aliasync._exceptions import (
    AliasyncError,
    CloudError,
    ConfigurationError,
    InvalidImageError,
    InvalidNameError,
    JournalError,
    NotFoundError,
    PermanentCloudError,
    ThrottledError,
    TransientCloudError,
    UsageError,
)
from aliasync.disk._inspect import DiskImage, inspect_image
from aliasync.pipeline._options import ImportOptions
from aliasync.pipeline._orchestrator import Importer, import_images
from aliasync.pipeline._report import Event, ImageResult, ImportReport, RegionResult

__all__ = [
    "AliasyncError",
    "CloudError",
    "ConfigurationError",
    "DiskImage",
    "Event",
    "ImageResult",
    "ImportOptions",
    "ImportReport",
    "Importer",
    "InvalidImageError",
    "InvalidNameError",
    "JournalError",
    "NotFoundError",
    "PermanentCloudError",
    "RegionResult",
    "ThrottledError",
    "TransientCloudError",
    "UsageError",
    "import_images",
    "inspect_image",
]
