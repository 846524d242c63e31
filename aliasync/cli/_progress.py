"""Terminal output for the CLI: a live per-region view (rich) or plain log lines, and tables.

The library never prints; only the CLI owns this module.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from aliasync.pipeline._journal import RunRecord
from aliasync.pipeline._report import Event, ImportReport

log = logging.getLogger("aliasync")


class ProgressView:
    """Live table on a terminal; one log line per event otherwise."""

    def __init__(self, stream: TextIO, verbose: int = 0) -> None:
        self._console = Console(file=stream)
        self._live: Live | None = None
        self._verbose = verbose
        self._latest: dict[str, Event] = {}

    def __enter__(self) -> ProgressView:
        if self._console.is_terminal:
            self._live = Live(self._table(), console=self._console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def on_event(self, event: Event) -> None:
        if event.stage == "warning":
            # Said before anything is published, whatever the view.
            log.warning("warning: %s", event.message)
            return
        key = f"{event.region}/{event.image or ''}"
        self._latest[key] = event
        if self._live is not None:
            self._live.update(self._table())
            if self._verbose:
                log.info("%s", _line(event))
        else:
            log.info("%s", _line(event))

    def _table(self) -> Table:
        table = Table(title="aliasync import", expand=False)
        for column in ("region", "image", "stage", "status", "elapsed"):
            table.add_column(column)
        for key in sorted(self._latest):
            e = self._latest[key]
            table.add_row(e.region, e.image or "", e.stage, e.message, f"{e.elapsed:6.1f}s")
        return table


def _line(event: Event) -> str:
    image = f" {event.image}" if event.image else ""
    return f"[{event.elapsed:7.1f}s] {event.region}{image}: {event.stage}: {event.message}"


def print_report(report: ImportReport, stream: TextIO) -> None:
    """What each file is and how it is registered; then per region: image name, family,
    image ID, strategy, elapsed."""
    console = Console(file=stream, width=160 if not stream.isatty() else None)
    images = Table(title="images")
    for column in ("file", "image name", "format", "boot mode", "arch", "why"):
        images.add_column(column)
    for summary in report.images:
        why = summary.evidence + "".join(f"\nwarning: {w}" for w in summary.warnings)
        images.add_row(
            Path(summary.path).name, summary.name, summary.format, summary.boot_mode,
            summary.architecture, why,
        )  # fmt: skip
    if report.images:
        console.print(images)
    table = Table(title=f"run {report.run_id}: {report.status}")
    for column in ("region", "image name", "family", "image ID", "strategy", "elapsed", "status"):
        table.add_column(column)
    for region in sorted(report.regions, key=lambda r: r.region):
        for image in region.images:
            strategy: str = image.strategy or region.strategy or "-"
            if image.existing:
                strategy = "already published"
            if image.source_region:
                strategy = f"{strategy} from {image.source_region}"
            table.add_row(
                region.region,
                image.name,
                image.family,
                image.image_id or "-",
                strategy,
                f"{image.elapsed:.1f}s",
                "ok" if image.ok else f"error: {image.error}",
            )
        if not region.images and region.error:
            table.add_row(region.region, "-", "-", "-", "-", "-", f"error: {region.error}")
    console.print(table)


def print_runs(runs: Sequence[RunRecord], stream: TextIO) -> None:
    """The journal's runs, newest first."""
    console = Console(file=stream, width=160 if not stream.isatty() else None)
    table = Table(title="aliasync runs")
    for column in ("run", "started (UTC)", "status", "regions", "images"):
        table.add_column(column)
    for run in runs:
        started = datetime.datetime.fromtimestamp(run.created, datetime.UTC)
        images = ", ".join(Path(i["path"]).name for i in run.plan.get("images", []))
        table.add_row(
            run.run_id,
            started.strftime("%Y-%m-%d %H:%M:%S"),
            run.status,
            str(len(run.plan.get("regions", []))),
            images,
        )
    console.print(table)
