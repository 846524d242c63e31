"""What an import is asked to do: the options every layer of a run reads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aliasync._exceptions import UsageError

__all__ = ["MAX_SHARE_ACCOUNTS", "ImportOptions", "check_account_ids", "check_options"]

# An Alibaba Cloud account ID (UID) is 16 digits.
_ACCOUNT_ID = re.compile(r"[0-9]{16}")
# "cn-hangzhou", "ap-southeast-1", "cn-hangzhou-finance": what DescribeRegions names.
_REGION_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")
# ModifyImageSharePermission: an image is shared with at most 50 accounts
# (QuotaExceed.ShareImageUser, docs/alibaba-api-facts.md section 11).
MAX_SHARE_ACCOUNTS = 50


@dataclass(frozen=True)
class ImportOptions:
    """What to publish where, and how."""

    regions: tuple[str, ...] | None = None  # None: every region DescribeRegions returns
    name: str | None = None  # default: "<family>-YYYYMMDD"
    family: str = "ipxe"
    public: bool = False
    share_accounts: tuple[str, ...] = ()
    overwrite: bool = False
    # Copies per source region the cloud runs at once: five, says the current CopyImage page.
    copy_concurrency: int = 5
    relay_sources: int = 3  # uncensored buckets a relay downloads from in parallel
    # Uploads share one uplink: a few at a time finish the first copy of every image soonest,
    # and the imports, relays and copies waiting on them start earlier.
    upload_concurrency: int = 8
    # Registration as the user says, not as detected (a warning says where they differ).
    boot_mode: str | None = None  # BIOS, UEFI or UEFI-Preferred
    architecture: str | None = None  # x86_64, arm64 or i386


def check_options(options: ImportOptions) -> None:
    """Refuse what cannot work, before the first cloud call (UsageError).

    Only what the cloud alone can tell is left to it: whether a well-formed region exists
    (DescribeRegions, before anything is created) and whether an account ID belongs to an
    account.
    """
    for region in options.regions or ():
        if not _REGION_ID.fullmatch(region):
            raise UsageError(
                f"-r {region!r} is not a region ID (such as cn-hangzhou or ap-southeast-1)"
            )
    check_account_ids(options.share_accounts)
    if options.copy_concurrency < 1:
        raise UsageError("--copy-concurrency must be at least 1")
    if options.upload_concurrency < 1:
        raise UsageError("--upload-concurrency must be at least 1")
    if options.public and options.share_accounts:
        raise UsageError(
            "--public and --share-account cannot be combined: ECS does not share community"
            " (public) images with accounts; publish, or share, not both"
        )


def check_account_ids(accounts: Sequence[str]) -> None:
    """Refuse --share-account values that cannot be account IDs, and too many of them."""
    for account in accounts:
        if not _ACCOUNT_ID.fullmatch(account):
            raise UsageError(
                f"--share-account {account!r} is not an Alibaba Cloud account ID (16 digits)"
            )
    repeated = sorted({a for a in accounts if accounts.count(a) > 1})
    if repeated:
        raise UsageError(f"--share-account {repeated[0]} is given more than once")
    if len(accounts) > MAX_SHARE_ACCOUNTS:
        raise UsageError(
            f"--share-account is given {len(accounts)} times; ECS shares an image with at most"
            f" {MAX_SHARE_ACCOUNTS} accounts"
        )
