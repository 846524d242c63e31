"""The relay: an FC function (python3.10, standard library only) that copies an image into a
mainland China OSS bucket through the region's *internal* endpoint.

Mainland buckets refuse data calls on their public endpoint, so the image is first uploaded to
buckets outside the mainland, and this function, running inside the mainland region, pulls it
from there (presigned GET URLs) and writes it into the local bucket via the internal endpoint.

Event (JSON)::

    {"sources": [presigned GET URLs of the same object in several regions],
     "size": bytes, "sha256": hex,
     "target": {"host": "<bucket>.s3.oss-<region>-internal.aliyuncs.com", "bucket", "key",
                "region", "protocol": "https" (optional)},
     "key_prefix": "<the temporary prefix the key must start with>",
     "part_size": bytes, "parallel": parts in flight}

How it copies: for each part range, a Range GET goes to one source; one that is slow gets a
second, racing GET from another source (first complete part of the right length wins); failed
or cut downloads are retried against other sources, a bounded number of times. Parts are
uploaded (SigV4-signed multipart upload, the function role's temporary key) as soon as they
arrive, and hashed in order; at most ``parallel`` parts are held at once, so images larger than
the function's memory work. The sha256 of the whole stream must match before the upload is
completed; otherwise it is aborted.

Cleanup mode (``{"mode": "cleanup", "target": {"host": "<bucket>.oss-<region>-internal…",
"bucket", "region", "protocol"}, "bucket_prefix": …}``): empty the bucket through the region's
internal *native* endpoint (OSS V4 signatures; OSS's S3 API cannot list multipart uploads),
aborting every unfinished upload, so that the caller outside the cloud can delete it.

Idempotent: the sha256 is stored as ``x-amz-meta-sha256``; if the target already holds an
object of the right size and sha256, nothing is copied. Any repetition of an invocation writes
the same bytes to the same key.

Secrets: the presigned URLs and the role key never appear in messages, logs or the answer;
sources are named by region.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import hashlib
import hmac
import http.client
import json
import re
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

MIN_PART = 100 * 1024  # OSS: every part but the last is at least 100 KB
MAX_PART = 5 * 2**30
MAX_PARTS = 10000
CHUNK = 2**20  # read granularity; a cancelled download notices within one chunk
OSS_ATTEMPTS = 8
DOWNLOAD_TIMEOUT = 60.0
HEDGE_FIRST = 30.0  # seconds before a part without any timing sample gets a racing download
HEDGE_FACTOR = 3.0  # later: race a part taking longer than this many median part times
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout"}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class RelayError(Exception):
    """A failure reported to the caller. Messages never hold URLs or keys."""


class _DownloadFailed(Exception):
    """One ranged GET failed or came back short."""


def handler(event: bytes, context: Any) -> str:
    """FC entry point: copy the object (or empty the bucket), return a JSON summary."""
    credentials = getattr(context, "credentials", None)
    key_id = getattr(credentials, "access_key_id", "") or ""
    secret = getattr(credentials, "access_key_secret", "") or ""
    token = getattr(credentials, "security_token", "") or ""
    if not key_id or not secret:
        raise RelayError("the function has no role credentials (give it a RAM role)")
    if _is_cleanup(event):
        return json.dumps(_Cleanup(event, (key_id, secret, token)).run())
    job = _Job(event)
    target = _Target(job, _Signer(key_id, secret, token, job.region))
    result = _Relay(job, target).run()
    print(
        f"relay: {result['bytes']} bytes to {job.bucket}/{job.key}:"
        f" retries={result['retries']} skipped={result['skipped']}"
    )
    return json.dumps(result)


class _Job:
    """The validated event."""

    def __init__(self, event: bytes) -> None:
        try:
            doc = json.loads(event)
            target = doc["target"]
            self.sources = [str(s) for s in doc["sources"]]
            self.size = int(doc["size"])
            self.sha256 = str(doc["sha256"]).lower()
            self.host, self.bucket = str(target["host"]), str(target["bucket"])
            self.key, self.region = str(target["key"]), str(target["region"])
            self.protocol = str(target.get("protocol", "https"))
            self.key_prefix = str(doc["key_prefix"])
            self.part_size = int(doc["part_size"])
            self.parallel = int(doc["parallel"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RelayError(f"invalid event: {type(exc).__name__} {exc}") from None
        if not self.key_prefix or not self.key.startswith(self.key_prefix):
            raise RelayError("refused: the target key is outside the allowed prefix")
        if not 1 <= len(self.sources) <= 32 or not all(
            s.startswith(("http://", "https://")) for s in self.sources
        ):
            raise RelayError("invalid event: sources must be 1 to 32 http(s) URLs")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256) or self.size < 0:
            raise RelayError("invalid event: bad size or sha256")
        if not self.host.startswith(self.bucket + ".") or re.search(r"[/@?#\s]", self.host):
            raise RelayError("invalid event: target host must be <bucket>.<endpoint>")
        if self.protocol not in ("http", "https"):
            raise RelayError("invalid event: target protocol must be http or https")
        if not MIN_PART <= self.part_size <= MAX_PART:
            raise RelayError(f"invalid event: part_size must be {MIN_PART}..{MAX_PART}")
        if -(-self.size // self.part_size) > MAX_PARTS:
            raise RelayError("invalid event: more than 10000 parts; raise part_size")
        if not 1 <= self.parallel <= 32:
            raise RelayError("invalid event: parallel must be 1..32")
        self.labels = [_label(s, i) for i, s in enumerate(self.sources)]


def _label(url: str, index: int) -> str:
    """A source's name for reports: its region, never its URL."""
    host = urllib.parse.urlsplit(url).hostname or ""
    found = re.search(r"oss-([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$", host)
    return found.group(1) if found else f"source{index}"


