"""nodejs20 functions in the emulated Function Compute, driven by the official FC client.

The handlers are plain FC code (``exports.handler = async (event, context) => ...``), run by
the host's Node.js with ali-oss resolvable, as FC's nodejs20 runtime runs them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient

from aliasync.sim import Simulator, profile
from aliasync.sim.ram import trust_policy
from tests.clients import boto3_s3, ecs_client, fc_client, put_object
from tests.sim.test_fc import alive, fails, invoke

pytestmark = pytest.mark.anyio

REGION = "cn-beijing"  # mainland: its public OSS endpoint refuses data access
ROLE = "fc-node-role"
IMPORT_S = 200.0  # a small image imports in 180 virtual seconds


def node_code(files: dict[str, str]) -> str:
    """A base64 ZIP of the given files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return base64.b64encode(buffer.getvalue()).decode()


async def create_node(
    client: FcClient,
    name: str,
    source: str,
    *,
    file: str = "index.js",
    extra: dict[str, str] | None = None,
    **fields: Any,
) -> None:
    """Create a nodejs20 function whose handler is ``index.handler`` in ``file``."""
    body = fc_models.CreateFunctionInput(
        function_name=name,
        handler="index.handler",
        runtime="nodejs20",
        code=fc_models.InputCodeLocation(zip_file=node_code({file: source, **(extra or {})})),
        **fields,
    )
    response = await client.create_function_async(fc_models.CreateFunctionRequest(body=body))
    assert response.status_code == 200


def with_role(sim: Simulator) -> str:
    """The ARN of a role FC may assume (created once per emulator)."""
    ram = sim.ctx.models["ram"]
    if not ram.role_exists(ROLE):
        ram.create_role(ROLE, trust_policy("fc.aliyuncs.com"))
    return f"acs:ram::{sim.account_id}:role/{ROLE}"


def presign(sim: Simulator, region: str, bucket: str, key: str, method: str = "get_object") -> str:
    """A presigned URL of the region's endpoint (internal for mainland regions)."""
    internal = sim.ctx.regions.get(region).mainland  # type: ignore[union-attr]
    s3 = boto3_s3(sim, region, internal=internal)
    url: str = s3.generate_presigned_url(
        method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )
    return url


CONTEXT = """
exports.handler = async (event, context) => {
  const OSS = require('ali-oss');
  return {
    isBuffer: Buffer.isBuffer(event), event: event.toString(),
    requestId: context.requestId, region: context.region, accountId: context.accountId,
    fn: context.function, service: context.service, credentials: context.credentials,
    logger: typeof context.logger.info, fcRegion: process.env.FC_REGION,
    aliOss: typeof OSS, aliOssVersion: require('ali-oss/package.json').version,
    nodeVersion: process.version, cwd: process.cwd(),
  };
};
"""


async def test_context_event_and_ali_oss(sim: Simulator) -> None:
    """The handler gets the event as a Buffer, FC's context and the role key; ali-oss resolves."""
    client = fc_client(sim, REGION)
    await create_node(client, "ctx", CONTEXT, role=with_role(sim), memory_size=256, timeout=20)
    headers, body = await invoke(client, "ctx", b'{"ping": 1}')
    assert "x-fc-error-type" not in headers, body
    got = json.loads(body)
    assert got["isBuffer"] and got["event"] == '{"ping": 1}'
    assert got["requestId"] == headers["x-fc-request-id"]
    assert (got["region"], got["fcRegion"], got["accountId"]) == (REGION, REGION, sim.account_id)
    assert got["fn"] == {"name": "ctx", "handler": "index.handler", "memory": 256, "timeout": 20}
    assert got["service"]["logProject"] == f"aliyun-fc-{REGION}-{sim.account_id}"
    assert got["service"]["qualifier"] == "LATEST"
    creds = got["credentials"]
    assert creds["accessKeyId"].startswith("STS.") and creds["securityToken"]
    key = sim.ctx.keys.lookup(creds["accessKeyId"])
    assert key is not None and key.principal == f"role/{ROLE}"
    assert key.secret == creds["accessKeySecret"]
    assert got["logger"] == "function"
    assert (got["aliOss"], got["aliOssVersion"]) == ("function", "6.19.0")
    assert got["cwd"].endswith("/code")


