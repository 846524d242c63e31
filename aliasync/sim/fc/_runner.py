"""Run one FC invocation for real, in its own process group, without blocking the event loop.

Each invocation gets a fresh directory: the function's ZIP unpacked into ``code/`` (the working
directory and the first ``sys.path`` entry, like ``/code`` on FC), ``tmp/`` (``TMPDIR`` and
``HOME``), the event file and the worker's result files. The worker is ``_worker.py`` run by
file name, ``sys.executable -P <path>/_worker.py`` rather than ``-m aliasync.sim.fc._worker``:
importing the ``aliasync.sim`` package (aiohttp and the whole emulator) would cost each
invocation a quarter of a second and put the emulator's modules in the handler's reach. It runs
in a new session, so the whole process group is killed on timeout, on cancellation (shielded)
and after the handler returns (any process the handler left behind dies with it, as a frozen FC
instance would stop it).

The nodejs runtimes run ``_node_bootstrap.js`` under Node.js instead (``_node`` finds Node and
the module cache, builds the command line and the limits); everything else is shared.

Memory: the Python worker sets ``RLIMIT_AS`` to ``memorySize`` MB plus
:data:`INTERPRETER_ALLOWANCE_MB` for the interpreter itself (address space, not resident memory:
an approximation of FC's limit). Logs: stdout and stderr share one pipe; the last
:data:`LOG_TAIL_BYTES` are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process

from aliasync.sim.fc import _node, _worker

INTERPRETER_ALLOWANCE_MB = 256
LOG_TAIL_BYTES = 4096
DRAIN_GRACE_SECONDS = 0.5  # after the worker exits, how long to wait for the log pipe's EOF


@dataclass
class InvocationSpec:
    """Everything the runner needs to run one invocation."""

    request_id: str
    region: str
    account_id: str
    function_name: str
    handler: str
    memory_mb: int
    timeout: float  # real seconds
    code_zip: str  # path of the function's stored ZIP
    event: bytes
    env: dict[str, str]  # the complete environment of the worker
    runtime: str = "python3.10"
    node: _node.NodeInstall | None = None  # where Node.js is, for the nodejs runtimes
    credentials: dict[str, str] = field(
        default_factory=lambda: {
            "access_key_id": "",
            "access_key_secret": "",
            "security_token": "",
        }
    )


@dataclass
class InvocationResult:
    """How an invocation ended: ``ok``, ``error`` (handler raised), ``timeout`` or ``crash``."""

    outcome: str
    body: bytes = b""
    error: dict[str, Any] | None = None  # errorMessage, errorType, stackTrace
    logs: bytes = b""  # the last LOG_TAIL_BYTES of stdout+stderr
    duration_ms: float = 0.0
    max_memory_mb: float = 0.0
    memory_exhausted: bool = False


class _Tail:
    """Keeps the last ``limit`` bytes written to it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]


def base_environment() -> dict[str, str]:
    """The variables every worker inherits from the emulator's own environment.

    Deliberately small: nothing else of the host (its credentials, its proxies, NO_PROXY,
    PYTHONPATH) leaks into a function.
    """
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="2")
    return env


def _make_workdir(work_root: str) -> str:
    Path(work_root).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="inv-", dir=work_root)


def _prepare(workdir: Path, code_zip: str, event: bytes) -> None:
    (workdir / "tmp").mkdir()
    with zipfile.ZipFile(code_zip) as archive:
        archive.extractall(workdir / "code")  # extractall drops absolute and '..' parts
    (workdir / "code").mkdir(exist_ok=True)
    (workdir / "event.bin").write_bytes(event)


def _read_result(workdir: Path) -> tuple[dict[str, Any], bytes] | None:
    try:
        outcome = json.loads((workdir / "result.json").read_text())
        body = (workdir / "result.bin").read_bytes()
    except (OSError, ValueError):
        return None
    return (outcome, body) if isinstance(outcome, dict) else None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _pump(stream: ByteReceiveStream | None, tail: _Tail) -> None:
    if stream is None:
        return
    try:
        async for chunk in stream:
            tail.add(chunk)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass


async def _feed(process: Process, payload: bytes) -> None:
    if process.stdin is None:
        return
    try:
        await process.stdin.send(payload)
        await process.stdin.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass  # the worker died before reading its spec; its exit code tells the story


