"""Where the hours went: a run drawn from its journal, as SVG or a standalone HTML page.

One lane per region, a row per image in it, a bar per stage (plan, upload, waiting for another
region, relay, import, copy queued, copy running, publish, cleanup), retries and failures
marked, and the critical path (the chain of stages the run's end waited on) outlined. Times
are the cloud's: the emulator's run faster, and its journal says by how much. Every bar has
a ``<title>``, which browsers show on hover; nothing is fetched from the network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aliasync.pipeline._journal import RunRecord, StepRecord
from aliasync.pipeline._report import duration

__all__ = ["Bar", "Timeline", "build_timeline", "html_page", "svg"]

COLORS = {
    "plan": "#c7c7c7", "upload": "#4e79a7", "wait": "#e8e8e8", "relay": "#76b7b2",
    "import": "#59a14f", "queued": "#edc948", "copy": "#f28e2b", "retry": "#ff9da7",
    "update": "#b07aa1", "publish": "#9c755f", "cleanup": "#bab0ac",
}  # fmt: skip
LABELS = {"wait": "waiting for another region", "queued": "copy queued", "copy": "copy running"}
ENDS = frozenset({"done", "failed"})
# A region's own stage between its plan and its cleanup: its images' rows show that time.
_UNDRAWN = frozenset({"ready"})
_RELAYING = "relaying from "
_LANE_LABEL = 170
_ROW = 14
_GAP = 6
_WIDTH = 1200


@dataclass(frozen=True)
class Bar:
    region: str
    image: str  # "" for the region's own stages (planning, cleanup)
    stage: str
    start: float  # cloud seconds since the run began
    end: float
    detail: str = ""


@dataclass
class Timeline:
    run: RunRecord
    bars: list[Bar] = field(default_factory=list)
    marks: list[tuple[str, str, str, float, str]] = field(default_factory=list)  # kind, ...
    critical: set[Bar] = field(default_factory=set)
    end: float = 0.0

    @property
    def regions(self) -> list[str]:
        return sorted({b.region for b in self.bars} | {m[1] for m in self.marks})

    def rows(self, region: str) -> list[str]:
        """The rows of a region's lane: its own ("") and then each image's."""
        images = {b.image for b in self.bars if b.region == region}
        return sorted(images)


def build_timeline(run: RunRecord, steps: list[StepRecord]) -> Timeline:
    """The bars, marks and critical path of one run from its journal records."""
    scale = float(run.plan.get("time_scale") or 1.0)
    timeline = Timeline(run)

    def cloud(at: float) -> float:
        return max(0.0, (at - run.created) * scale)

    open_stage: dict[tuple[str, str], tuple[str, float, str]] = {}
    sources: dict[tuple[str, str], str] = {}
    finished: dict[tuple[str, str], float] = {}
    for record in steps:
        key = (record.region, record.image)
        if record.step == "copy" and record.state == "sent" and record.data.get("source"):
            sources[key] = str(record.data["source"])
        if record.step != "stage":
            continue
        message = str(record.data.get("message") or "")
        if record.state == "relay" and message.startswith(_RELAYING):
            # The relay waited for the first of the uploads it names.
            sources[key] = message[len(_RELAYING) :].split(",")[0].strip()
        at = cloud(record.at)
        timeline.end = max(timeline.end, at)
        if key in open_stage:
            stage, start, detail = open_stage.pop(key)
            if stage not in _UNDRAWN:
                timeline.bars.append(Bar(record.region, record.image, stage, start, at, detail))
        if record.state in ("retry", "failed"):
            timeline.marks.append((record.state, record.region, record.image, at, message))
        if record.state in ENDS:
            finished[key] = at
        else:
            open_stage[key] = (record.state, at, message)
    # Stages still open at the end (a killed run, a region's last cleanup) end with the run.
    end = max(timeline.end, cloud(run.updated))
    timeline.end = end
    for (region, image), (stage, start, detail) in open_stage.items():
        if stage not in _UNDRAWN:
            timeline.bars.append(Bar(region, image, stage, start, end, detail))
    timeline.critical = _critical_path(timeline.bars, finished, sources)
    cleanups = [b for b in timeline.bars if b.stage == "cleanup"]
    if cleanups and max(b.end for b in cleanups) > max(finished.values(), default=0.0):
        timeline.critical.add(max(cleanups, key=lambda b: b.end))  # the run ended with it
    return timeline


def _critical_path(
    bars: list[Bar], finished: dict[tuple[str, str], float], sources: dict[tuple[str, str], str]
) -> set[Bar]:
    """The last (region, image) to finish, and through its copies the sources it waited for."""
    if not finished:
        return set()
    region, image = max(finished, key=lambda k: finished[k])
    path: set[Bar] = set()
    seen: set[tuple[str, str]] = set()
    until = finished[(region, image)]
    while (region, image) not in seen:
        seen.add((region, image))
        path.update(
            b for b in bars if b.region == region and b.image == image and b.end <= until + 1e-6
        )
        source = sources.get((region, image))
        if source is None:
            break
        waited_from = min(
            (
                b.start
                for b in bars
                if (b.region, b.image) == (region, image) and b.stage in ("copy", "relay")
            ),
            default=until,
        )
        region, until = source, waited_from
    return path


def _ticks(end: float) -> list[float]:
    for step in (10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800):
        if end / step <= 12:
            return [i * step for i in range(int(end // step) + 1)]
    return [0.0, end]


def svg(timeline: Timeline) -> str:
    """The timeline as a standalone SVG document."""
    end = max(timeline.end, 1.0)
    span = _WIDTH - _LANE_LABEL - 20

    def x(t: float) -> float:
        return _LANE_LABEL + span * t / end

    parts: list[str] = []
    y = 40
    for region in timeline.regions:
        rows = timeline.rows(region) or [""]
        height = len(rows) * _ROW
        parts.append(f'<g class="lane" data-region="{_e(region)}">')
        parts.append(f'<text x="4" y="{y + height / 2 + 4:.1f}" font-size="11">{_e(region)}</text>')
        parts.append(
            f'<line x1="0" x2="{_WIDTH}" y1="{y + height + _GAP / 2:.1f}"'
            f' y2="{y + height + _GAP / 2:.1f}" stroke="#eee"/>'
        )
        for index, image in enumerate(rows):
            top = y + index * _ROW
            for bar in (b for b in timeline.bars if b.region == region and b.image == image):
                parts.append(_bar(bar, x, top, bar in timeline.critical))
            for kind, r, i, at, message in timeline.marks:
                if r == region and i == image:
                    parts.append(_mark(kind, x(at), top, message))
        parts.append("</g>")
        y += height + _GAP
    axis = [
        f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="30" y2="{y}" stroke="#ddd"/>'
        f'<text x="{x(t) + 2:.1f}" y="26" font-size="10" fill="#555">{duration(t)}</text>'
        for t in _ticks(end)
    ]
    title = (
        f"run {timeline.run.run_id}: {timeline.run.status}, {duration(timeline.end)}"
        " of cloud time; outlined: the critical path"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{y + 10}"'
        f' viewBox="0 0 {_WIDTH} {y + 10}" font-family="sans-serif">'
        f'<text x="4" y="14" font-size="12" font-weight="bold">{_e(title)}</text>'
        + "".join(axis)
        + "".join(parts)
        + "</svg>"
    )


def _bar(bar: Bar, x: Any, top: float, critical: bool) -> str:
    left, right = x(bar.start), max(x(bar.end), x(bar.start) + 1)
    what = LABELS.get(bar.stage, bar.stage)
    tip = (
        f"{bar.region} {bar.image}: {what}, {duration(bar.start)} to {duration(bar.end)}"
        f" ({duration(bar.end - bar.start)}){': ' + bar.detail if bar.detail else ''}"
    )
    outline = ' stroke="#111" stroke-width="2"' if critical else ""
    return (
        f'<rect class="bar{" critical" if critical else ""}" data-stage="{bar.stage}"'
        f' data-image="{_e(bar.image)}" data-start="{bar.start:.3f}" data-end="{bar.end:.3f}"'
        f' x="{left:.1f}" y="{top + 1:.1f}" width="{right - left:.1f}" height="{_ROW - 2}"'
        f' fill="{COLORS.get(bar.stage, "#999")}"{outline}><title>{_e(tip)}</title></rect>'
    )


def _mark(kind: str, at: float, top: float, message: str) -> str:
    color = "#d62728" if kind == "failed" else "#e377c2"
    return (
        f'<circle class="mark" data-kind="{kind}" cx="{at:.1f}" cy="{top + _ROW / 2:.1f}" r="4"'
        f' fill="{color}"><title>{_e(kind)}: {_e(message)}</title></circle>'
    )


def html_page(timeline: Timeline) -> str:
    """A standalone page: the SVG, a legend, and the run's summary."""
    legend = "".join(
        f'<span style="background:{color};padding:0 8px;margin-right:4px">&nbsp;</span>'
        f"{_e(LABELS.get(stage, stage))}&nbsp;&nbsp; "
        for stage, color in COLORS.items()
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>aliasync run {_e(timeline.run.run_id)}</title></head>"
        "<body style='font-family:sans-serif'>"
        f"<h1>aliasync run {_e(timeline.run.run_id)}</h1>"
        f"<p>{_e(timeline.run.status)}; {len(timeline.regions)} regions;"
        f" {duration(timeline.end)} of cloud time. Hover over a bar for its times.</p>"
        f"<p>{legend}</p>{svg(timeline)}</body></html>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)
