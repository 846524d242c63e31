"""CLI adapters for account setup and the image lifecycle: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aliasync.cloud._cloud import Cloud

__all__ = ["LIFECYCLE_COMMANDS", "add_commands", "run_command"]

LIFECYCLE_COMMANDS = frozenset(
    {"regions", "list", "delete", "prune", "publish", "unpublish", "deprecate", "undeprecate",
     "setup"}
)  # fmt: skip


def _common(parser: argparse.ArgumentParser, *, regions: bool = True) -> None:
    parser.add_argument(
        "--endpoints", type=Path, metavar="FILE", help="endpoints file (as for import)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    if regions:
        parser.add_argument(
            "-r",
            "--region",
            action="append",
            dest="regions",
            metavar="REGION",
            help="region to work in (repeatable; default: every region)",
        )


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the lifecycle subcommands to the CLI's subparsers."""
    p = sub.add_parser("regions", help="detect how each region can receive images")
    _common(p)
    p = sub.add_parser("list", help="list images in every region")
    _common(p)
    p.add_argument("--family", help="only this image family (and its -uefi-* variants)")
    p.add_argument("--name", help="only images of this exact name")
    p = sub.add_parser("delete", help="unpublish and delete an image and its snapshots")
    _common(p)
    p.add_argument("name", nargs="?", metavar="NAME", help="image name")
    p.add_argument("--image-id", help="delete by image ID instead of name")
    p = sub.add_parser("prune", help="delete all but the newest images of a family")
    _common(p)
    p.add_argument("--family", required=True, help="image family (and its -uefi-* variants)")
    p.add_argument("--retain", type=int, required=True, metavar="N", help="images to keep")
    p.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    p.add_argument("--all", action="store_true", help="allow --retain 0 (delete all)")
    for command, text in (("publish", "make public"), ("unpublish", "make private")):
        p = sub.add_parser(command, help=f"{text} an image (or share with accounts)")
        _common(p)
        p.add_argument("name", metavar="NAME", help="image name")
        p.add_argument(
            "--share-account",
            action="append",
            default=[],
            metavar="ID",
            help="(un)share with this account instead of the public flag (repeatable)",
        )
    p = sub.add_parser("deprecate", help="mark an image Deprecated")
    _common(p)
    p.add_argument("name", metavar="NAME", help="image name")
    p.add_argument("--replacement", metavar="NAME", help="the image to use instead")
    p = sub.add_parser("undeprecate", help="mark a deprecated image Available again")
    _common(p)
    p.add_argument("name", metavar="NAME", help="image name")
    p = sub.add_parser("setup", help="create or repair the RAM roles aliasync needs")
    _common(p, regions=False)
    p.add_argument("--dry-run", action="store_true", help="only say what would be created")


async def run_command(args: argparse.Namespace) -> int | None:
    """Run a lifecycle command; None if ``args.command`` is not one."""
    if args.command not in LIFECYCLE_COMMANDS:
        return None
    # Imported here, not at the top: `aliasync --help` need not load the cloud SDKs.
    from aliasync.cloud._cloud import Cloud
    from aliasync.cloud._endpoints import Endpoints

    if args.command in ("publish", "unpublish"):
        from aliasync.pipeline._options import check_account_ids

        check_account_ids(args.share_account)  # before the first cloud call
    endpoints = Endpoints.load(args.endpoints) if args.endpoints else Endpoints()
    if args.command == "setup":
        from aliasync.lifecycle._setup import setup_account

        report = await setup_account(endpoints, dry_run=args.dry_run)
        rows = [[s.role, s.item, s.state, s.detail] for s in report.steps]
        _emit(args, report.to_dict(), ["role", "item", "state", "detail"], rows)
        return report.exit_code
    cloud = await Cloud.open(endpoints)
    try:
        return await _with_cloud(cloud, args)
    finally:
        await cloud.aclose()


async def _with_cloud(cloud: Cloud, args: argparse.Namespace) -> int:
    from aliasync.lifecycle import _images as lc

    regions = await lc.select_regions(cloud, args.regions)
    if args.command == "regions":
        from aliasync.lifecycle._regions import detect_capabilities

        found = await detect_capabilities(cloud, regions)
        rows = [[r.region, r.capability, r.reason] for r in found]
        _emit(args, [r.to_dict() for r in found], ["region", "capability", "reason"], rows)
        return 0
    if args.command == "list":
        listing = await lc.list_images(cloud, regions, family=args.family, name=args.name)
        columns = ["region", "image ID", "name", "family", "arch", "boot", "status", "public",
                   "created"]  # fmt: skip
        rows = [
            [region, i.image_id, i.name, i.family or "-", i.architecture or "-",
             i.boot_mode or "-", i.status, "yes" if i.is_public else "no", i.creation_time or "-"]
            for region, i in listing.images
        ]  # fmt: skip
        rows += [[region, "-", "-", "-", "-", "-", f"error: {e}", "-", "-"]
                 for region, e in listing.errors.items()]  # fmt: skip
        _emit(args, listing.to_dict(), columns, rows)
        return listing.exit_code
    if args.command == "delete":
        outcome = await lc.delete_images(cloud, regions, name=args.name, image_id=args.image_id)
    elif args.command == "prune":
        outcome = await lc.prune_images(
            cloud,
            regions,
            family=args.family,
            retain=args.retain,
            dry_run=args.dry_run,
            everything=args.all,
        )
    elif args.command in ("publish", "unpublish"):
        outcome = await lc.share_images(
            cloud,
            regions,
            args.name,
            publish=args.command == "publish",
            accounts=tuple(args.share_account),
        )
    else:
        outcome = await lc.deprecate_images(
            cloud,
            regions,
            args.name,
            deprecate=args.command == "deprecate",
            replacement=getattr(args, "replacement", None),
        )
    rows = [[a.region, a.image_id, a.name, a.action, a.detail] for a in outcome.actions]
    rows += [[region, "-", "-", "error", e] for region, e in outcome.errors.items()]
    _emit(args, outcome.to_dict(), ["region", "image ID", "name", "action", "detail"], rows)
    return outcome.exit_code


def _emit(args: argparse.Namespace, doc: Any, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if args.json:
        print(json.dumps(doc, indent=2))
        return
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"aliasync {args.command}")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
