"""Function Compute 3.0 state: functions per region, their code on disk. No HTTP here.

Validation follows the CreateFunction reference (2023-03-30): name 1-64 characters of letters,
digits, ``_`` and ``-`` not starting with a digit or ``-``; timeout 1-86400 s (default 3);
memorySize a multiple of 64 in 128-32768 MB (default 128). Code is accepted only as
``code.zipFile`` (base64 ZIP); ``ossBucketName``/``ossObjectName`` are refused. A role must be
``acs:ram::<this account>:role/<name>`` and, when the RAM model is present, name an existing
role that trusts ``fc.aliyuncs.com`` (FC assumes it for every invocation).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aliasync.sim._context import SimContext
from aliasync.sim._errors import SimError

MAX_ZIP_BYTES = 100 * 2**20  # decoded ZIP passed inline (documented limit for the API path)
MAX_UNZIPPED_BYTES = 500 * 2**20
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_RUNTIME = re.compile(
    r"python3(\.[0-9]{1,3})?|nodejs\d+|java\d+|php\d\.\d|go1|dotnetcore\d\.\d|custom(\.[a-z0-9]+)?"
)
_ROLE = re.compile(r"acs:ram::(\d+):role/([A-Za-z0-9.\-]{1,64})", re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xC96C5795D7870F42 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64 = _crc64_table()


def crc64(data: bytes) -> int:
    """CRC-64/XZ (ECMA-182, reflected), the checksum FC and OSS report as ``codeChecksum``."""
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC64
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class Code:
    """A function's validated ZIP and its checksum (slow for big archives: see prepare_code)."""

    data: bytes
    checksum: str


def _invalid(message: str) -> SimError:
    return SimError("InvalidArgument", message, 400)


@dataclass
class FunctionRecord:
    """One deployed function."""

    region: str
    name: str
    function_id: str
    runtime: str
    handler: str
    timeout: int
    memory_size: int
    role: str
    environment: dict[str, str]
    description: str
    internet_access: bool
    code_path: str
    code_checksum: str
    code_size: int
    created_time: str
    created_at: float  # virtual seconds
    invocations: int = 0
    warm: bool = False  # True once the first (cold) invocation started

    @property
    def role_name(self) -> str | None:
        match = _ROLE.fullmatch(self.role) if self.role else None
        return match.group(2) if match else None

    def to_json(self, account_id: str) -> dict[str, Any]:
        """The ``Function`` object of the 2023-03-30 API."""
        return {
            "functionName": self.name,
            "functionArn": f"acs:fc:{self.region}:{account_id}:functions/{self.name}",
            "functionId": self.function_id,
            "runtime": self.runtime,
            "handler": self.handler,
            "timeout": self.timeout,
            "memorySize": self.memory_size,
            "diskSize": 512,
            "codeChecksum": self.code_checksum,
            "codeSize": self.code_size,
            "description": self.description,
            "role": self.role,
            "environmentVariables": dict(self.environment),
            "internetAccess": self.internet_access,
            "instanceConcurrency": 1,
            "state": "Active",
            "stateReason": "",
            "stateReasonCode": "",
            "lastUpdateStatus": "Successful",
            "lastUpdateStatusReason": "",
            "lastUpdateStatusReasonCode": "",
            "createdTime": self.created_time,
            "lastModifiedTime": self.created_time,
            "layers": [],
            "tags": [],
        }


