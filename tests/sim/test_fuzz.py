"""Hypothesis-generated bad requests against one running emulator: no crash, no traceback.

One ``@given`` async test runs every example in the same event loop (AnyIO's pytest plugin
supports Hypothesis), so its function-scoped ``fuzzed`` fixture is one emulator for the whole
run. Requests are written as raw HTTP/1.1 over TCP in proxy (absolute) form, so nothing a
client library would normalise (broken percent-encoding, junk hosts, odd methods, header bytes
that are not UTF-8) is lost. Most requests to service hosts are correctly signed (ACS3, RPC V1,
SigV4) over their junk, so that the fuzz gets past authentication into the models.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.etree import ElementTree

import anyio
import pytest
from aiohttp.http_exceptions import HttpProcessingError
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aliasync.sim import Simulator
from aliasync.sim.oss._routing import target as oss_target
from aliasync.sim.oss._signing import v4_canonical_request, v4_signature
from tests.clients import ecs_client, fc_client, ram_client
from tests.sim.test_ecs import IMPORT_S, import_request, upload
from tests.sim.test_fc import code as zip_code
from tests.sim.test_fc import create as create_function

pytestmark = pytest.mark.anyio

REGION = "cn-hangzhou"
REGIONS = [REGION, "eu-central-1", "ap-southeast-1", "cn-nanjing", "cn-zhangjiakou"]
SOURCE = f"src-{REGION}"  # the bucket tests.sim.test_ecs.upload() fills, as "$BUCKET"
OSS_HOST = f"$BUCKET.s3.oss-{REGION}-internal.aliyuncs.com"
OSS_NATIVE_HOST = f"$BUCKET.oss-{REGION}-internal.aliyuncs.com"

ECS_ACTIONS = ["DescribeRegions", "ImportImage", "DescribeTasks", "DescribeImages", "CopyImage",
    "CancelCopyImage", "DeleteImage", "ModifyImageAttribute", "ModifyImageSharePermission",
    "DescribeImageSharePermission", "TagResources", "UntagResources", "ListTagResources",
    "DescribeSnapshots", "DeleteSnapshot", "RunInstances"]  # fmt: skip
ECS_PARAMS = ["ImageName", "Description", "DestinationRegionId", "DestinationImageName",
    "ClientToken", "PageNumber", "PageSize", "MaxResults", "NextToken", "Status", "ImageIds",
    "TaskIds", "TaskAction", "TaskStatus", "StartTime", "EndTime", "IsPublic", "AddAccount.1",
    "RemoveAccount.1", "ResourceType", "ResourceId.1", "SnapshotId", "SnapshotIds", "Force",
    "BootMode", "Architecture", "Platform", "OSType", "LicenseType", "ImageFamily", "Usage",
    "ImageOwnerAlias", "Features.NvmeSupport", "Tag.1.Key", "Tag.1.Value", "Tag.2.Value",
    "Tag.1111111111111.Key", "TagKey.1", "All", "RoleName", "DiskDeviceMapping.1.OSSBucket",
    "DiskDeviceMapping.1.OSSObject", "DiskDeviceMapping.1.DiskImageSize",
    "DiskDeviceMapping.1.Format"]  # fmt: skip
RPC = {  # service: (actions, version, parameters)
    "ecs": ([*ECS_ACTIONS, ""], "2014-05-26", ECS_PARAMS),
    "sts": (["GetCallerIdentity", "AssumeRole", ""], "2015-04-01", ["RoleArn"]),
    "ram": (["GetRole", "CreateRole", "AttachPolicyToRole", "ListPoliciesForRole", "DeleteRole"],
        "2015-05-01", ["RoleName", "AssumeRolePolicyDocument", "PolicyName", "PolicyType",
        "Description", "MaxSessionDuration"]),
}  # fmt: skip
OSS_PARAMS = ["uploads", "uploadId", "partNumber", "list-type", "max-keys", "prefix", "delimiter",
    "marker", "continuation-token", "start-after", "encoding-type", "location", "delete",
    "max-uploads", "max-parts", "part-number-marker", "max-buckets", "response-content-type",
    "acl", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Signature", "AWSAccessKeyId", "lifecycle", "bucketInfo",
    "OSSAccessKeyId", "Signature", "Expires", "x-oss-signature", "x-oss-date"]  # fmt: skip
OSS_HEADERS = ["x-amz-content-sha256", "content-md5", "x-amz-checksum-crc32",
    "x-amz-checksum-sha256", "range", "x-amz-meta-a", "content-type", "x-amz-copy-source",
    "x-amz-security-token", "cache-control", "x-oss-meta-a", "x-oss-copy-source",
    "x-oss-forbid-overwrite", "x-oss-acl", "x-oss-metadata-directive", "x-oss-security-token",
    "transfer-encoding"]  # fmt: skip
ACS_HEADERS = ["x-acs-action", "x-acs-version", "x-acs-signature-nonce", "x-acs-security-token",
    "x-acs-accesskey-id", "content-type", "x-fc-invocation-type", "x-fc-log-type",
    "proxy-authorization"]  # fmt: skip
FC_FIELDS = ["runtime", "handler", "code", "memorySize", "timeout", "role", "description",
    "environmentVariables", "internetAccess", "layers", "tags"]  # fmt: skip
BROKEN_AUTH = ["ACS3-HMAC-SHA256", "ACS3-HMAC-SHA256 Credential=$KEY",
    "ACS3-HMAC-SHA256 Credential=$KEY,SignedHeaders=host;x-acs-date,Signature=00",
    "AWS4-HMAC-SHA256 Credential=$KEY/2020/x/s3/aws4_request, SignedHeaders=host, Signature=z",
    "AWS4-HMAC-SHA256 Credential=$KEY,SignedHeaders=Host;;,Signature=", "AWS $KEY:abc",
    "OSS $KEY:abc", "Bearer x", "Basic Og==", "ACS3-HMAC-SHA256 Signature=\udcff"]  # fmt: skip


# --- strategies -----------------------------------------------------------------------------


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """``common`` four times in five."""
    return st.one_of(common, common, common, common, rare)


# Visible characters only: whitespace and controls would only test aiohttp's HTTP parser.
junk = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=["Cc"]),
    max_size=30)  # fmt: skip
ascii_junk = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
# Digits str.isdigit() accepts but int() refuses, and numbers past int()'s 4300-digit limit.
tricky_number = st.sampled_from(["\u00b2", "\u0663", "1" * 4400, "1_0", " 1", "+1", "1e3",
    "bytes=" + "9" * 4400 + "-", "bytes=-" + "9" * 4400, "bytes=\u00b2-"])  # fmt: skip
broken_pct = st.sampled_from(["%", "%zz", "%e2%28%a1", "%C0%AF", "%00", "%%", "a%2", "%FF%FE"])
value = st.one_of(
    st.sampled_from(["", "true", "false", "0", "-1", "1", "ALL", "RAW", "$IMAGE", "$BUCKET",
        "disk.raw", "m-doesnotexist", REGION, "cn-nanjing", "2024-01-01T00:00:00Z", "url",
        "UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "bytes=0-", "bytes=5-1"]),
    st.integers(-(2**70), 2**70).map(str), junk, st.integers(300, 9000).map("x".__mul__),
    broken_pct, tricky_number, tricky_number,
)  # fmt: skip
# Header bytes that are not UTF-8 reach the server as surrogates (sent back as the raw bytes).
header_value = value | st.sampled_from(["\udcff", "a\udcfe\udcfdb", "\u00e9\udcff"])
region = mostly(st.sampled_from(REGIONS), st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True))
bucket = mostly(st.just("$BUCKET"), st.sampled_from(["nope", "ab", "Up", "a_b", "a..b", "-x"]))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | junk | tricky_number,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(junk, inner, max_size=3),
    max_leaves=8,
)
xml_body = st.builds(
    lambda tag, inner: f"<{tag}>{inner}</{tag}>".encode(),
    st.sampled_from(["CreateBucketConfiguration", "Delete", "CompleteMultipartUpload", "x"]),
    st.sampled_from(["", "<LocationConstraint>x</LocationConstraint>", "<Object/>", "<",
        "<Object><Key></Key></Object>", "<Quiet>x</Quiet>", "<Part><PartNumber>a</PartNumber>",
        "<Part><PartNumber>\u00b2</PartNumber><ETag>x</ETag></Part>",
        f"<Part><PartNumber>{'1' * 4400}</PartNumber><ETag>x</ETag></Part>"]),
)  # fmt: skip
body = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    json_value.map(lambda v: json.dumps(v).encode()),
    xml_body,
    st.sampled_from([b"{", b"null", b"[]", b'{"code": {"zipFile": "UEsDBA=="}}', b"\xff\xfe"]),
)
method = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"] * 4 + ["OPTIONS", "get"])
header_name = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True)


def pairs(names: list[str], values: Any = value, size: int = 6) -> Any:
    """Distinct names, mostly from ``names``, with junk values."""
    name = mostly(st.sampled_from(names), junk)
    return st.lists(st.tuples(name, values), max_size=size, unique_by=lambda kv: kv[0])


@dataclass(frozen=True)
class Fuzz:
    """One generated request; ``$KEY``-style placeholders are filled in when it is sent."""

    service: str
    sign: str  # "acs3" | "rpc_v1" | "sigv4" | "ossv4" | "none" | "broken"
    method: str
    host: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    raw_query: str = ""  # appended as is (broken percent-encoding and the like)
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@st.composite
def requests(draw: st.DrawFn) -> Fuzz:
    kind = draw(st.sampled_from(["ecs"] * 3 + ["oss"] * 3 + ["fc"] * 2 + ["sts", "ram", "junk"]))
    headers = draw(pairs(OSS_HEADERS if kind == "oss" else ACS_HEADERS, header_value, 3))
    raw_query = draw(mostly(st.just(""), broken_pct | ascii_junk))
    verb, params, content = draw(method), [], draw(body)
    if kind in ("ecs", "sts", "ram"):
        host, (actions, version, names) = f"{kind}.aliyuncs.com", RPC[kind]
        if kind == "ecs":
            host = draw(mostly(region.map(lambda r: f"ecs.{r}.aliyuncs.com"), st.just(host)))
            params = [
                ("RegionId", draw(region)),
                ("ImageId", draw(mostly(st.just("$IMAGE"), value))),
            ]
            params = [p for p in params if draw(mostly(st.just(True), st.just(False)))]
        action = draw(mostly(st.sampled_from(actions), junk))
        version = draw(mostly(st.just(version), st.sampled_from(["", "2099-01-01"])))
        params += draw(pairs(names))
        sign = draw(st.sampled_from(["acs3", "acs3", "rpc_v1", "rpc_v1", "none", "broken"]))
        if sign == "acs3":
            headers = [("x-acs-action", action), ("x-acs-version", version), *headers]
        else:
            params = [("Action", action), ("Version", version), *params]
        path = draw(mostly(st.just("/"), ascii_junk.map("/".__add__)))
        content = draw(mostly(st.just(b""), st.just(content)))
        if content and draw(st.booleans()):
            headers.append(("content-type", "application/x-www-form-urlencoded"))
    elif kind == "oss":
        b, r = draw(bucket), draw(mostly(st.just(REGION), region))
        native = draw(st.booleans())  # the native face, or the S3 one
        face = "" if native else "s3."
        endpoint = f"{face}oss-{r}{draw(mostly(st.just('-internal'), st.just('')))}.aliyuncs.com"
        others = st.sampled_from([endpoint, f"{b}.oss-{r}.aliyuncs.com"])
        host = draw(mostly(st.just(f"{b}.{endpoint}"), others))
        key = draw(st.sampled_from(["", "disk.raw", "a/b", "x" * 1100]) | junk | broken_pct)
        key = quote(key, safe="/%") if draw(st.booleans()) or not key.isascii() else key
        path = "/" + (f"{b}/" if host == endpoint else "") + key
        params = draw(pairs(OSS_PARAMS))
        signed = "ossv4" if native else "sigv4"
        sign = draw(st.sampled_from([signed, signed, signed, "none", "broken"]))
    elif kind == "fc":
        r = draw(mostly(st.just(REGION), region))
        others = [f"123.{r}", f"$ACCOUNT.{r}-internal", f"{r}"]
        host = draw(mostly(st.just(f"$ACCOUNT.{r}"), st.sampled_from(others))) + ".fc.aliyuncs.com"
        name = draw(st.sampled_from(["fn", "fn", "", "a" * 200, "%zz", "%E4%BD%A0"]) | ascii_junk)
        path = draw(mostly(st.just("/2023-03-30/functions"), st.sampled_from(["/", "/x"])))
        path += draw(st.sampled_from(["", "/", f"/{name}", f"/{name}/invocations", "/x/y/z"]))
        doc = {"functionName": name, "runtime": "python3.10", "handler": "index.handler"}
        doc["code"] = {"zipFile": zip_code("def handler(event, context):\n    return event\n")}
        doc.update(draw(st.dictionaries(st.sampled_from(FC_FIELDS) | junk, json_value, max_size=3)))
        content = draw(mostly(st.just(json.dumps(doc).encode()), st.just(content)))
        sign = draw(st.sampled_from(["acs3", "acs3", "acs3", "none", "broken"]))
        params = draw(pairs(["qualifier", "limit", "nextToken", "prefix"], size=3))
    else:
        odd = st.sampled_from(["[::1", "a:b:c", "host:99999", "", "@", "x.aliyuncs.com", ".."])
        host = draw(st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True) | ascii_junk | odd)
        path, params, sign = "/" + draw(ascii_junk), draw(pairs(OSS_PARAMS)), "none"
    return Fuzz(kind, sign, verb, host, path, tuple(params), raw_query, tuple(headers), content)


# --- signing, as the official clients do it, over the junk -------------------------------------


def _now(fmt: str) -> str:
    return time.strftime(fmt, time.gmtime())


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(_raw(data) if isinstance(data, str) else data).hexdigest()


def _hmac(key: bytes, text: str, digest: Any = hashlib.sha256) -> bytes:
    return hmac.new(key, _raw(text), digest).digest()


def sign_rpc_v1(method: str, query: str, key: str, secret: str) -> str:
    """``query`` with RPC V1 (HMAC-SHA1) authentication parameters and signature appended."""
    extra = {"AccessKeyId": key, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "Timestamp": _now("%Y-%m-%dT%H:%M:%SZ"), "SignatureNonce": uuid.uuid4().hex}  # fmt: skip
    query = "&".join([query, *(f"{k}={quote(v)}" for k, v in extra.items())]).lstrip("&")
    params = sorted(dict(parse_qsl(query, keep_blank_values=True)).items())
    canonical = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in params)
    text = f"{method.upper()}&%2F&{quote(canonical, safe='~')}"
    signature = base64.b64encode(_hmac(f"{secret}&".encode(), text, hashlib.sha1)).decode()
    return f"{query}&Signature={quote(signature, safe='')}"


def sign_header(req: Fuzz, query: str, key: str, secret: str) -> list[tuple[str, str]]:
    """``req``'s headers with an ACS3 or SigV4 Authorization header over them."""
    acs3 = req.sign == "acs3"
    own = {"host", "authorization", "x-acs-date", "x-acs-content-sha256", "x-amz-date"}
    headers = [(k, v) for k, v in req.headers if k.lower() not in own]
    date = _now("%Y-%m-%dT%H:%M:%SZ" if acs3 else "%Y%m%dT%H%M%SZ")
    claimed = [v for k, v in headers if k.lower() == "x-amz-content-sha256"]
    payload = claimed[0] if claimed and not acs3 else _sha256(req.body)
    if acs3:
        headers += [("x-acs-date", date), ("x-acs-content-sha256", payload)]
    else:
        headers += [("x-amz-date", date)] + ([] if claimed else [("x-amz-content-sha256", payload)])
    headers.append(("host", req.host))
    prefix = "x-acs-" if acs3 else "x-amz-"
    signed = sorted({k.lower() for k, _ in headers if k.lower().startswith((prefix, "host"))})
    values: dict[str, list[str]] = {}
    for name, v in headers:
        values.setdefault(name.lower(), []).append(v)
    if acs3:  # tea-openapi: values stripped, repeats sorted; keys unencoded
        joined = {n: ",".join(sorted(v.strip() for v in values[n])) for n in signed}
        params = sorted(dict(parse_qsl(query, keep_blank_values=True)).items())
        canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in params)
    else:  # SigV4: "trimall", repeats in order; keys and values encoded
        joined = {n: ",".join(" ".join(v.split()) for v in values[n]) for n in signed}
        encoded = sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
            for k, v in parse_qsl(query, keep_blank_values=True)
        )
        canonical_query = "&".join(f"{k}={v}" for k, v in encoded)
    lines = "".join(f"{n}:{joined[n]}\n" for n in signed)
    names = ";".join(signed)
    canonical = "\n".join([req.method.upper(), req.path, canonical_query, lines, names, payload])
    if acs3:
        text = f"ACS3-HMAC-SHA256\n{_sha256(canonical)}"
        credential, signature = key, _hmac(secret.encode(), text).hex()
        auth = f"ACS3-HMAC-SHA256 Credential={credential},SignedHeaders={names},Signature="
    else:
        scope = f"{date[:8]}/{REGION}/s3/aws4_request"
        signing_key = f"AWS4{secret}".encode()
        for part in scope.split("/"):
            signing_key = _hmac(signing_key, part)
        text = f"AWS4-HMAC-SHA256\n{date}\n{scope}\n{_sha256(canonical)}"
        signature = _hmac(signing_key, text).hex()
        auth = f"AWS4-HMAC-SHA256 Credential={key}/{scope},SignedHeaders={names},Signature="
    return [*headers, ("Authorization", auth + signature)]


