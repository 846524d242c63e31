"""Seeded, reproducible faults and the cloud's latency model, per action and per region.

Every decision draws from its own random stream, keyed by (seed, kind, service, action, region),
so the same seed gives the same sequence of faults for each (action, region) however the calls
of different regions interleave.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Literal

FaultKind = Literal["internal", "unavailable", "throttle", "drop", "lost"]


@dataclass(frozen=True)
class FaultRule:
    """Override rates where ``pattern`` (fnmatch) matches.

    Call faults match ``"service:action:region"`` (e.g. ``"ecs:CopyImage:*"``); model faults
    match ``"model:kind:region"`` (e.g. ``"model:import:ap-southeast-1"`` for failed imports).
    """

    pattern: str
    transient_rate: float | None = None
    lost_response_rate: float | None = None
    throttle_burst_rate: float | None = None
    download_failure_rate: float | None = None
    import_failure_rate: float | None = None
    copy_failure_rate: float | None = None
    function_timeout_rate: float | None = None


@dataclass(frozen=True)
class FaultProfile:
    """Fault rates (probabilities per call) and latency parameters (virtual seconds)."""

    name: str = "default"
    transient_rate: float = 0.01  # 500, 503, Throttling and dropped connections, mixed
    lost_response_rate: float = 0.002  # mutating calls: committed, then the connection drops
    throttle_burst_rate: float = 0.0  # chance a call starts a throttling storm for its action
    throttle_burst_seconds: float = 60.0
    download_failure_rate: float = 0.10  # presigned cross-region GETs cut off mid-body
    import_failure_rate: float = 0.01  # import tasks that end Failed
    copy_failure_rate: float = 0.01  # image copies that end CreateFailed
    function_timeout_rate: float = 0.0  # relay invocations that hang until their timeout
    cold_start_seconds: float = 0.5  # first invocation of a function
    rules: tuple[FaultRule, ...] = ()
    # Latency model (virtual seconds).
    api_latency_median: float = 0.08
    api_latency_sigma: float = 0.6
    import_base_seconds: float = 180.0
    import_seconds_per_gib: float = 60.0
    copy_base_seconds: float = 900.0
    copy_seconds_per_gib: float = 300.0
    # Copies running at once per source region; the rest queue. The current CopyImage page says
    # five (the 2021 one said one: set 1 to see that cloud).
    copy_concurrency: int = 5

    def with_(self, **changes: object) -> FaultProfile:
        return replace(self, **changes)  # type: ignore[arg-type]


PROFILES: dict[str, FaultProfile] = {
    "none": FaultProfile(
        name="none",
        transient_rate=0.0,
        lost_response_rate=0.0,
        download_failure_rate=0.0,
        import_failure_rate=0.0,
        copy_failure_rate=0.0,
    ),
    "default": FaultProfile(),
    "harsh": FaultProfile(
        name="harsh",
        transient_rate=0.05,
        lost_response_rate=0.02,
        throttle_burst_rate=0.002,
        download_failure_rate=0.25,
        import_failure_rate=0.05,
        copy_failure_rate=0.05,
        function_timeout_rate=0.05,
        cold_start_seconds=5.0,
        api_latency_sigma=1.0,
    ),
}


def profile(name: str) -> FaultProfile:
    """A named profile: ``none``, ``default`` or ``harsh``."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown fault profile {name!r}; choose from {sorted(PROFILES)}"
        ) from None


@dataclass(frozen=True)
class Injected:
    """One fault the emulator injected (kept for introspection)."""

    kind: str
    service: str
    action: str
    region: str | None
    at: float  # virtual seconds
    detail: str = ""


@dataclass
class FaultEngine:
    """Draws faults and latencies from per-stream seeded generators and records what it did."""

    profile: FaultProfile
    seed: int = 0
    injected: list[Injected] = field(default_factory=list)
    _streams: dict[tuple[str, ...], random.Random] = field(default_factory=dict)
    _storm_until: dict[tuple[str, str, str | None], float] = field(default_factory=dict)

    def _rng(self, *key: str | None) -> random.Random:
        k = tuple("" if part is None else part for part in key)
        rng = self._streams.get(k)
        if rng is None:
            digest = hashlib.sha256(repr((self.seed, *k)).encode()).digest()
            rng = self._streams[k] = random.Random(int.from_bytes(digest[:8], "big"))
        return rng

    def _rate(self, attr: str, service: str, action: str, region: str | None) -> float:
        rate: float = getattr(self.profile, attr)
        subject = f"{service}:{action}:{region or ''}"
        for rule in self.profile.rules:
            value = getattr(rule, attr, None)
            if value is not None and fnmatch.fnmatchcase(subject, rule.pattern):
                rate = value
        return rate

    def record(
        self, kind: str, service: str, action: str, region: str | None, now: float, detail: str = ""
    ) -> None:
        self.injected.append(Injected(kind, service, action, region, now, detail))

    def draw_call_fault(
        self, service: str, action: str, region: str | None, mutating: bool, now: float
    ) -> FaultKind | None:
        """Decide whether this call fails before running, or runs and loses its response."""
        rng = self._rng("call", service, action, region)
        roll, kind_roll, lost_roll, storm_roll = (
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
        )
        storm_key = (service, action, region)
        if now < self._storm_until.get(storm_key, -1.0):
            return "throttle"
        if storm_roll < self._rate("throttle_burst_rate", service, action, region):
            self._storm_until[storm_key] = now + self.profile.throttle_burst_seconds
            return "throttle"
        if roll < self._rate("transient_rate", service, action, region):
            # 500 / 503 / Throttling / dropped connection, in roughly equal shares.
            kinds: tuple[FaultKind, ...] = ("internal", "unavailable", "throttle", "drop")
            return kinds[min(3, int(kind_roll * 4))]
        if mutating and lost_roll < self._rate("lost_response_rate", service, action, region):
            return "lost"
        return None

    def chance(self, kind: str, rate_attr: str, region: str | None, key: str = "") -> bool:
        """A model-level fault (download cut, failed import or copy, function timeout)."""
        rate = self._rate(rate_attr, "model", kind, region)
        return self._rng(kind, region, key).random() < rate

    def api_latency(self, service: str, action: str, region: str | None) -> float:
        """Virtual seconds an API call takes (log-normal around the median)."""
        rng = self._rng("latency", service, action, region)
        p = self.profile
        return p.api_latency_median * math.exp(rng.gauss(0.0, p.api_latency_sigma))

    def import_seconds(self, size_bytes: int) -> float:
        p = self.profile
        return p.import_base_seconds + p.import_seconds_per_gib * size_bytes / 2**30

    def copy_seconds(self, size_bytes: int) -> float:
        p = self.profile
        return p.copy_base_seconds + p.copy_seconds_per_gib * size_bytes / 2**30

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.injected)
