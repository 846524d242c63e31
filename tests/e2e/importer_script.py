"""A small image importer of the kind release pipelines write, run against ``aliasync sim``.

``python importer_script.py IMAGE``, with nothing but the cloud's usual environment (proxy,
CA bundle, keys: what ``aliasync sim --env-out`` writes). It imports nothing of aliasync or
the tests and knows no region in advance: for each region DescribeRegions lists it finds out,
as against the cloud, how the image gets there. A bucket it can write through the public
endpoint gets a multipart upload (``alibabacloud-oss-v2``, asyncio client), then ImportImage;
a bucket refusing public data (``PublicEndpointForbidden``) in a region where Function Compute
answers is filled by a nodejs20 function (``relay.js``: ali-oss, internal endpoint, presigned
sources), then ImportImage; any other region gets CopyImage. All of it is HTTPS with the SDKs'
defaults, except that the asyncio OSS client reads no proxy from the environment (aiohttp
without ``trust_env``) and is handed ``HTTPS_PROXY``. Prints one JSON line (per region: how
and which image) and exits 0 when every region has the image Available and nothing is left
behind (temporary buckets and functions are removed whatever happens). Prints no keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import secrets
import sys
import zipfile
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_ram20150501.client import Client as RamClient
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from Tea.exceptions import TeaException, UnretryableException

PART_SIZE = 512 * 1024  # OSS's smallest part is 100 KB; a 2 MiB image goes in four
POLL_SECONDS = 1.0  # real seconds between DescribeImages
WAIT_SECONDS = 600.0  # give up on an import or a copy after this long
ROLE = "ImageRelayRole"
TRUST_FC = json.dumps({
    "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
                   "Principal": {"Service": ["fc.aliyuncs.com"]}}],
    "Version": "1",
})  # fmt: skip

RELAY_JS = Path(__file__).with_name("relay.js")  # deployed as index.js


class NotHere(Exception):
    """The region cannot take the image this way (the reason is the message)."""


def tea(endpoint: str | None = None, region: str | None = None) -> Config:
    # The async tea calls read HTTPS_PROXY and SSL_CERT_FILE themselves.
    return Config(credential=CredentialClient(), endpoint=endpoint, region_id=region)


def oss_config(region: str) -> Any:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.EnvironmentVariableCredentialsProvider()
    config.region = region  # https://oss-<region>.aliyuncs.com, V4
    config.retry_max_attempts = 2
    return config


def oss_client(region: str) -> Any:
    config = oss_config(region)
    config.proxy_host = os.environ.get("HTTPS_PROXY")  # aiohttp ignores the environment
    return oss_aio.AsyncClient(config)


def service_code(error: BaseException) -> str | None:
    """OSS's error code, or None when no OSS answered (the endpoint does not exist)."""
    if isinstance(error, oss.exceptions.OperationError):
        inner = error.unwrap()
        if isinstance(inner, oss.exceptions.ServiceError):
            return str(inner.code)
    return None


def relay_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.js", RELAY_JS.read_text())
    return base64.b64encode(buffer.getvalue()).decode()