def _quote(value: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(value, safe=safe)


class _Signer:
    """AWS Signature Version 4 for OSS's S3-compatible API."""

    def __init__(self, key_id: str, secret: str, token: str, region: str) -> None:
        self._key_id, self._secret, self._token, self._region = key_id, secret, token, region

    def __repr__(self) -> str:
        return "_Signer(...)"

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: dict[str, str],
        payload_hash: str,
        extra: dict[str, str],
    ) -> dict[str, str]:
        """The headers for one request, Authorization included."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {k.lower(): v for k, v in extra.items()}
        headers.update({"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash})
        if self._token:
            headers["x-amz-security-token"] = self._token
        names = sorted(headers)
        canonical = "\n".join(
            [
                method,
                _quote(path, safe="/-_.~"),
                "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())),
                "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        scope = f"{amz_date[:8]}/{self._region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("AWS4" + self._secret).encode()
        for part in (amz_date[:8], self._region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._key_id}/{scope},"
            f" SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(body: bytes) -> dict[str, str]:
    """Top-level child texts of an XML answer, namespaces dropped; {} if not XML."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    found = {"": _strip(root.tag)}
    for child in root:
        found.setdefault(_strip(child.tag), child.text or "")
    return found


class _OssFailure(Exception):
    """A non-transient answer from OSS (status and code kept for the caller to judge)."""

    def __init__(self, status: int, code: str, request_id: str) -> None:
        super().__init__(f"OSS answered {status} {code or '(no code)'} (request {request_id})")
        self.status, self.code = status, code


class _Retrying:
    """What :func:`_send` needs: an opener, and a retry counter shared by threads."""

    opener: urllib.request.OpenerDirector
    retries: int
    _lock: threading.Lock


