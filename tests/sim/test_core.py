"""The emulator as a whole: seeded faults, lost responses, latency, introspection, leaks, CLI."""

from __future__ import annotations

import json
import signal
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import anyio.to_thread
import boto3
import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.models import Config
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from Tea.exceptions import UnretryableException

import aliasync.sim
from aliasync.sim import PROFILES, Clock, FaultRule, Simulator
from aliasync.sim._faults import FaultEngine
from tests.clients import _boto_options, boto3_s3, ecs_client, fc_client, s3_endpoint
from tests.sim.test_ecs import IMPORT_S, OTHER, REGION, import_request, region_images, upload
from tests.sim.test_fc import create as create_function

pytestmark = pytest.mark.anyio

S3_REGION = "eu-central-1"  # public OSS endpoint allows data calls (not mainland China)
BOTO_CONNECTION_ERRORS = (BotoConnectionError, HTTPClientError)
REGION_FILE = Path(aliasync.sim.__file__).parent / "data" / "regions.json"
DEFAULT_REGIONS = [r["id"] for r in json.loads(REGION_FILE.read_text())["regions"]]


def s3_once(sim: Simulator, region: str = S3_REGION) -> Any:
    """A boto3 S3 client that never retries (``max_attempts`` alone still allows one retry)."""
    options = {**_boto_options(sim), "retries": {"total_max_attempts": 1}}
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint(region),
        region_name=region,
        aws_access_key_id=sim.access_key_id,
        aws_secret_access_key=sim.access_key_secret,
        config=BotoConfig(**options),
    )


def lossy(*patterns: str) -> Any:
    """Profile ``none`` where calls matching ``patterns`` commit and then lose their response."""
    return PROFILES["none"].with_(
        rules=tuple(FaultRule(p, lost_response_rate=1.0) for p in patterns)
    )


# --- seeded faults ------------------------------------------------------------------------


async def _harsh_run(seed: int) -> list[tuple[str, str, str | None, str]]:
    """200 DescribeRegions and 100 CreateBucket/DeleteBucket pairs under ``harsh``; the faults."""
    # A throttling storm lasts 60 virtual seconds; at 10^7x that is 6 us of real time, so it
    # never spans two sequential calls and the outcome depends on the seed alone.
    async with Simulator(seed=seed, profile="harsh", time_scale=1e7) as sim:
        ecs = ecs_client(sim, REGION)
        for _ in range(200):
            with suppress(AlibabaCloudException, UnretryableException):
                await ecs.describe_regions_async(m.DescribeRegionsRequest())
        s3 = s3_once(sim)

        def buckets() -> None:
            for i in range(100):
                for call in (s3.create_bucket, s3.delete_bucket):
                    with suppress(ClientError, BotoCoreError):
                        call(Bucket=f"seeded-{i}")

        await anyio.to_thread.run_sync(buckets)
        assert sim.calls.count() == 400
        return [(f.service, f.action, f.region, f.kind) for f in sim.ctx.faults.injected]


async def test_same_seed_gives_the_same_faults() -> None:
    """Two emulators with one seed inject identical fault sequences; another seed differs."""
    first, again, other = await _harsh_run(11), await _harsh_run(11), await _harsh_run(12)
    assert len(first) >= 5 and {k for *_, k in first} >= {"lost"}
    # The calls are sequential, so equal lists mean equal kinds per (service, action, region).
    assert first == again
    assert first != other


# --- lost responses ---------------------------------------------------------------------


async def test_lost_create_bucket_is_committed() -> None:
    """A CreateBucket whose response is lost fails in boto3, yet the bucket exists."""
    async with Simulator(seed=1, profile=lossy("oss:CreateBucket:*")) as sim:
        s3 = s3_once(sim)
        with pytest.raises(BOTO_CONNECTION_ERRORS):
            await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="lost-reply"))
        assert [b["name"] for b in sim.ctx.models["oss"].buckets()] == ["lost-reply"]
        await anyio.to_thread.run_sync(lambda: s3.head_bucket(Bucket="lost-reply"))
        assert sim.faults_injected()["counts"] == {"lost": 1}
        assert [r.status for r in sim.calls.records] == [0, 200]


