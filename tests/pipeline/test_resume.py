"""Killed runs resume from the journal; bad resume input is refused.

That no secret is written anywhere is tests/pipeline/test_secrets.py's business.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from aliasync.sim import Simulator, profile
from tests.importing import BIOS, UEFI, assert_no_leaks, images_named

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan", "cn-guangzhou")


async def aliasync(*args: str, check_interrupt: bool = False) -> tuple[int, str, str]:
    """Run the CLI to completion; return (exit code, stdout, stderr)."""
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args], check=False, env=dict(os.environ)
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def region_args() -> list[str]:
    return [arg for region in REGIONS for arg in ("-r", region)]


def all_images(sim: Simulator) -> list[dict[str, Any]]:
    regions = sim.ctx.models["ecs"].snapshot()["regions"].values()
    return [image for region in regions for image in region["images"]]


def journal_path() -> Path:
    return Path(os.environ["ALIASYNC_STATE_DIR"]) / "journal.sqlite3"


def imports_sent(sim: Simulator) -> dict[tuple[str, str], dict[str, Any]]:
    """Each ImportImage ClientToken the emulator has answered, by (region, token)."""
    tokens = sim.ctx.models["ecs"].client_tokens()
    return {(t["region"], t["token"]): t for t in tokens if t["action"] == "ImportImage"}


async def test_sigkilled_run_resumes_without_duplicates_or_leaks(tmp_path: Path) -> None:
    """SIGKILL with imports in flight, then --resume: each in-flight import is re-attached by
    re-sending its ClientToken, every image published once, nothing leaked."""
    # The default faults, but no failed import: an in-flight import is then always the one
    # that gets published (a failed one is rightly imported again under a new token).
    faults = profile("default").with_(import_failure_rate=0.0)
    async with Simulator(seed=11, profile=faults, time_scale=100.0) as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        process = await anyio.open_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints,
             "-n", "ipxe-kill", *region_args(), str(BIOS), str(UEFI)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with process:
            with anyio.fail_after(60):
                while len(imports_sent(sim)) < 2:  # noqa: ASYNC110 (emulator state)
                    await anyio.sleep(0.05)
            # Held: the imports stay in flight however long the kill takes to land.
            sim.clock.pause()
            process.send_signal(signal.SIGKILL)
            assert await process.wait() == -signal.SIGKILL  # it died of the kill, mid-run
        in_flight = imports_sent(sim)
        images = {i["id"]: i for i in all_images(sim)}
        assert len(in_flight) >= 2
        assert all(images[t["image_id"]]["status"] == "Creating" for t in in_flight.values())
        assert len(images) < 2 * len(REGIONS)  # the run was not over
        sim.clock.resume()

        code, out, err = await aliasync("import", "--endpoints", endpoints, "--resume", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["status"] == "success"
        for region in REGIONS:
            for name in ("ipxe-kill", "ipxe-kill-uefi-x86-64"):
                found = images_named(sim, region, name)
                assert len(found) == 1 and found[0]["status"] == "Available", (region, found)
        assert_no_leaks(sim)
        assert len(all_images(sim)) == 2 * len(REGIONS)
        # Re-attached: the resumed run sent each in-flight import's own token again (answered
        # from ECS's record of it), and the image it had made is the one published.
        after = imports_sent(sim)
        published = {i["id"] for i in all_images(sim) if i["status"] == "Available"}
        for key, sent in in_flight.items():
            assert after[key]["answers"] > sent["answers"], key
            assert after[key]["image_id"] == sent["image_id"] in published, key

        code, out, _ = await aliasync("runs", "--json")
        assert code == 0
        (run,) = json.loads(out)
        assert run["run_id"] == report["run_id"] and run["status"] == "success"


async def test_resume_of_unknown_run_is_refused(tmp_path: Path) -> None:
    """An unknown run ID: one clear line, exit 2, nothing created."""
    async with Simulator(seed=12, profile="none") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        code, _, err = await aliasync("import", "--endpoints", endpoints, "--resume", "deadbeef")
        assert code == 2
        assert "no run with ID 'deadbeef'" in err and "Traceback" not in err
        assert sim.calls.count("CreateBucket") == 0


async def test_resume_with_corrupt_journal_is_refused(tmp_path: Path) -> None:
    """A corrupt journal file: one clear line naming it, exit 2, nothing created."""
    async with Simulator(seed=13, profile="none") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        journal_path().parent.mkdir(parents=True, exist_ok=True)
        journal_path().write_bytes(b"this is not a database" * 100)
        code, _, err = await aliasync("import", "--endpoints", endpoints, "--resume")
        assert code == 2
        assert str(journal_path()) in err and "Traceback" not in err
        assert sim.calls.count("CreateBucket") == 0


async def test_resume_with_changed_image_is_refused(tmp_path: Path) -> None:
    """An image file whose hash no longer matches the journal: exit 2, nothing touched."""
    image = tmp_path / "ipxe.usb"
    shutil.copy(BIOS, image)
    async with Simulator(seed=14, profile="none") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        code, _, err = await aliasync(
            "import", "--endpoints", endpoints, "-r", "ap-southeast-1", "-n", "ipxe-ch", str(image)
        )
        assert code == 0, err
        with image.open("r+b") as f:
            f.seek(100)
            f.write(b"changed")
        calls = len(sim.calls.records)
        code, _, err = await aliasync("import", "--endpoints", endpoints, "--resume")
        assert code == 2
        assert "changed" in err and str(image) in err and "Traceback" not in err
        mutating = {"CreateBucket", "PutObject", "ImportImage", "CopyImage", "DeleteImage"}
        assert not [r for r in sim.calls.records[calls:] if r.action in mutating]


async def test_resume_with_image_paths_is_refused_and_says_so(tmp_path: Path) -> None:
    """--resume with IMAGE arguments (before or after it), or an image file as the run ID:
    exit 2, one line saying what was refused and why, not one call to the cloud."""
    async with Simulator(seed=16, profile="none") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        for args in (["--resume", "deadbeef", str(BIOS)], [str(BIOS), "--resume"]):
            code, _, err = await aliasync("import", "--endpoints", endpoints, *args)
            assert code == 2
            (line,) = err.strip().splitlines()
            assert "refusing the IMAGE arguments given" in line and str(BIOS) in line
        code, _, err = await aliasync("import", "--endpoints", endpoints, "--resume", str(BIOS))
        assert code == 2
        (line,) = err.strip().splitlines()
        assert "takes a run ID" in line and "aliasync runs" in line
        assert sim.calls.count() == 0


async def test_resume_of_an_explicit_run_finishes_that_run_not_the_latest(tmp_path: Path) -> None:
    """A run killed with an import in flight, then another run to the end: `--resume RUN`
    (by a unique prefix of its ID) finishes the killed one, which `--resume` alone would not."""
    regions = ["-r", "ap-southeast-1", "-r", "cn-heyuan"]
    async with Simulator(seed=17, profile="none") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        sim.calls.watchers.append(
            lambda c: c.action == "ImportImage" and sim.clock.pause(hold_calls=True)
        )
        process = await anyio.open_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints,
             "-n", "ipxe-first", *regions, str(BIOS)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with process:
            with anyio.fail_after(60):
                while not sim.clock.paused:  # noqa: ASYNC110 (emulator state)
                    await anyio.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        assert process.returncode == -signal.SIGKILL
        sim.calls.watchers.clear()
        sim.clock.resume()
        code, out, err = await aliasync("runs", "--json")
        (killed,) = json.loads(out)
        code, _, err = await aliasync(
            "import", "--endpoints", endpoints, "-n", "ipxe-second", *regions, str(BIOS)
        )
        assert code == 0, err
        assert not images_named(sim, "cn-heyuan", "ipxe-first")
        code, out, err = await aliasync(
            "import", "--endpoints", endpoints, "--resume", killed["run_id"][:6], "--json"
        )
        assert code == 0, err
        assert json.loads(out)["run_id"] == killed["run_id"]
        for region in ("ap-southeast-1", "cn-heyuan"):
            for name in ("ipxe-first", "ipxe-second"):
                (image,) = images_named(sim, region, name)
                assert image["status"] == "Available"
        assert_no_leaks(sim)
        code, out, _ = await aliasync("runs", "--json")
        assert {r["run_id"]: r["status"] for r in json.loads(out)}[killed["run_id"]] == "success"
