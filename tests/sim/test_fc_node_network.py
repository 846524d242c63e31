"""nodejs20 functions on the network: fetch, http and ali-oss through the emulator, a relay.

Everything a function sends goes through the emulator's proxy, which knows the function's
region. The relay tests copy an object from presigned URLs into a mainland bucket through the
internal endpoint, then import it as an ECS image.
"""

from __future__ import annotations

import hashlib
import json

import anyio
import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient

from aliasync.sim import Simulator, profile
from tests.clients import boto3_s3, ecs_client, fc_client, put_object
from tests.sim.test_fc import invoke
from tests.sim.test_fc_node import REGION, create_node, with_role
from tests.sim.test_https import boto3_https, tea_https

pytestmark = pytest.mark.anyio

IMPORT_S = 200.0  # a small image imports in 180 virtual seconds


def presign(sim: Simulator, region: str, bucket: str, key: str, method: str = "get_object") -> str:
    """A presigned URL of the region's endpoint (internal for mainland regions)."""
    internal = sim.ctx.regions.get(region).mainland  # type: ignore[union-attr]
    s3 = boto3_s3(sim, region, internal=internal)
    url: str = s3.generate_presigned_url(
        method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
    )
    return url


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
  const { sources, bucket, key, sha256, secure } = JSON.parse(event.toString());
  const c = context.credentials;
  const client = new OSS({
    region: `oss-${context.region}`, internal: true, secure: Boolean(secure), bucket,
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


async def _import_and_digest(
    sim: Simulator, bucket: str, key: str, ecs: EcsClient | None = None
) -> str:
    """ImportImage from the mainland bucket (tea ECS client); the image's content digest."""
    ecs = ecs or ecs_client(sim, REGION)
    mapping = ecs_models.ImportImageRequestDiskDeviceMapping(
        ossbucket=bucket, ossobject=key, format="RAW", disk_image_size=1
    )
    request = ecs_models.ImportImageRequest(
        region_id=REGION, image_name="node-relayed", disk_device_mapping=[mapping]
    )
    image_id = (await ecs.import_image_async(request)).body.image_id
    sim.clock.advance(IMPORT_S)
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
    await anyio.to_thread.run_sync(lambda: boto3_s3(sim, REGION).create_bucket(Bucket=bucket))
    put = presign(sim, REGION, bucket, "disk.raw", method="put_object")
    client = fc_client(sim, REGION)
    await create_node(client, "relay-fetch", RELAY_FETCH, memory_size=256, timeout=60)
    event = {"sources": sources, "put": put, "sha256": hashlib.sha256(DISK).hexdigest()}
    headers, body = await invoke(client, "relay-fetch", json.dumps(event).encode())
    assert "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"status": 200, "size": len(DISK)}
    assert await _import_and_digest(sim, bucket, "disk.raw") == hashlib.sha256(DISK).hexdigest()


async def test_ali_oss_relay_into_mainland_bucket_then_import(sim: Simulator) -> None:
    """The issue's test: presigned sources -> ali-oss put over the internal endpoint -> import."""
    sources = await _relay_sources(sim)
    bucket = "node-relay-alioss"
    await anyio.to_thread.run_sync(lambda: boto3_s3(sim, REGION).create_bucket(Bucket=bucket))
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


def _tls_source(sim: Simulator, region: str) -> str:
    """The disk in a new bucket of an uncensored region, over HTTPS; its presigned https URL."""
    s3, bucket = boto3_https(sim, region), f"tls-src-{region}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="disk.raw", Body=DISK)
    url: str = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "disk.raw"}, ExpiresIn=600
    )
    return url


async def test_ali_oss_relay_over_https_then_import_over_https(sim: Simulator) -> None:
    """The HTTPS variant: presigned https sources, ali-oss with ``secure: true`` on the internal
    endpoint, ImportImage by the tea client over TLS; the image holds the source's bytes."""
    sources = [
        await anyio.to_thread.run_sync(_tls_source, sim, region)
        for region in ("ap-southeast-1", "eu-central-1")
    ]
    assert all(url.startswith("https://") for url in sources)
    bucket = "node-relay-tls"
    await anyio.to_thread.run_sync(lambda: boto3_https(sim, REGION).create_bucket(Bucket=bucket))
    client = fc_client(sim, REGION)
    await create_node(
        client, "relay-tls", RELAY_ALI_OSS, role=with_role(sim), memory_size=256, timeout=60
    )
    event = {"sources": sources, "bucket": bucket, "key": "disk.raw", "secure": True}
    event["sha256"] = hashlib.sha256(DISK).hexdigest()
    invoked = sim.clock.now()
    headers, body = await invoke(client, "relay-tls", json.dumps(event).encode())
    assert "x-fc-error-type" not in headers, body
    assert json.loads(body) == {"status": 200, "size": len(DISK)}
    from_inside = [
        (r.action, r.region, r.scheme)
        for r in sim.calls.records
        if r.service == "oss" and r.at >= invoked and r.origin == REGION
    ]
    assert from_inside == [
        ("GetObject", "ap-southeast-1", "https"), ("PutObject", REGION, "https"),
    ]  # fmt: skip
    ecs = tea_https(sim, f"ecs.{REGION}.aliyuncs.com")
    digest = await _import_and_digest(sim, bucket, "disk.raw", ecs)
    assert digest == hashlib.sha256(DISK).hexdigest()
    assert {r.scheme for r in sim.calls.records if r.service == "ecs"} == {"https"}