def _send(
    client: _Retrying,
    method: str,
    url: str,
    sign: Any,
    body: bytes | bytearray = b"",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One call, signed afresh (``sign()``) for each attempt, retried if transient."""
    delay = 0.2
    for attempt in range(OSS_ATTEMPTS):
        if attempt:
            with client._lock:
                client.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
        data = body if method in ("PUT", "POST") else None
        request = urllib.request.Request(url, data=data, method=method, headers=sign())
        try:
            with client.opener.open(request, timeout=120) as answer:
                status, answer_headers, content = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            content = exc.read() if method != "HEAD" else b""
            fields = _xml(content)
            code = fields.get("Code", "")
            if exc.code >= 500 or exc.code == 429 or code in _TRANSIENT_CODES:
                continue
            raise _OssFailure(exc.code, code, fields.get("RequestId", "")) from None
        except _NETWORK_ERRORS:
            continue  # refused, reset, timed out, cut short
        fields = _xml(content) if content[:64].lstrip().startswith(b"<") else {}
        if fields.get("") == "Error":  # S3's "200 OK" with an error inside
            if fields.get("Code") in _TRANSIENT_CODES:
                continue
            raise _OssFailure(status, fields.get("Code", ""), fields.get("RequestId", ""))
        return status, answer_headers, content
    raise RelayError(f"{method} on the target kept failing after {OSS_ATTEMPTS} attempts")


class _Target(_Retrying):
    """The target bucket, through its internal endpoint."""

    def __init__(self, job: _Job, signer: _Signer) -> None:
        self.job, self.signer = job, signer
        self.opener = urllib.request.build_opener()  # honours http_proxy (the emulator's)
        self.retries = 0
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        query: dict[str, str],
        body: bytes | bytearray = b"",
        extra: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One signed call on the target object, retried if transient."""
        job = self.job
        path = "/" + job.key
        url = f"{job.protocol}://{job.host}{_quote(path, safe='/-_.~')}"
        if query:
            url += "?" + "&".join(
                _quote(k) + (f"={_quote(v)}" if v else "") for k, v in sorted(query.items())
            )
        payload_hash = hashlib.sha256(body).hexdigest()

        def sign() -> dict[str, str]:
            return self.signer.sign(method, job.host, path, query, payload_hash, extra or {})

        return _send(self, method, url, sign, body)

    def existing(self) -> bool:
        """Whether the target already holds this exact object (by size and stored sha256)."""
        try:
            _, headers, _ = self.request("HEAD", {})
        except _OssFailure as exc:
            if exc.status == 404:
                return False
            raise RelayError(str(exc)) from None
        return (
            headers.get("Content-Length") == str(self.job.size)
            and (headers.get("x-amz-meta-sha256") or "").lower() == self.job.sha256
        )

    def create(self) -> str:
        meta = {"x-amz-meta-sha256": self.job.sha256}
        _, _, content = self.request("POST", {"uploads": ""}, extra=meta)
        upload_id = _xml(content).get("UploadId", "")
        if not upload_id:
            raise RelayError("CreateMultipartUpload answered without an UploadId")
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytes | bytearray) -> str:
        query = {"partNumber": str(number), "uploadId": upload_id}
        _, headers, _ = self.request("PUT", query, data)
        etag = headers.get("ETag")
        if not etag:
            raise RelayError(f"UploadPart {number} answered without an ETag")
        return etag

    def complete(self, upload_id: str, etags: dict[int, str]) -> None:
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etags[n])}</ETag></Part>"
            for n in sorted(etags)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        retries_before = self.retries
        try:
            self.request("POST", {"uploadId": upload_id}, body, {"content-type": "application/xml"})
        except _OssFailure as exc:
            # A retried complete whose first answer was lost: the object is already there.
            retried = self.retries > retries_before
            if exc.code == "NoSuchUpload" and retried and self.existing():
                return
            raise RelayError(f"CompleteMultipartUpload failed: {exc}") from None

    def abort(self, upload_id: str) -> None:
        # Best effort; the temporary bucket is deleted afterwards anyway.
        with contextlib.suppress(_OssFailure, RelayError):
            self.request("DELETE", {"uploadId": upload_id})