async def test_lost_import_and_copy_are_committed_and_client_token_replays() -> None:
    """Lost ImportImage/CopyImage still create the image; a retry with the token gets its ID."""
    async with Simulator(seed=2, profile="none") as sim:
        client = ecs_client(sim, REGION)
        bucket, key = await upload(sim, REGION)
        sim.ctx.faults.profile = lossy("ecs:ImportImage:*", "ecs:CopyImage:*")
        request = import_request(REGION, bucket, key, "lost-import", client_token="import-tok-1")
        with pytest.raises(UnretryableException):
            await client.import_image_async(request)
        (image_id,) = region_images(sim, REGION)
        sim.ctx.faults.profile = PROFILES["none"]
        replay = await client.import_image_async(request)
        assert replay.body.image_id == image_id and list(region_images(sim, REGION)) == [image_id]

        sim.clock.advance(IMPORT_S)
        copy = m.CopyImageRequest(
            region_id=REGION, image_id=image_id, destination_region_id=OTHER, client_token="c-1"
        )
        sim.ctx.faults.profile = lossy("ecs:ImportImage:*", "ecs:CopyImage:*")
        with pytest.raises(UnretryableException):
            await client.copy_image_async(copy)
        (copy_id,) = region_images(sim, OTHER)
        sim.ctx.faults.profile = PROFILES["none"]
        assert (await client.copy_image_async(copy)).body.image_id == copy_id
        assert list(region_images(sim, OTHER)) == [copy_id]
        assert sim.faults_injected()["counts"] == {"lost": 2}
        assert sim.leaks()["duplicate_images"] == []


# --- transient faults on the wire -------------------------------------------------------


async def test_transient_faults_reach_clients_as_documented_errors() -> None:
    """500/503/Throttling/dropped faults arrive as the services' documented codes; all counted."""
    async with Simulator(seed=5, profile=PROFILES["none"].with_(transient_rate=1.0)) as sim:
        ecs = ecs_client(sim, REGION)
        ecs_seen: list[tuple[str, int]] = []
        for _ in range(40):
            try:
                await ecs.describe_regions_async(m.DescribeRegionsRequest())
            except AlibabaCloudException as error:
                ecs_seen.append((error.code, error.status_code))
            except UnretryableException:
                ecs_seen.append(("dropped", 0))
        assert set(ecs_seen) == {("Throttling", 400), ("InternalError", 500),
            ("ServiceUnavailable", 503), ("dropped", 0)}  # fmt: skip
        s3 = s3_once(sim)

        def oss_calls() -> list[tuple[str, int]]:
            seen = []
            for _ in range(40):
                try:
                    s3.list_objects_v2(Bucket="nothing-here")
                except ClientError as error:
                    meta = error.response["ResponseMetadata"]
                    seen.append((error.response["Error"]["Code"], meta["HTTPStatusCode"]))
                except BOTO_CONNECTION_ERRORS:
                    seen.append(("dropped", 0))
            return seen

        oss_seen = await anyio.to_thread.run_sync(oss_calls)
        assert set(oss_seen) == {("SlowDown", 503), ("InternalError", 500),
            ("ServiceUnavailable", 503), ("dropped", 0)}  # fmt: skip
        kinds = {"Throttling": "throttle", "SlowDown": "throttle", "InternalError": "internal",
            "ServiceUnavailable": "unavailable", "dropped": "drop"}  # fmt: skip
        expected = Counter(kinds[code] for code, _ in ecs_seen + oss_seen)
        assert sim.faults_injected()["counts"] == expected and expected.total() == 80


# --- latency ----------------------------------------------------------------------------


def test_latency_model_is_seeded_lognormal_around_the_median() -> None:
    """api_latency draws positive virtual seconds around the median; Clock maps them to real."""
    profile = PROFILES["none"].with_(api_latency_median=0.05)

    def draws(seed: int) -> list[float]:
        engine = FaultEngine(profile, seed)
        return [engine.api_latency("ecs", "DescribeRegions", REGION) for _ in range(2001)]

    values = draws(3)
    assert all(v > 0 for v in values) and values == draws(3) and values != draws(4)
    assert 0.04 < sorted(values)[1000] < 0.0625
    flat = FaultEngine(profile.with_(api_latency_sigma=0.0), 3)
    assert flat.api_latency("oss", "PutObject", None) == pytest.approx(0.05)
    assert Clock(1.0).to_real(0.05) == pytest.approx(0.05)
    assert Clock(1000.0).to_real(0.05) == pytest.approx(5e-5)
    with pytest.raises(ValueError, match="positive"):
        Clock(0)


async def test_a_call_waits_its_latency_on_the_virtual_clock() -> None:
    """A call sleeps its drawn latency on the emulator's clock: an hour of it (at time scale 1)
    holds the call until the clock is moved on by that hour."""
    hour = PROFILES["none"].with_(api_latency_median=3600.0, api_latency_sigma=0.0)
    answers: list[str] = []
    async with Simulator(profile=hour, time_scale=1.0) as sim, aiohttp.ClientSession() as s:

        async def call() -> None:
            url = f"http://ecs.{REGION}.aliyuncs.com/?Action=DescribeRegions"
            async with s.get(url, proxy=sim.proxy_url) as response:
                answers.append((await response.json())["Code"])

        async with anyio.create_task_group() as tg:
            sent = sim.clock.now()
            tg.start_soon(call)
            await sim.clock.wait_for_sleepers()
            (deadline,) = sim.clock.sleepers
            # It went to sleep between "sent" and now, for 3600 virtual seconds.
            assert sent + 3600.0 <= deadline <= sim.clock.now() + 3600.0
            assert answers == [] and sim.calls.count() == 0  # a call is logged once answered
            sim.clock.advance(3600.0)
    assert answers == ["MissingParameter"] and sim.calls.count("DescribeRegions") == 1


