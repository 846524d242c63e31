"""Function Compute 3.0 emulation, driven by the official alibabacloud_fc20230330 client."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import uuid
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp.test_utils import make_mocked_request
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_ram20150501 import models as ram_models
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import UnretryableException

from aliasync.sim import SimError, Simulator, profile
from aliasync.sim._service import SimRequest
from aliasync.sim.fc._runner import InvocationSpec, base_environment, run_invocation
from aliasync.sim.ram import trust_policy
from tests.clients import boto3_s3, fc_client, ram_client, tea_config

pytestmark = pytest.mark.anyio

REGION = "cn-beijing"
NO_FC_REGION = "cn-nanjing"  # "fc": false in the default region map


def code(source: str) -> str:
    """A base64 ZIP holding ``index.py``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return base64.b64encode(buffer.getvalue()).decode()


async def create(
    client: FcClient,
    name: str,
    source: str = "def handler(event, context):\n    return event\n",
    **fields: Any,
) -> dict[str, Any]:
    fields.setdefault("runtime", "python3.10")
    body = fc_models.CreateFunctionInput(
        function_name=name,
        handler="index.handler",
        code=fc_models.InputCodeLocation(zip_file=code(source)),
        **fields,
    )
    response = await client.create_function_async(fc_models.CreateFunctionRequest(body=body))
    assert response.status_code == 200
    result: dict[str, Any] = response.body.to_map()
    return result


async def invoke(
    client: FcClient, name: str, event: bytes = b"", tail: bool = False
) -> tuple[dict[str, str], bytes]:
    headers = fc_models.InvokeFunctionHeaders(x_fc_log_type="Tail" if tail else None)
    response = await client.invoke_function_with_options_async(
        name, fc_models.InvokeFunctionRequest(body=event), headers, RuntimeOptions()
    )
    assert response.status_code == 200
    return response.headers, response.body.read()


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_marked(marker: str) -> list[int]:
    """Live processes whose environment holds ``TEST_MARKER=<marker>``, a function's own
    variable: its worker and whatever the worker started, whether or not the handler ran."""
    wanted = f"TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # gone, or not ours
            continue
        if wanted in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_marked(marker: str) -> list[int]:
    """:func:`processes_marked`, killed so that none outlives a failed test; their pids."""
    found = processes_marked(marker)
    for pid in found:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return found


async def fails(call: Any) -> AlibabaCloudException:
    with pytest.raises(AlibabaCloudException) as info:
        await call
    return info.value


async def test_create_list_get_delete(sim: Simulator) -> None:
    """Functions are created, listed by prefix page by page, read, deleted and then gone."""
    client = fc_client(sim, REGION)
    created = await create(client, "relay-b", timeout=30, memory_size=256)
    assert created["functionArn"] == f"acs:fc:{REGION}:{sim.account_id}:functions/relay-b"
    assert (created["state"], created["timeout"], created["memorySize"]) == ("Active", 30, 256)
    assert created["codeChecksum"].isdigit() and created["codeSize"] > 0
    for name in ("relay-a", "relay-c", "other"):
        await create(client, name)

    names, token = [], None
    for _ in range(5):
        request = fc_models.ListFunctionsRequest(prefix="relay-", limit=2, next_token=token)
        page = (await client.list_functions_async(request)).body
        names += [f.function_name for f in page.functions]
        token = page.next_token
        if not token:
            break
    assert names == ["relay-a", "relay-b", "relay-c"]

    got = (await client.get_function_async("relay-b", fc_models.GetFunctionRequest())).body
    assert got.function_id == created["functionId"]
    deleted = await client.delete_function_async("relay-b")
    assert deleted.status_code == 204
    error = await fails(client.get_function_async("relay-b", fc_models.GetFunctionRequest()))
    assert (error.status_code, error.code) == (404, "FunctionNotFound")
    error = await fails(client.delete_function_async("relay-b"))
    assert (error.status_code, error.code) == (404, "FunctionNotFound")
    assert {f["name"] for f in sim.ctx.models["fc"].functions()} == {"relay-a", "relay-c", "other"}