async def test_es_module_handler_imports_ali_oss(sim: Simulator) -> None:
    """An ES module handler (index.mjs) can ``import`` ali-oss like a CommonJS one requires it."""
    source = (
        "import OSS from 'ali-oss';\n"
        "export const handler = async (event, context) => "
        "({ oss: typeof OSS, key: context.credentials.accessKeyId });\n"
    )
    client = fc_client(sim, REGION)
    await create_node(client, "esm", source, file="index.mjs")
    headers, body = await invoke(client, "esm")
    assert "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"oss": "function", "key": ""}  # no role, empty key


async def test_return_values_and_callback_style(sim: Simulator) -> None:
    """Buffers come back raw, strings as text, objects as JSON; callbacks work as on FC."""
    cases = {
        "buffer": ("async () => Buffer.from([0, 255, 1])", b"\x00\xff\x01"),
        "string": ("async () => 'héllo'", "héllo".encode()),
        "object": ("async () => ({ a: [1, 2] })", b'{"a":[1,2]}'),
        "number": ("async () => 42", b"42"),
        "nothing": ("async () => undefined", b""),
        "callback": ("(event, context, callback) => callback(null, 'cb ok')", b"cb ok"),
    }
    client = fc_client(sim, REGION)
    for name, (handler, expected) in cases.items():
        await create_node(client, name, f"exports.handler = {handler};\n")
        headers, body = await invoke(client, name)
        assert "x-fc-error-type" not in headers, (name, body)
        assert body == expected, name


async def test_console_output_in_tail_log(sim: Simulator) -> None:
    """console.* lines carry FC's time, request ID and level; stdout.write stays raw."""
    source = """
exports.handler = async (event, context) => {
  console.log('to console', { n: 1 });
  console.error('went wrong');
  context.logger.info('via logger');
  console.debug('debug detail');
  process.stdout.write('raw line\\n');
  return 'done';
};
"""
    client = fc_client(sim, REGION)
    await create_node(client, "talker", source)
    headers, body = await invoke(client, "talker", tail=True)
    assert body == b"done"
    request_id = headers["x-fc-request-id"]
    logs = base64.b64decode(headers["x-fc-log-result"]).decode()
    prefix = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} " + re.escape(request_id)
    for level, text in [
        ("info", "to console { n: 1 }"),
        ("error", "went wrong"),
        ("info", "via logger"),
        ("debug", "debug detail"),
    ]:
        assert re.search(f"^{prefix} \\[{level}\\] {re.escape(text)}$", logs, re.M), text
    assert re.search("^raw line$", logs, re.M)
    assert f"FC Invoke End RequestId: {request_id}" in logs

    # ALIYUN_FC_LOG_LEVEL drops console lines below it, never stdout.write.
    await create_node(
        client, "quiet", source, environment_variables={"ALIYUN_FC_LOG_LEVEL": "warn"}
    )
    headers, _ = await invoke(client, "quiet", tail=True)
    logs = base64.b64decode(headers["x-fc-log-result"]).decode()
    assert "went wrong" in logs and "raw line" in logs
    assert "to console" not in logs and "via logger" not in logs


async def test_thrown_error_has_fc_shape(sim: Simulator) -> None:
    """A thrown error answers UnhandledInvocationError with FC's Node.js error body."""
    client = fc_client(sim, REGION)
    await create_node(
        client, "thrower", "exports.handler = async () => { throw new TypeError('bad event'); };\n"
    )
    headers, body = await invoke(client, "thrower", tail=True)
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert (error["errorType"], error["errorMessage"]) == ("TypeError", "bad event")
    assert error["stackTrace"][0] == "TypeError: bad event"
    assert "/code/index.js:1:" in error["stackTrace"][1]
    assert not any("_node_bootstrap" in line for line in error["stackTrace"])
    logs = base64.b64decode(headers["x-fc-log-result"]).decode()
    assert "Error: TypeError: bad event" in logs

    source = "exports.handler = (event, context, callback) => callback(new RangeError('no'));\n"
    await create_node(client, "cb-error", source)
    headers, body = await invoke(client, "cb-error")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(body)["errorType"] == "RangeError"

    await create_node(client, "exits", "exports.handler = async () => process.exit(3);\n")
    headers, body = await invoke(client, "exits")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(body)["errorMessage"].startswith("Process exited unexpectedly")


