"""The public API: what ``import aliasync`` and ``import aliasync.sim`` promise."""

from __future__ import annotations

import aliasync
import aliasync.sim


def test_the_package_exports_exactly_its_documented_names() -> None:
    """``aliasync.__all__`` is pinned: a name added or dropped is a decision, not an accident."""
    assert aliasync.__all__ == [
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
    assert all(hasattr(aliasync, name) for name in aliasync.__all__)


def test_the_emulator_exports_exactly_its_documented_names() -> None:
    """``aliasync.sim.__all__`` is pinned too, and every name in it exists."""
    assert aliasync.sim.__all__ == EMULATOR_NAMES
    assert all(hasattr(aliasync.sim, name) for name in aliasync.sim.__all__)


EMULATOR_NAMES = [
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