async def test_create_refuses_bad_input(sim: Simulator) -> None:
    """Duplicate names, bad names, bad memory sizes and unknown roles are refused."""
    client = fc_client(sim, REGION)
    await create(client, "dup")
    error = await fails(create(client, "dup"))
    assert (error.status_code, error.code) == (409, "FunctionAlreadyExists")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("9starts-with-digit", {}),
        ("bad-memory", {"memory_size": 100}),
        ("bad-timeout", {"timeout": 0}),
        ("no-such-role", {"role": f"acs:ram::{sim.account_id}:role/missing"}),
    ]
    for name, fields in cases:
        error = await fails(create(client, name, **fields))
        assert (error.status_code, error.code) == (400, "InvalidArgument"), name


async def test_invoke_returns_data_and_context(sim: Simulator) -> None:
    """The handler really runs: it gets the event bytes and FC's context; dicts become JSON."""
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    return {'event': event.decode(), 'region': context.region,\n"
        "            'account': context.account_id, 'name': context.function.name,\n"
        "            'memory': context.function.memory, 'request': context.request_id,\n"
        "            'key': context.credentials.access_key_id,\n"
        "            'env': os.environ.get('GREETING'), 'fc_region': os.environ['FC_REGION'],\n"
        "            'proxy': os.environ.get('http_proxy', ''),\n"
        "            'no_proxy': 'NO_PROXY' in os.environ or 'no_proxy' in os.environ}\n"
    )
    client = fc_client(sim, REGION)
    created = await create(client, "echo", source, environment_variables={"GREETING": "hi"})
    headers, body = await invoke(client, "echo", b"ping")
    result = json.loads(body)
    assert result["event"] == "ping"
    assert (result["region"], result["fc_region"], result["account"]) == (REGION,) * 2 + (
        sim.account_id,
    )
    assert (result["name"], result["memory"], result["env"]) == ("echo", 128, "hi")
    assert result["request"] == headers["x-fc-request-id"]
    assert result["key"] == ""  # no role, no credentials
    assert result["proxy"].startswith(f"http://fc-{REGION}:x@127.0.0.1:")
    assert not result["no_proxy"]
    assert headers["x-fc-code-checksum"] == created["codeChecksum"]
    assert "x-fc-error-type" not in headers


async def test_invoke_log_tail(sim: Simulator) -> None:
    """x-fc-log-type Tail returns the last 4 KB of stdout, stderr and logging as base64."""
    source = (
        "import logging, sys\n"
        "def handler(event, context):\n"
        "    print('x' * 5000)\n"
        "    print('to stdout')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    logging.getLogger().info('via logging')\n"
        "    return 'done'\n"
    )
    client = fc_client(sim, REGION)
    await create(client, "talker", source)
    headers, body = await invoke(client, "talker", tail=True)
    assert body == b"done"
    logs = base64.b64decode(headers["x-fc-log-result"]).decode()
    assert len(logs) == 4096
    for line in ("to stdout", "to stderr", "[INFO] via logging", "FC Invoke End RequestId"):
        assert line in logs
    headers, _ = await invoke(client, "talker")
    assert "x-fc-log-result" not in headers


async def test_invoke_unhandled_exception(sim: Simulator) -> None:
    """A raised exception answers 200 with UnhandledInvocationError and FC's error body."""
    source = "def handler(event, context):\n    raise ValueError('bad event')\n"
    client = fc_client(sim, REGION)
    await create(client, "raiser", source)
    headers, body = await invoke(client, "raiser")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad event")
    assert error["stackTrace"][-1][2] == "in handler"
    assert "raise ValueError" in error["stackTrace"][-1][3]


