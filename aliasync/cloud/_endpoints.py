"""Where each Alibaba Cloud API lives: the public defaults, or an endpoints file.

An endpoints file (``--endpoints FILE``) is a JSON object::

    {"kind": "aliasync-endpoints", "version": 1, "protocol": "https",
     "proxy": "http://proxy:3128", "account_id": "...", "time_scale": 1.0,
     "credentials": {"access_key_id": "...", "access_key_secret": "..."},
     "ecs": "ecs.aliyuncs.com", "sts": "sts.aliyuncs.com", "ram": "ram.aliyuncs.com",
     "regions": {"cn-hangzhou": {"ecs": "...", "oss_public": "...", "oss_internal": "...",
                                 "fc": "...", "oss_native": "..."}}}

``oss_public`` and ``oss_internal`` are OSS's S3-compatible endpoints (uploads), ``oss_native``
its native public endpoint (ListBuckets, lifecycle rules, ListMultipartUploads), and
``oss_native_internal`` the native internal one, used only by the relay function in its region.

Every key is optional; a region, or a host of a region, that the file leaves out follows
Alibaba Cloud's public naming rules. The emulator writes such a file (with credentials, a
proxy and a ``time_scale``); a user's file typically names VPC endpoints. Unknown keys are
refused, so that a typo cannot silently send traffic to the public endpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from aliasync._exceptions import ConfigurationError

__all__ = ["Endpoints", "RegionEndpoints", "public_region_endpoints"]

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_REGION_ID = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")
_REGION_KEYS = ("ecs", "oss_public", "oss_internal", "fc", "oss_native", "oss_native_internal")
_TOP_KEYS = frozenset(
    {"kind", "version", "protocol", "proxy", "credentials", "account_id", "time_scale"}
    | {"ecs", "sts", "ram", "regions", "comment"}
)


@dataclass(frozen=True)
class RegionEndpoints:
    """The hosts (``name[:port]``, no scheme) serving one region.

    Inside :attr:`Endpoints.regions` an empty string means "the public default".
    """

    ecs: str
    oss_public: str
    oss_internal: str
    fc: str
    oss_native: str = ""
    oss_native_internal: str = ""


def public_region_endpoints(region_id: str, account_id: str) -> RegionEndpoints:
    """Alibaba Cloud's public endpoint rules for ``region_id``."""
    return RegionEndpoints(
        ecs=f"ecs.{region_id}.aliyuncs.com",
        oss_public=f"s3.oss-{region_id}.aliyuncs.com",
        oss_internal=f"s3.oss-{region_id}-internal.aliyuncs.com",
        # FC 3.0's documented per-account endpoint; the account ID is part of the host.
        fc=f"{account_id}.{region_id}.fc.aliyuncs.com",
        oss_native=f"oss-{region_id}.aliyuncs.com",
        oss_native_internal=f"oss-{region_id}-internal.aliyuncs.com",
    )


