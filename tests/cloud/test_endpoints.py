"""The endpoints file: what it accepts, what it refuses, and that it never shows the secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aliasync._exceptions import ConfigurationError
from aliasync.cloud._endpoints import Endpoints, RegionEndpoints

SECRET = "s3cr3t-Value-That-Must-Not-Leak"


def _emulator_doc() -> dict[str, Any]:
    return {
        "kind": "aliasync-endpoints",
        "version": 1,
        "protocol": "http",
        "proxy": "http://127.0.0.1:8080",
        "credentials": {"access_key_id": "LTAIexample", "access_key_secret": SECRET},
        "account_id": "1234567890123456",
        "time_scale": 1000.0,
        "ecs": "ecs.aliyuncs.com",
        "sts": "sts.aliyuncs.com",
        "ram": "ram.aliyuncs.com",
        "regions": {
            "cn-hangzhou": {
                "ecs": "ecs.cn-hangzhou.aliyuncs.com",
                "oss_public": "s3.oss-cn-hangzhou.aliyuncs.com",
                "oss_internal": "s3.oss-cn-hangzhou-internal.aliyuncs.com",
                "fc": "1234567890123456.cn-hangzhou.fc.aliyuncs.com",
            }
        },
    }


def test_emulator_file_round_trips(tmp_path: Path) -> None:
    """A complete file, as the emulator writes it, loads with every field."""
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(_emulator_doc()))
    endpoints = Endpoints.load(path)
    assert endpoints.protocol == "http"
    assert endpoints.proxy == "http://127.0.0.1:8080"
    assert endpoints.time_scale == 1000.0
    assert endpoints.account_id == "1234567890123456"
    assert endpoints.access_key_secret == SECRET
    assert endpoints.region("cn-hangzhou", "1").oss_internal == (
        "s3.oss-cn-hangzhou-internal.aliyuncs.com"
    )
    assert SECRET not in repr(endpoints)


def test_defaults_and_partial_regions_follow_public_rules() -> None:
    """Omitted keys and regions fall back to Alibaba Cloud's public endpoint names."""
    endpoints = Endpoints.from_dict({"regions": {"eu-west-1": {"ecs": "ecs-vpc.example.com"}}})
    assert endpoints.protocol == "https" and endpoints.proxy is None
    assert endpoints.time_scale == 1.0 and endpoints.access_key_id is None
    assert endpoints.region("eu-west-1", "42") == RegionEndpoints(
        ecs="ecs-vpc.example.com",
        oss_public="s3.oss-eu-west-1.aliyuncs.com",
        oss_internal="s3.oss-eu-west-1-internal.aliyuncs.com",
        fc="42.eu-west-1.fc.aliyuncs.com",
        oss_native="oss-eu-west-1.aliyuncs.com",
        oss_native_internal="oss-eu-west-1-internal.aliyuncs.com",
    )
    assert endpoints.region("cn-beijing", "42").ecs == "ecs.cn-beijing.aliyuncs.com"
    assert Endpoints.from_dict({}) == Endpoints()


def test_proxy_password_is_masked_in_repr() -> None:
    """A proxy URL's password does not reach repr (and so logs)."""
    endpoints = Endpoints.from_dict({"proxy": "http://user:hunter2hunter2@proxy.example:3128"})
    assert "hunter2" not in repr(endpoints)
    assert "proxy.example:3128" in repr(endpoints)


def _with(**changes: Any) -> dict[str, Any]:
    doc = _emulator_doc()
    for key, value in changes.items():
        if value is ...:
            del doc[key]
        else:
            doc[key] = value
    return doc


BAD_DOCUMENTS: dict[str, object] = {
    "not an object": ["ecs.aliyuncs.com"],
    "unknown key": _with(regoins={}),
    "wrong kind": _with(kind="something-else"),
    "wrong version": _with(version=2),
    "bad protocol": _with(protocol="ftp"),
    "proxy without scheme": _with(proxy="127.0.0.1:8080"),
    "proxy not a string": _with(proxy=8080),
    "host with scheme": _with(ecs="https://ecs.aliyuncs.com"),
    "host with path": _with(sts="sts.aliyuncs.com/x"),
    "regions not an object": _with(regions=["cn-hangzhou"]),
    "bad region id": _with(regions={"CN HANGZHOU": {}}),
    "region not an object": _with(regions={"cn-hangzhou": "ecs.cn-hangzhou.aliyuncs.com"}),
    "unknown region key": _with(regions={"cn-hangzhou": {"oss": "x.example.com"}}),
    "empty region host": _with(regions={"cn-hangzhou": {"fc": ""}}),
    "credentials not an object": _with(credentials="LTAI:secret"),
    "secret missing": _with(credentials={"access_key_id": "LTAIexample"}),
    "secret empty": _with(credentials={"access_key_id": "LTAIx", "access_key_secret": " "}),
    "key id not a string": _with(credentials={"access_key_id": 5, "access_key_secret": SECRET}),
    "unknown credentials key": _with(
        credentials={"access_key_id": "x", "access_key_secret": SECRET, "token": SECRET}
    ),
    "account id not numeric": _with(account_id="acct-1"),
    "time scale zero": _with(time_scale=0),
    "time scale negative": _with(time_scale=-5),
    "time scale bool": _with(time_scale=True),
    "time scale string": _with(time_scale="1000"),
}


@pytest.mark.parametrize("doc", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_bad_documents_are_refused_without_echoing_the_secret(doc: object) -> None:
    """Each malformed document raises ConfigurationError, and the message never holds the secret."""
    with pytest.raises(ConfigurationError) as caught:
        Endpoints.from_dict(doc, source="endpoints.json")
    assert "endpoints.json" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"protocol": "http",', "invalid JSON at line 1"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (None, "cannot read endpoints file"),
    ],
    ids=["truncated JSON", "binary", "missing file"],
)
def test_unreadable_files_are_refused(
    tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    """A truncated, binary or missing file raises ConfigurationError naming the problem."""
    path = tmp_path / "endpoints.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=expected):
        Endpoints.load(path)


def test_json_error_does_not_echo_the_file(tmp_path: Path) -> None:
    """A syntax error near the secret reports a position, not the text around it."""
    path = tmp_path / "endpoints.json"
    path.write_text('{"credentials": {"access_key_secret": "' + SECRET + '" "x": 1}}')
    with pytest.raises(ConfigurationError) as caught:
        Endpoints.load(path)
    assert SECRET not in str(caught.value)
