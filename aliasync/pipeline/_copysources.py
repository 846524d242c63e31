"""Choosing where CopyImage copies from, so that no source region's copy queue piles up.

The cloud runs only a few copies at once per source region (five, says the current CopyImage
page) and queues the rest, and copies one source image once at a time
(OperationDenied.ImageCopyConflict), so copying everything from one region takes hours. The
pool hands out a copy slot in whichever region already holds the image, is not copying that
same image, and has the most free slots, as soon as one exists; every finished import or copy
adds a new source. It is, in effect, a per-source-region semaphore that a waiter can take in
any of several regions. Sources are private images only: ECS does not copy community images.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import anyio


class NoSourceError(Exception):
    """No region will ever hold the image: every possible source failed."""


class CopySourcePool:
    """Per-source-region copy slots, acquired for any region that holds a given image."""

    def __init__(self, slots_per_region: int) -> None:
        if slots_per_region < 1:
            raise ValueError("slots_per_region must be at least 1")
        self._slots = slots_per_region
        self._busy: dict[str, int] = defaultdict(int)
        self._copying: Counter[tuple[str, str]] = Counter()  # (source region, image) copying
        self._used: dict[str, int] = defaultdict(int)  # copies ever started, to spread ties
        self._sources: dict[str, dict[str, str]] = defaultdict(dict)  # image -> region -> ID
        self._hopeless: set[str] = set()
        self._changed = anyio.Condition()

    async def add_source(self, image: str, region: str, image_id: str) -> None:
        """``image`` is Available in ``region`` as ``image_id``: it can now be copied from there."""
        async with self._changed:
            self._sources[image][region] = image_id
            self._changed.notify_all()

    async def give_up(self, image: str) -> None:
        """No further source of ``image`` can appear: wake waiters so they fail."""
        async with self._changed:
            self._hopeless.add(image)
            self._changed.notify_all()

    def sources(self, image: str) -> dict[str, str]:
        return dict(self._sources[image])

    @asynccontextmanager
    async def slot(
        self, image: str, exclude: str, avoid: Collection[str] = (), never: Collection[str] = ()
    ) -> AsyncIterator[tuple[str, str]]:
        """Hold a copy slot in a region holding ``image``; yields (source region, image ID).

        Regions in ``avoid`` (where a copy of this image just failed) are taken only when no
        other source is free; regions in ``never`` (whose image cannot be copied) not at all.
        """
        async with self._changed:
            while True:
                choice = self._pick(image, {exclude, *never}, avoid)
                if choice is not None:
                    break
                if image in self._hopeless and not set(self._sources[image]) - {*never}:
                    raise NoSourceError(image)
                await self._changed.wait()
            self._used[choice] += 1
            self._take(choice, image)
        try:
            yield choice, self._sources[image][choice]
        finally:
            await self._release(choice, image)

    @asynccontextmanager
    async def occupy(self, region: str, image: str) -> AsyncIterator[None]:
        """Count a copy of ``image`` from ``region`` as running, without waiting for a slot:
        one that an earlier session sent, re-attached to."""
        async with self._changed:
            self._take(region, image)
        try:
            yield
        finally:
            await self._release(region, image)

    def _take(self, region: str, image: str) -> None:
        self._busy[region] += 1
        self._copying[(region, image)] += 1

    async def _release(self, region: str, image: str) -> None:
        with anyio.CancelScope(shield=True):
            async with self._changed:
                self._busy[region] -= 1
                self._copying[(region, image)] -= 1
                self._changed.notify_all()

    def _pick(self, image: str, exclude: Collection[str], avoid: Collection[str]) -> str | None:
        free = [
            region
            for region in self._sources[image]
            if region not in exclude
            and self._busy[region] < self._slots
            and self._copying[(region, image)] <= 0
        ]
        if not free:
            return None
        return min(free, key=lambda r: (r in avoid, self._busy[r], self._used[r], r))
