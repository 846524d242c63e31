"""`aliasync runs show --timeline`: a real run drawn from its journal, checked against it."""

from __future__ import annotations

import itertools
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from aliasync.cli._timeline import build_timeline, html_page, svg
from aliasync.pipeline._journal import Journal
from aliasync.pipeline._state import state_dir
from aliasync.sim import Simulator
from tests.importing import BIOS, UEFI, run_import

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan", "cn-zhangjiakou")
SVG = "{http://www.w3.org/2000/svg}"


async def _run() -> tuple[str, Journal]:
    async with Simulator(seed=71, profile="default") as sim:
        report = await run_import(sim, [BIOS, UEFI], name="ipxe-tl", regions=REGIONS)
        assert report.status == "success", report.to_json()
    return report.run_id, Journal(state_dir() / "journal.sqlite3")


async def test_the_timeline_has_a_lane_per_region_and_bars_at_the_journals_times() -> None:
    """Every region has a lane; each bar is one stage between two journaled stage changes."""
    run_id, journal = await _run()
    try:
        record = journal.run(run_id)
        steps = journal.steps(run_id)
    finally:
        journal.close()
    timeline = build_timeline(record, steps)
    root = ET.fromstring(svg(timeline))
    lanes = {g.get("data-region") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"}
    assert lanes == set(REGIONS)
    # The stage changes of one (region, image), straight from the journal.
    scale = record.plan["time_scale"]
    changes = [
        (s.state, (s.at - record.created) * scale)
        for s in steps
        if s.step == "stage" and (s.region, s.image) == ("cn-heyuan", "ipxe-tl")
    ]
    expected = [
        (stage, start, end)
        for (stage, start), (_, end) in itertools.pairwise(changes)
        if stage != "ready"
    ]
    bars = [
        (r.get("data-stage"), float(r.get("data-start") or 0), float(r.get("data-end") or 0))
        for g in root.iter(f"{SVG}g")
        if g.get("data-region") == "cn-heyuan"
        for r in g.iter(f"{SVG}rect")
        if r.get("data-image") == "ipxe-tl"
    ]
    assert [b[0] for b in bars] == [e[0] for e in expected]
    for (_, start, end), (_, want_start, want_end) in zip(bars, expected, strict=True):
        assert abs(start - want_start) < 1e-2 and abs(end - want_end) < 1e-2
    assert "copy" in [b[0] for b in bars]  # cn-heyuan has no OSS: it copies
    critical = [r for r in root.iter(f"{SVG}rect") if "critical" in (r.get("class") or "")]
    assert critical
    assert max(float(r.get("data-end") or 0) for r in critical) == pytest.approx(
        max(b.end for b in timeline.bars), abs=1e-2
    )
    assert all(r.find(f"{SVG}title") is not None for r in root.iter(f"{SVG}rect"))


async def test_the_html_page_stands_alone_and_the_cli_writes_both(tmp_path: Path) -> None:
    """The page embeds its SVG and loads nothing; the CLI writes .svg and .html, refuses .png."""
    run_id, journal = await _run()
    try:
        page = html_page(build_timeline(journal.run(run_id), journal.steps(run_id)))
    finally:
        journal.close()
    assert "<svg" in page and "<script" not in page
    assert page.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http") == 0

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aliasync", "runs", "show", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    for name in ("run.svg", "run.html"):
        done = cli(run_id, "--timeline", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert (tmp_path / name).read_text().count("<rect") > 20
        assert "critical:" in done.stdout
    done = cli("--timeline", str(tmp_path / "run.png"))
    assert done.returncode == 2 and "drawn as .svg or .html" in done.stderr
