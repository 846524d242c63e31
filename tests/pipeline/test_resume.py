"""Killed runs resume from the journal; bad resume input is refused; secrets stay secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from aliasync.sim import Simulator
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


def journal_path() -> Path:
    return Path(os.environ["ALIASYNC_STATE_DIR"]) / "journal.sqlite3"


async def test_sigkilled_run_resumes_without_duplicates_or_leaks(tmp_path: Path) -> None:
    """SIGKILL mid-run, then --resume: every image published once, nothing leaked."""
    async with Simulator(seed=11, profile="default", time_scale=100.0) as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        process = await anyio.open_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints,
             "-n", "ipxe-kill", *region_args(), str(BIOS), str(UEFI)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with process:
            with anyio.fail_after(60):
                while sim.calls.count("ImportImage") < 2:  # noqa: ASYNC110 (emulator state)
                    await anyio.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        imports_before = sim.calls.count("ImportImage")

        code, out, err = await aliasync("import", "--endpoints", endpoints, "--resume", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["status"] == "success"
        for region in REGIONS:
            for name in ("ipxe-kill", "ipxe-kill-uefi-x86-64"):
                found = images_named(sim, region, name)
                assert len(found) == 1 and found[0]["status"] == "Available", (region, found)
        assert_no_leaks(sim)
        # Imports already sent were re-attached by their ClientToken, not sent anew: the
        # emulator holds no image beyond the published ones.
        all_images = [
            i for r in sim.ctx.models["ecs"].snapshot()["regions"].values() for i in r["images"]
        ]
        assert len(all_images) == 2 * len(REGIONS)
        assert sim.calls.count("ImportImage") >= imports_before

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


async def test_secrets_never_appear_in_output_logs_or_journal(tmp_path: Path) -> None:
    """A whole import at debug verbosity writes no key, secret or presigned signature."""
    async with Simulator(seed=15, profile="default") as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        code, out, err = await aliasync(
            "import", "--endpoints", endpoints, "-vv", "--json", *region_args(), str(BIOS)
        )
        assert code == 0, err
        assert sim.calls.count("InvokeFunction") >= 1  # presigned URLs were made and used
        written = out + err + journal_path().read_bytes().decode("latin-1")
        for wal in journal_path().parent.glob("journal.sqlite3*"):
            written += wal.read_bytes().decode("latin-1")
        for secret in (sim.access_key_secret, sim.access_key_id):
            assert secret not in written
        for marker in ("X-Amz-Signature", "Signature=", "x-amz-security-token", "SecurityToken"):
            assert marker not in written


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
        sim.calls.watchers.append(lambda c: c.action == "ImportImage" and sim.clock.pause())
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
