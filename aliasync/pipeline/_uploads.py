"""Which uncensored regions already hold an image's bytes, for relays to download from."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import anyio


@dataclass(frozen=True)
class UploadedCopy:
    """An image's bytes in one region's temporary bucket."""

    region: str
    bucket: str
    key: str


class UploadBoard:
    """Uploads as they complete; relays wait here for their first source."""

    def __init__(self) -> None:
        self._copies: dict[str, list[UploadedCopy]] = defaultdict(list)
        self._pending: dict[str, int] = defaultdict(int)
        self._done: set[tuple[str, str]] = set()
        self._changed = anyio.Condition()

    def expect(self, image: str, uploads: int) -> None:
        """``uploads`` regions will try to upload ``image``."""
        self._pending[image] = uploads

    async def finished(self, image: str, region: str, copy: UploadedCopy | None) -> None:
        """``region``'s upload of ``image`` ended, with a usable copy or not; once counts."""
        async with self._changed:
            if (image, region) in self._done:
                return
            self._done.add((image, region))
            self._pending[image] -= 1
            if copy is not None:
                self._copies[image].append(copy)
            self._changed.notify_all()

    async def wait_for_sources(self, image: str, want: int) -> list[UploadedCopy]:
        """Wait for the first copy of ``image``; return up to ``want`` of those existing then.

        An empty list means every upload failed: no relay can succeed.
        """
        async with self._changed:
            while not self._copies[image] and self._pending[image] > 0:
                await self._changed.wait()
            return list(self._copies[image][:want])
