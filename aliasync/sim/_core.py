"""The emulator as a whole: state, services, server, endpoints description and introspection."""

from __future__ import annotations

import inspect
import json
import secrets
import shlex
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from aliasync.sim._clock import Clock
from aliasync.sim._context import SimContext
from aliasync.sim._faults import FaultEngine, FaultProfile
from aliasync.sim._faults import profile as named_profile
from aliasync.sim._keys import KeyStore
from aliasync.sim._regions import RegionMap
from aliasync.sim._server import CallLog, SimServer
from aliasync.sim._service import Service
from aliasync.sim._tls import CertificateAuthority, ServerCertificates

DEFAULT_TIME_SCALE = 1000.0


def _services(ctx: SimContext) -> list[Service]:
    # Imported here so that the core does not depend on service internals at import time.
    from aliasync.sim.ecs import EcsService, MetadataService
    from aliasync.sim.fc import FcService
    from aliasync.sim.oss import OssService
    from aliasync.sim.ram import RamService, StsService

    return [
        OssService(ctx),
        EcsService(ctx),
        FcService(ctx),
        StsService(ctx),
        RamService(ctx),
        MetadataService(ctx),
    ]


RELAY_ROLE = "AliasyncRelayRole"  # what `aliasync setup` creates for the relay function


def _preset_roles(ram: Any) -> None:
    """The roles a prepared account has: ECS's import role and aliasync's relay role."""
    from aliasync.sim.ram._models import trust_policy

    ram.ensure_import_role()
    if not ram.role_exists(RELAY_ROLE):
        ram.create_role(RELAY_ROLE, trust_policy("fc.aliyuncs.com"), "aliasync relay function")
        ram.attach_policy(RELAY_ROLE, "System", "AliyunOSSFullAccess")