async def test_timeout_kills_the_process(sim: Simulator, tmp_path: Path) -> None:
    """A handler running past its timeout is killed; the caller gets FC's timeout error."""
    source = """
exports.handler = async (event) => {
  require('fs').writeFileSync(event.toString(), String(process.pid));
  setInterval(() => {}, 1000);
  await new Promise(() => {});
};
"""
    client = fc_client(sim, REGION)
    await create_node(client, "sleeper", source, timeout=1)
    pid_file = tmp_path / "pid"
    headers, body = await invoke(client, "sleeper", str(pid_file).encode())
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(body)["errorMessage"].startswith("Function timed out after 1 seconds")
    assert not alive(int(pid_file.read_text()))


async def test_memory_limit(sim: Simulator) -> None:
    """A 1 GB buffer or a heap filled past memorySize ends the invocation with MemoryError."""
    hogs = {
        "buffer-hog": "exports.handler = async () => Buffer.alloc(2 ** 30).length;\n",
        "heap-hog": (
            "exports.handler = async () => {\n"
            "  const keep = [];\n"
            "  for (;;) keep.push(new Array(1e5).fill(1.5));\n"
            "};\n"
        ),
    }
    client = fc_client(sim, REGION)
    for name, source in hogs.items():
        await create_node(client, name, source, memory_size=128)
        headers, body = await invoke(client, name)
        assert headers["x-fc-error-type"] == "UnhandledInvocationError", name
        error = json.loads(body)
        assert error["errorType"] == "MemoryError", (name, error)
        assert error["errorMessage"].startswith("Process exited unexpectedly"), name
    # 256 MB of buffers fit in a 512 MB function.
    await create_node(
        client, "fits", "exports.handler = async () => Buffer.alloc(2 ** 28, 1).length;\n",
        memory_size=512,
    )  # fmt: skip
    headers, body = await invoke(client, "fits")
    assert "x-fc-error-type" not in headers and body == str(2**28).encode()


FETCH_BOTH = """
const http = require('http');
function viaHttp(url) {
  return new Promise((resolve) => {
    http.get(url, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      const body = () => Buffer.concat(parts).toString();
      res.on('end', () => resolve({ status: res.statusCode, body: body() }));
      res.on('error', (e) => resolve({ error: e.code || String(e) }));
      res.on('aborted', () => resolve({ error: 'aborted' }));
    }).on('error', (e) => resolve({ error: e.code || String(e) }));
  });
}
async function viaFetch(url) {
  try {
    const res = await fetch(url);
    return { status: res.status, body: await res.text() };
  } catch (e) {
    return { error: String(e.cause || e) };
  }
}
exports.handler = async (event) => {
  const { url } = JSON.parse(event.toString());
  return { fetch: await viaFetch(url), http: await viaHttp(url) };
};
"""


async def test_outgoing_http_goes_through_the_emulator_with_its_origin() -> None:
    """fetch and http.get reach OSS through the emulator, which knows the function's region.

    Every presigned cross-region download is cut in this profile: the function's download
    from another region is cut, from its own region it is whole, and the test's own download
    of the same URL (no origin region) is whole.
    """
    cut_everything = profile("none").with_(download_failure_rate=1.0)
    async with Simulator(seed=1, profile=cut_everything, time_scale=1000.0) as sim:
        here, there = "ap-southeast-1", "eu-central-1"
        data = b"0123456789" * 100_000
        for region in (here, there):
            await put_object(sim, region, f"src-{region}", "blob", data)
        client = fc_client(sim, here)
        await create_node(client, "getter", FETCH_BOTH, timeout=30)

        local = presign(sim, here, f"src-{here}", "blob")
        _, body = await invoke(client, "getter", json.dumps({"url": local}).encode())
        got = json.loads(body)
        for way in ("fetch", "http"):
            assert got[way]["status"] == 200 and got[way]["body"] == data.decode(), way
        assert sim.ctx.faults.counts()["download_cut"] == 0

        remote = presign(sim, there, f"src-{there}", "blob")
        _, body = await invoke(client, "getter", json.dumps({"url": remote}).encode())
        got = json.loads(body)
        for way in ("fetch", "http"):
            assert "error" in got[way] or got[way]["body"] != data.decode(), (way, got[way])
        assert sim.ctx.faults.counts()["download_cut"] == 2

        s3 = boto3_s3(sim, there)
        whole = await anyio.to_thread.run_sync(
            lambda: s3.get_object(Bucket=f"src-{there}", Key="blob")["Body"].read()
        )
        assert whole == data and sim.ctx.faults.counts()["download_cut"] == 2


