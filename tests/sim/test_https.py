"""HTTPS through the emulator's proxy port: official clients, unmodified, over real TLS.

Each client keeps its SDK's HTTPS default and is told only what a user behind a TLS-inspecting
proxy tells it: the proxy, and the CA to trust (``sim.ca_path`` / ``sim.ca_bundle_path``).
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import sys
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import anyio.to_thread
import boto3
import pytest
import requests
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config
from anyio.streams.tls import TLSAttribute, TLSStream
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from yarl import URL

from aliasync.sim import CallRecord, Simulator, profile
from aliasync.sim._tls import CertificateAuthority
from tests.clients import ecs_client, fc_client, inside_proxy
from tests.sim.test_core import serve, stop
from tests.sim.test_fc import create, invoke

pytestmark = pytest.mark.anyio

PEM, PKCS8 = Encoding.PEM, PrivateFormat.PKCS8

REGION = "ap-southeast-1"
MAINLAND = "cn-beijing"  # has Function Compute in the default region map

# What OSS users of boto3 must set (docs/alibaba-api-facts.md section 3): virtual-hosted
# addressing, and checksums only when an operation requires them, because boto3's default
# (since 1.36) sends PutObject bodies aws-chunked with a trailing checksum, which OSS refuses.
OSS_BOTO = {
    "signature_version": "s3v4",
    "s3": {"addressing_style": "virtual"},
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
}


def tea_https(sim: Simulator, endpoint: str) -> EcsClient:
    """The ECS client with its default protocol (HTTPS), through the proxy, trusting the CA."""
    return EcsClient(
        Config(
            access_key_id=sim.access_key_id,
            access_key_secret=sim.access_key_secret,
            endpoint=endpoint,
            https_proxy=sim.proxy_url,
            ca=str(sim.ca_bundle_path),
        )
    )


def boto3_https(sim: Simulator, region: str, *, internal: bool = False, **config: Any) -> Any:
    """boto3 S3 on an OSS ``https://`` endpoint through the proxy, trusting the CA bundle."""
    suffix = "-internal" if internal else ""
    options = {**OSS_BOTO, "proxies": {"https": sim.proxy_url}, "retries": {"max_attempts": 1}}
    options.update(config)
    return boto3.client(
        "s3",
        endpoint_url=f"https://s3.oss-{region}{suffix}.aliyuncs.com",
        region_name=region,
        aws_access_key_id=sim.access_key_id,
        aws_secret_access_key=sim.access_key_secret,
        verify=str(sim.ca_bundle_path),
        config=BotoConfig(**options),
    )


def schemes(sim: Simulator, action: str) -> list[str]:
    return [r.scheme for r in sim.calls.records if r.action == action]


async def logged(sim: Simulator, action: str, count: int) -> list[CallRecord]:
    """The call log's ``action`` records once there are ``count``.

    A streamed body is logged when its handler returns, which may be just after the client
    read the last byte.
    """

    def matching() -> list[CallRecord]:
        return [r for r in sim.calls.records if r.action == action]

    with anyio.fail_after(30):
        while len(matching()) < count:  # noqa: ASYNC110 (polls the emulator's state)
            await anyio.sleep(0.01)
    return matching()


async def test_ecs_tea_client_over_https_async_and_sync(sim: Simulator) -> None:
    """The tea ECS client, async and sync, calls ECS over TLS tunnels and gets real answers."""
    client = tea_https(sim, f"ecs.{REGION}.aliyuncs.com")
    regions = await client.describe_regions_async(m.DescribeRegionsRequest())
    assert len(regions.body.regions.region) == len(sim.ctx.regions)
    request = m.DescribeImagesRequest(region_id=REGION, status="ALL")
    images = await anyio.to_thread.run_sync(lambda: client.describe_images(request))
    assert images.body.total_count == 0 and images.body.region_id == REGION
    assert schemes(sim, "DescribeRegions") == ["https"]
    assert schemes(sim, "DescribeImages") == ["https"]
    assert sim.tunnels_opened >= 2


