"""The live view of a run: what each (region, image) is doing, built from the run's events.

:class:`RunBoard` is pure state (events in; counts, estimates and lines out), so the same
board drives the terminal view, the log lines of a non-terminal, and the tests, which render it
at fixed sizes. The view fits any terminal: a header of totals, a line per region with a
compact cell per image, and, when the lines run out, done regions folded into one line and
the rest counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import fmean

from rich.console import Group
from rich.text import Text

from aliasync.pipeline._report import Event, duration

__all__ = ["RunBoard"]

FINAL = frozenset({"done", "failed"})
# What usually follows a stage on the way to "done", to estimate what is left.
_AFTER = {
    "plan": ("upload", "import"),
    "upload": ("import",),
    "wait": ("copy",),
    "relay": ("import",),
    "queued": ("copy",),
    "retry": ("import",),
}
_TIMED = ("upload", "relay", "import", "queued", "copy")
_STYLE = {"done": "green", "failed": "bold red", "retry": "yellow"}


@dataclass
class Cell:
    """One (region, image) as the last events said."""

    stage: str = "plan"
    since: float = 0.0  # cloud seconds into the run when the stage began
    progress: float | None = None
    remaining: float | None = None  # as reported, at ``reported``
    reported: float = 0.0
    sent: float = 0.0  # bytes uploaded, at wall second ``sent_at``
    sent_at: float = 0.0
    rate: float = 0.0  # bytes per wall second, smoothed


@dataclass
class RunBoard:
    """Every (region, image) of a run, its totals and the estimate of the time left."""

    time_scale: float = 1.0
    clock: Callable[[], float] | None = None  # wall seconds since the run began
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    regions: dict[str, None] = field(default_factory=dict)  # in order of appearance
    images: dict[str, None] = field(default_factory=dict)
    region_stage: dict[str, str] = field(default_factory=dict)  # events without an image
    _took: dict[str, list[float]] = field(default_factory=dict)  # stage -> cloud seconds
    _last_wall: float = 0.0

    def add(self, event: Event) -> bool:
        """Take one event; True when it changed the stage of its (region, image)."""
        self._last_wall = max(self._last_wall, event.elapsed)
        if not event.region:
            return False
        self.regions.setdefault(event.region)
        if event.image is None:
            changed = self.region_stage.get(event.region) != event.stage
            self.region_stage[event.region] = event.stage
            return changed
        self.images.setdefault(event.image)
        cell = self.cells.setdefault((event.region, event.image), Cell(since=event.cloud_elapsed))
        changed = cell.stage != event.stage
        if changed:
            if cell.stage in _TIMED:
                self._took.setdefault(cell.stage, []).append(event.cloud_elapsed - cell.since)
            cell.stage, cell.since = event.stage, event.cloud_elapsed
            cell.progress = cell.remaining = None
        if event.progress is not None:
            cell.progress = event.progress
            if event.size:
                self._measure(cell, event.progress * event.size, event.elapsed)
        if event.remaining is not None:
            cell.remaining, cell.reported = event.remaining, event.cloud_elapsed
        return changed

    @staticmethod
    def _measure(cell: Cell, sent: float, wall: float) -> None:
        if wall > cell.sent_at and sent >= cell.sent:
            latest = (sent - cell.sent) / (wall - cell.sent_at)
            cell.rate = latest if not cell.rate else 0.7 * cell.rate + 0.3 * latest
        cell.sent, cell.sent_at = sent, wall

    # -- numbers ---------------------------------------------------------------------------------

    def upload_rate(self) -> float:
        """Bytes per (wall) second, all uploads in progress together."""
        return sum(c.rate for c in self.cells.values() if c.stage == "upload")

    def now(self) -> float:
        """Cloud seconds since the run began."""
        wall = self.clock() if self.clock is not None else self._last_wall
        return wall * self.time_scale

    def totals(self) -> dict[str, int]:
        """``published``, ``failed``, ``total`` and the count of each stage in progress."""
        counts: dict[str, int] = {"published": 0, "failed": 0}
        for cell in self.cells.values():
            key = {"done": "published", "failed": "failed"}.get(cell.stage, cell.stage)
            counts[key] = counts.get(key, 0) + 1
        counts["total"] = max(len(self.cells), len(self.regions) * len(self.images))
        return counts

    def time_left(self) -> float | None:
        """Cloud seconds until the last (region, image) ends, from the durations reported and
        those observed so far; None until there is something to go on."""
        now = self.now()
        longest = 0.0
        for cell in self.cells.values():
            if cell.stage in FINAL:
                continue
            if cell.remaining is not None:
                # RemainTime runs to Available: for a queued copy it includes the queue.
                longest = max(longest, cell.remaining - (now - cell.reported))
                continue
            left = self._left_in_stage(cell, now)
            if left is None:
                return None
            for later in _AFTER.get(cell.stage, ()):
                seen = self._took.get(later)
                if not seen:
                    return None
                left += fmean(seen)
            longest = max(longest, left)
        return max(0.0, longest)

    def _left_in_stage(self, cell: Cell, now: float) -> float | None:
        spent = now - cell.since
        if cell.progress:
            return spent * (1 - cell.progress) / cell.progress
        seen = self._took.get(cell.stage)
        if seen:
            return max(0.0, fmean(seen) - spent)
        return 0.0 if cell.stage not in _TIMED else None

    # -- lines -----------------------------------------------------------------------------------

    def header(self, width: int) -> Text:
        """Totals, in progress by stage, elapsed and the estimate, cut to ``width``."""
        totals = self.totals()
        parts = [f"{totals['published']}/{totals['total']} published"]
        if totals["failed"]:
            parts.append(f"{totals['failed']} failed")
        elapsed = duration(self.now())
        if self.time_scale != 1.0:
            elapsed += f" cloud ({duration(self.now() / self.time_scale)} here)"
        parts.append(elapsed)
        left = self.time_left()
        if totals["published"] + totals["failed"] < totals["total"]:
            parts.append(f"≈ {duration(left)} left" if left is not None else "estimating")
        busy = {k: v for k, v in totals.items() if k not in ("published", "failed", "total")}
        parts.extend(f"{stage} {n}" for stage, n in sorted(busy.items()))
        rate = self.upload_rate()
        if rate:
            parts.append(f"↑ {rate / 1e6:.1f} MB/s")
        kept = parts[:1]
        for part in parts[1:]:  # the most important parts come first
            if len("aliasync · " + " · ".join([*kept, part])) > width:
                break
            kept.append(part)
        line = Text("aliasync · ", style="bold")
        line.append(" · ".join(kept))
        line.truncate(width)
        return line

    def render(self, width: int, height: int) -> Group:
        """The whole view, at most ``width`` columns by ``height`` lines."""
        images = list(self.images)
        regions = list(self.regions)
        name_width = min(max([len(r) for r in regions] + [6]), 16)
        cell_width = max(6, (width - name_width - 1) // max(1, len(images)) - 1)
        lines: list[Text] = [self.header(width), self._columns(images, name_width, cell_width)]
        room = max(1, height - 1 - len(lines))  # one line spare: the terminal's last
        done = [r for r in regions if self._region_done(r, images)]
        busy = sorted(
            (r for r in regions if r not in done),
            key=lambda r: (not self._region_failed(r, images), r),
        )
        folded: list[str] = []
        hidden = 0
        if len(busy) + len(done) <= room:
            shown = busy + done
        else:
            folded, space = done, room - (1 if done else 0)
            shown = busy if len(busy) <= space else busy[: max(0, space - 1)]
            hidden = len(busy) - len(shown)
        lines.extend(self._row(r, images, name_width, cell_width) for r in shown)
        if hidden:
            lines.append(Text(f"… {hidden} more region{'s' if hidden != 1 else ''} in progress"))
        if folded:
            text = Text(f"{len(folded)} done: ", style="green")
            text.append(" ".join(folded))
            lines.append(text)
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return Group(*lines[: max(1, height - 1)])

    def _columns(self, images: list[str], name_width: int, cell_width: int) -> Text:
        prefix = _shared_prefix(images) if len(images) > 1 else ""
        line = Text("region".ljust(name_width) + " ", style="dim")
        for name in images:
            label = name[len(prefix) :].strip("-") or name
            line.append(label[:cell_width].ljust(cell_width) + " ", style="dim")
        return line

    def _row(self, region: str, images: list[str], name_width: int, cell_width: int) -> Text:
        line = Text(region[:name_width].ljust(name_width) + " ")
        for name in images:
            cell = self.cells.get((region, name))
            word = self._word(cell, region)
            style = _STYLE.get(cell.stage if cell else "", "")
            line.append(word[:cell_width].ljust(cell_width) + " ", style=style)
        return line

    def _word(self, cell: Cell | None, region: str) -> str:
        if cell is None:
            return self.region_stage.get(region, "plan")
        if cell.progress is not None and cell.stage not in FINAL:
            return f"{cell.stage} {int(cell.progress * 100)}%"
        return cell.stage

    def _region_done(self, region: str, images: list[str]) -> bool:
        cells = [self.cells.get((region, name)) for name in images]
        return bool(cells) and all(c is not None and c.stage == "done" for c in cells)

    def _region_failed(self, region: str, images: list[str]) -> bool:
        return any((c := self.cells.get((region, n))) and c.stage == "failed" for n in images)


def _shared_prefix(names: list[str]) -> str:
    """The longest start all names share, cut back to a "-": what the columns leave out."""
    shortest = min(names, key=len)
    end = next((i for i, c in enumerate(shortest) if any(n[i] != c for n in names)), len(shortest))
    return shortest[:end].rsplit("-", 1)[0] if end < len(shortest) else shortest