def sign_oss_v4(req: Fuzz, query: str, key: str, secret: str) -> list[tuple[str, str]]:
    """``req``'s headers with an OSS V4 Authorization header (for the native face)."""
    own = {"authorization", "x-oss-date", "x-oss-content-sha256"}
    headers = [(k, v) for k, v in req.headers if k.lower() not in own]
    date = _now("%Y%m%dT%H%M%SZ")
    headers += [("x-oss-date", date), ("x-oss-content-sha256", "UNSIGNED-PAYLOAD")]
    where = oss_target(req.host, req.path)
    bucket, object_key = (where.bucket, where.key) if where else (None, "")
    pairs = parse_qsl(query, keep_blank_values=True)
    canonical_query = "&".join(
        f"{k}={v}" if v else k
        for k, v in sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    )
    values = dict(reversed(headers))  # the first of repeated headers, as the verifier reads
    canonical = v4_canonical_request(
        req.method, bucket, object_key, canonical_query, values, [], "UNSIGNED-PAYLOAD"
    )
    scope = f"{date[:8]}/{REGION}/oss/aliyun_v4_request"
    text = f"OSS4-HMAC-SHA256\n{date}\n{scope}\n{_sha256(canonical)}"
    signature = v4_signature(secret, date[:8], REGION, "oss", text)
    auth = f"OSS4-HMAC-SHA256 Credential={key}/{scope},Signature={signature}"
    return [*headers, ("Authorization", auth)]