# --- introspection ----------------------------------------------------------------------


async def test_introspection_over_http(sim: Simulator) -> None:
    """/_sim/ views answer JSON directly (not proxied), without the secret; unknown ones 404."""
    await ecs_client(sim, REGION).describe_regions_async(m.DescribeRegionsRequest())
    s3 = boto3_s3(sim, S3_REGION)
    await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="seen"))
    views: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name in ("state", "calls", "faults", "leaks", "endpoints", "time"):
            async with session.get(f"{sim.proxy_url}/_sim/{name}") as response:
                assert response.status == 200 and response.content_type == "application/json"
                text = await response.text()
                assert sim.access_key_secret not in text
                views[name] = json.loads(text)
        async with session.get(f"{sim.proxy_url}/_sim/nothing") as response:
            assert response.status == 404
            assert "nothing" in (await response.json())["error"]
        async with session.get(f"{sim.proxy_url}/?Action=DescribeRegions") as response:
            assert response.status == 404
            assert "proxy" in (await response.json())["error"]
    assert set(views["state"]) == set(sim.ctx.models)
    assert "seen" in views["state"]["oss"]["buckets"][S3_REGION]
    assert views["calls"]["total"] == 2
    assert views["calls"]["by_action"] == {"ecs:DescribeRegions": 1, "oss:CreateBucket": 1}
    assert {"service": "oss", "action": "CreateBucket", "region": S3_REGION, "count": 1} in (
        views["calls"]["by_action_region"]
    )
    assert views["faults"] == {"seed": 0, "profile": "none", "counts": {}, "injected": []}
    assert set(views["leaks"]) == {"buckets", "functions", "multipart_uploads",
        "orphan_snapshots", "duplicate_images"}  # fmt: skip
    assert [b["name"] for b in views["leaks"]["buckets"]] == ["seen"]
    endpoints = views["endpoints"]
    assert endpoints["proxy"] == sim.proxy_url
    assert endpoints["credentials"] == "(in the endpoints file)"
    assert set(endpoints["regions"]) == set(sim.ctx.regions.ids())
    assert views["time"]["time_scale"] == 1000.0 and views["time"]["now"] > 0


# --- leaks ------------------------------------------------------------------------------


async def test_leaks_report_what_was_left_behind(sim: Simulator) -> None:
    """Buckets, open uploads, functions and orphan snapshots show up; the baseline excludes."""
    fc_region = "cn-beijing"
    await create_function(fc_client(sim, fc_region), "old-fn")
    s3 = boto3_s3(sim, S3_REGION)
    await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="old-bucket"))
    sim.mark_baseline()
    assert not sim.has_leaks()

    await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="left"))
    upload_id = (
        await anyio.to_thread.run_sync(lambda: s3.create_multipart_upload(Bucket="left", Key="k"))
    )["UploadId"]
    await create_function(fc_client(sim, fc_region), "left-fn")
    client = ecs_client(sim, REGION)
    bucket, key = await upload(sim, REGION)
    image_id = (
        await client.import_image_async(import_request(REGION, bucket, key, "doomed"))
    ).body.image_id
    sim.clock.advance(IMPORT_S)
    (snapshot_id,) = region_images(sim, REGION)[image_id]["snapshot_ids"]
    assert sim.leaks()["orphan_snapshots"] == []  # in use by its image
    await client.delete_image_async(m.DeleteImageRequest(region_id=REGION, image_id=image_id))

    leaks = sim.leaks()
    assert sorted(b["name"] for b in leaks["buckets"]) == sorted(["left", bucket])
    assert [(f["region"], f["name"]) for f in leaks["functions"]] == [(fc_region, "left-fn")]
    assert [(u["bucket"], u["upload_id"]) for u in leaks["multipart_uploads"]] == [
        ("left", upload_id)
    ]
    assert [(s["region"], s["id"]) for s in leaks["orphan_snapshots"]] == [(REGION, snapshot_id)]
    # ImportImage and CopyImage refuse a name already used in the region, so the API cannot
    # make duplicates: after normal use there are none.
    assert leaks["duplicate_images"] == []
    assert sim.has_leaks()


# --- the command line -------------------------------------------------------------------