async def test_invoke_timeout_kills_process(sim: Simulator) -> None:
    """A handler running past its timeout is killed there, with the process it started, and
    the caller gets FC's timeout error (a handler that is waited for would take 10 minutes)."""
    source = (
        "import subprocess, sys, time\n"
        "def handler(event, context):\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "    time.sleep(600)\n"
    )
    marker = uuid.uuid4().hex
    client = fc_client(sim, REGION)
    await create(
        client, "sleeper", source, timeout=1, environment_variables={"TEST_MARKER": marker}
    )
    headers, body = await invoke(client, "sleeper")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(body)["errorMessage"].startswith("Function timed out after 1 seconds")
    assert kill_marked(marker) == []


async def test_invoke_memory_limit(sim: Simulator) -> None:
    """Allocating 1 GB in a 128 MB function ends the invocation with a memory error."""
    source = "def handler(event, context):\n    return len(bytearray(2**30))\n"
    client = fc_client(sim, REGION)
    await create(client, "hog", source, memory_size=128)
    headers, body = await invoke(client, "hog")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    error = json.loads(body)
    assert error["errorType"] == "MemoryError"
    assert error["errorMessage"].startswith("Process exited unexpectedly")


async def test_invocations_run_in_parallel(sim: Simulator, tmp_path: Path) -> None:
    """Concurrent invocations run in separate processes at the same time: each waits until
    all three have started, which invocations run one after another never would."""
    source = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    meeting = event.decode()\n"
        "    open(os.path.join(meeting, str(os.getpid())), 'w').close()\n"
        "    while len(os.listdir(meeting)) < 3:\n"
        "        time.sleep(0.01)\n"
        "    return str(os.getpid())\n"
    )
    client = fc_client(sim, REGION)
    await create(client, "parallel", source, timeout=60)  # alone, one would time out
    pids: list[bytes] = []

    async def one() -> None:
        headers, body = await invoke(client, "parallel", str(tmp_path).encode())
        assert "x-fc-error-type" not in headers, body
        pids.append(body)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    assert len(set(pids)) == 3
    met = {path.name async for path in anyio.Path(tmp_path).iterdir()}
    assert met == {pid.decode() for pid in pids}


async def test_other_endpoints_limits_and_async(sim: Simulator) -> None:
    """fcv3 and internal hostnames reach the same functions; >32 MB events and Async fail."""
    await create(fc_client(sim, REGION), "shared")
    for endpoint in (
        f"fcv3.{REGION}.aliyuncs.com",
        f"{sim.account_id}.{REGION}-internal.fc.aliyuncs.com",
    ):
        client = FcClient(tea_config(sim, endpoint))
        listed = (await client.list_functions_async(fc_models.ListFunctionsRequest())).body
        assert [f.function_name for f in listed.functions] == ["shared"]
    client = fc_client(sim, REGION)
    _, body = await invoke(client, "shared", b"x" * 2**20)
    assert body == b"x" * 2**20
    error = await fails(invoke(client, "shared", b"x" * (32 * 2**20 + 1)))
    assert (error.status_code, error.code) == (400, "EntityTooLarge")
    headers_async = fc_models.InvokeFunctionHeaders(x_fc_invocation_type="Async")
    error = await fails(
        client.invoke_function_with_options_async(
            "shared", fc_models.InvokeFunctionRequest(body=b"{}"), headers_async, RuntimeOptions()
        )
    )
    assert (error.status_code, error.code) == (400, "InvalidArgument")
    assert sim.ctx.models["fc"].functions()[0]["invocations"] == 1


SIGV4_PUT = """
import datetime, hashlib, hmac, json, urllib.request
from urllib.parse import quote


def handler(event, context):
    req = json.loads(event)
    creds, region = context.credentials, context.region
    host = f"{req['bucket']}.s3.oss-{region}-internal.aliyuncs.com"
    path = "/" + quote(req["key"], safe="/~")
    body = req["data"].encode()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp,
               "x-amz-security-token": creds.security_token}
    names = sorted(headers)
    canonical = "\\n".join(["PUT", path, "", "".join(f"{n}:{headers[n]}\\n" for n in names),
                           ";".join(names), payload])
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    text = "\\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                      hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + creds.access_key_secret).encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    headers.pop("host")
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope},"
                                f"SignedHeaders={';'.join(names)},Signature={signature}")
    headers["Content-Type"] = "application/octet-stream"
    request = urllib.request.Request(f"http://{host}{path}", body, headers, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        return {"status": response.status, "key": creds.access_key_id}
"""


