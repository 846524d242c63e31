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

from collections import defaultdict
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
        self._copying: set[tuple[str, str]] = set()  # (source region, image) being copied
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
        self, image: str, exclude: str, avoid: Collection[str] = ()
    ) -> AsyncIterator[tuple[str, str]]:
        """Hold a copy slot in a region holding ``image``; yields (source region, image ID).

        Regions in ``avoid`` (where a copy of this image just failed) are taken only when no
        other source is free.
        """
        async with self._changed:
            while True:
                choice = self._pick(image, exclude, avoid)
                if choice is not None:
                    break
                if image in self._hopeless and not self._sources[image]:
                    raise NoSourceError(image)
                await self._changed.wait()
            self._busy[choice] += 1
            self._used[choice] += 1
            self._copying.add((choice, image))
        try:
            yield choice, self._sources[image][choice]
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._busy[choice] -= 1
                    self._copying.discard((choice, image))
                    self._changed.notify_all()

    def _pick(self, image: str, exclude: str, avoid: Collection[str]) -> str | None:
        free = [
            region
            for region in self._sources[image]
            if region != exclude
            and self._busy[region] < self._slots
            and (region, image) not in self._copying
        ]
        if not free:
            return None
        return min(free, key=lambda r: (r in avoid, self._busy[r], self._used[r], r))