async def run_invocation(spec: InvocationSpec, work_root: str) -> InvocationResult:
    """Run the handler in a fresh worker process and report how it ended."""
    workdir = Path(await anyio.to_thread.run_sync(_make_workdir, work_root))
    try:
        await anyio.to_thread.run_sync(_prepare, workdir, spec.code_zip, spec.event)
        return await _run_worker(spec, workdir)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, workdir, True)


async def _run_worker(spec: InvocationSpec, workdir: Path) -> InvocationResult:
    env = dict(spec.env)
    env.update(TMPDIR=str(workdir / "tmp"), HOME=str(workdir / "tmp"))
    worker_spec: dict[str, Any] = {
        "handler": spec.handler,
        "event_path": str(workdir / "event.bin"),
        "result_dir": str(workdir),
        "memory_limit_bytes": (spec.memory_mb + INTERPRETER_ALLOWANCE_MB) * 2**20,
        "context": _context(spec),
    }
    command = [sys.executable, "-P", _worker.__file__]
    # How a worker that died of memory exhaustion ends (V8 aborts when its heap is full).
    memory_exits = {_worker.EXIT_MEMORY, -signal.SIGKILL}
    if spec.node is not None:
        _node.prepare(workdir, spec.node, env)
        worker_spec["context"] = _node.node_context(worker_spec["context"])
        worker_spec["node_modules"] = spec.node.node_modules
        command = _node.command(spec.node, spec.memory_mb)
        memory_exits.add(-signal.SIGABRT)
    payload = json.dumps(worker_spec).encode()
    tail = _Tail(LOG_TAIL_BYTES)
    started = time.monotonic()
    process = await anyio.open_process(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=str(workdir / "code"),
        env=env,
        start_new_session=True,
    )
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, process.stdout, tail)
            with anyio.move_on_after(spec.timeout) as scope:
                await _feed(process, payload)
                await process.wait()
            timed_out = scope.cancelled_caught
            # Stop whatever the handler left running, then give the log pipe a moment.
            _kill_group(process.pid)
            with anyio.move_on_after(DRAIN_GRACE_SECONDS):
                await process.wait()
            tg.cancel_scope.deadline = anyio.current_time() + DRAIN_GRACE_SECONDS
    finally:
        with anyio.CancelScope(shield=True):
            _kill_group(process.pid)
            await process.wait()
            await process.aclose()
    duration_ms = (time.monotonic() - started) * 1000.0
    logs = bytes(tail.data)
    if timed_out:
        return InvocationResult("timeout", logs=logs, duration_ms=duration_ms)
    found = await anyio.to_thread.run_sync(_read_result, workdir)
    if found is None:
        # No result: the process died (memory, a signal, sys.exit).
        memory = process.returncode in memory_exits
        return InvocationResult(
            "crash", logs=logs, duration_ms=duration_ms, memory_exhausted=memory
        )
    outcome, body = found
    peak = float(outcome.get("maxMemoryMB", 0.0))
    if outcome.get("ok"):
        return InvocationResult("ok", body, None, logs, duration_ms, peak)
    error = {k: outcome.get(k) for k in ("errorMessage", "errorType", "stackTrace")}
    return InvocationResult("error", b"", error, logs, duration_ms, peak)


def _has_context_credentials(runtime: str) -> bool:
    """FC's python3.12 runtime dropped ``context.credentials``; older ones have it."""
    version = runtime.removeprefix("python3").lstrip(".")
    return not (version.isdigit() and int(version) >= 12)


def _context(spec: InvocationSpec) -> dict[str, Any]:
    return {
        "request_id": spec.request_id,
        "region": spec.region,
        "account_id": spec.account_id,
        "credentials": dict(spec.credentials) if _has_context_credentials(spec.runtime) else None,
        "function": {
            "name": spec.function_name,
            "handler": spec.handler,
            "memory": spec.memory_mb,
            "timeout": int(spec.timeout),
        },
        "service": {
            "name": spec.function_name,  # FC 3.0 has no services; the function stands in
            "log_project": f"aliyun-fc-{spec.region}-{spec.account_id}",
            "log_store": "function-log",
            "qualifier": "LATEST",
            "version_id": "",
        },
    }


def function_environment(
    base: Mapping[str, str],
    user: Mapping[str, str],
    platform: Mapping[str, str],
) -> dict[str, str]:
    """The worker's environment: the base, then the function's variables, then FC's own.

    FC's variables (credentials, region, proxies) win over the function's, and ``NO_PROXY``
    is removed whatever its source, so every HTTP request goes through the emulator.
    """
    env = {**base, **user, **platform}
    for name in ("NO_PROXY", "no_proxy"):
        env.pop(name, None)
    return env
