"""What an import is asked to do: the options every layer of a run reads."""

from __future__ import annotations

from dataclasses import dataclass

from aliasync._exceptions import UsageError

__all__ = ["ImportOptions", "check_options"]


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
    """Refuse what cannot work, before anything is created (UsageError)."""
    if options.copy_concurrency < 1:
        raise UsageError("--copy-concurrency must be at least 1")
    if options.upload_concurrency < 1:
        raise UsageError("--upload-concurrency must be at least 1")
    if options.public and options.share_accounts:
        raise UsageError(
            "--public and --share-account cannot be combined: ECS does not share community"
            " (public) images with accounts; publish, or share, not both"
        )