ALI_OSS_AT_S3_FACE = """
const OSS = require('ali-oss');
exports.handler = async (event, context) => {
  const { bucket } = JSON.parse(event.toString());
  const c = context.credentials;
  const client = new OSS({
    endpoint: `http://s3.oss-${context.region}-internal.aliyuncs.com`, bucket,
    accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, stsToken: c.securityToken,
    timeout: 20000,
  });
  try {
    await client.get('missing-key');
    return { answered: 'no error' };
  } catch (e) {
    return { status: e.status, code: e.code, requestId: e.requestId, name: e.name };
  }
};
"""


async def test_ali_oss_requests_reach_the_emulator(sim: Simulator) -> None:
    """ali-oss's own HTTP agent goes through the emulator, which answers (here: refuses).

    ali-oss signs the OSS native way, which the emulator's S3-compatible face refuses; the
    answer, with the emulator's request ID, proves the request got there.
    """
    await put_object(sim, REGION, "node-dest-1", "other", b"x")
    client = fc_client(sim, REGION)
    await create_node(client, "alioss", ALI_OSS_AT_S3_FACE, role=with_role(sim), timeout=30)
    calls_before = len(sim.calls.records)
    headers, body = await invoke(client, "alioss", json.dumps({"bucket": "node-dest-1"}).encode())
    assert "x-fc-error-type" not in headers, body
    got = json.loads(body)
    assert got["status"] in (400, 403), got
    assert got["requestId"], got
    oss_calls = [r for r in sim.calls.records[calls_before:] if r.service == "oss"]
    assert oss_calls and oss_calls[-1].region == REGION
    assert oss_calls[-1].error == got["code"]


RELAY_FETCH = """
const crypto = require('crypto');
exports.handler = async (event) => {
  const { sources, put, sha256 } = JSON.parse(event.toString());
  for (const url of sources) {
    let data;
    try {
      const res = await fetch(url);
      if (res.status !== 200) continue;
      data = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      console.log('source failed:', String(e.cause || e));
      continue;
    }
    if (crypto.createHash('sha256').update(data).digest('hex') !== sha256) continue;
    const stored = await fetch(put, { method: 'PUT', body: data,
                                      headers: { 'content-type': 'application/octet-stream' } });
    return { status: stored.status, size: data.length };
  }
  throw new Error('no source delivered the object');
};
"""

RELAY_ALI_OSS = """
const crypto = require('crypto');
const OSS = require('ali-oss');
exports.handler = async (event, context) => {
  const { sources, bucket, key, sha256 } = JSON.parse(event.toString());
  const c = context.credentials;
  const client = new OSS({
    region: `oss-${context.region}`, internal: true, bucket,
    accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret, stsToken: c.securityToken,
    timeout: 60000,
  });
  for (const url of sources) {
    let data;
    try {
      const res = await fetch(url);
      if (res.status !== 200) continue;
      data = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      continue;
    }
    if (crypto.createHash('sha256').update(data).digest('hex') !== sha256) continue;
    const result = await client.put(key, data);
    return { status: result.res.status, size: data.length };
  }
  throw new Error('no source delivered the object');
};
"""

DISK = b"\x00" * 65536 + b"a disk image relayed by a nodejs20 function" + b"\x55\xaa" * 256


async def _relay_sources(sim: Simulator) -> list[str]:
    """Presigned GET URLs of the disk in two uncensored regions (public endpoints)."""
    urls = []
    for region in ("ap-southeast-1", "eu-central-1"):
        await put_object(sim, region, f"src-{region}", "disk.raw", DISK)
        urls.append(presign(sim, region, f"src-{region}", "disk.raw"))
    return urls