class Importer:
    def __init__(self, image: Path) -> None:
        self.data = image.read_bytes()
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.name = f"ipxe-e2e-{self.sha256[:12]}"
        self.key = f"images/{image.name}"
        self.run = secrets.token_hex(4)
        self.account = ""
        self.buckets: dict[str, str] = {}  # region -> temporary bucket
        self.functions: dict[str, str] = {}  # region -> relay function
        self.written_publicly: set[str] = set()  # regions whose bucket takes public writes
        self.uploaded: dict[str, str] = {}  # region -> bucket holding the image publicly
        self.available: dict[str, str] = {}  # region -> image ID, once Available
        self.strategy: dict[str, str] = {}
        self.copying: set[str] = set()  # source regions with a copy of theirs under way
        self.producing = 0  # regions that may still import the image (future copy sources)
        self.changed = asyncio.Condition()

    # -- what each region can do -----------------------------------------------------------

    async def make_bucket(self, region: str) -> str:
        bucket = f"e2e-{self.run}-{region}"
        async with oss_client(region) as client:
            try:
                await client.put_bucket(oss.PutBucketRequest(bucket=bucket))
            except oss.exceptions.OperationError as exc:
                code = service_code(exc)
                if code is None:
                    raise NotHere("no OSS endpoint answers") from exc
                if code == "ForbidCreateNewBucket":
                    raise NotHere("no new buckets") from exc
                raise
        self.buckets[region] = bucket
        # One-day expiry as a backstop (the asyncio client has no lifecycle call; the sync
        # one reads the proxy and the CA bundle from the environment).
        rule = oss.LifecycleRule(
            id="expire", prefix="", status="Enabled",
            expiration=oss.LifecycleRuleExpiration(days=1),
            abort_multipart_upload=oss.LifecycleRuleAbortMultipartUpload(days=1),
        )  # fmt: skip
        request = oss.PutBucketLifecycleRequest(
            bucket=bucket, lifecycle_configuration=oss.LifecycleConfiguration(rules=[rule])
        )
        await asyncio.to_thread(oss.Client(oss_config(region)).put_bucket_lifecycle, request)
        return bucket

    async def upload(self, region: str, bucket: str) -> None:
        """Multipart upload through the public endpoint; NotHere if it refuses data."""
        async with oss_client(region) as client:
            try:
                started = await client.initiate_multipart_upload(
                    oss.InitiateMultipartUploadRequest(bucket=bucket, key=self.key)
                )
            except oss.exceptions.OperationError as exc:
                if service_code(exc) == "PublicEndpointForbidden":
                    raise NotHere("public endpoint refuses data") from exc
                raise
            upload_id = started.upload_id
            self.written_publicly.add(region)
            try:
                chunks = [self.data[i : i + PART_SIZE] for i in range(0, len(self.data), PART_SIZE)]
                answers = await asyncio.gather(*(
                    client.upload_part(oss.UploadPartRequest(
                        bucket=bucket, key=self.key, upload_id=upload_id,
                        part_number=number, body=chunk,
                    ))
                    for number, chunk in enumerate(chunks, 1)
                ))  # fmt: skip
                parts = [
                    oss.UploadPart(part_number=n, etag=a.etag) for n, a in enumerate(answers, 1)
                ]
                await client.complete_multipart_upload(
                    oss.CompleteMultipartUploadRequest(
                        bucket=bucket, key=self.key, upload_id=upload_id,
                        complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts),
                    )
                )  # fmt: skip
            except BaseException:
                await client.abort_multipart_upload(
                    oss.AbortMultipartUploadRequest(
                        bucket=bucket, key=self.key, upload_id=upload_id
                    )
                )
                raise
        async with self.changed:
            self.uploaded[region] = bucket
            self.changed.notify_all()

    def fc(self, region: str) -> FcClient:
        return FcClient(tea(endpoint=f"{self.account}.{region}.fc.aliyuncs.com"))

    async def deploy_relay(self, region: str) -> str:
        client = self.fc(region)
        try:
            await client.list_functions_async(fc_models.ListFunctionsRequest(limit=1))
        except UnretryableException as exc:  # no answer at all: FC is not offered there
            raise NotHere("no Function Compute endpoint answers") from exc
        name = f"image-relay-{self.run}"
        body = fc_models.CreateFunctionInput(
            function_name=name, runtime="nodejs20", handler="index.handler",
            code=fc_models.InputCodeLocation(zip_file=relay_zip()),
            role=f"acs:ram::{self.account}:role/{ROLE}", memory_size=512, timeout=120,
        )  # fmt: skip
        await client.create_function_async(fc_models.CreateFunctionRequest(body=body))
        self.functions[region] = name
        return name

    async def invoke(self, region: str, job: dict[str, Any]) -> Any:
        client, name = self.fc(region), self.functions[region]
        response = await client.invoke_function_with_options_async(
            name,
            fc_models.InvokeFunctionRequest(body=json.dumps(job).encode()),
            fc_models.InvokeFunctionHeaders(),
            RuntimeOptions(read_timeout=180_000),
        )
        body = response.body.read()
        if response.headers.get("x-fc-error-type"):
            raise RuntimeError(f"relay in {region} failed: {body[:300]!r}")
        return json.loads(body)

    async def sources(self) -> list[str]:
        """Presigned GET URLs of the image in up to three regions (waits for the first)."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: bool(self.uploaded)), WAIT_SECONDS)
            chosen = list(self.uploaded.items())[:3]
        urls = []
        for region, bucket in chosen:
            async with oss_client(region) as client:
                signed = await client.presign(oss.GetObjectRequest(bucket=bucket, key=self.key))
            urls.append(signed.url)
        return urls

    # -- images ----------------------------------------------------------------------------

    async def import_image(self, region: str, bucket: str) -> None:
        mapping = ecs_models.ImportImageRequestDiskDeviceMapping(
            ossbucket=bucket, ossobject=self.key, format="RAW", disk_image_size=1
        )
        request = ecs_models.ImportImageRequest(
            region_id=region, image_name=self.name, architecture="x86_64", boot_mode="UEFI",
            ostype="linux", platform="Others Linux", disk_device_mapping=[mapping],
            client_token=f"{self.run}-{region}",
        )  # fmt: skip
        answer = await EcsClient(tea(region=region)).import_image_async(request)
        await self.wait_available(region, answer.body.image_id)

    async def copy_image(self, region: str) -> None:
        while True:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(self.source_or_none), WAIT_SECONDS)
                free = [r for r in self.available if r not in self.copying]
                if not free:
                    raise RuntimeError("no region could import the image: nothing to copy")
                source = free[0]
                self.copying.add(source)
            try:
                request = ecs_models.CopyImageRequest(
                    region_id=source, image_id=self.available[source],
                    destination_region_id=region, destination_image_name=self.name,
                    client_token=f"{self.run}-{region}",
                )  # fmt: skip
                try:
                    answer = await EcsClient(tea(region=source)).copy_image_async(request)
                except TeaException as exc:
                    if exc.code == "OperationDenied.ImageCopyConflict":
                        continue  # another copy of that image runs: take another source
                    raise
                await self.wait_available(region, answer.body.image_id)
                return
            finally:
                async with self.changed:
                    self.copying.discard(source)
                    self.changed.notify_all()

    def source_or_none(self) -> bool:
        """A copy source is free, or none will ever be."""
        if any(r not in self.copying for r in self.available):
            return True
        return self.producing == 0 and not self.copying

    async def wait_available(self, region: str, image_id: str) -> None:
        ecs = EcsClient(tea(region=region))
        request = ecs_models.DescribeImagesRequest(
            region_id=region, image_id=image_id, status="Creating,Waiting,Available,CreateFailed"
        )
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            images = (await ecs.describe_images_async(request)).body.images.image
            status = images[0].status if images else "missing"
            if status == "Available":
                async with self.changed:
                    self.available[region] = image_id
                    self.changed.notify_all()
                return
            if status in ("CreateFailed", "missing"):
                raise RuntimeError(f"{image_id} in {region}: {status}")
            await asyncio.sleep(POLL_SECONDS)
        raise TimeoutError(f"{image_id} in {region} not Available in time")

    # -- one region ------------------------------------------------------------------------

    async def publish(self, region: str) -> None:
        try:
            await self.try_publish(region)
        finally:
            async with self.changed:
                if self.strategy.get(region) != "copy":
                    self.producing -= 1
                self.changed.notify_all()

    async def try_publish(self, region: str) -> None:
        try:
            bucket = await self.make_bucket(region)
            try:
                await self.upload(region, bucket)
                self.strategy[region] = "direct"
            except NotHere:
                try:
                    await self.deploy_relay(region)
                except NotHere:
                    await self.remove_bucket(region)  # still empty: nothing could fill it
                    raise
                self.strategy[region] = "relay"
                job = {"sources": await self.sources(), "bucket": bucket, "key": self.key}
                await self.invoke(region, {**job, "sha256": self.sha256})
            await self.import_image(region, bucket)
        except NotHere:
            async with self.changed:
                self.strategy[region] = "copy"
                self.producing -= 1
                self.changed.notify_all()
            await self.copy_image(region)

    async def ensure_role(self) -> None:
        ram = RamClient(tea(endpoint="ram.aliyuncs.com"))
        try:
            await ram.get_role_async(ram_models.GetRoleRequest(role_name=ROLE))
            return
        except TeaException as exc:
            if exc.code != "EntityNotExist.Role":
                raise
        await ram.create_role_async(
            ram_models.CreateRoleRequest(role_name=ROLE, assume_role_policy_document=TRUST_FC)
        )
        await ram.attach_policy_to_role_async(ram_models.AttachPolicyToRoleRequest(
            policy_type="System", policy_name="AliyunOSSFullAccess", role_name=ROLE,
        ))  # fmt: skip

    async def remove_bucket(self, region: str) -> None:
        bucket = self.buckets.pop(region)
        async with oss_client(region) as client:  # DeleteBucket: allowed on every endpoint
            await client.delete_bucket(oss.DeleteBucketRequest(bucket=bucket))

    async def clean_up(self) -> list[str]:
        """Empties and deletes the buckets, deletes the functions; what could not be removed."""
        left: list[str] = []
        for region, bucket in list(self.buckets.items()):
            try:
                if region in self.functions:  # mainland: emptied from inside the region
                    await self.invoke(region, {"empty": True, "bucket": bucket})
                elif region in self.written_publicly:
                    await self.empty_publicly(region, bucket)
                await self.remove_bucket(region)
            except Exception as exc:
                left.append(f"bucket {bucket} in {region}: {type(exc).__name__}")
        for region, name in list(self.functions.items()):
            try:
                await self.fc(region).delete_function_async(name)
                del self.functions[region]
            except Exception as exc:
                left.append(f"function {name} in {region}: {type(exc).__name__}")
        return left

    async def empty_publicly(self, region: str, bucket: str) -> None:
        async with oss_client(region) as client:
            listing = await client.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket))
            keys = [o.key for o in listing.contents or []]
            if keys:
                await client.delete_multiple_objects(oss.DeleteMultipleObjectsRequest(
                    bucket=bucket, objects=[oss.DeleteObject(key=k) for k in keys], quiet=True,
                ))  # fmt: skip
            uploads = await client.list_multipart_uploads(
                oss.ListMultipartUploadsRequest(bucket=bucket)
            )
            for upload in uploads.uploads or []:
                await client.abort_multipart_upload(oss.AbortMultipartUploadRequest(
                    bucket=bucket, key=upload.key, upload_id=upload.upload_id,
                ))  # fmt: skip

    async def main(self) -> int:
        identity = await StsClient(tea(endpoint="sts.aliyuncs.com")).get_caller_identity_async()
        self.account = identity.body.account_id
        await self.ensure_role()
        regions = await EcsClient(tea(region="ap-southeast-1")).describe_regions_async(
            ecs_models.DescribeRegionsRequest()
        )
        ids = [r.region_id for r in regions.body.regions.region]
        self.producing = len(ids)
        try:
            outcomes = await asyncio.gather(*(self.publish(r) for r in ids), return_exceptions=True)
        finally:
            left = await self.clean_up()
        failed = {r: repr(o)[:300] for r, o in zip(ids, outcomes, strict=True) if o is not None}
        report = {
            "image": self.name,
            "sha256": self.sha256,
            "regions": {
                r: {"strategy": self.strategy.get(r), "image_id": self.available.get(r)}
                for r in ids
            },
            "failed": failed,
            "left_behind": left,
        }
        print(json.dumps(report))
        return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(Importer(Path(sys.argv[1])).main()))