@asynccontextmanager
async def serve(tmp: Path, *args: str) -> AsyncIterator[tuple[anyio.abc.Process, dict[str, Any]]]:
    """``python -m aliasync sim`` in the background: the process and its JSON summary line."""
    command = [sys.executable, "-m", "aliasync", "sim", "--port", "0", *args]
    command += ["--endpoints-out", str(tmp / "endpoints.json")]
    async with await anyio.open_process(command) as process:
        try:
            assert process.stdout is not None
            line = b""
            with anyio.fail_after(30):
                while not line.endswith(b"\n"):
                    line += await process.stdout.receive(1)
            yield process, json.loads(line)
        finally:
            if process.returncode is None:  # the test failed before stopping it
                process.kill()


async def stop(process: anyio.abc.Process) -> tuple[int, str]:
    """SIGINT the process; its exit code and what it wrote on stderr."""
    process.send_signal(signal.SIGINT)
    with anyio.fail_after(30):
        code = await process.wait()
    assert process.stderr is not None
    err = b""
    with suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            err += await process.stderr.receive()
    return code, err.decode()


async def regions_of(path: Path, region: str) -> list[str]:
    """DescribeRegions by the official ECS client, configured from an endpoints file alone."""
    doc = json.loads(await anyio.Path(path).read_text())
    keys, endpoint = doc["credentials"], doc["regions"][region]["ecs"]
    client = EcsClient(Config(access_key_id=keys["access_key_id"], endpoint=endpoint,
        access_key_secret=keys["access_key_secret"], protocol=doc["protocol"],
        http_proxy=doc["proxy"]))  # fmt: skip
    response = await client.describe_regions_async(m.DescribeRegionsRequest())
    return [r.region_id for r in response.body.regions.region]


async def test_cli_sim_serves_until_interrupted(tmp_path: Path) -> None:
    """`aliasync sim` prints its proxy, writes a 0600 endpoints file that works, stops on SIGINT."""
    async with serve(tmp_path, "--profile", "none") as (process, summary):
        path = tmp_path / "endpoints.json"
        assert summary["endpoints_file"] == str(path) and summary["profile"] == "none"
        assert summary["proxy"].startswith("http://127.0.0.1:")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        doc = json.loads(path.read_text())
        assert doc["proxy"] == summary["proxy"] and doc["account_id"]
        assert set(doc["credentials"]) == {"access_key_id", "access_key_secret"}
        assert list(doc["regions"]) == DEFAULT_REGIONS
        assert await regions_of(path, REGION) == DEFAULT_REGIONS
        code, err = await stop(process)
    assert code in (0, 130), err
    assert "Traceback" not in err


async def test_cli_sim_honours_a_region_file(tmp_path: Path) -> None:
    """`--regions FILE` with three regions: the endpoints file and DescribeRegions list them."""
    ids = ["xx-one", "xx-two", "xx-three"]
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({"regions": [{"id": i} for i in ids]}))
    async with serve(tmp_path, "--profile", "none", "--regions", str(regions)) as (process, info):
        assert info["regions"] == 3
        path = tmp_path / "endpoints.json"
        assert list(json.loads(path.read_text())["regions"]) == ids
        assert await regions_of(path, "xx-two") == ids
        code, _ = await stop(process)
    assert code in (0, 130)


@pytest.mark.parametrize(
    "content", ["{not json", '{"regions": [{"id": "xx-one", "bogus": 1}]}', '{"regions": []}']
)
async def test_cli_sim_refuses_a_malformed_region_file(tmp_path: Path, content: str) -> None:
    """A malformed region file: exit code 2 and one clear line naming the file."""
    regions = tmp_path / "regions.json"
    regions.write_text(content)
    command = [sys.executable, "-m", "aliasync", "sim", "--regions", str(regions)]
    command += ["--endpoints-out", str(tmp_path / "out.json")]
    done = await anyio.run_process(command, check=False)
    lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, lines
    assert str(regions) in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "out.json").exists()


# --- routing ----------------------------------------------------------------------------


async def test_unknown_hostnames_are_dropped_and_serving_goes_on(sim: Simulator) -> None:
    """A hostname nobody serves gets its connection dropped; the emulator keeps serving."""
    urls = [
        "http://nothing.example.com/",
        "http://ecs.aliyuncs.com.example.com/?Action=DescribeRegions",
        f"http://{sim.account_id}.cn-nanjing.fc.aliyuncs.com/2023-03-30/functions",  # no FC there
    ]
    async with aiohttp.ClientSession() as session:
        for url in urls:
            with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
                async with session.get(url, proxy=sim.proxy_url) as response:
                    await response.read()
    response = await ecs_client(sim, REGION).describe_regions_async(m.DescribeRegionsRequest())
    assert len(response.body.regions.region) == len(sim.ctx.regions)