class Simulator:
    """A local Alibaba Cloud: ECS, OSS (S3 and native APIs), FC 3.0, STS and RAM on one port.

    Use as an async context manager::

        async with Simulator(seed=1, profile="default") as sim:
            sim.endpoints  # what aliasync (or any client) needs to reach it

    Clients keep the real hostnames and use ``sim.proxy_url`` as their HTTP proxy, for
    ``http://`` and ``https://`` URLs alike. HTTPS arrives as ``CONNECT`` tunnels, and the
    emulator ends TLS with a certificate for the real hostname, issued by its own CA:

    * ``sim.ca_path``: the CA certificate (PEM), e.g. ``ssl.create_default_context(cafile=...)``
      or ``NODE_EXTRA_CA_CERTS``; ``sim.ca_bundle_path``: certifi's public roots plus the CA,
      for settings that replace the trust store (``verify=``, ``AWS_CA_BUNDLE``, tea's ``ca``).
    * ``sim.client_env``: the environment under which unmodified SDK code reaches the emulator
      over HTTPS (proxies, CA variables, the account's access key); ``sim.write_env(path)``
      writes it as a shell-sourceable file, readable by its owner only. A test starting a
      client in a subprocess (Node.js, the OSS SDKs) passes ``env={**os.environ,
      **sim.client_env}``.

    The CA lives in ``ca_dir``, created there once and reused (its key file is mode 0600).
    Without ``ca_dir`` it lives in ``<data_dir>/ca``: with the default temporary data directory,
    a fresh CA per emulator, removed with it.

    ``community_terms=False`` is an account that has not accepted the community-image terms:
    publishing is refused until ``sim.ctx.community_terms`` is set (the console step).

    Time: the cloud's durations are virtual seconds on ``sim.clock``, running ``time_scale``
    times faster than real time. A test that looks at a state in the middle of a task holds
    the clock rather than racing it, and moves it on deterministically::

        sim.clock.pause()          # or: with sim.clock.frozen(): ...
        ...                        # start an import: it is Creating for as long as we look
        sim.clock.advance(200)     # and Available now, whatever the machine's speed

    ``clock=Clock(...)`` gives the emulator a clock of the caller's (``time_scale`` is then
    the clock's), e.g. one reading a virtual-time event loop. See :class:`Clock`.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        profile: str | FaultProfile = "default",
        time_scale: float = DEFAULT_TIME_SCALE,
        regions: RegionMap | str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        account_id: str | None = None,
        preset_roles: bool = True,
        data_dir: str | Path | None = None,
        ca_dir: str | Path | None = None,
        community_terms: bool = True,
        clock: Clock | None = None,
    ) -> None:
        fault_profile = named_profile(profile) if isinstance(profile, str) else profile
        region_map = regions if isinstance(regions, RegionMap) else RegionMap.load(regions)
        self._own_data_dir = data_dir is None
        data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="aliasync-sim-"))
        data.mkdir(parents=True, exist_ok=True)
        self.access_key_id = access_key_id or "LTAI" + secrets.token_hex(10)
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(22)
        self.ca = CertificateAuthority.load_or_create(Path(ca_dir) if ca_dir else data / "ca")
        self.ctx = SimContext(
            clock=clock or Clock(time_scale),
            regions=region_map,
            keys=KeyStore(self.access_key_id, self.access_key_secret),
            faults=FaultEngine(fault_profile, seed),
            account_id=account_id or str(1000000000000000 + secrets.randbelow(8999999999999999)),
            data_dir=str(data),
            trust_env=self.ca.trust_environment(),
            community_terms=community_terms,
        )
        self.seed = seed
        self.calls = CallLog()
        self.services = _services(self.ctx)
        for service in self.services:
            model = getattr(service, "model", None)
            if model is not None:
                self.ctx.models.setdefault(service.name, model)
        if preset_roles:
            _preset_roles(self.ctx.models["ram"])
        self._server = SimServer(
            self.ctx,
            self.services,
            self.calls,
            self.introspect,
            certificates=ServerCertificates(self.ca, data),
        )
        self._host, self._port = host, port
        self.proxy_url = ""
        self._baseline: dict[str, set[str]] = {"buckets": set(), "functions": set()}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Simulator:
        self.proxy_url = await self._server.start(self._host, self._port)
        self.ctx.proxy_url = self.proxy_url
        return self

    async def stop(self) -> None:
        self.ctx.clock.close()  # requests asleep on the clock answer now, held or not
        for service in self.services:
            close = getattr(service, "aclose", None) or getattr(service, "close", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result
        await self._server.stop()
        if self._own_data_dir:
            shutil.rmtree(self.ctx.data_dir, ignore_errors=True)

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what clients need -----------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def account_id(self) -> str:
        return self.ctx.account_id

    @property
    def endpoints(self) -> dict[str, Any]:
        """The endpoints description aliasync consumes (``--endpoints FILE``)."""
        regions = {}
        for region in self.ctx.regions:
            r = region.id
            regions[r] = {
                "ecs": f"ecs.{r}.aliyuncs.com",
                "oss_public": f"s3.oss-{r}.aliyuncs.com",
                "oss_internal": f"s3.oss-{r}-internal.aliyuncs.com",
                "fc": f"{self.account_id}.{r}.fc.aliyuncs.com",
                "oss_native": f"oss-{r}.aliyuncs.com",
                "oss_native_internal": f"oss-{r}-internal.aliyuncs.com",
            }
        return {
            "kind": "aliasync-endpoints",
            "version": 1,
            "protocol": "http",
            "proxy": self.proxy_url,
            "credentials": {
                "access_key_id": self.access_key_id,
                "access_key_secret": self.access_key_secret,
            },
            "account_id": self.account_id,
            "time_scale": self.ctx.clock.time_scale,
            "ecs": "ecs.aliyuncs.com",
            "sts": "sts.aliyuncs.com",
            "ram": "ram.aliyuncs.com",
            "regions": regions,
        }

    def write_endpoints(self, path: str | Path) -> Path:
        """Write the endpoints description, readable only by its owner (it holds the key)."""
        target = Path(path)
        target.write_text(json.dumps(self.endpoints, indent=1) + "\n")
        target.chmod(0o600)
        return target

    @property
    def ca_path(self) -> Path:
        """The emulator's CA certificate (PEM), which HTTPS clients must trust."""
        return self.ca.cert_path

    @property
    def ca_bundle_path(self) -> Path:
        """certifi's public roots plus the emulator's CA (PEM)."""
        return self.ca.bundle_path

    @property
    def client_env(self) -> dict[str, str]:
        """Environment variables under which unmodified SDK code reaches this emulator.

        Proxies (both spellings: urllib prefers the lower case, the tea SDK the upper), the
        CA variables of :meth:`CertificateAuthority.trust_environment`, ``NO_PROXY`` for the
        loopback (``/_sim/`` is served directly), and the account's access key under the
        Alibaba Cloud and OSS SDKs' standard names. It holds the secret: never log it.
        """
        if not self.proxy_url:
            raise RuntimeError("the emulator is not serving yet: start it first")
        proxies = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}
        env = dict.fromkeys(sorted(proxies), self.proxy_url)
        env.update(dict.fromkeys(("NO_PROXY", "no_proxy"), "localhost,127.0.0.1,::1"))
        env.update(self.ca.trust_environment())
        for prefix in ("ALIBABA_CLOUD", "OSS"):
            env[f"{prefix}_ACCESS_KEY_ID"] = self.access_key_id
            env[f"{prefix}_ACCESS_KEY_SECRET"] = self.access_key_secret
        return env

    def write_env(self, path: str | Path) -> Path:
        """Write :attr:`client_env` as ``NAME=value`` lines for ``set -a; . FILE`` (mode 0600)."""
        target = Path(path)
        lines = [f"{name}={shlex.quote(value)}\n" for name, value in self.client_env.items()]
        target.touch(mode=0o600)
        target.chmod(0o600)  # before the secret goes in
        target.write_text("".join(lines))
        return target

    def attach_instance_role(self, role: str, *, hardened: bool = False) -> None:
        """Make the machine the clients run on an ECS instance with the RAM role ``role``.

        Its metadata service (``http://100.100.100.200``, through the proxy) then hands out the
        role's temporary key; ``hardened`` requires a metadata token (IMDSv2). The role must
        exist and trust ``ecs.aliyuncs.com`` (ValueError otherwise), as AttachInstanceRamRole
        requires.
        """
        self.ctx.models["metadata"].attach_role(role, hardened=hardened)

    # -- introspection ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The whole emulated state, JSON-able."""
        return {name: model.snapshot() for name, model in sorted(self.ctx.models.items())}

    def mark_baseline(self) -> None:
        """Treat the buckets and functions that exist now as pre-existing (not leaks)."""
        self._baseline = {
            "buckets": {b["name"] for b in self.ctx.models["oss"].buckets()},
            "functions": {f"{f['region']}/{f['name']}" for f in self.ctx.models["fc"].functions()},
        }

    def leaks(self) -> dict[str, list[dict[str, Any]]]:
        """What a well-behaved importer must not leave behind. Empty lists mean no leaks."""
        models = self.ctx.models
        return {
            "buckets": [
                b for b in models["oss"].buckets() if b["name"] not in self._baseline["buckets"]
            ],
            "functions": [
                f
                for f in models["fc"].functions()
                if f"{f['region']}/{f['name']}" not in self._baseline["functions"]
            ],
            "multipart_uploads": list(models["oss"].open_uploads()),
            "orphan_snapshots": list(models["ecs"].orphan_snapshots()),
            "duplicate_images": list(models["ecs"].duplicate_images()),
        }

    @property
    def connections_accepted(self) -> int:
        """TCP connections that have carried at least one request, since the start."""
        return self._server.connections

    @property
    def tunnels_opened(self) -> int:
        """``CONNECT`` tunnels opened since the start (HTTPS clients open one per connection)."""
        return self._server.tunnels_opened

    @property
    def unresolved_hosts(self) -> dict[str, int]:
        """Requests for hostnames the emulator does not serve (DNS would fail), by host."""
        return dict(self._server.unresolved)

    def has_leaks(self) -> bool:
        return any(self.leaks().values())

    def faults_injected(self) -> dict[str, Any]:
        engine = self.ctx.faults
        return {
            "seed": engine.seed,
            "profile": engine.profile.name,
            "counts": dict(engine.counts()),
            "injected": engine.injected,
        }

    def introspect(self, name: str) -> Any:
        """Backs the ``/_sim/<name>`` HTTP endpoints."""
        views = {
            "state": self.state,
            "calls": self.calls.summary,
            "faults": self.faults_injected,
            "leaks": self.leaks,
            "endpoints": self._public_endpoints,
            "time": self._time,
        }
        return views[name]()

    def _public_endpoints(self) -> dict[str, Any]:
        # The HTTP view never shows the access key: the endpoints file does, to its owner only.
        return {**self.endpoints, "credentials": "(in the endpoints file)"}

    def _time(self) -> dict[str, float | bool]:
        clock = self.clock
        return {"now": clock.now(), "time_scale": clock.time_scale, "paused": clock.paused}
