"""The tables of benchmarks 1 and 2 (makespan, API economy), from ``makespan.run``'s results."""

from __future__ import annotations

from typing import Any

from benchmarks.makespan import KINDS, POLLS_PER_WAIT, TARGETS

__all__ = ["POLLS_PER_WAIT", "markdown", "per_wait", "polls_per_wait", "target", "throttle"]


def _table(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return lines + [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]


def markdown(results: dict[str, Any]) -> str:
    head = results["scales"][0]
    names = [n for n in results["runs"] if head in results["runs"][n]]
    runs = [results["runs"][n][head] for n in names]

    def each(fmt: Any) -> list[str]:
        return [fmt(r) for r in runs]

    rows = [
        (
            "lower bound, no contention (the issue's bound)",
            each(lambda r: f"{r['bound']['makespan']:.0f}"),
        ),
        (
            "lower bound respecting copy queues (valid, tighter)",
            each(lambda r: f"{r['bound']['copy_queue']:.0f}"),
        ),
        (
            "phase-barrier schedule (model, no overheads)",
            each(lambda r: f"{r['bound']['phase_barrier']:.0f}"),
        ),
        ("**measured makespan** (last image done)", each(lambda r: f"**{r['makespan']:.0f}**")),
        (
            "measured, cloud side (last image Available)",
            each(lambda r: f"{r['cloud_makespan']:.0f}"),
        ),
        ("measured, run end (after cleanup)", each(lambda r: f"{r['run_end']:.0f}")),
        (
            "**makespan / bound** (target)",
            [
                f"**{r['makespan'] / r['bound']['makespan']:.2f}** (≤ {target(results, n):.2f})"
                for n, r in zip(names, runs, strict=True)
            ],
        ),
        (
            "makespan / copy-queue bound",
            each(lambda r: f"{r['makespan'] / r['bound']['copy_queue']:.2f}"),
        ),
        (
            "makespan / phase-barrier",
            each(lambda r: f"{r['makespan'] / r['bound']['phase_barrier']:.2f}"),
        ),
    ]
    for kind in KINDS:
        rows.append(
            (
                f"latest {kind} image: measured / bound",
                each(lambda r, k=kind: f"{r['latest'][k]:.0f} / {r['bound']['latest'][k]:.0f}"),
            )
        )
    for label in runs[0]["milestones"]:
        rows.append((f"when: {label}", each(lambda r, m=label: f"{r['milestones'][m]:.0f}")))
    rows += [
        (
            "copy slots: mean idle s between copies (count)",
            each(lambda r: _idle(r["copy_slots"])),
        ),
        (
            "copies noticed after they ended (mean s)",
            each(lambda r: f"{r['copy_slots']['notice_mean']:.0f}"),
        ),
        ("images published", each(lambda r: f"{r['succeeded']}/{r['pairs']}")),
        (
            "faults injected",
            each(lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items())) or "-"),
        ),
        (
            "leaks after the run",
            each(lambda r: ", ".join(f"{k} {v}" for k, v in r["leaks"].items()) or "none"),
        ),
        (
            "importer CPU s / peak RSS MB",
            each(lambda r: f"{r['cpu_seconds']:.1f} / {r['peak_rss_mb']:.0f}"),
        ),
    ]
    lines = [
        f"Default region map (30 regions: {_mix(runs[0])}), 4 images, seed {results['seed']}, "
        f"time scale {head}. Virtual seconds from the call of `import_images`. Columns: fault "
        "profile, and copy slots per source region (five unless said, as the current CopyImage "
        "documentation says; the importer is told the same).",
        "",
        *_table(["", *names], rows),
        "",
        "Last image done, and its path: ",
        "",
        *[f"* {n}: {r['last']}" for n, r in zip(names, runs, strict=True)],
        "",
        "Time-scale dependence (CPU time on the critical path is amplified by the scale):",
        "",
    ]
    scale_rows = []
    for name in results.get("extrapolated", {}):
        for scale, r in sorted(results["runs"][name].items(), key=lambda kv: float(kv[0])):
            bound = r["bound"]
            scale_rows.append(
                (
                    f"{name}, scale {scale}",
                    [
                        f"{r['makespan']:.0f}",
                        f"{bound['makespan']:.0f}",
                        f"{bound['copy_queue']:.0f}",
                        f"{r['makespan'] / bound['makespan']:.2f}",
                        f"{r['makespan'] / bound['copy_queue']:.2f}",
                    ],
                )
            )
        est, bound = results["extrapolated"][name], results["real_cloud_bound"][name]
        scale_rows.append(
            (
                f"{name}, **scale 1 (extrapolated)**",
                [
                    f"{est['makespan']:.0f}",
                    f"{bound['makespan']:.0f}",
                    f"{bound['copy_queue']:.0f}",
                    f"**{est['makespan'] / bound['makespan']:.2f}**",
                    f"**{est['makespan'] / bound['copy_queue']:.2f}**",
                ],
            )
        )
    lines += _table(
        ["run", "makespan", "bound", "copy-queue bound", "÷ bound", "÷ copy-queue bound"],
        scale_rows,
    )
    slopes = ", ".join(
        f"{n} {e['real_seconds_amplified']:.1f} s" for n, e in results["extrapolated"].items()
    )
    lines += ["", f"Real seconds on the critical path (the fitted slope): {slopes}."]
    runs_at_head = {n: results["runs"][n].get(head) for n in results["runs"]}
    public, private = runs_at_head.get("default, --public"), runs_at_head.get("default")
    if public and private:
        ratio = public["makespan"] / private["makespan"]
        lines += [
            "",
            f"`--public` against the same run without it (default faults, 5 slots): makespan"
            f" {public['makespan']:.0f} against {private['makespan']:.0f} virtual s, ratio"
            f" **{ratio:.3f}** (target ≤ 1.02): images are published once no region needs them"
            " as a copy source.",
        ]
    lines += [
        "",
        "The headline run (default faults, 5 slots) drawn from its journal by"
        " `aliasync runs show --timeline`: [timeline.svg](timeline.svg).",
    ]
    lines += ["", "Each image's upload and relay alone (virtual s at the headline scale):", ""]
    lines += _table(
        ["image", "bytes", "upload", "relay"],
        [
            (i["name"], [str(i["size"]), f"{i['upload']:.1f}", f"{i['relay']:.1f}"])
            for i in results["images"][head]
        ],
    )
    lines += ["", "**API economy** (calls per (region, image), at the headline scale):", ""]
    lines += api_markdown(names, runs)
    return "\n".join(lines)


