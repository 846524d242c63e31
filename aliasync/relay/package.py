"""Build the relay function's deployable ZIP, and its invocation events."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from importlib import resources

__all__ = ["HANDLER", "cleanup_event", "relay_event", "relay_zip"]

HANDLER = "index.handler"  # the FC handler setting for the ZIP below

# A fixed timestamp keeps the ZIP (and so FC's code checksum) identical from run to run.
_EPOCH = (2024, 1, 1, 0, 0, 0)


def relay_zip() -> bytes:
    """The relay as an FC code package: ``index.py`` holding :mod:`aliasync.relay.handler`."""
    source = resources.files("aliasync.relay").joinpath("handler.py").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("index.py", date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, source)
    return buffer.getvalue()


def relay_event(
    *,
    sources: Sequence[str],
    size: int,
    sha256: str,
    host: str,
    bucket: str,
    key: str,
    region: str,
    key_prefix: str,
    protocol: str = "https",
    part_size: int = 8 * 2**20,
    parallel: int = 4,
) -> bytes:
    """The event for one relay invocation (it contains presigned URLs: never log it).

    ``host`` is the virtual-hosted internal endpoint, ``<bucket>.<oss_internal host>``.
    """
    doc = {
        "sources": list(sources),
        "size": size,
        "sha256": sha256,
        "target": {
            "host": host,
            "bucket": bucket,
            "key": key,
            "region": region,
            "protocol": protocol,
        },
        "key_prefix": key_prefix,
        "part_size": part_size,
        "parallel": parallel,
    }
    return json.dumps(doc).encode()


def cleanup_event(
    *, host: str, bucket: str, region: str, protocol: str, bucket_prefix: str
) -> bytes:
    """The event that makes the relay empty a temporary bucket (named ``bucket_prefix…``).

    ``host`` is the virtual-hosted *native* internal endpoint, ``<bucket>.oss-<region>-internal…``.
    """
    doc = {
        "mode": "cleanup",
        "target": {"host": host, "bucket": bucket, "region": region, "protocol": protocol},
        "bucket_prefix": bucket_prefix,
    }
    return json.dumps(doc).encode()
