"""The process one emulated FC invocation runs in: ``python -P .../fc/_worker.py``.

Standard library only, and run by file name (``-P``: its own directory stays off ``sys.path``),
so that it starts fast and imports nothing of the emulator. The runner starts it with the
function's code unpacked in the working directory and sends a JSON spec on stdin:

``{"handler", "event_path", "result_dir", "memory_limit_bytes", "context": {...}}``

The worker limits its own address space (``RLIMIT_AS``), imports the handler, calls
``handler(event: bytes, context)`` and writes ``result.json`` (outcome, error details, peak
memory) and ``result.bin`` (the encoded return value) into ``result_dir``. Everything the handler
prints or logs goes to stdout/stderr, which the runner keeps as the invocation's log.

A ``MemoryError`` escaping the handler ends the process at once with :data:`EXIT_MEMORY`,
as an out-of-memory kill would end a real instance.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import traceback
from importlib import import_module
from pathlib import Path
from typing import Any

EXIT_MEMORY = 86  # the handler ran out of memory
EXIT_BAD_SPEC = 87  # the runner sent something unusable (an emulator bug)


class Credentials:
    """``context.credentials``: the function role's temporary key (empty without a role)."""

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        # Older runtimes also exposed camelCase names.
        self.accessKeyId = access_key_id
        self.accessKeySecret = access_key_secret
        self.securityToken = security_token

    def __repr__(self) -> str:  # never show the secret in logs
        return f"Credentials(access_key_id={self.access_key_id!r}, ...)"


class FunctionMeta:
    """``context.function``."""

    def __init__(self, name: str, handler: str, memory: int, timeout: int) -> None:
        self.name = name
        self.handler = handler
        self.memory = memory
        self.timeout = timeout


class ServiceMeta:
    """``context.service`` (FC 2.0 compatible fields; FC 3.0 has no services)."""

    def __init__(
        self, name: str, log_project: str, log_store: str, qualifier: str, version_id: str
    ) -> None:
        self.name = name
        self.log_project = log_project
        self.log_store = log_store
        self.qualifier = qualifier
        self.version_id = version_id


class Tracing:
    """``context.tracing``: tracing is not emulated, so every field is empty."""

    def __init__(self) -> None:
        self.span_context = ""
        self.jaeger_endpoint = ""
        self.span_baggages: dict[str, str] = {}
        self.parent_span_id = ""


class Context:
    """The ``context`` argument of a python3 FC handler."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.request_id: str = spec["request_id"]
        self.region: str = spec["region"]
        self.account_id: str = spec["account_id"]
        # python3.12 and later runtimes have no context.credentials (environment only).
        if spec.get("credentials") is not None:
            self.credentials = Credentials(**spec["credentials"])
        self.function = FunctionMeta(**spec["function"])
        self.service = ServiceMeta(**spec["service"])
        self.tracing = Tracing()
        self.retry_count = 0


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _encode(value: object) -> bytes:
    """The response body for a handler's return value."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict | list | tuple | int | float | bool):
        return json.dumps(value).encode("utf-8")
    return str(value).encode("utf-8")


def _stack(exc: BaseException) -> list[list[str]]:
    """The stack trace in FC's format, without the worker's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    return [
        [f'File "{f.filename}"', f"line {f.lineno}", f"in {f.name}", f.line or ""] for f in frames
    ]


def _peak_mb() -> float:
    """Peak resident memory of this process in MB.

    VmHWM, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over ``execve``, so it would report
    the emulator's own size (the worker is forked from it).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load_handler(name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"invalid handler {name!r}: expected 'module.function'")
    module = import_module(module_name.replace("/", "."))
    return getattr(module, attr)


def _write_result(result_dir: Path, outcome: dict[str, Any], body: bytes) -> None:
    (result_dir / "result.bin").write_bytes(body)
    outcome["maxMemoryMB"] = _peak_mb()
    (result_dir / "result.json").write_text(json.dumps(outcome))


def run(spec: dict[str, Any]) -> int:
    """Invoke the handler once; return the process exit code."""
    result_dir = Path(spec["result_dir"])
    request_id = spec["context"]["request_id"]
    context = Context(spec["context"])
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {request_id} [%(levelname)s] %(message)s",
        force=True,
    )
    sys.path.insert(0, os.getcwd())
    print(f"FC Invoke Start RequestId: {request_id}", flush=True)
    error: str | None = None
    try:
        handler = _load_handler(spec["handler"])
        event = Path(spec["event_path"]).read_bytes()
        body = _encode(handler(event, context))
        _write_result(result_dir, {"ok": True}, body)
    except MemoryError:
        print(f"FC Invoke End RequestId: {request_id}, Error: out of memory", flush=True)
        os._exit(EXIT_MEMORY)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        outcome = {
            "ok": False,
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": _stack(exc),
        }
        _write_result(result_dir, outcome, b"")
    suffix = f", Error: {error}" if error else ""
    print(f"FC Invoke End RequestId: {request_id}{suffix}", flush=True)
    return 0


def main() -> int:
    try:
        spec = json.loads(sys.stdin.buffer.read())
        _limit_memory(int(spec["memory_limit_bytes"]))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        print(f"aliasync emulator: bad worker spec ({type(exc).__name__})", file=sys.stderr)
        return EXIT_BAD_SPEC
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
