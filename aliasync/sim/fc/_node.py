"""The nodejs runtimes: Node.js and FC's preinstalled modules on this host, and how to start them.

FC's nodejs20 runtime is Node.js 20 with ``ali-oss`` among its built-in modules. Here the
function runs under the host's ``node`` (``$ALIASYNC_NODE``, else ``node`` on ``PATH``; at least
:data:`MIN_NODE`) and finds the modules in an npm cache (``$ALIASYNC_NODE_MODULES``, else
``$XDG_CACHE_HOME/aliasync/node/node_modules``, else ``~/.cache/aliasync/node/node_modules``),
filled once with ``npm install --prefix <cache-parent>`` (README, ``.ci/run``). Besides
``ali-oss`` the cache holds the two packages the bootstrap routes the function's traffic
through the emulator with (``undici`` for ``fetch``, ``global-agent`` for ``http``/``https``).

Both are looked up at every invocation (cheap: a stat per module, ``node --version`` once per
binary), so a missing piece is reported to the caller at once, naming what is missing, and
installing it needs no restart.

The process: ``/bin/sh`` sets ``RLIMIT_DATA`` (the memory size plus :data:`NODE_ALLOWANCE_MB`
for Node itself) and no core dumps, then execs ``node --max-old-space-size=<memory>`` on
``_node_bootstrap.js``. Data segment, not address space as for Python: V8 reserves gigabytes of
address space it never touches, and ``RLIMIT_DATA`` counts only writable private memory. The
cache is on ``NODE_PATH`` and linked as ``node_modules`` next to the code directory, so CommonJS
``require`` and ES ``import`` resolve it, after the function's own ``node_modules``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_NODE = (18, 17)  # undici 6, which routes fetch through the emulator, needs 18.17
NODE_ALLOWANCE_MB = 256
REQUIRED_MODULES = ("ali-oss", "undici", "global-agent")
BOOTSTRAP = Path(__file__).with_name("_node_bootstrap.js")
SETUP_HINT = (
    "install Node.js (Debian: apt-get install nodejs npm) and the modules (npm install "
    "--prefix ~/.cache/aliasync/node ali-oss@6.19.0 undici@6.29.1 global-agent@4.1.6), "
    "or point ALIASYNC_NODE / ALIASYNC_NODE_MODULES at them"
)
_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
_versions: dict[tuple[str, float], tuple[int, int, int] | None] = {}


class NodeUnavailable(Exception):
    """Node.js or a module the nodejs runtime needs is missing; the message says which."""


@dataclass(frozen=True)
class NodeInstall:
    """A usable Node.js and module cache."""

    binary: str
    version: tuple[int, int, int]
    node_modules: str


def node_binary() -> str:
    """What ``$ALIASYNC_NODE`` names, else ``node`` on ``PATH`` ("" when there is none)."""
    configured = os.environ.get("ALIASYNC_NODE", "")
    if configured:
        return configured
    return shutil.which("node") or ""


def node_modules_dir() -> Path:
    """The npm cache's ``node_modules`` folder (whether it exists or not)."""
    configured = os.environ.get("ALIASYNC_NODE_MODULES", "")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "") or str(Path.home() / ".cache")
    return Path(cache) / "aliasync" / "node" / "node_modules"


def _version_of(binary: str) -> tuple[int, int, int] | None:
    """``node --version`` of ``binary``, cached by path and modification time."""
    try:
        stamp = os.stat(binary).st_mtime
    except OSError:
        return None
    key = (binary, stamp)
    if key not in _versions:
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, timeout=30, check=False, text=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        match = _VERSION.match(out.strip())
        _versions[key] = (int(match[1]), int(match[2]), int(match[3])) if match else None
    return _versions[key]


def locate(runtime: str) -> NodeInstall:
    """The Node.js install to run ``runtime`` with, or :class:`NodeUnavailable` saying why.

    Blocking (stat calls, maybe one ``node --version``): call it from a worker thread.
    """
    configured = os.environ.get("ALIASYNC_NODE", "")
    binary = node_binary()
    if not binary:
        raise NodeUnavailable(
            f"{runtime} needs Node.js, and there is no 'node' on PATH; {SETUP_HINT}"
        )
    resolved = shutil.which(binary) if os.sep not in binary else binary
    if not resolved or not os.access(resolved, os.X_OK) or not os.path.isfile(resolved):
        origin = "ALIASYNC_NODE" if configured else "PATH"
        raise NodeUnavailable(
            f"{runtime} needs Node.js, and {binary!r} (from {origin}) is not an executable "
            f"file; {SETUP_HINT}"
        )
    version = _version_of(resolved)
    if version is None:
        raise NodeUnavailable(f"{runtime} needs Node.js, and {resolved!r} --version failed")
    if version[:2] < MIN_NODE:
        wanted = ".".join(map(str, MIN_NODE))
        raise NodeUnavailable(
            f"{runtime} needs Node.js {wanted} or newer, and {resolved!r} is "
            f"v{'.'.join(map(str, version))}"
        )
    modules = node_modules_dir()
    missing = [m for m in REQUIRED_MODULES if not (modules / m / "package.json").is_file()]
    if missing:
        raise NodeUnavailable(
            f"{runtime} needs the Node.js modules {', '.join(missing)} in {str(modules)!r} "
            f"(ALIASYNC_NODE_MODULES); {SETUP_HINT}"
        )
    return NodeInstall(resolved, version, str(modules))


def command(install: NodeInstall, memory_mb: int) -> list[str]:
    """The worker's command line: limits set by the shell, then Node on the bootstrap."""
    data_kb = (memory_mb + NODE_ALLOWANCE_MB) * 1024
    return [
        "/bin/sh",
        "-c",
        'ulimit -c 0 && ulimit -d "$1" && shift && exec "$@"',
        "aliasync-fc-node",
        str(data_kb),
        install.binary,
        f"--max-old-space-size={memory_mb}",
        str(BOOTSTRAP),
    ]


def prepare(workdir: Path, install: NodeInstall, env: dict[str, str]) -> None:
    """Make the module cache resolvable from the code directory (``workdir/code``)."""
    (workdir / "node_modules").symlink_to(install.node_modules, target_is_directory=True)
    env["NODE_PATH"] = install.node_modules
    # Node ignores SSL_CERT_FILE: a CA bundle given to functions that way (for HTTPS through
    # the emulator) reaches Node's TLS as NODE_EXTRA_CA_CERTS.
    bundle = env.get("SSL_CERT_FILE", "")
    if bundle and "NODE_EXTRA_CA_CERTS" not in env:
        env["NODE_EXTRA_CA_CERTS"] = bundle


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    return value


def node_context(context: dict[str, Any]) -> dict[str, Any]:
    """The runner's context fields under the Node.js runtime's names (``requestId``, ...).

    Node.js runtimes keep ``context.credentials`` (empty strings without a role).
    """
    fields = _camel_keys(context)
    if fields.get("credentials") is None:
        fields["credentials"] = {"accessKeyId": "", "accessKeySecret": "", "securityToken": ""}
    return dict(fields)
