"""A durable record of every run, so that a killed run can be resumed without redoing work.

SQLite in WAL mode in the state directory. A run records its plan (images with their SHA-256,
options, regions); each (region, image) records its steps: the ClientToken and attempt
*before* a mutating call is sent, the IDs the cloud answered *after*. Resuming replays the same
run ID, so every derived name and ClientToken comes out the same: an ImportImage or CopyImage
in flight is re-attached by its token, never sent again under a new one.

Nothing secret is ever written here: no keys, tokens or presigned URLs.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aliasync._exceptions import JournalError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    status TEXT NOT NULL,
    plan TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    region TEXT NOT NULL,
    image TEXT NOT NULL,
    step TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_by_run ON steps(run_id, region, image);
"""


@dataclass(frozen=True)
class StepRecord:
    """One journaled step, in the order it was written."""

    region: str
    image: str
    step: str
    state: str
    data: dict[str, Any]
    at: float  # wall clock (Unix seconds)


@dataclass(frozen=True)
class RunRecord:
    """One run as the journal knows it."""

    run_id: str
    created: float
    updated: float
    status: str  # "running", "success", "partial", "error", "interrupted"
    plan: dict[str, Any]


class Journal:
    """The run journal. One connection; every write is its own committed transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path}: the run journal is unreadable ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: the run journal is unreadable ({exc})") from exc

    def start_run(self, run_id: str, plan: dict[str, Any]) -> None:
        now = time.time()
        self._execute(
            "INSERT INTO runs (run_id, created, updated, status, plan) VALUES (?, ?, ?, ?, ?)",
            (run_id, now, now, "running", json.dumps(plan, sort_keys=True)),
        )

    def set_status(self, run_id: str, status: str) -> None:
        self._execute(
            "UPDATE runs SET status = ?, updated = ? WHERE run_id = ?",
            (status, time.time(), run_id),
        )

    def record(
        self, run_id: str, region: str, image: str, step: str, state: str, **data: Any
    ) -> None:
        """Append one step: ``state`` is "started" (before the call) or "done"/"failed"."""
        self._execute(
            "INSERT INTO steps (run_id, region, image, step, state, data, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, region, image, step, state, json.dumps(data, sort_keys=True), time.time()),
        )
        self._execute("UPDATE runs SET updated = ? WHERE run_id = ?", (time.time(), run_id))

    def runs(self) -> list[RunRecord]:
        rows = self._execute(
            "SELECT run_id, created, updated, status, plan FROM runs ORDER BY created DESC"
        ).fetchall()
        return [self._run(row) for row in rows]

    def run(self, run_id: str | None) -> RunRecord:
        """A run by ID (or unique ID prefix); the latest when ``run_id`` is None."""
        if run_id is None:
            rows = self._execute(
                "SELECT run_id, created, updated, status, plan FROM runs "
                "ORDER BY created DESC LIMIT 1"
            ).fetchall()
            if not rows:
                raise JournalError(f"{self.path}: no run to resume")
        else:
            rows = self._execute(
                "SELECT run_id, created, updated, status, plan FROM runs WHERE run_id LIKE ?",
                (run_id.replace("%", "") + "%",),
            ).fetchall()
            if len(rows) != 1:
                problem = "no run" if not rows else "more than one run"
                raise JournalError(f"{problem} with ID {run_id!r} in {self.path}")
        return self._run(rows[0])

    def _run(self, row: tuple[Any, ...]) -> RunRecord:
        try:
            plan = json.loads(row[4])
        except ValueError as exc:
            raise JournalError(f"{self.path}: run {row[0]} has a corrupt plan") from exc
        if not isinstance(plan, dict):
            raise JournalError(f"{self.path}: run {row[0]} has a corrupt plan")
        return RunRecord(row[0], row[1], row[2], row[3], plan)

    def latest_steps(self, run_id: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The last record of each (region, image, step), with its state and data."""
        rows = self._execute(
            "SELECT region, image, step, state, data FROM steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for region, image, step, state, data in rows:
            try:
                latest[(region, image, step)] = {"state": state, **json.loads(data)}
            except ValueError as exc:
                raise JournalError(f"{self.path}: run {run_id} has a corrupt step") from exc
        return latest

    def steps(self, run_id: str) -> list[StepRecord]:
        """Every record of a run, oldest first (for ``runs show`` and its timeline)."""
        rows = self._execute(
            "SELECT region, image, step, state, data, at FROM steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        records = []
        for region, image, step, state, data, at in rows:
            try:
                records.append(StepRecord(region, image, step, state, json.loads(data), at))
            except ValueError as exc:
                raise JournalError(f"{self.path}: run {run_id} has a corrupt step") from exc
        return records