async def test_boto3_s3_over_https_virtual_hosted(sim: Simulator) -> None:
    """boto3 on https:// OSS endpoints: bucket, 3 MiB put, ranged get, list, all through TLS."""
    s3 = boto3_https(sim, REGION)
    data = os.urandom(3 * 2**20)

    def work() -> tuple[bytes, bytes, list[str]]:
        s3.create_bucket(Bucket="tls-bucket")
        s3.put_object(Bucket="tls-bucket", Key="dir/disk.raw", Body=data)
        whole = s3.get_object(Bucket="tls-bucket", Key="dir/disk.raw")["Body"].read()
        part = s3.get_object(Bucket="tls-bucket", Key="dir/disk.raw", Range="bytes=10-19")
        listed = s3.list_objects_v2(Bucket="tls-bucket")["Contents"]
        return whole, part["Body"].read(), [o["Key"] for o in listed]

    whole, part, keys = await anyio.to_thread.run_sync(work)
    assert whole == data and part == data[10:20] and keys == ["dir/disk.raw"]
    info = sim.ctx.models["oss"].object_info(REGION, "tls-bucket", "dir/disk.raw")
    assert info is not None and info.size == len(data)
    gets = await logged(sim, "GetObject", 2)
    assert {r.scheme for r in gets} | set(schemes(sim, "PutObject")) == {"https"}


async def test_boto3_default_checksums_are_refused_as_oss_refuses_them(sim: Simulator) -> None:
    """boto3's default PutObject over HTTPS (aws-chunked + trailer) gets OSS's InvalidArgument."""
    await anyio.to_thread.run_sync(lambda: boto3_https(sim, REGION).create_bucket(Bucket="b-1"))
    defaults = boto3_https(
        sim, REGION, request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
    )  # fmt: skip
    with pytest.raises(ClientError) as info:
        await anyio.to_thread.run_sync(
            lambda: defaults.put_object(Bucket="b-1", Key="k", Body=b"x" * 1024)
        )
    assert info.value.response["Error"]["Code"] == "InvalidArgument"
    assert sim.ctx.models["oss"].object_info(REGION, "b-1", "k") is None


async def test_presigned_url_fetched_over_https_by_urllib_and_requests(sim: Simulator) -> None:
    """A presigned https:// URL downloads through the proxy with urllib and with requests."""
    s3 = boto3_https(sim, REGION)
    data = os.urandom(256 * 1024)

    def presign() -> str:
        s3.create_bucket(Bucket="signed")
        s3.put_object(Bucket="signed", Key="a b.raw", Body=data)
        url: str = s3.generate_presigned_url(
            "get_object", Params={"Bucket": "signed", "Key": "a b.raw"}, ExpiresIn=600
        )
        return url

    url = await anyio.to_thread.run_sync(presign)
    assert url.startswith("https://signed.s3.oss-ap-southeast-1.aliyuncs.com/")

    def with_urllib() -> bytes:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": sim.proxy_url}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=sim.ca_path)),
        )
        with opener.open(url, timeout=30) as response:
            body: bytes = response.read()
            return body

    def with_requests() -> bytes:
        proxies = {"https": sim.proxy_url}
        response = requests.get(url, proxies=proxies, verify=str(sim.ca_bundle_path), timeout=30)
        response.raise_for_status()
        return response.content

    assert await anyio.to_thread.run_sync(with_urllib) == data
    assert await anyio.to_thread.run_sync(with_requests) == data
    assert [r.scheme for r in await logged(sim, "GetObject", 2)] == ["https", "https"]


async def test_plain_http_keeps_working_next_to_https(sim: Simulator) -> None:
    """On the same port, http:// clients (absolute form) and https:// clients are both served."""
    plain = ecs_client(sim, REGION)  # protocol="http", the proxy as http_proxy
    secure = tea_https(sim, f"ecs.{REGION}.aliyuncs.com")
    for client in (plain, secure, plain):
        response = await client.describe_regions_async(m.DescribeRegionsRequest())
        assert len(response.body.regions.region) == len(sim.ctx.regions)
    assert schemes(sim, "DescribeRegions") == ["http", "https", "http"]


