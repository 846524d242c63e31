"""nodejs20 functions in the emulated Function Compute, driven by the official FC client.

The handlers are plain FC code (``exports.handler = async (event, context) => ...``), run by
the host's Node.js with ali-oss resolvable, as FC's nodejs20 runtime runs them.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient

from aliasync.sim import Simulator
from aliasync.sim.ram import trust_policy
from tests.clients import fc_client
from tests.sim.test_fc import fails, invoke, kill_marked

pytestmark = pytest.mark.anyio

REGION = "cn-beijing"  # mainland: its public OSS endpoint refuses data access
ROLE = "fc-node-role"


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
    **fields: Any,
) -> None:
    """Create a nodejs20 function whose handler is ``index.handler`` in ``file``."""
    body = fc_models.CreateFunctionInput(
        function_name=name,
        handler="index.handler",
        runtime="nodejs20",
        code=fc_models.InputCodeLocation(zip_file=node_code({file: source})),
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


async def test_timeout_kills_the_process(sim: Simulator) -> None:
    """A handler running past its timeout is killed; the caller gets FC's timeout error."""
    source = """
exports.handler = async (event) => {
  setInterval(() => {}, 1000);
  await new Promise(() => {});
};
"""
    marker = uuid.uuid4().hex
    client = fc_client(sim, REGION)
    await create_node(
        client, "sleeper", source, timeout=1, environment_variables={"TEST_MARKER": marker}
    )
    headers, body = await invoke(client, "sleeper")
    assert headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(body)["errorMessage"].startswith("Function timed out after 1 seconds")
    assert kill_marked(marker) == []


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

    old_node = tmp_path / "node16"
    old_node.write_text("#!/bin/sh\necho v16.20.2\n")
    old_node.chmod(0o755)
    monkeypatch.setenv("ALIASYNC_NODE", str(old_node))
    error = await fails(invoke(client, "node-fn"))
    assert (error.status_code, error.code) == (412, "CAExited")
    assert "Node.js 18.17 or newer" in error.message and "v16.20.2" in error.message

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