class _Part:
    """One part range in flight."""

    def __init__(self, number: int, start: int, end: int) -> None:
        self.number, self.start, self.end = number, start, end
        self.cancel = threading.Event()
        self.data: bytearray | None = None
        self.tried: list[int] = []
        self.inflight = 0
        self.failures = 0
        self.started = time.monotonic()
        self.hashed = False
        self.etag: str | None = None


class _Relay:
    """The copy itself: download window, racing, in-order hashing, uploads."""

    def __init__(self, job: _Job, target: _Target) -> None:
        self.job, self.target = job, target
        self.opener = urllib.request.build_opener()
        self.source_failures = [0] * len(job.sources)
        self.used: dict[str, int] = {}
        self.download_retries = 0
        self.durations: list[float] = []

    def run(self) -> dict[str, Any]:
        job = self.job
        skipped = self.target.existing()
        if not skipped and job.size == 0:
            if job.sha256 != _EMPTY_SHA256:
                raise RelayError("sha256 mismatch for an empty object")
            self.target.request("PUT", {}, b"", {"x-amz-meta-sha256": job.sha256})
        elif not skipped:
            # An upload left by a CreateMultipartUpload whose answer was lost is aborted by the
            # cleanup invocation (OSS's S3 API cannot list uploads) or the bucket's lifecycle.
            upload_id = self.target.create()
            try:
                etags = self._copy(upload_id)
                self.target.complete(upload_id, etags)
            except BaseException:
                self.target.abort(upload_id)
                raise
        return {
            "ok": True,
            "bytes": job.size,
            "sha256": job.sha256,
            "sources_used": self.used,
            "retries": self.download_retries + self.target.retries,
            "skipped": skipped,
        }

    def _fetch(self, index: int, part: _Part) -> bytearray:
        """One ranged GET of ``part`` from source ``index`` (runs in a worker thread)."""
        want = part.end - part.start + 1
        request = urllib.request.Request(
            self.job.sources[index], headers={"Range": f"bytes={part.start}-{part.end}"}
        )
        try:
            with self.opener.open(request, timeout=DOWNLOAD_TIMEOUT) as answer:
                whole = part.start == 0 and want == self.job.size
                ranged = (answer.headers.get("Content-Range") or "").startswith(
                    f"bytes {part.start}-{part.end}/"
                )
                if not (answer.status == 206 and ranged) and not (answer.status == 200 and whole):
                    raise _DownloadFailed(f"status {answer.status}")
                data = bytearray()
                while len(data) < want:
                    if part.cancel.is_set():
                        raise _DownloadFailed("overtaken by another source")
                    chunk = answer.read(min(CHUNK, want - len(data)))
                    if not chunk:
                        raise _DownloadFailed("cut short")
                    data += chunk
                return data
        except _NETWORK_ERRORS as exc:
            # Never str(exc): an HTTPError's string is harmless, but keep URLs out entirely.
            raise _DownloadFailed(type(exc).__name__) from None

    def _pick(self, part: _Part) -> int:
        """The next source for ``part``: untried first, then the least failing ones."""
        count = len(self.job.sources)
        order = [(part.number - 1 + i) % count for i in range(count)]
        untried = [i for i in order if i not in part.tried]
        pool = untried or order
        return min(pool, key=lambda i: (self.source_failures[i], pool.index(i)))

    def _copy(self, upload_id: str) -> dict[int, str]:
        job = self.job
        total = -(-job.size // job.part_size)
        # Cross-region downloads fail ~10% of the time; a part gets several tries per source.
        max_tries = max(8, 4 * len(job.sources))
        active: dict[int, _Part] = {}
        futures: dict[cf.Future[Any], tuple[str, _Part, int]] = {}
        etags: dict[int, str] = {}
        digest = hashlib.sha256()
        next_start = next_hash = 1
        pool = cf.ThreadPoolExecutor(max_workers=job.parallel * 3, thread_name_prefix="relay")

        def download(part: _Part) -> None:
            index = self._pick(part)
            part.tried.append(index)
            if part.inflight == 0:
                part.started = time.monotonic()  # hedging and timing count from here
            part.inflight += 1
            futures[pool.submit(self._fetch, index, part)] = ("get", part, index)

        try:
            while active or next_start <= total:
                while next_start <= total and len(active) < job.parallel:
                    start = (next_start - 1) * job.part_size
                    end = min(start + job.part_size, job.size) - 1
                    part = active[next_start] = _Part(next_start, start, end)
                    download(part)
                    next_start += 1
                self._hedge(active, download)
                done, _ = cf.wait(futures, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    kind, part, index = futures.pop(future)
                    if kind == "put":
                        part.etag = future.result()  # RelayError after its own retries
                        continue
                    part.inflight -= 1
                    error = future.exception()
                    if part.data is not None:
                        continue  # a losing racer
                    if error is not None:
                        self.source_failures[index] += 1
                        self.download_retries += 1
                        part.failures += 1
                        if part.failures >= max_tries:
                            raise RelayError(
                                f"part {part.number} failed {part.failures} times on every source"
                            )
                        if part.inflight == 0:
                            download(part)
                        continue
                    part.data = future.result()
                    part.cancel.set()
                    label = job.labels[index]
                    self.used[label] = self.used.get(label, 0) + 1
                    self.durations.append(time.monotonic() - part.started)
                    upload = pool.submit(self.target.upload_part, upload_id, part.number, part.data)
                    futures[upload] = ("put", part, index)
                while next_hash in active and active[next_hash].data is not None:
                    done_part = active[next_hash]
                    assert done_part.data is not None
                    digest.update(done_part.data)
                    done_part.hashed = True
                    next_hash += 1
                for number in [n for n, p in active.items() if p.hashed and p.etag]:
                    etags[number] = active.pop(number).etag or ""
        finally:
            for part in active.values():
                part.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
        if digest.hexdigest() != job.sha256:
            raise RelayError(
                f"sha256 mismatch: the sources gave {digest.hexdigest()}, expected {job.sha256}"
            )
        return etags

    def _hedge(self, active: dict[int, _Part], download: Any) -> None:
        """Start a racing download for parts that are taking unusually long."""
        if len(self.job.sources) < 2:
            return
        recent = self.durations[-20:]
        limit = HEDGE_FACTOR * statistics.median(recent) if recent else HEDGE_FIRST
        now = time.monotonic()
        for part in active.values():
            slow = part.data is None and part.inflight == 1 and now - part.started > limit
            if slow and len(part.tried) < len(self.job.sources):
                download(part)


# --- cleanup: empty a bucket through the native internal endpoint ------------------------


def _is_cleanup(event: bytes) -> bool:
    try:
        doc = json.loads(event)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("mode") == "cleanup"


class _OssV4:
    """OSS's V4 signature (``OSS4-HMAC-SHA256``) for the native API."""

    def __init__(self, key_id: str, secret: str, token: str, region: str) -> None:
        self._key_id, self._secret, self._token, self._region = key_id, secret, token, region

    def __repr__(self) -> str:
        return "_OssV4(...)"

    def sign(
        self, method: str, bucket: str, key: str, query: dict[str, str], extra: dict[str, str]
    ) -> dict[str, str]:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {k.lower(): v for k, v in extra.items()}
        headers.update({"x-oss-date": stamp, "x-oss-content-sha256": "UNSIGNED-PAYLOAD"})
        if self._token:
            headers["x-oss-security-token"] = self._token
        signed = sorted(
            n for n in headers if n.startswith("x-oss-") or n in ("content-type", "content-md5")
        )
        canonical = "\n".join(
            [
                method,
                _quote(f"/{bucket}/{key}", safe="/-_.~"),
                _query(query),
                "".join(f"{n}:{headers[n]}\n" for n in signed),
                "",
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{stamp[:8]}/{self._region}/oss/aliyun_v4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"OSS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
        k = hmac.new(f"aliyun_v4{self._secret}".encode(), stamp[:8].encode(), hashlib.sha256)
        derived = k.digest()
        for part in (self._region, "oss", "aliyun_v4_request"):
            derived = hmac.new(derived, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(derived, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"OSS4-HMAC-SHA256 Credential={self._key_id}/{scope},Signature={signature}"
        )
        return headers


def _query(query: dict[str, str]) -> str:
    return "&".join(_quote(k) + (f"={_quote(v)}" if v else "") for k, v in sorted(query.items()))


class _Cleanup(_Retrying):
    """Abort every multipart upload and delete every object of one temporary bucket."""

    def __init__(self, event: bytes, credentials: tuple[str, str, str]) -> None:
        try:
            doc = json.loads(event)
            target = doc["target"]
            self.host, self.bucket = str(target["host"]), str(target["bucket"])
            self.region = str(target["region"])
            self.protocol = str(target.get("protocol", "https"))
            prefix = str(doc["bucket_prefix"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RelayError(f"invalid cleanup event: {type(exc).__name__} {exc}") from None
        if len(prefix) < 4 or not self.bucket.startswith(prefix):
            raise RelayError("refused: only temporary buckets are emptied")
        if not self.host.startswith(self.bucket + ".") or re.search(r"[/@?#\s]", self.host):
            raise RelayError("invalid cleanup event: target host must be <bucket>.<endpoint>")
        if self.protocol not in ("http", "https"):
            raise RelayError("invalid cleanup event: target protocol must be http or https")
        self.signer = _OssV4(*credentials, self.region)
        self.opener = urllib.request.build_opener()
        self.retries = 0
        self._lock = threading.Lock()

    def _call(
        self, method: str, key: str, query: dict[str, str], body: bytes = b"",
        extra: dict[str, str] | None = None,
    ) -> bytes:  # fmt: skip
        url = f"{self.protocol}://{self.host}/{_quote(key, safe='/-_.~')}"
        if query:
            url += "?" + _query(query)

        def sign() -> dict[str, str]:
            return self.signer.sign(method, self.bucket, key, query, extra or {})

        try:
            return _send(self, method, url, sign, body)[2]
        except _OssFailure as exc:
            if exc.code in ("NoSuchUpload", "NoSuchKey"):
                return b""  # already gone
            raise RelayError(str(exc)) from None

    def _listed(self, query: dict[str, str], item: str, *fields: str) -> list[list[str]]:
        root = ElementTree.fromstring(self._call("GET", "", query) or b"<x/>")
        encoded = (root.findtext("EncodingType") or "") == "url"
        return [
            [
                urllib.parse.unquote(text) if encoded and field == "Key" else text
                for field in fields
                for text in [entry.findtext(field) or ""]
            ]
            for entry in root.iter(item)
        ]

    def run(self) -> dict[str, Any]:
        aborted = deleted = 0
        for _ in range(1000):  # each round removes up to 1000 uploads and 1000 objects
            uploads = self._listed(
                {"uploads": "", "max-uploads": "1000", "encoding-type": "url"},
                "Upload", "Key", "UploadId",
            )  # fmt: skip
            for key, upload_id in uploads:
                self._call("DELETE", key, {"uploadId": upload_id})
            keys = [k for (k,) in self._listed({"max-keys": "1000", "encoding-type": "url"},
                                                "Contents", "Key")]  # fmt: skip
            if keys:
                body = "<Delete><Quiet>true</Quiet>{}</Delete>".format(
                    "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
                ).encode()
                md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
                headers = {"Content-MD5": md5, "Content-Type": "application/xml"}
                self._call("POST", "", {"delete": ""}, body, headers)
            aborted, deleted = aborted + len(uploads), deleted + len(keys)
            if not uploads and not keys:
                break
        print(f"relay cleanup: {self.bucket}: {deleted} objects, {aborted} uploads")
        return {"ok": True, "deleted": deleted, "aborted": aborted, "retries": self.retries}
