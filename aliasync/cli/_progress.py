"""Terminal output for the CLI: a live per-region view (rich) or plain log lines, and tables.

The library never prints; only the CLI owns this module.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from aliasync.cli._live import RunBoard
from aliasync.pipeline._journal import RunRecord
from aliasync.pipeline._report import Event, ImportReport, duration

log = logging.getLogger("aliasync")


class ProgressView:
    """On a terminal, the live board (:mod:`._live`); otherwise one log line per change of a
    (region, image)'s stage. ``verbose``: every event; ``quiet``: only warnings."""

    def __init__(
        self, stream: TextIO, verbose: int = 0, *, quiet: bool = False, time_scale: float = 1.0
    ) -> None:
        self._console = Console(file=stream)
        self._live: Live | None = None
        self._verbose = verbose
        self._quiet = quiet
        self._started = time.monotonic()
        self.board = RunBoard(time_scale, clock=lambda: time.monotonic() - self._started)

    @property
    def time_scale(self) -> float:
        return self.board.time_scale

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self.board.time_scale = value

    def __enter__(self) -> ProgressView:
        self._started = time.monotonic()
        if self._console.is_terminal and not self._quiet:
            self._live = Live(
                get_renderable=self._view,
                console=self._console,
                refresh_per_second=4,
                transient=True,  # the result table replaces it
            )
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

    def _view(self) -> RenderableType:
        size = self._console.size
        return self.board.render(size.width, size.height)

    def on_event(self, event: Event) -> None:
        if event.stage == "warning":
            # Said before anything is published, whatever the view.
            log.warning("warning: %s", event.message)
            return
        changed = self.board.add(event)
        if self._quiet or (self._live is not None and not self._verbose):
            return
        if self._verbose or changed or event.stage == "failed":
            log.info("%s", _line(event))


def _line(event: Event) -> str:
    where = " ".join(part for part in (event.region, event.image) if part)
    return f"[{duration(event.cloud_elapsed):>10}] {where}: {event.stage}: {event.message}"


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
                duration(image.elapsed * report.time_scale),
                "ok" if image.ok else f"error: {image.error}",
            )
        if not region.images and region.error:
            table.add_row(region.region, "-", "-", "-", "-", "-", f"error: {region.error}")
    console.print(table)
    console.print(report.summary())


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
