"""OSS records: buckets, objects, parts and uploads as plain data, and the errors about them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aliasync.sim._errors import SimError

MAX_BUCKETS_PER_REGION = 100
MIN_PART_SIZE = 102400  # every part but the last, checked at CompleteMultipartUpload
MAX_PART_NUMBER = 10000
MAX_KEY_BYTES = 1023
FOREIGN_OWNER = "1999999999999999"  # the account behind add_foreign_bucket's buckets
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class OssError(SimError):
    """A SimError with extra elements for the S3 error document (BucketName, Key, ...)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        extra: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        ec: str | None = None,
    ) -> None:
        super().__init__(code, message, status, headers=headers, ec=ec)
        self.extra = dict(extra or {})


def no_such_bucket(name: str) -> OssError:
    return OssError(
        "NoSuchBucket", "The specified bucket does not exist.", 404, extra={"BucketName": name}
    )


def valid_bucket_name(name: str) -> bool:
    return _BUCKET_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class ObjectInfo:
    """What other services need of an object. ``etag`` is unquoted; ``path`` is its file."""

    size: int
    sha256: str
    etag: str
    path: str


@dataclass
class StoredObject:
    key: str
    size: int
    md5: str
    sha256: str
    etag: str
    path: str
    last_modified: float  # virtual seconds
    headers: dict[str, str]  # Content-Type and the other stored representation headers
    metadata: dict[str, str]  # x-amz-meta-* (lower-case names, without the prefix)

    def info(self) -> ObjectInfo:
        return ObjectInfo(self.size, self.sha256, self.etag, self.path)


@dataclass
class Part:
    number: int
    size: int
    md5: str
    etag: str
    path: str
    last_modified: float


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    headers: dict[str, str]
    metadata: dict[str, str]
    parts: dict[int, Part] = field(default_factory=dict)
    completing: bool = False


@dataclass(frozen=True)
class LifecycleRule:
    """One rule of a bucket's lifecycle configuration (the parts the emulator keeps)."""

    rule_id: str
    prefix: str
    enabled: bool
    expiration_days: int | None = None
    expiration_date: str | None = None  # CreatedBeforeDate, as sent
    abort_days: int | None = None  # AbortMultipartUpload
    abort_date: str | None = None


@dataclass
class Bucket:
    name: str
    region: str
    owner: str
    created_at: float
    objects: dict[str, StoredObject] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # sorted object keys
    uploads: dict[str, Upload] = field(default_factory=dict)
    lifecycle: tuple[LifecycleRule, ...] = ()
    acl: str = "private"


@dataclass(frozen=True)
class Listing:
    """One page of ListObjects(V2): objects, common prefixes, and where the next page starts."""

    objects: list[StoredObject]
    prefixes: list[str]
    truncated: bool
    next_marker: str | None


def etag_matches(given: str, etag: str) -> bool:
    return given.strip().strip('"').upper() == etag.upper()
