"""Object bytes on disk: bodies are streamed to files and hashed on the way, never held whole."""

from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from collections.abc import AsyncIterable
from dataclasses import dataclass

import anyio

CHUNK = 1 << 20


@dataclass(frozen=True)
class Staged:
    """A body written to ``path`` with the digests of what was written."""

    path: str
    size: int
    md5: str  # hex
    sha256: str  # hex
    crc32: int
    sha1: str  # hex


class _Hasher:
    def __init__(self) -> None:
        self.size = 0
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1()
        self.crc32 = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.md5.update(chunk)
        self.sha256.update(chunk)
        self.sha1.update(chunk)
        self.crc32 = zlib.crc32(chunk, self.crc32)

    def staged(self, path: str) -> Staged:
        return Staged(
            path,
            self.size,
            self.md5.hexdigest(),
            self.sha256.hexdigest(),
            self.crc32,
            self.sha1.hexdigest(),
        )


def remove(path: str) -> None:
    """Delete a file if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def receive(chunks: AsyncIterable[bytes], path: str) -> Staged:
    """Write a streamed body to ``path``; the file is removed if the stream fails."""
    hasher = _Hasher()
    try:
        async with await anyio.open_file(path, "wb") as out:
            async for chunk in chunks:
                hasher.update(chunk)
                await out.write(chunk)
    except BaseException:
        remove(path)
        raise
    return hasher.staged(path)


def assemble(sources: list[str], path: str) -> Staged:
    """Concatenate files into ``path`` (blocking: run it in a worker thread)."""
    hasher = _Hasher()
    try:
        with open(path, "wb") as out:
            for source in sources:
                with open(source, "rb") as src:
                    while chunk := src.read(CHUNK):
                        hasher.update(chunk)
                        out.write(chunk)
    except BaseException:
        remove(path)
        raise
    return hasher.staged(path)
