"""Which OSS endpoint, bucket, key and S3 operation a request names (before it runs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aliasync.sim._errors import SimError

_SUFFIX = ".aliyuncs.com"

# Operations on the service or a bucket's configuration, not on its data: allowed on the public
# endpoint of a Chinese mainland region (docs/alibaba-api-facts.md section 12). Everything else,
# listing objects included, is a data API there.
CONTROL_ACTIONS = frozenset(
    {
        "ListBuckets", "CreateBucket", "PutBucket", "DeleteBucket", "HeadBucket",
        "GetBucketLocation", "GetBucketInfo", "PutBucketLifecycle", "GetBucketLifecycle",
        "DeleteBucketLifecycle", "GetBucketAcl", "PutBucketAcl",
    }
)  # fmt: skip

# Sub-resources OSS's S3-compatible API offers but the emulator does not implement: 501.
S3_NOT_EMULATED = frozenset({"acl", "lifecycle", "logging"})
# Sub-resources outside OSS's S3 subset (section 7), or native-only ones sent to the S3 host.
S3_NOT_OFFERED = frozenset(
    {
        "accelerate", "analytics", "append", "attributes", "cors", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "metrics", "notification",
        "object-lock", "objectMeta", "ownershipControls", "policy", "policyStatus",
        "publicAccessBlock", "qos", "referer", "replication", "requestPayment", "restore",
        "retention", "select", "stat", "symlink", "tagging", "torrent", "versioning",
        "versions", "website", "worm", "bucketInfo",
    }
)  # fmt: skip
# S3 operations the S3 subset leaves out although their URL shape exists (section 7).
S3_NOT_OFFERED_ACTIONS = frozenset({"ListBuckets", "ListMultipartUploads"})
# Native sub-resources the emulator does not implement: 501.
_NATIVE_NOT_EMULATED = frozenset(
    {
        "append", "cors", "encryption", "inventory", "logging", "objectMeta", "policy",
        "qos", "referer", "replication", "requestPayment", "restore", "stat", "symlink",
        "tagging", "versioning", "versions", "website", "worm", "x-oss-process", "regions",
        "transferAcceleration", "resourceGroup", "cname", "metaQuery",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """The endpoint, bucket and key a request addresses."""

    region: str
    internal: bool
    s3_host: bool  # the S3-compatible host name (``s3.oss-…``) rather than the native one
    bucket: str | None
    key: str  # decoded; "" for bucket and service operations
    path_style: bool  # bucket taken from the path on the bare endpoint (OSS refuses this)

    def endpoint(self) -> str:
        """The bare endpoint host, in the style the request used."""
        name = f"oss-{self.region}{'-internal' if self.internal else ''}{_SUFFIX}"
        return f"s3.{name}" if self.s3_host else name

    @property
    def native(self) -> bool:
        """The OSS native API (``oss-…`` hosts) rather than the S3-compatible one."""
        return not self.s3_host


def parse_host(host: str) -> tuple[str | None, bool, str, bool] | None:
    """(bucket, s3_host, region, internal) of an OSS host name; None if not an OSS host."""
    host = host.lower().rstrip(".")
    if not host.endswith(_SUFFIX):
        return None
    labels = host[: -len(_SUFFIX)].split(".")
    if not labels[-1].startswith("oss-") or len(labels[-1]) <= 4:
        return None
    endpoint, rest = labels[-1][4:], labels[:-1]
    s3_host = bool(rest) and rest[-1] == "s3"
    if s3_host:
        rest = rest[:-1]
    if len(rest) > 1 or (rest and not rest[0]):
        return None
    internal = endpoint.endswith("-internal")
    return (rest[0] if rest else None), s3_host, endpoint.removesuffix("-internal"), internal


def target(host: str, path: str) -> Target | None:
    """Where a request goes; ``path`` is the raw (percent-encoded) request path."""
    parsed = parse_host(host)
    if parsed is None:
        return None
    bucket, s3_host, region, internal = parsed
    raw = path[1:] if path.startswith("/") else path
    if bucket is not None:
        return Target(region, internal, s3_host, bucket, unquote(raw), False)
    if not raw:
        return Target(region, internal, s3_host, None, "", False)
    name, _, key = raw.partition("/")
    return Target(region, internal, s3_host, unquote(name), unquote(key), True)


def _not_allowed() -> SimError:
    return SimError(
        "MethodNotAllowed", "The specified method is not allowed against this resource.", 405
    )


def _emulator_gap(what: str) -> SimError:
    return SimError("NotImplemented", f"The emulator does not implement {what!r}.", 501)


# The operations on one multipart upload (``?uploadId=``), by method: the same on both faces.
_UPLOAD_OPS = {
    "GET": "ListParts",
    "PUT": "UploadPart",
    "POST": "CompleteMultipartUpload",
    "DELETE": "AbortMultipartUpload",
}


def action(
    method: str, t: Target, params: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[str, bool]:
    """The operation name (S3's on the S3 host, OSS's on the native one) and whether it mutates.

    Operations the S3 face does not offer still get their name here (the refusal is the
    handler's, so the call is logged); features the emulator lacks raise 501 at once.
    """
    method = method.upper()
    mutating = method in ("PUT", "POST", "DELETE")
    if t.native:
        return _native_action(method, t, params, headers), mutating
    gap = S3_NOT_EMULATED.intersection(params)
    if gap or "x-amz-copy-source" in headers:
        raise _emulator_gap(min(gap) if gap else "x-amz-copy-source")
    if t.bucket is None:
        if method != "GET":
            raise _not_allowed()
        return "ListBuckets", False
    if not t.key:
        bucket_ops = {
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "POST": "DeleteObjects" if "delete" in params else "",
        }
        if method == "GET":
            if "location" in params:
                return "GetBucketLocation", False
            if "uploads" in params:
                return "ListMultipartUploads", False
            return ("ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"), False
        name = bucket_ops.get(method, "")
    elif "uploadId" in params:
        name = _UPLOAD_OPS.get(method, "")
    else:
        name = {
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "PUT": "PutObject",
            "DELETE": "DeleteObject",
            "POST": "CreateMultipartUpload" if "uploads" in params else "",
        }.get(method, "")
    if not name:
        raise _not_allowed()
    return name, mutating


def _native_action(
    method: str, t: Target, params: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    gap = _NATIVE_NOT_EMULATED.intersection(params)
    if gap:
        raise _emulator_gap(min(gap))
    if t.bucket is None:
        if method != "GET":
            raise _not_allowed()
        return "ListBuckets"
    copy = any(h.lower() == "x-oss-copy-source" for h in headers)
    if t.key and "acl" in params:
        raise _emulator_gap("acl")  # object ACLs
    if not t.key:
        if "acl" in params:
            name = {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"}.get(method, "")
        elif "lifecycle" in params:
            name = {
                "GET": "GetBucketLifecycle",
                "PUT": "PutBucketLifecycle",
                "DELETE": "DeleteBucketLifecycle",
            }.get(method, "")
        elif method == "GET":
            for param, op in (
                ("location", "GetBucketLocation"),
                ("bucketInfo", "GetBucketInfo"),
                ("uploads", "ListMultipartUploads"),
            ):
                if param in params:
                    return op
            return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"
        else:
            name = {
                "PUT": "PutBucket",
                "DELETE": "DeleteBucket",
                "POST": "DeleteMultipleObjects" if "delete" in params else "",
            }.get(method, "")
    elif "uploadId" in params:
        if copy:
            raise _emulator_gap("UploadPartCopy")
        name = _UPLOAD_OPS.get(method, "")
    else:
        name = {
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "PUT": "CopyObject" if copy else "PutObject",
            "DELETE": "DeleteObject",
            "POST": "InitiateMultipartUpload" if "uploads" in params else "",
        }.get(method, "")
    if not name:
        raise _not_allowed()
    return name