def target(results: dict[str, Any], name: str) -> float:
    """The makespan target of a variant: it depends on its fault profile."""
    return TARGETS[results["variants"][name]["faults"]]


def _mix(run: dict[str, Any]) -> str:
    return ", ".join(f"{run['strategies'].get(k, 0)} {k}" for k in KINDS)


def api_markdown(names: list[str], runs: list[dict[str, Any]]) -> list[str]:
    def each(fmt: Any) -> list[str]:
        return [fmt(r) for r in runs]

    def kind(r: dict[str, Any], k: str) -> dict[str, float]:
        return dict(r["calls"]["per_pair_by_kind"].get(k, {}))

    rows = [
        (
            "all calls / per (region, image)",
            each(lambda r: f"{r['calls']['total']} / {r['calls']['per_pair']:.1f}"),
        )
    ]
    actions = list(dict.fromkeys(a for r in runs for a in r["calls"]["by_action"]))
    rows += [
        (f"`{a}`", each(lambda r, a=a: str(r["calls"]["by_action"].get(a, 0)))) for a in actions
    ]
    for k in KINDS:
        rows.append(
            (
                f"{k} regions: calls per image",
                each(lambda r, k=k: f"{sum(kind(r, k).values()):.1f}"),
            )
        )
        rows.append(
            (
                f"{k} regions: `DescribeImages` per image",
                each(lambda r, k=k: f"{kind(r, k).get('ecs:DescribeImages', 0):.1f}"),
            )
        )
    rows += [
        ("import waits: polls per wait, mean wait s", each(lambda r: per_wait(r, "import"))),
        ("copy waits: polls per wait, mean wait s", each(lambda r: per_wait(r, "copy"))),
        ("answers carrying an injected fault", each(lambda r: str(r["calls"]["faulted"]))),
        ("`Throttling` answers; median s to the next same call", each(throttle)),
    ]
    return _table(["", *names], rows)


def polls_per_wait(run: dict[str, Any], kind: str) -> tuple[float, float]:
    """DescribeImages polls per wait (lookups while planning excluded), and the mean wait (s)."""
    waits = run["waits"]
    seconds, count = waits.get(f"{kind}_seconds", 0.0), waits.get(f"{kind}_waits", 0)
    strategies = ("direct", "relay") if kind == "import" else ("copy",)
    per = run["calls"]["per_pair_by_kind"]
    pairs = {s: run["strategies"].get(s, 0) for s in strategies}
    images = run["pairs"] / max(1, sum(run["strategies"].values()))
    calls = sum(per.get(s, {}).get("ecs:DescribeImages", 0.0) * n for s, n in pairs.items())
    polls = (calls - sum(pairs.values())) * images  # less one lookup per pair while planning
    return (polls / count, seconds / count) if count else (0.0, 0.0)


def per_wait(run: dict[str, Any], kind: str) -> str:
    polls, wait = polls_per_wait(run, kind)
    return f"{polls:.1f} per {wait:.0f} s" if wait else "-"


def throttle(run: dict[str, Any]) -> str:
    gap = run["calls"]["throttle_gap_median"]
    return f"{run['calls']['throttled']}; " + ("-" if gap is None else f"{gap:.1f}")


def _idle(slots: dict[str, Any]) -> str:
    if slots["idle_mean"] is None:
        return "-"
    return f"{slots['idle_mean']:.0f} ({slots['follow_ups']})"