def render(req: Fuzz, sim: Simulator, image_id: str) -> bytes:
    """The request's bytes, placeholders filled in, signed as it asks."""
    fill = {"$KEY": sim.access_key_id, "$ACCOUNT": sim.account_id, "$IMAGE": image_id}
    fill["$BUCKET"] = SOURCE

    def sub(text: str) -> str:
        for placeholder, real in fill.items():
            text = text.replace(placeholder, real)
        return text

    fixed = {"host", "content-length", "connection", "transfer-encoding", "expect"}
    headers = tuple((k, sub(v)) for k, v in req.headers if k.lower() not in fixed)
    params = tuple((sub(k), sub(v)) for k, v in req.params)
    req = replace(req, host=sub(req.host), path=sub(req.path), params=params, headers=headers)
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in req.params)
    query = "&".join(filter(None, [query, req.raw_query]))
    all_headers = list(req.headers)
    if req.sign == "broken":
        all_headers.append(("Authorization", sub(BROKEN_AUTH[len(req.path) % len(BROKEN_AUTH)])))
    elif req.sign == "rpc_v1":
        query = sign_rpc_v1(req.method, query, sim.access_key_id, sim.access_key_secret)
    elif req.sign in ("acs3", "sigv4"):
        all_headers = sign_header(req, query, sim.access_key_id, sim.access_key_secret)
    elif req.sign == "ossv4":
        all_headers = sign_oss_v4(req, query, sim.access_key_id, sim.access_key_secret)
    if req.service == "oss" and not any(k.lower() == "proxy-authorization" for k, _ in headers):
        # From a function in REGION: internal endpoints answer only inside their region.
        inside = base64.b64encode(f"fc-{REGION}:x".encode()).decode()
        all_headers.append(("Proxy-Authorization", f"Basic {inside}"))
    target = f"http://{req.host}{req.path}" + (f"?{query}" if query else "")
    head = [f"{req.method} {target} HTTP/1.1", f"Host: {req.host}"]
    head += [f"{k}: {v}" for k, v in all_headers if k.lower() != "host"]
    head += [f"Content-Length: {len(req.body)}", "Connection: close", "", ""]
    return _raw("\r\n".join(head)) + req.body


