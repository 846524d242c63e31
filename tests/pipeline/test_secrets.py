"""No key, token or signature is ever written: not in the output of a run that succeeds or fails
(at debug verbosity), not in the journal or ``capabilities.json``, not in a release table, and
not in the relay function's configuration, environment or code as the cloud stores them.

The secrets looked for are every one the emulator knows: the account's root key, a RAM user's
key, and every temporary key it issued (AssumeRole sessions, the relay role's keys).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import anyio
import pytest

from aliasync.sim import Simulator
from tests.accounts import (
    Key,
    account_trust_policy,
    chain_environment,
    create_role,
    create_user_key,
    endpoints_without_keys,
    write_cli_profiles,
)
from tests.importing import BIOS

pytestmark = pytest.mark.anyio

REGIONS = ("ap-southeast-1", "eu-central-1", "cn-beijing", "cn-heyuan")  # cn-beijing: relay
MARKERS = (
    "X-Amz-Signature",
    "Signature=",
    "x-amz-security-token",
    "x-acs-security-token",
    "x-oss-security-token",
    "SecurityToken",
)


def region_args() -> list[str]:
    return [arg for region in REGIONS for arg in ("-r", region)]


def state_files() -> str:
    """Everything aliasync keeps between runs: journal (and its WAL), capabilities.json, …"""
    folder = Path(os.environ["ALIASYNC_STATE_DIR"])
    found = sorted(p for p in folder.rglob("*") if p.is_file())
    assert any(p.name == "journal.sqlite3" for p in found), found
    return "\n".join(p.read_bytes().decode("latin-1") for p in found)


def code_text(path: str) -> str:
    """Every file of a function's code package, as text."""
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as code:
        return "".join(code.read(n).decode("latin-1") for n in code.namelist())


def assert_no_secret(sim: Simulator, written: str, *keys: Key, markers: bool = True) -> None:
    """None of the emulator's secrets, these keys' secrets, or (``markers``) a signature or
    token parameter in ``written``."""
    secrets = [sim.access_key_secret, sim.access_key_id]
    for key in keys:
        secrets += [key.access_key_id, *key.secrets()]
    for temporary in sim.ctx.keys.temporary():
        secrets += [temporary.secret, str(temporary.security_token)]
    for secret in secrets:
        assert secret not in written
    for marker in MARKERS if markers else ():
        assert marker not in written


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args], check=False, env=env or dict(os.environ)
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_a_run_on_role_credentials_writes_no_secret(tmp_path: Path) -> None:
    """A RamRoleArn profile, a relay region, -vv, --json and --markdown: no secret anywhere."""
    async with Simulator(seed=15, profile="default") as sim:
        user = await create_user_key(sim)
        role = await create_role(sim, "Publisher", account_trust_policy(sim.account_id))
        write_cli_profiles(tmp_path, "ci", [{
            "name": "ci", "mode": "RamRoleArn", "access_key_id": user.access_key_id,
            "access_key_secret": user.access_key_secret, "ram_role_arn": role,
            "ram_session_name": "release", "expired_seconds": 43200,
        }])  # fmt: skip
        endpoints = endpoints_without_keys(sim, tmp_path / "endpoints.json")
        release = tmp_path / "release.md"
        code, out, err = await cli(
            "import", "--endpoints", str(endpoints), "-vv", "--json", "--markdown", str(release),
            *region_args(), str(BIOS), env=chain_environment(sim, tmp_path),
        )  # fmt: skip
        assert code == 0, err
        assert sim.calls.count("InvokeFunction") >= 1  # presigned URLs were made and used
        assert sim.calls.count("AssumeRole") >= 1  # the session's keys signed the run
        assert "capabilities.json" in os.listdir(os.environ["ALIASYNC_STATE_DIR"])
        assert_no_secret(sim, out + err + state_files() + release.read_text(), user)


async def test_failing_runs_write_no_secret(tmp_path: Path) -> None:
    """A wrong secret (refused at the first call), and regions that fail late (publishing
    refused): exit 1, and neither the output nor the state holds a secret."""
    async with Simulator(seed=16, profile="default", community_terms=False) as sim:
        doc = dict(sim.endpoints)
        wrong = Key(sim.access_key_id, "Wr0ngSecretWr0ngSecret12")
        doc["credentials"] = {
            "access_key_id": wrong.access_key_id,
            "access_key_secret": wrong.access_key_secret,
        }
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(doc))
        code, out, err = await cli(
            "import", "--endpoints", str(bad), "-vv", "-r", REGIONS[0], str(BIOS)
        )
        assert code == 1 and "SignatureDoesNotMatch" in err, err
        assert_no_secret(sim, out + err, wrong)

        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        code, out, err = await cli(
            "import", "--endpoints", endpoints, "-vv", "--json", "--public",
            *region_args(), str(BIOS),
        )  # fmt: skip
        assert code == 1, err
        report = json.loads(out)
        assert report["status"] != "success"
        assert "PublicImageAgreement.NotSigned" in out
        assert sim.calls.count("InvokeFunction") >= 1
        assert_no_secret(sim, out + err + state_files())


async def test_a_killed_run_leaves_no_secret_in_the_relay_or_the_journal(tmp_path: Path) -> None:
    """SIGKILL while the relay is deployed: its configuration, environment and code, as FC
    keeps them, and the journal of the dead run hold no secret."""
    async with Simulator(seed=17, profile="none", time_scale=100.0) as sim:
        endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
        process = await anyio.open_process(
            [sys.executable, "-m", "aliasync", "import", "--endpoints", endpoints,
             "-n", "ipxe-secret", *region_args(), str(BIOS)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        fc = sim.ctx.models["fc"]
        async with process:
            with anyio.fail_after(60):
                while not fc.functions():  # noqa: ASYNC110 (emulator state)
                    await anyio.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            await process.wait()
        deployed = fc.functions()
        assert deployed
        assert_no_secret(sim, state_files())
        for summary in deployed:
            record = fc.get_function(summary["region"], summary["name"])
            config = record.to_json(sim.account_id)
            assert config["environmentVariables"] == {}
            assert_no_secret(sim, json.dumps(config))
            # The relay signs its own requests: its code names signature parameters.
            assert_no_secret(sim, code_text(record.code_path), markers=False)