FETCHER = """
import http.client, json, urllib.request


def handler(event, context):
    results = []
    for url in json.loads(event)["urls"]:
        received = 0
        try:
            # No proxy, no CA named here: FC's environment has both, as the cloud's has roots.
            with urllib.request.urlopen(url, timeout=30) as response:
                length = int(response.headers["Content-Length"])
                while chunk := response.read(65536):  # b"" at an early EOF too
                    received += len(chunk)
            results.append({"complete": received == length, "received": received})
        except (http.client.IncompleteRead, OSError) as exc:
            results.append({"complete": False, "received": received, "error": type(exc).__name__})
    return results
"""


async def test_function_origin_stays_known_inside_its_tls_tunnel() -> None:
    """A function's https:// fetches carry its region: cross-region downloads get cut, logged."""
    faulty = profile("none").with_(download_failure_rate=1.0)
    async with Simulator(seed=3, profile=faulty) as sim:
        size = 512 * 1024
        data = os.urandom(size)

        def presign(region: str, bucket: str) -> str:
            # A mainland bucket is filled from inside its region (internal endpoint).
            inside = {"proxies": {"https": inside_proxy(sim, region)}} if region == MAINLAND else {}
            s3 = boto3_https(sim, region, internal=region == MAINLAND, **inside)
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="disk.raw", Body=data)
            url: str = s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": "disk.raw"}, ExpiresIn=600
            )
            return url

        abroad = await anyio.to_thread.run_sync(lambda: presign(REGION, "abroad"))
        local = await anyio.to_thread.run_sync(lambda: presign(MAINLAND, "local"))
        client = fc_client(sim, MAINLAND)
        await create(client, "fetcher", FETCHER, timeout=60)
        invoked = sim.clock.now()
        headers, body = await invoke(
            client, "fetcher", json.dumps({"urls": [abroad, local]}).encode()
        )
        assert "x-fc-error-type" not in headers, body
        cut, whole = json.loads(body)
        # Headers and part of the body came through TLS, then the seeded cut dropped it.
        assert not cut["complete"] and 0 < cut["received"] < size, cut
        assert whole == {"complete": True, "received": size}
        gets = [
            (r.region, r.origin, r.scheme)
            for r in sim.calls.records
            if r.action == "GetObject" and r.at >= invoked
        ]
        assert gets == [(REGION, MAINLAND, "https"), (MAINLAND, MAINLAND, "https")]
        # The same URL from outside the cloud (no function's credentials on the tunnel): whole.
        fetched = await anyio.to_thread.run_sync(
            lambda: (
                requests.get(
                    abroad, proxies={"https": sim.proxy_url}, verify=str(sim.ca_bundle_path)
                ).content
            )
        )
        assert fetched == data
        assert (await logged(sim, "GetObject", 3))[-1].origin is None


async def _get_with(sim: Simulator, context: ssl.SSLContext) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            "https://ecs.aliyuncs.com/?Action=DescribeRegions", proxy=sim.proxy_url, ssl=context
        ) as response,
    ):
        await response.read()


