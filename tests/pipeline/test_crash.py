"""SIGKILL at a kind of step, then --resume RUN: every image once, nothing leaked, exit 0.

A subset of the crash matrix of ``benchmarks/fault_campaign.py`` (machinery:
``tests/crashing.py``); each case is killed at the same kind of step as many times as given.
"""

from __future__ import annotations

import pytest

from tests.crashing import STEPS, crash_case

pytestmark = pytest.mark.anyio


# One case per mechanism a resume relies on: the run's own buckets and functions found again
# (cleanup), an import re-attached without a new relay, a copy re-attached to its source
# queue, tagged snapshots swept with no old image left, a multipart upload left open.
SUBSET = [("cleanup", 2), ("import-relayed", 2), ("copy-queued", 1), ("overwrite-last", 1),
          ("upload", 1)]  # fmt: skip


@pytest.mark.parametrize(("step", "kills"), SUBSET)
async def test_killed_at_a_step_and_resumed_loses_and_leaks_nothing(step: str, kills: int) -> None:
    """Killed at ``step`` (``kills`` sessions in a row), the last resume finishes the run."""
    outcome = await crash_case(STEPS[step], kills=kills)
    assert outcome.ok, (outcome.problems, outcome.stderr[-4000:])


async def test_a_relay_resumed_after_its_uploaders_finished_relays_from_their_buckets() -> None:
    """Killed with a relay in flight and every uploading region done: the resumed session
    relays from the finished regions' uploads (still in the run's buckets), not by CopyImage."""
    outcome = await crash_case(STEPS["relay-outlasting-uploads"], kills=1)
    assert outcome.ok, (outcome.problems, outcome.stderr[-4000:])
    assert outcome.strategies["cn-beijing"] == ["relay", "relay"], outcome.strategies