async def test_invoke_puts_object_through_proxy_with_role_credentials(sim: Simulator) -> None:
    """A handler signs a PUT with its role's temporary key and stores it in the region's OSS."""
    ram = ram_client(sim)
    await ram.create_role_async(
        ram_models.CreateRoleRequest(
            role_name="fc-relay", assume_role_policy_document=trust_policy("fc.aliyuncs.com")
        )
    )
    s3 = boto3_s3(sim, REGION)  # creating a bucket is a control call: public endpoint
    await anyio.to_thread.run_sync(lambda: s3.create_bucket(Bucket="relay-bucket-1"))
    client = fc_client(sim, REGION)
    role = f"acs:ram::{sim.account_id}:role/fc-relay"
    await create(client, "putter", SIGV4_PUT, role=role, timeout=20)
    event = {"bucket": "relay-bucket-1", "key": "dir/a b.txt", "data": "hello from FC"}
    headers, body = await invoke(client, "putter", json.dumps(event).encode())
    assert "x-fc-error-type" not in headers, body
    result = json.loads(body)
    assert result["status"] == 200 and result["key"].startswith("STS.")
    info = sim.ctx.models["oss"].object_info(REGION, "relay-bucket-1", "dir/a b.txt")
    assert info is not None and info.size == len("hello from FC")
    key = sim.ctx.keys.lookup(result["key"])
    assert key is not None and key.principal == "role/fc-relay"


async def test_region_without_fc_is_unreachable(sim: Simulator) -> None:
    """In a region without FC the connection fails: no HTTP answer at all."""
    assert not sim.ctx.regions.get(NO_FC_REGION).fc  # type: ignore[union-attr]
    client = fc_client(sim, NO_FC_REGION)
    with pytest.raises(UnretryableException) as info:
        await client.list_functions_async(fc_models.ListFunctionsRequest())
    # The SDK's wrapper around the connection the emulator closed without answering.
    assert isinstance(info.value.inner_exception, aiohttp.ServerDisconnectedError)
    # Dropped as a hostname nobody serves there (aiohttp sends a GET twice on a drop).
    assert list(sim.unresolved_hosts) == [f"{sim.account_id}.{NO_FC_REGION}.fc.aliyuncs.com"]
    assert sim.calls.count() == 0


async def test_wrong_secret_is_refused(sim: Simulator) -> None:
    """A request signed with the wrong secret gets 403 SignatureNotMatch."""
    client = fc_client(sim, REGION, access_key_secret="not-the-secret")
    error = await fails(client.list_functions_async(fc_models.ListFunctionsRequest()))
    assert (error.status_code, error.code) == (403, "SignatureNotMatch")
    client = fc_client(sim, REGION, access_key_id="LTAI-unknown")
    error = await fails(client.list_functions_async(fc_models.ListFunctionsRequest()))
    assert (error.status_code, error.code) == (403, "InvalidAccessKeyID")