class FcModel:
    """Every region's functions, and the code files under ``<data_dir>/fc``."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self._functions: dict[str, dict[str, FunctionRecord]] = {}
        self._epoch = time.time() - ctx.clock.now()  # wall-clock time of virtual zero
        self.code_root = Path(ctx.data_dir) / "fc"

    def _timestamp(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._epoch + self.ctx.clock.now()))

    def work_root(self) -> str:
        """Where invocations unpack their code (one fresh directory each)."""
        return str(self.code_root / "run")

    # --- API ------------------------------------------------------------------------------

    @staticmethod
    def prepare_code(doc: Any) -> Code:
        """Decode and check ``code.zipFile`` of a CreateFunction document (CPU-bound: a caller
        on an event loop runs it in a thread)."""
        if not isinstance(doc, dict):
            raise _invalid("the request body must be a JSON object")
        data = FcModel._code(doc.get("code"))
        return Code(data, str(crc64(data)))

    def create_function(self, region: str, doc: Any, code: Code | None = None) -> FunctionRecord:
        """CreateFunction: validate the request document, store the code, add the function."""
        if not isinstance(doc, dict):
            raise _invalid("the request body must be a JSON object")
        name = doc.get("functionName")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _invalid(
                "functionName must be 1-64 letters, digits, '_' or '-' and must not start "
                "with a digit or '-'"
            )
        runtime = doc.get("runtime")
        if not isinstance(runtime, str) or not _RUNTIME.fullmatch(runtime):
            raise _invalid("runtime is missing or not supported")
        handler = doc.get("handler")
        if not isinstance(handler, str) or not handler or len(handler) > 128:
            raise _invalid("handler is required (at most 128 characters)")
        if runtime.startswith("python") and not re.fullmatch(r"[\w./-]+\.\w+", handler):
            raise _invalid("a Python handler must be of the form 'module.function'")
        if runtime.startswith("nodejs") and not re.fullmatch(r"[\w./-]+\.[\w$]+", handler):
            raise _invalid("a Node.js handler must be of the form 'file.export'")
        timeout = self._int(doc, "timeout", 3, 1, 86400)
        memory = self._int(doc, "memorySize", 128, 128, 32768)
        if memory % 64:
            raise _invalid("memorySize must be a multiple of 64")
        role = self._role(doc.get("role"))
        env = self._environment(doc.get("environmentVariables"))
        description = doc.get("description") or ""
        if not isinstance(description, str) or len(description) > 256:
            raise _invalid("description must be a string of at most 256 characters")
        internet = doc.get("internetAccess", True)
        if not isinstance(internet, bool):
            raise _invalid("internetAccess must be a boolean")
        code = code or self.prepare_code(doc)
        functions = self._functions.setdefault(region, {})
        if name in functions:
            raise SimError("FunctionAlreadyExists", f"function '{name}' already exists", 409)

        function_id = str(uuid.uuid4())
        path = self.code_root / region / f"{function_id}.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(code.data)
        record = FunctionRecord(
            region=region,
            name=name,
            function_id=function_id,
            runtime=runtime,
            handler=handler,
            timeout=timeout,
            memory_size=memory,
            role=role,
            environment=env,
            description=description,
            internet_access=internet,
            code_path=str(path),
            code_checksum=code.checksum,
            code_size=len(code.data),
            created_time=self._timestamp(),
            created_at=self.ctx.clock.now(),
        )
        functions[name] = record
        return record

    def get_function(self, region: str, name: str) -> FunctionRecord:
        record = self._functions.get(region, {}).get(name)
        if record is None:
            raise SimError("FunctionNotFound", f"function '{name}' does not exist", 404)
        return record

    def list_functions(
        self, region: str, prefix: str, limit: int, next_token: str
    ) -> tuple[list[FunctionRecord], str]:
        """One page in name order; the token is the (base64) name the next page starts at."""
        functions = self._functions.get(region, {})
        names = sorted(n for n in functions if n.startswith(prefix))
        if next_token:
            try:
                start = base64.urlsafe_b64decode(next_token.encode()).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise _invalid("nextToken is not valid") from None
            names = [n for n in names if n >= start]
        page, rest = names[:limit], names[limit:]
        token = base64.urlsafe_b64encode(rest[0].encode()).decode() if rest else ""
        return [functions[n] for n in page], token

    def delete_function(self, region: str, name: str) -> None:
        record = self.get_function(region, name)
        del self._functions[region][name]
        Path(record.code_path).unlink(missing_ok=True)

    # --- introspection --------------------------------------------------------------------

    def functions(self) -> list[dict[str, Any]]:
        """Every function of every region, in a compact form."""
        return [
            {
                "region": r.region,
                "name": r.name,
                "runtime": r.runtime,
                "handler": r.handler,
                "memory": r.memory_size,
                "timeout": r.timeout,
                "role": r.role,
                "created": r.created_time,
                "invocations": r.invocations,
            }
            for region in sorted(self._functions)
            for r in sorted(self._functions[region].values(), key=lambda f: f.name)
        ]

    def snapshot(self) -> dict[str, Any]:
        """Functions grouped by region (regions without functions are left out)."""
        out: dict[str, Any] = {}
        for item in self.functions():
            out.setdefault(item.pop("region"), []).append(item)
        return {"functions": out}

    # --- validation helpers ---------------------------------------------------------------

    @staticmethod
    def _int(doc: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
        value = doc.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _invalid(f"{key} must be an integer between {low} and {high}")
        return value

    def _role(self, value: Any) -> str:
        if value is None or value == "":
            return ""
        match = _ROLE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise _invalid("role must be an ARN of the form acs:ram::<accountId>:role/<roleName>")
        if match.group(1) != self.ctx.account_id:
            raise _invalid("role must belong to the function's account")
        ram = self.ctx.models.get("ram")
        if ram is not None and not ram.role_trusts(match.group(2), "fc.aliyuncs.com"):
            raise _invalid(
                f"role '{match.group(2)}' does not exist or does not trust fc.aliyuncs.com"
            )
        return str(value)

    @staticmethod
    def _environment(value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _invalid("environmentVariables must be an object of strings")
        total = 0
        for key, item in value.items():
            if not _ENV_NAME.fullmatch(key) or not isinstance(item, str):
                raise _invalid(f"environment variable {key[:64]!r} is invalid")
            total += len(key) + len(item)
        if total > 4096:
            raise _invalid("environmentVariables exceed 4 KB")
        return dict(value)

    @staticmethod
    def _code(value: Any) -> bytes:
        if not isinstance(value, dict):
            raise _invalid("code is required")
        if value.get("ossBucketName") or value.get("ossObjectName"):
            raise _invalid("the emulator accepts code only as code.zipFile (base64 ZIP)")
        encoded = value.get("zipFile")
        if not isinstance(encoded, str) or not encoded:
            raise _invalid("code.zipFile is required")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("code.zipFile is not valid base64") from None
        if len(data) > MAX_ZIP_BYTES:
            raise SimError("EntityTooLarge", "code.zipFile exceeds 100 MB", 400)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                unzipped = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, ValueError):
            raise _invalid("code.zipFile is not a valid ZIP archive") from None
        if unzipped > MAX_UNZIPPED_BYTES:
            raise SimError("EntityTooLarge", "the unzipped code exceeds 500 MB", 400)
        return data
