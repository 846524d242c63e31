"""The command line: thin adapters over the library's coroutines.

Exit codes: 0 everything done; 1 some regions failed (the rest done and reported); 2 bad usage
or input (nothing touched in the cloud); 130 interrupted (temporary resources removed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from aliasync._exceptions import AliasyncError, UsageError
from aliasync.cli._lifecycle import LIFECYCLE_COMMANDS, add_commands, run_command
from aliasync.cli._progress import ProgressView, print_report
from aliasync.pipeline._prepare import (
    ARCHITECTURES,
    BOOT_MODES,
    base_name,
    check_boot_overrides,
    prepare_images,
)
from aliasync.pipeline._report import ImportReport, duration

log = logging.getLogger("aliasync")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliasync",
        description="Publish bootable disk images as ECS custom images in every Alibaba Cloud "
        "region, concurrently.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import", help="import disk images into regions")
    imp.add_argument(
        "images", nargs="*", metavar="IMAGE", help="disk image files (raw, QCOW2 or VHD)"
    )
    imp.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="RUN",
        help="continue a killed run (default: the latest) instead of starting one",
    )
    imp.add_argument(
        "-r",
        "--region",
        action="append",
        dest="regions",
        metavar="REGION",
        help="region to publish in (repeatable; default: every region)",
    )
    imp.add_argument("-n", "--name", help="image name (default: <family>-YYYYMMDD)")
    imp.add_argument("-f", "--family", default="ipxe", help="image family (default: ipxe)")
    imp.add_argument(
        "--boot-mode",
        choices=BOOT_MODES,
        help="register with this boot mode instead of the detected one (a warning says so)",
    )
    imp.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        dest="architecture",
        help="register with this architecture instead of the detected one",
    )
    imp.add_argument("--public", action="store_true", help="share the images publicly")
    imp.add_argument(
        "--share-account",
        action="append",
        default=[],
        metavar="ID",
        help="share the images with an Alibaba Cloud account (repeatable)",
    )
    imp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing images of the same name (and their snapshots)",
    )
    imp.add_argument(
        "--copy-concurrency",
        type=int,
        default=5,
        metavar="N",
        help="CopyImage tasks the cloud runs at once per source region (default 5)",
    )
    imp.add_argument(
        "--upload-concurrency",
        type=int,
        default=8,
        metavar="N",
        help="image uploads at once, across all regions (default 8)",
    )
    imp.add_argument(
        "--endpoints",
        type=Path,
        metavar="FILE",
        help="endpoints file (the emulator's, or your own for VPC endpoints)",
    )
    imp.add_argument(
        "--sim", action="store_true", help="run against an emulator started in-process"
    )
    imp.add_argument("--sim-profile", default="default", help=argparse.SUPPRESS)
    imp.add_argument("--sim-seed", type=int, default=0, help=argparse.SUPPRESS)
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown release table")
    imp.add_argument("--dokuwiki", type=Path, metavar="FILE", help="write a DokuWiki release table")
    imp.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    imp.add_argument(
        "-q", "--quiet", action="store_true", help="print only the result (and warnings)"
    )

    runs = sub.add_parser("runs", help="list import runs recorded in the journal")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    runs_sub = runs.add_subparsers(dest="runs_command")
    show = runs_sub.add_parser("show", help="one run: its plan, steps and a timeline")
    show.add_argument("run", nargs="?", metavar="RUN", help="run ID or prefix (default: latest)")
    show.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="draw the run: FILE.svg, or FILE.html (standalone, times on hover)",
    )
    show.add_argument("--json", action="store_true", help="print the run as JSON")

    sim = sub.add_parser("sim", help="serve the Alibaba Cloud emulator in the foreground")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=0)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--profile", default="default", help="fault profile: none, default, harsh")
    sim.add_argument(
        "--time-scale",
        type=float,
        default=1000.0,
        help="virtual cloud seconds per real second (default 1000)",
    )
    sim.add_argument("--regions", type=Path, metavar="FILE", help="region map (JSON)")
    sim.add_argument(
        "--copy-concurrency",
        type=int,
        metavar="N",
        help="copies each source region runs at once (default 5, as CopyImage documents)",
    )
    sim.add_argument(
        "--no-community-terms",
        action="store_true",
        help="an account that has not accepted the community-image terms (publishing fails)",
    )
    sim.add_argument(
        "--endpoints-out",
        type=Path,
        default=Path("aliasync-sim-endpoints.json"),
        metavar="FILE",
        help="where to write the endpoints description",
    )
    sim.add_argument(
        "--env-out",
        type=Path,
        metavar="FILE",
        help="also write NAME=value lines (proxies, CA, keys) for `set -a; . FILE`, so that "
        "unmodified SDK code reaches the emulator over HTTPS",
    )
    sim.add_argument(
        "--no-preset-roles",
        action="store_true",
        help="start without the image import role (to exercise account setup)",
    )
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Only our own loggers get louder with -v: third-party debug output (botocore, aiohttp)
    # prints request headers, and those carry signatures.
    logging.getLogger("aliasync").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    # A retry is routine (about 1 % of calls): said with -v only, not over the live view.
    logging.getLogger("stamina").setLevel(logging.INFO if verbose else logging.ERROR)
    # The credentials library logs a warning and a traceback for every source of its chain
    # that has nothing; the one line printed below says what matters (and -vv logs the
    # chain's reasons through aliasync's own logger, secrets masked).
    logging.getLogger("credentials").setLevel(logging.CRITICAL + 1)
    try:
        if args.command == "sim":
            return anyio.run(_serve_sim, args)
        if args.command == "runs":
            return _list_runs(args)
        if args.command in LIFECYCLE_COMMANDS:
            code: int | None = anyio.run(run_command, args)
            return 2 if code is None else code
        return anyio.run(_import, args)
    except UsageError as exc:
        print(f"aliasync: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"aliasync: error: {exc}", file=sys.stderr)
        return 2
    except AliasyncError as exc:
        print(f"aliasync: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.command == "import":
            print("aliasync: interrupted; temporary resources were removed", file=sys.stderr)
        return 130


async def _import(args: argparse.Namespace) -> int:
    from aliasync.cloud._endpoints import Endpoints
    from aliasync.pipeline._options import ImportOptions, check_options
    from aliasync.pipeline._orchestrator import Importer
    from aliasync.sim import Simulator, profile

    check_boot_overrides(args.boot_mode, args.architecture)
    if args.resume and not args.images and await anyio.Path(args.resume).is_file():
        raise UsageError(
            f"--resume takes a run ID (see `aliasync runs`), not an image: {args.resume!r}"
        )
    if args.resume is not None and args.images:
        # Refused, not ignored: a resumed run imports the images it started with, and silently
        # dropping the ones given would publish something else than asked.
        raise UsageError(
            "--resume continues a run with the images it started with; refusing the IMAGE"
            f" arguments given ({', '.join(args.images)}): give none, or start a new run"
        )
    if args.resume is None and not args.images:
        raise UsageError("give at least one IMAGE (or --resume)")
    options = ImportOptions(
        regions=tuple(args.regions) if args.regions else None,
        name=args.name,
        family=args.family,
        public=args.public,
        share_accounts=tuple(args.share_account),
        overwrite=args.overwrite,
        copy_concurrency=args.copy_concurrency,
        upload_concurrency=args.upload_concurrency,
        boot_mode=args.boot_mode,
        architecture=args.architecture,
    )
    check_options(options)
    _check_release_files(args)
    if args.resume is None:
        # Every input is checked before the first cloud call (the import reuses the result).
        await prepare_images(
            args.images,
            name=base_name(options.name, options.family),
            family=options.family,
            boot_mode=options.boot_mode,
            architecture=options.architecture,
        )
    view = ProgressView(sys.stderr, verbose=args.verbose, quiet=args.quiet)

    async def run(endpoints: Endpoints) -> int:
        view.time_scale = endpoints.time_scale  # the emulator's cloud time runs faster
        async with Importer(endpoints, on_event=view.on_event) as importer:
            with view:
                if args.resume is not None:
                    report = await importer.resume(args.resume or None)
                else:
                    report = await importer.run(args.images, options)
        if args.json:
            print(report.to_json())
        else:
            print_report(report, sys.stdout)
        _write_release(args, report)
        return report.exit_code

    if args.sim:
        if args.endpoints:
            raise UsageError("--sim and --endpoints cannot be combined")
        async with Simulator(seed=args.sim_seed, profile=profile(args.sim_profile)) as sim:
            return await run(Endpoints.from_dict(sim.endpoints))
    endpoints = Endpoints.load(args.endpoints) if args.endpoints else Endpoints()
    return await run(endpoints)


def _check_release_files(args: argparse.Namespace) -> None:
    """The release tables are written when the run ends: a folder they cannot go to is said
    before the run starts, not after the images are published."""
    for flag, path in (("--markdown", args.markdown), ("--dokuwiki", args.dokuwiki)):
        if path is None:
            continue
        folder = path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK) or path.is_dir():
            raise UsageError(f"{flag} {path}: cannot be written there")


def _write_release(args: argparse.Namespace, report: ImportReport) -> None:
    from aliasync.lifecycle._release import dokuwiki, markdown

    if args.markdown:
        args.markdown.write_text(markdown(report))
    if args.dokuwiki:
        args.dokuwiki.write_text(dokuwiki(report))


async def _serve_sim(args: argparse.Namespace) -> int:
    from aliasync.sim import RegionMap, Simulator, profile

    chosen = profile(args.profile)
    if args.copy_concurrency is not None:
        if args.copy_concurrency < 1:
            raise UsageError("--copy-concurrency must be at least 1")
        chosen = chosen.with_(copy_concurrency=args.copy_concurrency)
    try:
        regions = RegionMap.load(args.regions) if args.regions else None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.regions}: {exc}") from exc
    from aliasync.pipeline._state import state_dir

    async with Simulator(
        seed=args.seed,
        profile=chosen,
        time_scale=args.time_scale,
        regions=regions,
        host=args.host,
        port=args.port,
        preset_roles=not args.no_preset_roles,
        # Kept across runs, so that a user trusts the emulator's CA once.
        ca_dir=state_dir() / "sim",
        community_terms=not args.no_community_terms,
    ) as sim:
        path = sim.write_endpoints(args.endpoints_out)
        summary = {
            "proxy": sim.proxy_url,
            "endpoints_file": str(path),
            "env_file": str(sim.write_env(args.env_out)) if args.env_out else None,
            "ca": str(sim.ca_path),
            "regions": len(sim.ctx.regions),
            "profile": chosen.name,
            "seed": args.seed,
            "time_scale": args.time_scale,
            "introspection": f"{sim.proxy_url}/_sim/state",
        }
        print(json.dumps(summary), flush=True)
        log.info("emulator serving on %s (HTTPS clients trust %s); Ctrl-C stops it",
                 sim.proxy_url, sim.ca_path)  # fmt: skip
        await anyio.sleep_forever()
    return 0


def _list_runs(args: argparse.Namespace) -> int:
    from aliasync.cli._progress import print_runs
    from aliasync.pipeline._journal import Journal
    from aliasync.pipeline._state import state_dir

    journal = Journal(state_dir() / "journal.sqlite3")
    try:
        if getattr(args, "runs_command", None) == "show":
            return _show_run(args, journal)
        runs = journal.runs()
    finally:
        journal.close()
    if args.json:
        print(json.dumps([
            {"run_id": r.run_id, "created": r.created, "updated": r.updated,
             "status": r.status, "images": [i["path"] for i in r.plan.get("images", [])],
             "regions": len(r.plan.get("regions", []))}
            for r in runs
        ], indent=2))  # fmt: skip
    else:
        print_runs(runs, sys.stdout)
    return 0


def _show_run(args: argparse.Namespace, journal: Any) -> int:
    from aliasync.cli._timeline import build_timeline, html_page, svg

    if args.timeline is not None and args.timeline.suffix.lower() not in (".svg", ".html"):
        raise UsageError(f"{args.timeline}: the timeline is drawn as .svg or .html")
    record = journal.run(args.run)
    timeline = build_timeline(record, journal.steps(record.run_id))
    if args.timeline is not None:
        page = svg(timeline) if args.timeline.suffix.lower() == ".svg" else html_page(timeline)
        try:
            args.timeline.write_text(page)
        except OSError as exc:
            raise UsageError(f"{args.timeline}: cannot be written ({exc.strerror})") from exc
    doc = {
        "run_id": record.run_id,
        "status": record.status,
        "regions": len(timeline.regions),
        "cloud_seconds": round(timeline.end, 3),
        "critical_path": [
            {"region": b.region, "image": b.image, "stage": b.stage,
             "start": round(b.start, 3), "end": round(b.end, 3)}
            for b in sorted(timeline.critical, key=lambda b: b.start)
        ],
        "timeline": str(args.timeline) if args.timeline else None,
    }  # fmt: skip
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"run {record.run_id}: {record.status}, {len(timeline.regions)} regions,"
              f" {duration(timeline.end)} of cloud time")  # fmt: skip
        for item in doc["critical_path"]:
            print(f"  critical: {item['region']} {item['image']} {item['stage']}"
                  f" {duration(item['start'])} to {duration(item['end'])}")  # fmt: skip
        if args.timeline:
            print(f"timeline written to {args.timeline}")
    return 0