async def test_injected_timeout_fault_and_cold_start() -> None:
    """A cold start takes its 200 virtual seconds, then an injected timeout hangs the call for
    the function's 3 s timeout (recorded); the code never runs."""
    faulty = profile("none").with_(function_timeout_rate=1.0, cold_start_seconds=200.0)
    async with Simulator(seed=3, profile=faulty, time_scale=1000.0) as sim:
        client = fc_client(sim, REGION)
        await create(client, "hangs", "def handler(event, context):\n    return 'ran'\n")
        sim.clock.pause()
        answers: list[tuple[dict[str, str], bytes]] = []

        async def call() -> None:
            answers.append(await invoke(client, "hangs"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await sim.clock.wait_for_sleepers()
            assert sim.clock.sleepers == [sim.clock.now() + 200.0]  # the cold start
            sim.clock.advance(199.0)
            await anyio.wait_all_tasks_blocked()
            assert not answers and not sim.ctx.faults.injected
            sim.clock.advance(1.0)
            await sim.clock.wait_for_sleepers()
            assert sim.clock.sleepers == [sim.clock.now() + 3.0]  # the hang, to its timeout
            assert not answers
            assert [f.kind for f in sim.ctx.faults.injected] == ["function_timeout"]
            sim.clock.advance(3.0)
        ((headers, body),) = answers
        assert headers["x-fc-error-type"] == "UnhandledInvocationError"
        assert "timed out after 3 seconds" in json.loads(body)["errorMessage"]
        assert sim.ctx.models["fc"].functions()[0]["invocations"] == 1


async def test_runner_cancellation_kills_worker(sim: Simulator, tmp_path: Path) -> None:
    """Cancelling an invocation (client gone, shutdown) kills its worker process group."""
    zip_path = tmp_path / "code.zip"
    zip_path.write_bytes(
        base64.b64decode(
            code(
                "import os, subprocess, sys, time\n"
                "def handler(event, context):\n"
                "    sleep = 'import time; time.sleep(600)'\n"
                "    child = subprocess.Popen([sys.executable, '-c', sleep])\n"
                "    open(event.decode(), 'w').write(f'{os.getpid()} {child.pid}')\n"
                "    time.sleep(600)\n"
            )
        )
    )
    pid_file = tmp_path / "pids"
    spec = InvocationSpec(
        request_id="R1",
        region=REGION,
        account_id=sim.account_id,
        function_name="f",
        handler="index.handler",
        memory_mb=128,
        timeout=600.0,  # only the cancellation may end it within the test
        code_zip=str(zip_path),
        event=str(pid_file).encode(),
        env=base_environment(),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(run_invocation, spec, str(tmp_path / "run"))
        with anyio.fail_after(60):  # waits on the handler's file, not on a guess of its speed
            while len(pid_file.read_text().split() if pid_file.exists() else []) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    pids = [int(pid) for pid in pid_file.read_text().split()]
    try:
        with anyio.fail_after(30):  # SIGKILL is delivered at once; the kernel ends them soon
            while any(alive(pid) for pid in pids):  # noqa: ASYNC110
                await anyio.sleep(0.01)
    finally:  # should the kill have failed, no process outlives the test
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert list((tmp_path / "run").iterdir()) == []


async def test_python312_credentials_only_in_environment(sim: Simulator) -> None:
    """python3.12 handlers get the role key from ALIBABA_CLOUD_* only, not from the context."""
    sim.ctx.models["ram"].create_role("fc-role", trust_policy("fc.aliyuncs.com"))
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    return [hasattr(context, 'credentials'),\n"
        "            os.environ.get('ALIBABA_CLOUD_ACCESS_KEY_ID', ''),\n"
        "            bool(os.environ.get('ALIBABA_CLOUD_SECURITY_TOKEN'))]\n"
    )
    client = fc_client(sim, REGION)
    role = f"acs:ram::{sim.account_id}:role/fc-role"
    await create(client, "py312", source, runtime="python3.12", role=role)
    has_credentials, key, token = json.loads((await invoke(client, "py312"))[1])
    assert not has_credentials and key.startswith("STS.") and token


async def test_throttling_maps_to_fc_codes(sim: Simulator) -> None:
    """An injected Throttling becomes 503 ResourceThrottled (invoke) or 429 ResourceExhausted."""
    service = next(s for s in sim.services if s.name == "fc")
    for method, path, status, code in [
        ("POST", "/2023-03-30/functions/f/invocations", 503, "ResourceThrottled"),
        ("GET", "/2023-03-30/functions", 429, "ResourceExhausted"),
    ]:
        raw = make_mocked_request(method, path)
        request = SimRequest(method, "x", path, "", raw.headers, raw, request_id="RID")
        response = service.error_response(request, SimError("Throttling", "slow down", 400))
        assert response.status == status
        assert response.headers["x-fc-request-id"] == "RID"
        assert response.body is not None
        assert json.loads(bytes(response.body))["Code"] == code  # type: ignore[arg-type]