# --- sending and checking ---------------------------------------------------------------------


class _Received:
    """What http.client needs of a socket, over bytes already received."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
        return self._file


async def exchange(port: int, raw: bytes, method: str) -> tuple[int, str, bytes] | None:
    """Send ``raw`` to the emulator; its answer, or None if it dropped the connection."""
    received = b""
    with anyio.fail_after(20):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(raw)
            try:
                while True:
                    received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
                pass
    if not received:
        return None
    response = http.client.HTTPResponse(_Received(received), method=method)  # type: ignore[arg-type]
    response.begin()
    return response.status, response.getheader("content-type", ""), response.read()


REPR = re.compile(r"Traceback|File \"|<class '|\b\w*(?:Error|Exception)\((?:'|\"|\))")


def check(answer: tuple[int, str, bytes] | None, method: str) -> None:
    """A dropped connection, or an answer that blames the request: a < 500 status with a
    well-formed error body if it has one, or 501 for what the emulator does not implement.
    Never a traceback, and never another server error (no fault is injected here: a 500
    with a tidy body is still the emulator failing)."""
    if answer is None:
        return
    status, content_type, body = answer
    text = body.decode("utf-8", "replace")
    assert not REPR.search(text), text[:2000]
    code = None
    if status >= 400 and body and "json" in content_type:
        doc = json.loads(body)
        assert isinstance(doc.get("Code"), str) and isinstance(doc.get("Message"), str), doc
        code = doc["Code"]
    elif status >= 400 and body and "xml" in content_type:
        root = ElementTree.fromstring(body)
        assert root.tag == "Error" and root.findtext("Code"), text
        code = root.findtext("Code")
    if status == 501:  # a HEAD answer has no body to name its code
        assert code == "NotImplemented" or (code is None and method.upper() == "HEAD"), text
    else:
        assert status < 500, (status, text)


def _crash(record: logging.LogRecord) -> bool:
    """An emulator failure, or an aiohttp server error other than refusing unparseable HTTP."""
    if record.name.startswith("aliasync.sim"):
        return True
    error = record.exc_info[1] if record.exc_info else None
    return record.name.startswith("aiohttp") and not isinstance(error, HttpProcessingError)


@pytest.fixture
async def fuzzed(sim: Simulator) -> AsyncIterator[tuple[Simulator, str]]:
    """The emulator with a source bucket and an Available image for the fuzz to aim at."""
    bucket, key = await upload(sim, REGION)
    assert bucket == SOURCE
    client = ecs_client(sim, REGION)
    response = await client.import_image_async(import_request(REGION, bucket, key, "fuzz-image"))
    sim.clock.advance(IMPORT_S)
    yield sim, response.body.image_id


def _oss(verb: str, path: str, *params: tuple[str, str], **kw: Any) -> Fuzz:
    return Fuzz("oss", kw.pop("sign", "sigv4"), verb, OSS_HOST, path, params, **kw)


def _native(verb: str, path: str, *params: tuple[str, str], **kw: Any) -> Fuzz:
    return Fuzz("oss", kw.pop("sign", "ossv4"), verb, OSS_NATIVE_HOST, path, params, **kw)


def _rpc(service: str, *params: tuple[str, str], **kw: Any) -> Fuzz:
    return Fuzz(
        service, kw.pop("sign", "rpc_v1"), "GET", f"{service}.aliyuncs.com", "/", params, **kw
    )


SQUARED = "\u00b2"  # "²": str.isdigit() says yes, int() says no
# Bugs the fuzz found, each an "emulator failure" answered with 500 InternalError before.
REGRESSIONS = [
    _oss("GET", "/", ("max-keys", SQUARED)),
    # The native face: the same handlers behind OSS V4 signatures and OSS's own parameters.
    _native("GET", "/", ("max-keys", SQUARED), ("encoding-type", "url")),
    _native("GET", "/", ("list-type", "2"), ("continuation-token", "%%%")),
    _native("PUT", "/", ("lifecycle", ""), body=b"<LifecycleConfiguration><Rule><Status>Enabled"
        b"</Status><Expiration><Days>\xc2\xb2</Days></Expiration></Rule></LifecycleConfiguration>"),
    _native("PUT", "/copy", headers=(("x-oss-copy-source", "/%zz/\udcff"),)),
    _native("POST", "/", ("delete", ""), body=b"<Delete><Object><Key>a</Key></Object></Delete>"),
    _native("PUT", "/k", headers=(("x-oss-meta-a", "\udcff"), ("x-oss-forbid-overwrite", "x")),
        body=b"a"),
    _oss("GET", "/disk.raw", headers=(("Range", "bytes=-" + "9" * 4400),)),
    _oss("PUT", "/k", ("uploadId", "u"), ("partNumber", "1" * 4400)),
    _oss("GET", "/k", ("uploadId", "u"), ("part-number-marker", SQUARED)),
    _oss("PUT", "/k", headers=(("x-amz-meta-a", "\udcff"),), body=b"a"),
    _oss("GET", "/k", ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-SignedHeaders", "host"),
        ("X-Amz-Credential", "$KEY/20240101/x/s3/aws4_request"), ("X-Amz-Signature", "0"),
        ("X-Amz-Date", "20240101T000000Z"), ("X-Amz-Expires", SQUARED), sign="none"),
    Fuzz("fc", "acs3", "GET", f"$ACCOUNT.{REGION}.fc.aliyuncs.com", "/2023-03-30/functions",
        (("limit", SQUARED),)),
    _rpc("ecs", ("Action", "ImportImage"), ("Version", "2014-05-26"), ("RegionId", REGION),
        ("DiskDeviceMapping.1.OSSBucket", "$BUCKET"), ("DiskDeviceMapping.1.OSSObject", "disk.raw"),
        ("DiskDeviceMapping.1.DiskImageSize", SQUARED)),
    _rpc("ecs", ("Action", "DescribeImages"), ("Version", "2014-05-26"), ("RegionId", REGION),
        ("Tag." + "1" * 4400 + ".Key", "k")),
    _rpc("ecs", sign="acs3", headers=(("x-acs-action", "DescribeRegions"),
        ("x-acs-version", "2014-05-26"), ("x-acs-a", "\udcff"))),
    _rpc("sts", sign="none", headers=(("Proxy-Authorization", "Basic \udcff"),)),
    _rpc("ram", ("Action", "CreateRole"), ("Version", "2015-05-01"), ("RoleName", "r"),
        ("AssumeRolePolicyDocument", '{"Statement": []}'), ("MaxSessionDuration", SQUARED)),
]  # fmt: skip


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(req=requests())
async def test_bad_requests_never_crash_the_emulator(
    fuzzed: tuple[Simulator, str], caplog: pytest.LogCaptureFixture, req: Fuzz
) -> None:
    """Any request gets a drop, a < 500 answer or a service error body; serving goes on."""
    sim, image_id = fuzzed
    caplog.set_level(logging.ERROR)
    caplog.clear()  # the fixture, and so the log, lives across examples
    port = int(sim.proxy_url.rsplit(":", 1)[1])
    check(await exchange(port, render(req, sim, image_id), req.method), req.method)
    crashes = [r.getMessage() for r in caplog.records if _crash(r)]
    assert not crashes, crashes
    answer = await ecs_client(sim, REGION).describe_regions_async(m.DescribeRegionsRequest())
    assert len(answer.body.regions.region) == len(sim.ctx.regions)


for _case in REGRESSIONS:
    test_bad_requests_never_crash_the_emulator = example(req=_case)(
        test_bad_requests_never_crash_the_emulator
    )


async def test_odd_trust_policies_do_not_crash_create_function(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Roles whose trust policy lists services oddly are refused as function roles, no crash."""
    caplog.set_level(logging.ERROR)
    for name, service in (("odd-number", 5), ("odd-nested", [["fc.aliyuncs.com"]]), ("odd", {})):
        statement = {"Effect": "Allow", "Principal": {"Service": service}}
        document = json.dumps({"Statement": [statement]})
        await ram_client(sim).create_role_async(
            ram_models.CreateRoleRequest(role_name=name, assume_role_policy_document=document)
        )
        role = f"acs:ram::{sim.account_id}:role/{name}"
        with pytest.raises(AlibabaCloudException) as info:
            await create_function(fc_client(sim, REGION), "fn", role=role)
        assert info.value.code == "InvalidArgument"
    assert not [r.getMessage() for r in caplog.records if _crash(r)]


async def test_a_client_gone_mid_body_is_no_emulator_failure(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A client killed while sending a request body (an InvokeFunction event half sent) is
    logged as gone, with no emulator failure, and serving goes on."""
    caplog.set_level(logging.ERROR)
    port = int(sim.proxy_url.rsplit(":", 1)[1])
    host = f"{sim.account_id}.{REGION}.fc.aliyuncs.com"
    head = (
        f"POST http://{host}/2023-03-30/functions/f/invocations HTTP/1.1\r\n"
        f"Host: {host}\r\nContent-Length: 100000\r\n\r\n"
    )
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(head.encode() + b"{" * 1000)
    with anyio.fail_after(10):
        while not sim.calls.in_flight:  # noqa: ASYNC110 (the emulator's state is waited on)
            await anyio.sleep(0.01)
    await stream.aclose()
    with anyio.fail_after(10):
        while not [r for r in sim.calls.records if r.error == "ClientGone"]:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    crashes = [r.getMessage() for r in caplog.records if _crash(r)]
    assert not crashes, crashes
    answer = await ecs_client(sim, REGION).describe_regions_async(m.DescribeRegionsRequest())
    assert len(answer.body.regions.region) == len(sim.ctx.regions)
