"""When a way into a region keeps failing, and when the account cannot import at all."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from aliasync.sim import FaultProfile, FaultRule, Simulator, profile
from tests.importing import BIOS, UEFI, assert_no_leaks, assert_published, run_import

pytestmark = pytest.mark.anyio

RELAY = "cn-beijing"
REGIONS = ("ap-southeast-1", RELAY, "cn-heyuan")
RELAY_FAILURES: dict[str, FaultProfile] = {
    # Function Compute answers, but every CreateFunction fails (500, 503, dropped, throttled).
    "deployment errors": profile("none").with_(
        rules=(FaultRule(f"fc:CreateFunction:{RELAY}", transient_rate=1.0),)
    ),
    # Function Compute answers every InvokeFunction with an error.
    "invocation errors": profile("none").with_(
        rules=(FaultRule(f"fc:InvokeFunction:{RELAY}", transient_rate=1.0),)
    ),
    # Every invocation hangs until the function's timeout.
    "timeouts": profile("none").with_(
        rules=(FaultRule(f"model:fc_timeout:{RELAY}", function_timeout_rate=1.0),)
    ),
    # Every cross-region download the relay makes is cut off mid-body.
    "cut downloads": profile("none").with_(download_failure_rate=1.0),
}


@pytest.mark.parametrize("failure", sorted(RELAY_FAILURES))
async def test_a_relay_failing_every_time_falls_back_to_copy(failure: str) -> None:
    """The relay never fills the bucket: the region gets its images by CopyImage, the run
    succeeds, and the function and buckets are gone."""
    async with Simulator(seed=61, profile=RELAY_FAILURES[failure]) as sim:
        report = await run_import(sim, [BIOS, UEFI], name="ipxe-rf", regions=REGIONS)
        assert_published(sim, report, [BIOS, UEFI], name="ipxe-rf", regions=REGIONS)
        (relay,) = [r for r in report.regions if r.region == RELAY]
        assert [i.strategy for i in relay.images] == ["copy", "copy"]
        if failure != "deployment errors":
            assert sim.calls.count("InvokeFunction", RELAY) >= 2  # each image tried the relay
        assert sim.calls.count("ImportImage", RELAY) == 0
        assert_no_leaks(sim)


async def aliasync(*args: str) -> tuple[int, str, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args], check=False, env=dict(os.environ)
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_an_account_without_the_import_role_gets_one_clear_error(tmp_path: Path) -> None:
    """No AliyunECSImageImportDefaultRole: the first refused ImportImage stops the run with one
    line naming the role and `aliasync setup` (exit 2), nothing is left behind; after setup,
    --resume RUN publishes everything."""
    async with Simulator(seed=62, profile="none", preset_roles=False) as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        regions = [a for r in ("ap-southeast-1", "eu-central-1", *REGIONS[1:]) for a in ("-r", r)]
        code, _, err = await aliasync(
            "import", "--endpoints", endpoints, "-n", "ipxe-nr", *regions, str(BIOS), str(UEFI)
        )
        assert code == 2, err
        (line,) = [line for line in err.splitlines() if line.startswith("aliasync: error:")]
        assert "AliyunECSImageImportDefaultRole" in line and "aliasync setup" in line
        assert "Traceback" not in err and err.count("NoSetRoletoECSServiceAccount") == 1
        assert_no_leaks(sim)
        run_id = line.rsplit("--resume ", 1)[1].rstrip("`")

        code, _, err = await aliasync("setup", "--endpoints", endpoints)
        assert code == 0, err
        code, out, err = await aliasync("import", "--endpoints", endpoints, "--resume", run_id,
                                        "--json")  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["status"] == "success"
        assert_no_leaks(sim)
