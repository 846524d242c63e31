"""The command line as a user runs it: exit codes, output, and what it leaves in the cloud."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from aliasync.sim import Simulator
from tests.importing import BIOS, UEFI

pytestmark = pytest.mark.anyio


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aliasync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def table_rows(output: str) -> dict[str, list[str]]:
    """The cells of each row of the tables printed, by their first cell."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_sim_import_of_the_examples_succeeds_and_prints_a_table() -> None:
    """`import --sim` publishes the example image and prints each region's own image ID,
    the strategy that got it there and its status."""
    done = run_cli("import", "--sim", "-r", "ap-southeast-1", "-r", "cn-heyuan", str(BIOS))
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    direct, copied = rows["ap-southeast-1"], rows["cn-heyuan"]
    for row in (direct, copied):  # region, name, family, image ID, strategy, elapsed, status
        assert re.fullmatch(r"ipxe-\d{8}", row[1]) and row[2] == "ipxe", row
        assert re.fullmatch(r"m-[a-z0-9]{20}", row[3]) and row[6] == "ok", row
    assert direct[3] != copied[3]  # an image of its own in each region
    assert (direct[4], copied[4]) == ("direct", "copy from ap-southeast-1")


def test_json_output_is_machine_readable() -> None:
    """`--json` prints a parseable report with per-region status and image IDs."""
    done = run_cli("import", "--sim", "--json", "-r", "eu-central-1", "-n", "ipxe-json", str(UEFI))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "success"
    (region,) = report["regions"]
    assert region["region"] == "eu-central-1" and region["status"] == "success"
    assert region["images"][0]["name"] == "ipxe-json-uefi-x86-64"
    assert region["images"][0]["image_id"].startswith("m-")


def bad_input(tmp: Path, kind: str) -> Path:
    """Make one kind of bad image input under ``tmp``."""
    if kind == "missing":
        return tmp / "missing.usb"
    if kind == "directory":
        return tmp
    path = tmp / f"{kind}.usb"
    path.write_bytes(b"" if kind == "empty" else b"hello\n" * 200)
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "is empty"),
        ("text", "not a disk image"),
    ],
)
def test_bad_image_input_gives_one_clear_line_and_exit_2(
    tmp_path: Path, kind: str, problem: str
) -> None:
    """A bad image file is named with its problem in one line; exit code 2."""
    path = bad_input(tmp_path, kind)
    done = run_cli("import", "--sim", str(path))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and problem in lines[0]
    assert "Traceback" not in done.stderr


async def test_bad_name_is_refused_before_any_cloud_call(tmp_path: Path) -> None:
    """An image name that breaks the ECS rules is a usage error (exit 2): the cloud never
    hears of the run."""
    async with Simulator(seed=1, profile="none") as sim:
        endpoints = sim.write_endpoints(tmp_path / "endpoints.json")
        done = await anyio.run_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", str(endpoints),
             "-n", "aliyun-forbidden", str(BIOS)],
            check=False,
        )  # fmt: skip
        assert sim.calls.count() == 0 and sim.connections_accepted == 0
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert "aliyun" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("option", ["--copy-concurrency", "--upload-concurrency"])
def test_a_concurrency_below_one_is_a_usage_error(option: str) -> None:
    """A concurrency option below 1 is named in one line; exit code 2."""
    done = run_cli("import", "--sim", option, "0", str(BIOS))
    assert done.returncode == 2
    assert option in done.stderr and "Traceback" not in done.stderr


def test_bad_endpoints_file_is_a_usage_error(tmp_path: Path) -> None:
    """A malformed endpoints file is named in one line; exit code 2."""
    bad = tmp_path / "endpoints.json"
    bad.write_text("{not json")
    done = run_cli("import", "--endpoints", str(bad), str(BIOS))
    assert done.returncode == 2
    assert str(bad) in done.stderr and "Traceback" not in done.stderr


async def test_ctrl_c_removes_temporary_resources(tmp_path: Path) -> None:
    """SIGINT in the middle of a run: exit 130, no temporary bucket or function left."""
    async with Simulator(seed=3, profile="default", time_scale=20.0) as sim:
        endpoints = sim.write_endpoints(tmp_path / "endpoints.json")
        process = await anyio.open_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", str(endpoints),
             "-n", "ipxe-int", str(BIOS), str(UEFI)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        oss, fc = sim.ctx.models["oss"], sim.ctx.models["fc"]
        async with process:
            # Wait until the run has made temporary buckets and a relay function (the
            # emulator's state, not a duration), then interrupt it.
            with anyio.fail_after(120):
                while not (oss.buckets() and fc.functions()):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(120):
                code = await process.wait()
        assert code == 130
        leaks = sim.leaks()
        assert leaks["buckets"] == [] and leaks["functions"] == []
        assert leaks["multipart_uploads"] == []
