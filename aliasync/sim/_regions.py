"""The emulated cloud's regions and what each one offers, loaded from an editable data file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Region:
    """One region's capabilities."""

    id: str
    local_name: str = ""
    oss: bool = True  # OSS exists in the region
    new_buckets: bool = True  # False: CreateBucket answers ForbidCreateNewBucket
    fc: bool = True  # False: the FC endpoint is unreachable

    @property
    def mainland(self) -> bool:
        """Mainland China: public OSS endpoints refuse data access (PublicEndpointForbidden)."""
        return self.id.startswith("cn-") and self.id != "cn-hongkong"


class RegionMap:
    """An ordered collection of regions."""

    def __init__(self, regions: list[Region]) -> None:
        if not regions:
            raise ValueError("a region map needs at least one region")
        self._regions = {r.id: r for r in regions}
        if len(self._regions) != len(regions):
            raise ValueError("duplicate region IDs in the region map")

    @classmethod
    def load(cls, path: str | Path | None = None) -> RegionMap:
        """Load a region file; the packaged default when ``path`` is None."""
        if path is None:
            text = resources.files("aliasync.sim").joinpath("data/regions.json").read_text()
        else:
            text = Path(path).read_text()
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, doc: Any) -> RegionMap:
        try:
            entries = doc["regions"]
            return cls([Region(**{k: v for k, v in e.items() if k != "comment"}) for e in entries])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed region file: {exc}") from exc

    @classmethod
    def synthetic(cls, count: int) -> RegionMap:
        """A large artificial map (for scale benchmarks): a mix of every kind of region."""
        regions = []
        for i in range(count):
            kind = i % 10
            prefix = "cn" if kind in (0, 1, 2, 3) else "xx"
            regions.append(
                Region(
                    id=f"{prefix}-region-{i}",
                    new_buckets=kind != 3,
                    fc=kind not in (2, 9),
                )
            )
        return cls(regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions.values())

    def __len__(self) -> int:
        return len(self._regions)

    def __contains__(self, region_id: object) -> bool:
        return region_id in self._regions

    def get(self, region_id: str) -> Region | None:
        return self._regions.get(region_id)

    def ids(self) -> list[str]:
        return list(self._regions)
