"""The live view at fixed terminal sizes, at several points of real emulator runs, and the log
lines a non-terminal gets instead."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from aliasync import Event, ImportOptions, ImportReport, import_images
from aliasync.cli._live import RunBoard
from aliasync.cli._progress import ProgressView
from aliasync.cloud._endpoints import Endpoints
from aliasync.sim import RegionMap, Simulator
from tests import diskimages as d
from tests.importing import ARM64, BIOS, UEFI

pytestmark = pytest.mark.anyio

SIZES = [(80, 24), (200, 60)]


async def _recorded(sim: Simulator, images: list[Path]) -> tuple[ImportReport, list[Event]]:
    events: list[Event] = []
    report = await import_images(
        images,
        endpoints=Endpoints.from_dict(sim.endpoints),
        options=ImportOptions(name="ipxe-live"),
        on_event=events.append,
    )
    return report, events


def _screen(board: RunBoard, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(board.render(width, height))
    return console.export_text().rstrip("\n").split("\n")


def _check_points(events: list[Event], time_scale: float, cells: int) -> None:
    for point in (0.1, 0.4, 0.7, 1.0):
        board = RunBoard(time_scale)
        upto = events[: max(cells, int(len(events) * point))]  # past the first "plan" of each
        for event in upto:
            board.add(event)
        done = sum(1 for c in board.cells.values() if c.stage == "done")
        for width, height in SIZES:
            screen = _screen(board, width, height)
            assert len(screen) <= height - 1, (point, width, height, screen)
            assert max(len(line) for line in screen) <= width, (point, width)
            assert f"{done}/{cells} published" in screen[0]
            assert screen[1].startswith("region")
            if len(board.regions) > height - 4:  # more regions than lines: something is folded
                assert any(" done: " in line or "more region" in line for line in screen)
    assert done == cells


async def test_the_view_fits_80x24_and_200x60_at_30_regions(tmp_path: Path) -> None:
    """Four images in the 30 regions: every view fits, counts right, done regions fold."""
    multi = tmp_path / "multi.usb"
    d.ipxe_efi_usb(multi, ("arm64", "x86_64"))
    async with Simulator(seed=61, profile="default") as sim:
        report, events = await _recorded(sim, [BIOS, UEFI, ARM64, multi])
        assert report.status == "success"
        _check_points(events, sim.clock.time_scale, 120)
    board = RunBoard(sim.clock.time_scale)
    for event in events:
        board.add(event)
    header = _screen(board, 200, 60)[0]
    assert "120/120 published" in header and "left" not in header and "estimating" not in header


async def test_the_view_fits_80x24_and_200x60_at_500_regions() -> None:
    """One image in 500 regions: still one screen, in progress first, the rest counted."""
    base = list(RegionMap.load())
    extra = [r for r in RegionMap.synthetic(500) if RegionMap.load().get(r.id) is None]
    regions = RegionMap(base + extra[: 500 - len(base)])
    async with Simulator(seed=62, profile="none", regions=regions) as sim:
        report, events = await _recorded(sim, [BIOS])
        assert report.status == "success" and len(report.regions) == 500
        _check_points(events, sim.clock.time_scale, 500)


def test_cloud_time_and_the_estimate_are_shown_in_the_header() -> None:
    """Under the emulator, times are the cloud's with wall time beside; an estimate appears
    once a stage has been seen to take time, and uses a copy's reported RemainTime."""
    board = RunBoard(time_scale=100.0, clock=lambda: 30.0)
    board.add(Event("r1", "import", "m-1 importing", "img", 1.0, 100.0))
    board.add(Event("r1", "done", "m-1 available", "img", 3.0, 300.0))
    board.add(Event("r2", "queued", "0%", "img", 5.0, 500.0, 0.0, 1800.0))
    header = board.header(200)
    assert "1/2 published" in header.plain and "queued 1" in header.plain
    assert "50 min 0 s cloud (30 s here)" in header.plain
    assert "≈" in header.plain and "left" in header.plain


def test_a_non_terminal_gets_one_line_per_change_of_stage(caplog: pytest.LogCaptureFixture) -> None:
    """Polls and progress repeat a stage: no new line; a new stage or a failure: one line."""
    view = ProgressView(io.StringIO())
    events = [
        Event("r1", "upload", "uploading", "img", 0.1, 0.1, 0.0),
        Event("r1", "upload", "1 of 9 bytes", "img", 0.2, 0.2, 0.1),
        Event("r1", "upload", "9 of 9 bytes", "img", 0.3, 0.3, 1.0),
        Event("r1", "import", "m-1 importing", "img", 0.4, 0.4),
        Event("r1", "import", "40%", "img", 0.5, 0.5, 0.4, 90.0),
        Event("r1", "done", "m-1 available", "img", 0.6, 0.6),
        Event("r2", "failed", "no OSS", None, 0.7, 0.7),
    ]
    with caplog.at_level(logging.INFO, logger="aliasync"), view:
        for event in events:
            view.on_event(event)
    lines = [r.getMessage() for r in caplog.records if r.name == "aliasync"]
    assert [line.split(": ", 2)[1] for line in lines] == ["upload", "import", "done", "failed"]
    quiet = ProgressView(io.StringIO(), quiet=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="aliasync"), quiet:
        for event in events:
            quiet.on_event(event)
    assert [r for r in caplog.records if r.name == "aliasync"] == []