def _empty_regions() -> Mapping[str, RegionEndpoints]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Endpoints:
    """Every endpoint aliasync talks to, plus how to reach them (protocol, proxy)."""

    protocol: str = "https"
    proxy: str | None = None
    ecs: str = "ecs.aliyuncs.com"
    sts: str = "sts.aliyuncs.com"
    ram: str = "ram.aliyuncs.com"
    regions: Mapping[str, RegionEndpoints] = field(default_factory=_empty_regions)
    account_id: str | None = None
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    # > 1 when talking to an emulator that replays cloud time faster: every wait for the
    # cloud (polling intervals, retry backoff) is divided by it.
    time_scale: float = 1.0

    def __repr__(self) -> str:
        # Hand-written so that neither the secret nor a proxy password can reach a log.
        proxy = _mask_proxy(self.proxy)
        return (
            f"Endpoints(protocol={self.protocol!r}, proxy={proxy!r}, ecs={self.ecs!r}, "
            f"sts={self.sts!r}, ram={self.ram!r}, regions=<{len(self.regions)} regions>, "
            f"account_id={self.account_id!r}, access_key_id={self.access_key_id!r}, "
            f"time_scale={self.time_scale!r})"
        )

    def region(self, region_id: str, account_id: str) -> RegionEndpoints:
        """The hosts for ``region_id``: from :attr:`regions`, blanks filled by public rules."""
        public = public_region_endpoints(region_id, account_id)
        given = self.regions.get(region_id)
        if given is None:
            return public
        return RegionEndpoints(
            ecs=given.ecs or public.ecs,
            oss_public=given.oss_public or public.oss_public,
            oss_internal=given.oss_internal or public.oss_internal,
            fc=given.fc or public.fc,
            oss_native=given.oss_native or public.oss_native,
            oss_native_internal=given.oss_native_internal or public.oss_native_internal,
        )

    def url(self, host: str) -> str:
        """``{protocol}://{host}``."""
        return f"{self.protocol}://{host}"

    @classmethod
    def from_dict(cls, doc: object, *, source: str = "endpoints") -> Endpoints:
        """Validate and convert a parsed endpoints document; ConfigurationError if unusable."""
        if not isinstance(doc, Mapping):
            raise ConfigurationError(f"{source}: expected a JSON object at the top level")
        unknown = sorted(str(k) for k in doc if k not in _TOP_KEYS)
        if unknown:
            raise ConfigurationError(f"{source}: unknown key(s) {', '.join(unknown)}")
        kind = doc.get("kind", "aliasync-endpoints")
        if kind != "aliasync-endpoints":
            raise ConfigurationError(f"{source}: 'kind' must be 'aliasync-endpoints'")
        version = doc.get("version", 1)
        if version != 1 or isinstance(version, bool):
            raise ConfigurationError(f"{source}: unsupported 'version' (only 1 is known)")
        protocol = doc.get("protocol", "https")
        if protocol not in ("http", "https"):
            raise ConfigurationError(f"{source}: 'protocol' must be 'http' or 'https'")
        key_id, secret = _credentials(doc.get("credentials"), source)
        return cls(
            protocol=protocol,
            proxy=_proxy(doc.get("proxy"), source),
            ecs=_host(doc, "ecs", source, cls.ecs),
            sts=_host(doc, "sts", source, cls.sts),
            ram=_host(doc, "ram", source, cls.ram),
            regions=_regions(doc.get("regions"), source),
            account_id=_account_id(doc.get("account_id"), source),
            access_key_id=key_id,
            access_key_secret=secret,
            time_scale=_time_scale(doc.get("time_scale", 1.0), source),
        )

    @classmethod
    def load(cls, path: str | Path) -> Endpoints:
        """Read an endpoints file; ConfigurationError with the reason if it is unusable."""
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigurationError(f"cannot read endpoints file {source}: {reason}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{source}: not UTF-8 text") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            # Only the position: the text around it could be the secret.
            raise ConfigurationError(
                f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
        return cls.from_dict(doc, source=source)


def _mask_proxy(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    parts = urlsplit(proxy)
    if parts.password is None and parts.username is None:
        return proxy
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://***@{host}{port}"


def _host(doc: Mapping[str, Any], key: str, source: str, default: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        raise ConfigurationError(
            f"{source}: {key!r} must be a host name such as 'ecs.aliyuncs.com' (no scheme, no path)"
        )
    return value


def _proxy(value: object, source: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{source}: 'proxy' must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{source}: 'proxy' must be an http:// or https:// URL")
    return value


def _credentials(value: object, source: str) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{source}: 'credentials' must be an object")
    unknown = sorted(str(k) for k in value if k not in ("access_key_id", "access_key_secret"))
    if unknown:
        raise ConfigurationError(f"{source}: unknown key(s) in 'credentials': {unknown}")
    key_id, secret = value.get("access_key_id"), value.get("access_key_secret")
    # The values are never echoed: a misplaced secret must not end up in a message.
    for name, item in (("access_key_id", key_id), ("access_key_secret", secret)):
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"{source}: 'credentials.{name}' must be a non-empty string")
    assert isinstance(key_id, str) and isinstance(secret, str)
    return key_id, secret


def _account_id(value: object, source: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise ConfigurationError(f"{source}: 'account_id' must be a numeric account ID")
    return value


def _time_scale(value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{source}: 'time_scale' must be a positive number")
    if value != value or value == float("inf"):
        raise ConfigurationError(f"{source}: 'time_scale' must be finite")
    return float(value)


def _regions(value: object, source: str) -> Mapping[str, RegionEndpoints]:
    if value is None:
        return _empty_regions()
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{source}: 'regions' must be an object keyed by region ID")
    regions: dict[str, RegionEndpoints] = {}
    for region_id, hosts in value.items():
        if not isinstance(region_id, str) or not _REGION_ID.fullmatch(region_id):
            raise ConfigurationError(f"{source}: {region_id!r} is not a region ID")
        where = f"{source}: regions.{region_id}"
        if not isinstance(hosts, Mapping):
            raise ConfigurationError(f"{where} must be an object")
        unknown = sorted(str(k) for k in hosts if k not in _REGION_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {', '.join(unknown)} (expected {', '.join(_REGION_KEYS)})"
            )
        # Blank = the public default, filled in by Endpoints.region().
        checked = {
            key: _host(hosts, key, where, "") if key in hosts else "" for key in _REGION_KEYS
        }
        regions[region_id] = RegionEndpoints(**checked)
    return MappingProxyType(regions)