async def test_a_client_refuses_an_unknown_or_impostor_ca(sim: Simulator, tmp_path: Path) -> None:
    """Public roots only, or another CA with the same name: the handshake fails, no call lands."""
    public_roots = ssl.create_default_context()
    impostor = CertificateAuthority.load_or_create(tmp_path / "impostor")
    assert impostor.cert.subject == sim.ca.cert.subject
    assert impostor.cert_path.read_bytes() != sim.ca_path.read_bytes()
    for context in (public_roots, ssl.create_default_context(cafile=impostor.cert_path)):
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get_with(sim, context)
    assert sim.calls.records == []
    await _get_with(sim, ssl.create_default_context(cafile=sim.ca_path))  # the real one: fine
    assert schemes(sim, "DescribeRegions") == ["https"]


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, host: str) -> None:
    """A TLS handshake between two in-memory endpoints; raises what the client's check raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    near = client.wrap_bio(c_in, c_out, server_hostname=host)
    far = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"near": False, "far": False}
    for _ in range(10):
        for name, end in (("near", near), ("far", far)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


async def test_ca_vouches_only_for_aliyuncs_names(sim: Simulator, tmp_path: Path) -> None:
    """The CA's name constraint: even a certificate it signed for another site is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    trusting = ssl.create_default_context(cafile=sim.ca_path)
    for host, accepted in (("ecs.aliyuncs.com", True), ("example.com", False)):
        cert = sim.ca.issue(host, key.public_key())
        (tmp_path / "cert.pem").write_bytes(cert.public_bytes(PEM))
        (tmp_path / "key.pem").write_bytes(key.private_bytes(PEM, PKCS8, NoEncryption()))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        if accepted:
            _handshake(trusting, server, host)
        else:
            with pytest.raises(ssl.SSLCertVerificationError, match="permitted subtree violation"):
                _handshake(trusting, server, host)
    # And the proxy does not even open a tunnel to such a name.
    stream = await anyio.connect_tcp("127.0.0.1", URL(sim.proxy_url).port or 0)
    async with stream:
        await stream.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        answer = await stream.receive()
    assert answer.startswith(b"HTTP/1.1 502 ")
    assert sim.unresolved_hosts == {"example.com": 1}


async def _until(stream: anyio.abc.ByteStream, end: bytes) -> bytes:
    """Bytes received until ``end`` has arrived (or the peer closed)."""
    received = b""
    with anyio.fail_after(30):
        while end not in received:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    return received


