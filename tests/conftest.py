"""Shared fixtures: an emulator per test, served on loopback."""

from __future__ import annotations

import os

# The credentials chain would ask the ECS metadata service, 100.100.100.200, which is off this
# machine: no test may send it anything. Tests of the chain give their subprocesses the
# emulator's proxy instead (tests/accounts.py), which answers for that address.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"

from collections.abc import AsyncIterator

import pytest

from aliasync.sim import Simulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A fault-free emulator with the default region map, 1000x faster than the cloud."""
    async with Simulator(seed=0, profile="none", time_scale=1000.0) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _private_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own aliasync state directory (capability cache, journal)."""
    monkeypatch.setenv("ALIASYNC_STATE_DIR", str(tmp_path_factory.mktemp("state")))