async def _import_and_digest(sim: Simulator, bucket: str, key: str) -> str:
    """ImportImage from the mainland bucket (tea ECS client); the image's content digest."""
    ecs = ecs_client(sim, REGION)
    mapping = ecs_models.ImportImageRequestDiskDeviceMapping(
        ossbucket=bucket, ossobject=key, format="RAW", disk_image_size=1
    )
    request = ecs_models.ImportImageRequest(
        region_id=REGION, image_name="node-relayed", disk_device_mapping=[mapping]
    )
    image_id = (await ecs.import_image_async(request)).body.image_id
    await sim.clock.sleep(IMPORT_S)
    described = await ecs.describe_images_async(
        ecs_models.DescribeImagesRequest(region_id=REGION, image_id=image_id, status="Available")
    )
    assert [i.image_id for i in described.body.images.image] == [image_id]
    images = sim.state()["ecs"]["regions"][REGION]["images"]
    digest: str = next(i["content_digest"] for i in images if i["id"] == image_id)
    return digest


async def test_fetch_relay_into_mainland_bucket_then_import(sim: Simulator) -> None:
    """A nodejs20 function copies presigned sources into a mainland bucket, then ImportImage."""
    sources = await _relay_sources(sim)
    bucket = "node-relay-dest"
    await anyio.to_thread.run_sync(
        lambda: boto3_s3(sim, REGION, internal=True).create_bucket(Bucket=bucket)
    )
    put = presign(sim, REGION, bucket, "disk.raw", method="put_object")
    client = fc_client(sim, REGION)
    await create_node(client, "relay-fetch", RELAY_FETCH, memory_size=256, timeout=60)
    event = {"sources": sources, "put": put, "sha256": hashlib.sha256(DISK).hexdigest()}
    headers, body = await invoke(client, "relay-fetch", json.dumps(event).encode())
    assert "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"status": 200, "size": len(DISK)}
    assert await _import_and_digest(sim, bucket, "disk.raw") == hashlib.sha256(DISK).hexdigest()


@pytest.mark.xfail(strict=True, reason="needs the OSS native API in the emulator (wp-oss)")
async def test_ali_oss_relay_into_mainland_bucket_then_import(sim: Simulator) -> None:
    """The issue's test: presigned sources -> ali-oss put over the internal endpoint -> import."""
    sources = await _relay_sources(sim)
    bucket = "node-relay-alioss"
    await anyio.to_thread.run_sync(
        lambda: boto3_s3(sim, REGION, internal=True).create_bucket(Bucket=bucket)
    )
    client = fc_client(sim, REGION)
    await create_node(
        client, "relay-alioss", RELAY_ALI_OSS, role=with_role(sim), memory_size=256, timeout=60
    )
    event = {"sources": sources, "bucket": bucket, "key": "disk.raw"}
    event["sha256"] = hashlib.sha256(DISK).hexdigest()
    headers, body = await invoke(client, "relay-alioss", json.dumps(event).encode())
    assert "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"status": 200, "size": len(DISK)}
    assert await _import_and_digest(sim, bucket, "disk.raw") == hashlib.sha256(DISK).hexdigest()


async def test_without_node_nodejs_fails_and_python_still_runs(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No Node.js (or no modules): invoking nodejs20 fails naming what is missing; Python runs."""
    client = fc_client(sim, REGION)
    await create_node(client, "node-fn", "exports.handler = async () => 'node ran';\n")
    python_source = node_code({"index.py": "def handler(event, context):\n    return 'py ran'\n"})
    body = fc_models.CreateFunctionInput(
        function_name="py-fn",
        handler="index.handler",
        runtime="python3.10",
        code=fc_models.InputCodeLocation(zip_file=python_source),
    )
    await client.create_function_async(fc_models.CreateFunctionRequest(body=body))

    monkeypatch.setenv("ALIASYNC_NODE", "/nonexistent/node")
    error = await fails(invoke(client, "node-fn"))
    assert (error.status_code, error.code) == (412, "CAExited")
    assert "/nonexistent/node" in error.message and "ALIASYNC_NODE" in error.message
    assert (await invoke(client, "py-fn"))[1] == b"py ran"

    monkeypatch.delenv("ALIASYNC_NODE")
    monkeypatch.setenv("ALIASYNC_NODE_MODULES", str(tmp_path / "empty"))
    error = await fails(invoke(client, "node-fn"))
    assert (error.status_code, error.code) == (412, "CAExited")
    for module in ("ali-oss", "undici", "global-agent"):
        assert module in error.message
    counts = {f["name"]: f["invocations"] for f in sim.ctx.models["fc"].functions()}
    assert counts == {"node-fn": 0, "py-fn": 1}

    monkeypatch.delenv("ALIASYNC_NODE_MODULES")
    assert (await invoke(client, "node-fn"))[1] == b"node ran"
