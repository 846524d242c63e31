"""The first contact with the cloud, as a user sees it: credentials from each source, and what
goes wrong before anything is created (no credentials, no network, bad options) as one line
and an exit code, never a traceback.

Each test runs the CLI in a subprocess against the emulator, with ``HOME`` in a temporary
folder and every request (the credentials chain's own included) going to the emulator's proxy:
nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from aliasync.sim import Simulator
from aliasync.sim.ram import trust_policy
from tests.accounts import (
    account_trust_policy,
    chain_environment,
    create_role,
    create_user_key,
    endpoints_without_keys,
    write_cli_profiles,
)
from tests.importing import BIOS, images_named

pytestmark = pytest.mark.anyio


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the CLI to completion: (exit code, stdout, stderr)."""
    result = await anyio.run_process(
        [sys.executable, "-m", "aliasync", *args],
        check=False,
        env=env if env is not None else {**os.environ, "COLUMNS": "200"},
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def one_line(stderr: str) -> str:
    """The only line on stderr, which must be aliasync's own error line."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("aliasync: error: "), stderr
    assert "Traceback" not in stderr and " object at 0x" not in stderr
    return lines[0]


async def test_no_credentials_anywhere_is_one_line_and_exit_2(
    sim: Simulator, tmp_path: Path
) -> None:
    """No keys in the file, the environment, a profile or an instance: one line, exit 2, no call."""
    endpoints = endpoints_without_keys(sim, tmp_path / "endpoints.json")
    for verbosity in ([], ["-v"]):
        code, out, err = await cli(
            "import", "--endpoints", str(endpoints), *verbosity, "-r", "ap-southeast-1",
            str(BIOS), env=chain_environment(sim, tmp_path),
        )  # fmt: skip
        assert code == 2, err
        line = one_line(err)
        assert "no usable Alibaba Cloud credentials" in line and "~/.aliyun/config.json" in line
        assert out == ""
    assert not sim.calls.records  # nothing was signed, so nothing was sent
    assert sim.unresolved_hosts.get("100.100.100.200")  # the chain asked the metadata address


@pytest.mark.parametrize("source", ["RamRoleArn profile", "ECS instance role"])
async def test_an_import_runs_on_keys_from_the_chain(
    sim: Simulator, tmp_path: Path, source: str
) -> None:
    """A whole import with the chain's temporary keys: published, signed by the role's key."""
    env = chain_environment(sim, tmp_path, COLUMNS="200")
    if source == "RamRoleArn profile":
        user = await create_user_key(sim)
        role = await create_role(sim, "Publisher", account_trust_policy(sim.account_id))
        write_cli_profiles(tmp_path, "ci", [{
            "name": "ci", "mode": "RamRoleArn", "access_key_id": user.access_key_id,
            "access_key_secret": user.access_key_secret, "ram_role_arn": role,
            "ram_session_name": "release", "expired_seconds": 43200,
        }])  # fmt: skip
        expected = "role/Publisher/release"
    else:
        sim.ctx.models["ram"].create_role("ImageBuilder", trust_policy("ecs.aliyuncs.com"))
        sim.attach_instance_role("ImageBuilder")
        expected = "role/ImageBuilder"
    endpoints = endpoints_without_keys(sim, tmp_path / "endpoints.json")
    code, out, err = await cli(
        "import", "--endpoints", str(endpoints), "--json", "-n", "ipxe-chain",
        "-r", "ap-southeast-1", str(BIOS), env=env,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "success"
    (image,) = images_named(sim, "ap-southeast-1", "ipxe-chain")
    assert image["status"] == "Available"
    principals = {k.principal for k in sim.ctx.keys.temporary()}
    assert expected in principals


@pytest.mark.parametrize("service", ["sts", "ecs"])
async def test_an_unreachable_host_is_named_in_one_line_after_few_tries(
    sim: Simulator, tmp_path: Path, service: str
) -> None:
    """STS's (the first call's) or ECS's (DescribeRegions') name does not resolve, and the proxy
    refuses the tunnel: exit 1 naming the host, after three tries at most, nothing else called."""
    host = f"{service}.aliasync-test.invalid"  # RFC 6761: never a real host
    doc = {**sim.endpoints, "protocol": "https"}
    if service == "sts":
        doc["sts"] = host
    else:  # DescribeRegions goes to cn-hangzhou's endpoint
        doc["regions"] = {**doc["regions"], "cn-hangzhou": {"ecs": host}}
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps(doc))
    code, out, err = await cli(
        "import", "--endpoints", str(endpoints), "-r", "ap-southeast-1", str(BIOS),
        env={**os.environ, **sim.client_env},  # the emulator's CA, for STS over TLS
    )  # fmt: skip
    assert code == 1, err
    line = one_line(err)
    assert host in line and "cannot reach" in line
    assert 1 <= sim.unresolved_hosts[host] <= 3, sim.unresolved_hosts
    expected = [] if service == "sts" else ["GetCallerIdentity"]
    assert [r.action for r in sim.calls.records] == expected
    assert out == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--share-account", "abc"], "16 digits"),
        (["--share-account", "123456789012345"], "16 digits"),
        (["--share-account", "1234567890123456"] * 2, "more than once"),
        (["-r", "CN_Hangzhou"], "not a region ID"),
        (["--markdown", "/nonexistent-folder/release.md"], "cannot be written"),
    ],
)
async def test_bad_options_are_refused_before_the_first_call(
    sim: Simulator, tmp_path: Path, args: list[str], says: str
) -> None:
    """Options the cloud would refuse late (after an import) are refused first: exit 2."""
    endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
    code, out, err = await cli("import", "--endpoints", endpoints, *args, str(BIOS))
    assert code == 2, err
    assert says in one_line(err)
    assert not sim.calls.records and out == ""


async def test_publish_refuses_a_bad_account_before_the_first_call(
    sim: Simulator, tmp_path: Path
) -> None:
    """`publish --share-account` checks the account ID as import does."""
    endpoints = str(sim.write_endpoints(tmp_path / "endpoints.json"))
    code, _, err = await cli(
        "publish", "--endpoints", endpoints, "ipxe-x", "--share-account", "12345678901234567"
    )
    assert code == 2 and "16 digits" in one_line(err)
    assert not sim.calls.records
