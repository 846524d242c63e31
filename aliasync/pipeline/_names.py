"""ECS naming rules for images, checked locally so a bad name fails before any upload.

ECS rejects a bad ImageName only when ImportImage is called, i.e. after the image has been
uploaded; checking here turns a late cloud error into an immediate usage error.
"""

from __future__ import annotations

import datetime
import re

from aliasync._exceptions import InvalidNameError

__all__ = ["check_ecs_name", "default_name"]

# CJK Unified Ideographs and Extension A: the "Chinese characters" the ECS rules allow.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_FIRST = re.compile(f"[A-Za-z{_CJK}]")
_ALLOWED = re.compile(f"[A-Za-z0-9.:_\\-{_CJK}]*")
_RESERVED_PREFIXES = ("aliyun", "acs:")


def default_name(family: str, today: datetime.date) -> str:
    """The default image name for ``family`` on ``today``: ``<family>-YYYYMMDD``."""
    return f"{family}-{today:%Y%m%d}"


def check_ecs_name(value: str, what: str = "image name") -> str:
    """Return ``value`` if ECS would accept it as a name, else raise InvalidNameError."""
    if not 2 <= len(value) <= 128:
        raise InvalidNameError(f"{what} {value!r} must be 2 to 128 characters long")
    if not _FIRST.fullmatch(value[0]):
        raise InvalidNameError(f"{what} {value!r} must start with a letter")
    lowered = value.lower()
    for prefix in _RESERVED_PREFIXES:
        if lowered.startswith(prefix):
            raise InvalidNameError(f"{what} {value!r} must not start with {prefix!r}")
    # Checked before the character set, which would also reject it, for a clearer message.
    if "http://" in lowered or "https://" in lowered:
        raise InvalidNameError(f"{what} {value!r} must not contain http:// or https://")
    if not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        raise InvalidNameError(
            f"{what} {value!r} contains {''.join(bad)!r}; only letters, digits"
            " and the characters . : _ - are allowed"
        )
    return value