async def _connect(sim: Simulator, target: str) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", URL(sim.proxy_url).port or 0)
    await stream.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    assert (await _until(stream, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    return stream


async def test_sni_picks_the_certificate_and_port_80_tunnels_plain_http(sim: Simulator) -> None:
    """A TLS client naming another served host gets its certificate; CONNECT :80 is plain."""
    request = "GET /?Action={} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n"
    context = ssl.create_default_context(cafile=sim.ca_path)
    tls = await TLSStream.wrap(
        await _connect(sim, "ecs.aliyuncs.com:443"),
        hostname="sts.aliyuncs.com",
        ssl_context=context,
        standard_compatible=False,
    )
    async with tls:
        assert tls.extra(TLSAttribute.peer_certificate)["subjectAltName"] == (
            ("DNS", "sts.aliyuncs.com"),
        )
        await tls.send(request.format("GetCallerIdentity", "sts.aliyuncs.com").encode())
        answer = await _until(tls, b"\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 4")  # unsigned: refused, in STS's own format
    async with await _connect(sim, "ecs.aliyuncs.com:80") as plain:
        await plain.send(request.format("DescribeRegions", "ecs.aliyuncs.com").encode())
        answer = await _until(plain, b"}")
    assert answer.startswith(b"HTTP/1.1 4")
    seen = [(r.service, r.scheme, r.origin) for r in sim.calls.records]
    assert seen == [("sts", "https", None), ("ecs", "http", None)]
    assert sim.tunnels_opened == 2


async def test_ca_is_made_once_per_folder_and_its_key_stays_private(tmp_path: Path) -> None:
    """Two emulators on one ca_dir share the CA; the key is 0600 and in no env or endpoints."""
    folder = tmp_path / "ca"
    async with Simulator(profile="none", ca_dir=folder) as first:
        cert = first.ca_path.read_bytes()
        assert stat.S_IMODE((folder / "ca-key.pem").stat().st_mode) == 0o600
        env_file = first.write_env(tmp_path / "sim.env")
        endpoints = first.write_endpoints(tmp_path / "endpoints.json")
    async with Simulator(profile="none", ca_dir=folder) as second:
        assert second.ca_path.read_bytes() == cert
        assert second.ca_bundle_path.read_bytes().endswith(cert)
    key = (folder / "ca-key.pem").read_bytes()
    assert b"PRIVATE KEY" in key
    assert stat.S_IMODE((folder / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    for written in (env_file, endpoints, folder / "ca.pem", folder / "ca-bundle.pem"):
        assert b"PRIVATE KEY" not in written.read_bytes()
    assert "ca-key" not in repr(second.ca) and "PRIVATE" not in repr(second.ca)


UNMODIFIED_SDK_CODE = """
import asyncio, json, os
import boto3
from botocore.config import Config as BotoConfig
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.models import Config

region = "ap-southeast-1"
# The async tea client: the environment is all it needs.
ecs = EcsClient(Config(credential=CredentialClient(), region_id=region))
regions = asyncio.run(ecs.describe_regions_async(ecs_models.DescribeRegionsRequest()))
# The sync one trusts certifi alone through a proxy: the README's one supported setting.
ecs_sync = EcsClient(Config(credential=CredentialClient(), region_id=region,
                            ca=os.environ.get("SSL_CERT_FILE")))
images = ecs_sync.describe_images(ecs_models.DescribeImagesRequest(region_id=region, status="ALL"))
# boto3 configured as OSS's documentation asks of every user (virtual hosts, no aws-chunked).
s3 = boto3.client(
    "s3", endpoint_url=f"https://s3.oss-{region}.aliyuncs.com", region_name=region,
    aws_access_key_id=os.environ["OSS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["OSS_ACCESS_KEY_SECRET"],
    config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "virtual"},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))
s3.create_bucket(Bucket="from-env")
s3.put_object(Bucket="from-env", Key="hello.txt", Body=b"hello over https")
body = s3.get_object(Bucket="from-env", Key="hello.txt")["Body"].read()
print(json.dumps({"regions": len(regions.body.regions.region),
                  "images": images.body.total_count, "body": body.decode()}))
"""

ENV_FILE_NAMES = {
    "HTTPS_PROXY", "HTTP_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET",
}  # fmt: skip


async def _introspect(proxy: str, name: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy}/_sim/{name}") as got:
        return await got.json()


async def test_cli_env_out_lets_unmodified_sdk_code_reach_it_over_https(tmp_path: Path) -> None:
    """`aliasync sim --env-out F`: after `set -a; . F`, tea ECS and boto3 code work over TLS."""
    env_file = tmp_path / "sim.env"
    async with serve(tmp_path, "--profile", "none", "--env-out", str(env_file)) as (process, info):
        assert info["env_file"] == str(env_file)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        names = {line.partition("=")[0] for line in env_file.read_text().splitlines()}
        assert names >= ENV_FILE_NAMES
        # Nothing of the test's own environment: the file alone points the SDKs at the emulator.
        clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        script = 'set -a; . "$0"; set +a; exec "$1" -c "$2"'
        command = ["bash", "-c", script, str(env_file), sys.executable, UNMODIFIED_SDK_CODE]
        done = await anyio.run_process(command, env=clean, check=False)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        result = json.loads(done.stdout)
        assert result["images"] == 0 and result["regions"] > 0
        assert result["body"] == "hello over https"
        calls = await _introspect(info["proxy"], "calls")
        assert calls["by_scheme"] == {"https": calls["total"]} and calls["total"] == 5
        state = await _introspect(info["proxy"], "state")
        bucket = state["oss"]["buckets"]["ap-southeast-1"]["from-env"]
        assert bucket["objects"]["hello.txt"]["size"] == len("hello over https")
        code, err = await stop(process)
        assert code in (0, 130) and "Traceback" not in err
    ca = anyio.Path(info["ca"])
    assert Path(ca.parent) == Path(os.environ["ALIASYNC_STATE_DIR"]) / "sim"
    # The next run keeps the CA the user already trusts.
    first = await ca.read_bytes()
    async with serve(tmp_path, "--profile", "none") as (process, again):
        assert again["ca"] == info["ca"] and await ca.read_bytes() == first
        await stop(process)
