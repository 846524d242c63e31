"""Where aliasync keeps what it learns between runs (XDG state directory)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """``$ALIASYNC_STATE_DIR``, else ``$XDG_STATE_HOME/aliasync``, else ``~/.local/state/...``."""
    explicit = os.environ.get("ALIASYNC_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "aliasync"


class CapabilityCache:
    """The detected strategy per region, per account and endpoint set, reused by later runs.

    Behaviour always wins over the cache: a cached strategy only skips probes, and a region
    whose cached strategy no longer works is detected afresh.
    """

    def __init__(self, path: Path, scope: str) -> None:
        self.path = path
        self.scope = scope

    @classmethod
    def for_scope(cls, scope: str) -> CapabilityCache:
        """The cache in the state directory, for one account and endpoint set."""
        return cls(state_dir() / "capabilities.json", scope)

    def _load_all(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def load(self) -> dict[str, str]:
        entry = self._load_all().get(self.scope, {})
        return {k: v for k, v in entry.items() if v in ("direct", "relay", "copy")}

    def save(self, strategies: dict[str, str]) -> None:
        doc = self._load_all()
        doc[self.scope] = {**doc.get(self.scope, {}), **strategies}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(self.path)
