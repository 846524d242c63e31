"""Fixtures of the emulator's tests: the signature tests' capture server and key store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aliasync.sim._keys import KeyStore
from tests.sim.signing_capture import AKID, SECRET, CaptureServer


@pytest.fixture(scope="module")
def server() -> Iterator[CaptureServer]:
    """A capture server on a free loopback port for the whole module."""
    srv = CaptureServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _fresh_capture(request: pytest.FixtureRequest) -> None:
    """Each test starts with an empty capture list, even after a failed test."""
    if "server" in request.fixturenames:
        request.getfixturevalue("server").take()


@pytest.fixture
def store() -> KeyStore:
    """The account's key store with one long-lived key."""
    return KeyStore(AKID, SECRET)
