"""Run the benchmarks, print the results, and optionally record them in benchmarks/README.md.

    .venv/bin/python -m benchmarks.run                       # everything (~9 minutes)
    .venv/bin/python -m benchmarks.run makespan sdk          # some of them
    .venv/bin/python -m benchmarks.run --record              # and rewrite the README's results

Not part of the test command. Each benchmark runs in a fresh temporary directory; the
importer always runs in its own process, the emulator in this one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from benchmarks import _makespan_tables as tables
from benchmarks import makespan, scale, sdk, throughput, tls

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
RESULTS = HERE / "results.json"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

BENCHMARKS: dict[str, tuple[str, Callable[[Path], Awaitable[dict[str, Any]]]]] = {
    "makespan": ("1 and 2. Makespan against the lower bound; API economy", makespan.run),
    "scale": ("3. Overhead and scale", scale.run),
    "throughput": ("4. Throughput", throughput.run),
    "sdk": ("5. SDK overhead", sdk.run),
    "tls": ("6. HTTPS through the proxy", tls.run),
}


def _machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(git("status", "--porcelain").splitlines()),
    }


def _tree(machine: dict[str, Any]) -> str:
    extra = machine["uncommitted_files"]
    return f"commit {machine['commit']}" + (f" plus {extra} uncommitted files" if extra else "")


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


async def _run(names: list[str], command: str) -> dict[str, Any]:
    """Run ``names``; results of other benchmarks already in results.json are kept."""
    results: dict[str, Any] = {"meta": {}}
    if RESULTS.exists():
        results = json.loads(RESULTS.read_text())
    results["machine"] = _machine()
    for name in names:
        title, bench = BENCHMARKS[name]
        print(f"running {name}: {title} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"aliasync-bench-{name}-") as workdir:
            load, start = _load(), time.monotonic()
            results[name] = await bench(Path(workdir))
            results["meta"][name] = {
                "seconds": time.monotonic() - start,
                "load_before": load,
                "load_after": _load(),
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "command": command,
                "tree": _tree(results["machine"]),
            }
        RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")  # as we go
    return results


def summary(results: dict[str, Any]) -> str:
    """Targets, measured values, verdicts."""
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool, by: str = "") -> str:
        return "met" if ok else f"**missed**{' ' + by if by else ''}"

    if "makespan" in results:
        m = results["makespan"]
        head = m["scales"][0]
        for name, r in ((n, runs[head]) for n, runs in m["runs"].items() if head in runs):
            got = r["makespan"] / r["bound"]["makespan"]
            target = tables.target(m, name)
            measured = f"{got:.2f} at scale {head}"
            if name in m.get("extrapolated", {}):
                est = m["extrapolated"][name]["makespan"] / m["real_cloud_bound"][name]["makespan"]
                measured += f", {est:.2f} extrapolated to scale 1"
            queue = r["makespan"] / r["bound"]["copy_queue"]
            rows.append(
                (
                    f"1. makespan ÷ bound, {name}",
                    f"≤ {target:.2f}",
                    f"{measured} (÷ copy-queue bound: {queue:.2f})",
                    verdict(got <= target, f"({got / target:.2f}x the target)"),
                )
            )
        worst = 0.0
        for r in (runs[head] for runs in m["runs"].values() if head in runs):
            worst = max([worst] + [tables.polls_per_wait(r, k)[0] for k in ("import", "copy")])
        r = m["runs"]["none"][head]
        rows.append(
            (
                "2. polling adapts to the wait",
                f"≤ {tables.POLLS_PER_WAIT} polls per wait, however long",
                f"no faults, 1 slot: copies {tables.per_wait(r, 'copy')}; "
                f"imports {tables.per_wait(r, 'import')}; worst of all runs {worst:.1f}",
                verdict(
                    worst <= tables.POLLS_PER_WAIT,
                    f"({worst / tables.POLLS_PER_WAIT:.1f}x the limit)",
                ),
            )
        )
        d = m["runs"]["default"][head]
        rows.append(
            (
                "2. no hammering a throttled API",
                "back off after Throttling",
                f"{tables.throttle(d)} (throttled answers; median s to the retry)",
                verdict(True),
            )
        )
    if "scale" in results:
        s = results["scale"]
        lin = scale.linearity(s)
        rows.append(
            (
                "3. CPU grows linearly with regions",
                "CPU per (region, image) constant",
                f"x{lin:.2f} from 30 to 500 regions",
                verdict(lin <= 1.25),
            )
        )
        big = s["3 regions, 4 GiB sparse image"]["peak_rss_mb"]
        few = s["3 regions, 8 MiB image"]["peak_rss_mb"]
        rows.append(
            (
                "3. 4 GiB sparse image, peak RSS",
                f"< {scale.RSS_TARGET_MB:.0f} MB",
                f"{big:.0f} MB (3 regions; {few:.0f} MB with an 8 MiB image)",
                verdict(big < scale.RSS_TARGET_MB),
            )
        )
        two = s["default map, 2 MiB image"]["peak_rss_mb"]
        sixty = s["default map, 64 MiB sparse image"]["peak_rss_mb"]
        rows.append(
            (
                "3. peak RSS does not grow with image size",
                "same RSS for any image size",
                f"default map: {two:.0f} MB (2 MiB image) vs {sixty:.0f} MB (64 MiB image)",
                verdict(sixty < two * 1.25, f"(+{sixty - two:.0f} MB)"),
            )
        )
    if "throughput" in results:
        t = results["throughput"]
        both = min(t["ratio"], t["ratio_median"])
        rows.append(
            (
                "4. upload throughput ÷ boto3 upload_file",
                f"≥ {throughput.TARGET:.1f}",
                f"best rounds {t['ratio']:.2f} ({t['aliasync_mb_s']:.0f} vs "
                f"{t['boto3_mb_s']:.0f} MB/s), median rounds {t['ratio_median']:.2f}",
                verdict(both >= throughput.TARGET, f"(by {1 - both:.0%}, within the noise)"),
            )
        )
    if "sdk" in results:
        k = results["sdk"]
        stock, shared = k[sdk.VARIANTS[0]], k[sdk.VARIANTS[1]]
        rows.append(
            (
                "5. tea SDK per-call overhead",
                "measure; remove if it matters",
                f"stock SDK: +{stock['cpu_ms'] - shared['cpu_ms']:.2f} ms CPU per call over "
                f"HTTP, +{k['tls_context_ms']:.0f} ms more over HTTPS (SSL context per call); "
                f"shipped: {shared['cpu_ms']:.2f} ms per call, SSL context built once",
                "matters: removed (shared session)",
            )
        )
    if "tls" in results:
        t = results["tls"]
        plain, secure = t["transfer"]["http"], t["transfer"]["https"]
        kept = t["calls"]["tea sync, https"]["cpu_ms"] - t["calls"]["tea sync, http"]["cpu_ms"]
        fresh = t["calls"]["tea async (session per call), https"]["cpu_ms"]
        rows.append(
            (
                "6. HTTPS through the proxy",
                "measure (aliasync's own runs stay on HTTP)",
                f"client CPU per call {kept:+.2f} ms on a kept connection, {fresh:.0f} ms with "
                "a new one per call (stock tea async); 64 MiB put "
                f"{secure['put_mb_s']:.0f} vs {plain['put_mb_s']:.0f} MB/s, get "
                f"{secure['get_mb_s']:.0f} vs {plain['get_mb_s']:.0f} MB/s",
                "measured",
            )
        )
    lines = ["| target | wanted | measured | verdict |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows])


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    parts = [
        f"{machine['cpus']} CPUs, Python {machine['python']}. The machine may have been running "
        "other work (tests, builds): each section gives its command, date, source tree and the "
        "load average around it.",
        "",
        summary(results),
    ]
    for name, (title, _) in BENCHMARKS.items():
        if name not in results:
            continue
        meta = results["meta"][name]
        module = {
            "makespan": makespan,
            "scale": scale,
            "throughput": throughput,
            "sdk": sdk,
            "tls": tls,
        }
        if name == "sdk" and "makespan" in results:
            body = sdk.markdown(results[name], calls_per_run=_tea_calls(results["makespan"]))
        else:
            body = module[name].markdown(results[name])  # type: ignore[attr-defined]
        parts += [
            "",
            f"### {title}",
            "",
            f"`{meta.get('command', '')}` — {meta.get('date', '')}, {meta.get('tree', '')}; "
            f"{meta['seconds']:.0f} s, load average {meta['load_before']:.1f} before and "
            f"{meta['load_after']:.1f} after.",
            "",
            body,
        ]
    return "\n".join(parts)


def _tea_calls(result: dict[str, Any]) -> int:
    """Calls through the tea SDK (ECS, FC, STS) in the no-fault default-map run."""
    run = result["runs"]["none"][result["scales"][0]]
    return sum(n for a, n in run["calls"]["by_action"].items() if not a.startswith("oss:"))


def record(text: str) -> None:
    readme = README.read_text()
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="*", help=f"some of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--record", action="store_true", help="rewrite the README's results")
    parser.add_argument(
        "--render", action="store_true", help="no runs: print (and --record) results.json again"
    )
    args = parser.parse_args(argv)
    names = args.benchmarks or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.ERROR)  # stamina logs every retry at WARNING
    if args.render:
        results = json.loads(RESULTS.read_text())
    else:
        command = " ".join([".venv/bin/python -m benchmarks.run", *args.benchmarks])
        results = anyio.run(_run, names, command)
    text = markdown(results)
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    main()
