#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes docs/BENCHMARKS.md (and the data for the plot) from one run of bench/run.

Usage: bench/report.py RESULTS_DIR OUTPUT_MD PLOT_DATA
RESULTS_DIR holds ops.json and schedules.json (Google Benchmark), instructions.txt,
schedule_instructions.txt, memory.txt, states.txt, drain.txt, group.txt, counts.txt, wake.txt,
machine.txt.
bench/analysis.md (hand-written: what the figures mean, and what we changed) is appended.
"""

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# The work measured, in table order: benchmark name, what it is.
WORK = [
    ("add_normal", "add one job per transaction, `synchronous=NORMAL`"),
    ("add_full", "add one job per transaction, `synchronous=FULL`"),
    ("add_batch", "add 1,000 jobs in one transaction (time per 1,000)"),
    ("next_job", "`next_job`"),
    ("seconds_until", "`seconds_until_next_job`"),
    ("count", "`count_pending_jobs`"),
    ("claim_complete", "claim and complete, one transaction each, `NORMAL`"),
]
TARGET_RATIO = 1.2


def load_ops(path):
    """{work: {implementation: {jobs: microseconds}}} from Google Benchmark's JSON."""
    times = defaultdict(lambda: defaultdict(dict))
    errors = []
    for run in json.loads(path.read_text())["benchmarks"]:
        work, implementation, jobs = run["run_name"].split("/")[:3]
        if run.get("error_occurred"):
            errors.append(f"{run['run_name']}: {run.get('error_message', '?')}")
            continue
        # With repetitions, the median of them; without, the one run.
        if run.get("run_type") == "aggregate" and run.get("aggregate_name") != "median":
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[run["time_unit"]]
        times[work][implementation][int(jobs)] = run["real_time"] * scale
    return times, errors


def duration(us):
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} µs"


def ratio_table(times):
    lines = [
        "| work | jobs stored | jobsched | hand-written C API | ratio | original (v1) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    misses = []
    for work, label in WORK:
        ours = times.get(work, {}).get("jobsched", {})
        for jobs in sorted(ours):
            base = times[work].get("sqlite", {}).get(jobs)
            original = times[work].get("original", {}).get(jobs)
            ratio = ours[jobs] / base if base else None
            mark = ""
            if ratio is not None and ratio > TARGET_RATIO:
                mark = " ⚠"
                misses.append((label, jobs, ratio))
            lines.append(
                f"| {label} | {jobs:,} | {duration(ours[jobs])} | "
                f"{duration(base) if base else '–'} | "
                f"{f'{ratio:.2f}×' if ratio is not None else '–'}{mark} | "
                f"{duration(original) if original else '–'} |"
            )
    return "\n".join(lines), misses


def flatness(times, work):
    ours = times.get(work, {}).get("jobsched", {})
    if len(ours) < 2:
        return None
    smallest, largest = min(ours), max(ours)
    return smallest, largest, ours[largest] / ours[smallest]


def drain_table(path):
    """Drain throughput per process count and durability, jobsched against hand-written."""
    rates = defaultdict(dict)
    pattern = re.compile(
        r"drain: (\w+), (\d+) process.*?(\d+) thread.*?synchronous=(\w+).*?(\d+) jobs/s"
    )
    for line in path.read_text().split("\n"):
        found = pattern.search(line)
        if found:
            implementation, processes, threads, synchronous, rate = found.groups()
            rates[(synchronous, int(processes), int(threads))][implementation] = int(rate)
    lines = [
        "## Drain throughput",
        "",
        "Worker processes empty a file of due jobs (`bench_drain`): jobsched's `Worker` (claims "
        "in batches for its free threads, commits results together), or threads that claim "
        "and complete one job per transaction by hand with SQLite's own busy timeout "
        "(`bench/baseline.hpp`, on the one-table schema its SQL fits). Empty handlers. "
        "The last columns are the calls alone, without a Worker: one thread calling "
        "`claim_jobs(256)` and `complete_all` in turn (`bench_drain 1 1 N SYNC batches`), "
        "the most the Worker's threads could get from them.",
        "",
        "| synchronous | processes × threads | jobsched | hand-written, one at a time "
        "| jobsched ÷ hand-written | the calls alone, one thread | the calls alone ÷ hand-written |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    rows = [key for key, by in rates.items() if "jobsched" in by or "sqlite" in by]
    for synchronous, processes, threads in sorted(rows, key=lambda key: (key[0] != "normal", key[1:])):
        by = rates[(synchronous, processes, threads)]
        ours, base = by.get("jobsched"), by.get("sqlite")
        alone = rates.get((synchronous, processes, 1), {}).get("batches")
        ratio = f"{ours / base:.1f}×" if ours and base else "–"
        alone_ratio = f"{alone / base:.1f}×" if alone and base else "–"
        lines.append(
            f"| {synchronous.upper()} | {processes} × {threads} | {ours or 0:,} jobs/s | "
            f"{base or 0:,} jobs/s | {ratio} | "
            f"{f'{alone:,} jobs/s' if alone else '–'} | {alone_ratio} |"
        )
    return lines + [""]


def pg_drain_table(path):
    """PostgreSQL drain throughput: PgScheduler against hand-written libpq, same server."""
    rates = defaultdict(dict)
    pattern = re.compile(r"^([\w-]+) processes=(\d+) jobs=(\d+) jobs_per_second=(\d+)")
    for line in path.read_text().split("\n"):
        found = pattern.search(line)
        if found:
            implementation, processes, _, rate = found.groups()
            rates[int(processes)].setdefault(implementation, []).append(int(rate))
    lines = [
        "## Drain throughput on PostgreSQL",
        "",
        "Processes, each with its own connection (a Unix socket), empty a schema of due jobs "
        "(`bench_pg_drain`) on a throwaway PostgreSQL 15 cluster with the server's durable "
        "defaults (fsync and synchronous_commit on). One at a time: `claim_next_job` and "
        "`complete`, each its own transaction; batches: `claim_jobs(32)` and `complete_all`. "
        "Hand-written libpq does the same work with the statements anyone would write for "
        "the table (`FOR UPDATE SKIP LOCKED`, the token checked). Each figure is the median "
        "of the runs made (three in a full run).",
        "",
        "| processes | jobsched, one at a time | libpq, one at a time | ratio "
        "| jobsched, batches of 32 | libpq, batches of 32 | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def median(values):
        ordered = sorted(values)
        return ordered[len(ordered) // 2] if ordered else None

    for processes in sorted(rates):
        by = {name: median(values) for name, values in rates[processes].items()}

        def cell(name):
            return f"{by[name]:,} jobs/s" if by.get(name) else "–"

        def ratio(ours, base):
            return f"{by[ours] / by[base]:.2f}×" if by.get(ours) and by.get(base) else "–"

        lines.append(
            f"| {processes} | {cell('jobsched')} | {cell('libpq')} | {ratio('jobsched', 'libpq')} "
            f"| {cell('batches')} | {cell('libpq-batches')} | {ratio('batches', 'libpq-batches')} |"
        )
    return lines + [""]


def states_table(path):
    """Each call in each state of the table, against the same call on a clean table."""
    times = defaultdict(dict)  # (state, call) -> {jobs: µs}
    order = []
    pattern = re.compile(r'state "([^"]+)" (\w+) (\d+) ([\d.]+)')
    for line in path.read_text().split("\n"):
        found = pattern.search(line)
        if found:
            state, call, jobs, micros = found.groups()
            if (state, call) not in times:
                order.append((state, call))
            times[(state, call)][int(jobs)] = float(micros)
    lines = [
        "## Every call in every state of a busy table",
        "",
        "`bench_states`: a file of N jobs in one state (written through the C API with the "
        "states the library's own writes store), the median time of each call, against the "
        "same call on a clean table of N free, due jobs. The target is within 2× of the clean "
        "table at 1,000,000 jobs (⚠ marks a miss). Claims are followed by their completion.",
        "",
        "| state | call | 1,000 jobs | largest | clean, largest | × clean |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for state, call in order:
        by = times[(state, call)]
        largest = max(by)
        clean = times.get(("clean", call), {}).get(largest)
        ratio = by[largest] / clean if clean else None
        mark = " ⚠" if ratio is not None and ratio > 2 and state != "clean" else ""
        lines.append(
            f"| {state} | `{call}` | {duration(by.get(min(by), 0))} | "
            f"{duration(by[largest])} ({largest:,}) | {duration(clean) if clean else '–'} | "
            f"{f'{ratio:.2f}×' if ratio is not None else '–'}{mark} |"
        )
    return lines + [""]


def load_instructions(path):
    """{work: {jobs: instructions per call}} for jobsched, from bench_instructions."""
    counted = defaultdict(dict)
    if path.exists():
        for line in path.read_text().split("\n"):
            if line.strip():
                work, implementation, jobs, count = line.split()
                if implementation == "jobsched":
                    counted[work][int(jobs)] = int(count)
    return counted


def instruction_table(path):
    """Instructions per call from callgrind: stable where wall-clock times are noisy."""
    counts = defaultdict(dict)
    for line in path.read_text().split("\n"):
        if line.strip():
            work, implementation, jobs, count = line.split()
            counts[(work, int(jobs))][implementation] = int(count)
    labels = dict(WORK)
    labels["add_batch"] = "add 1,000 jobs in one transaction"
    lines = [
        "## Instructions per call",
        "",
        "Counted by callgrind (`bench_instructions`, user-space instructions only: the time "
        "spent in the kernel writing and syncing the file is not in them), so they do not "
        "move with machine noise.",
        "",
        "| work | jobs stored | jobsched | hand-written C API | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    order = [name for name, _ in WORK]
    for (work, jobs), by in sorted(counts.items(), key=lambda item: (order.index(item[0][0]), item[0][1])):
        ours, base = by.get("jobsched"), by.get("sqlite")
        ratio = f"{ours / base:.2f}×" if ours and base else "–"
        lines.append(f"| {labels.get(work, work)} | {jobs:,} | {ours or 0:,} | {base or 0:,} | {ratio} |")
    return lines + [""]


def load_schedules(path):
    """{work: {(schedules, jobs): microseconds}} from bench_schedules' JSON, and its errors."""
    times = defaultdict(dict)
    errors = []
    if not path.exists():
        return times, errors
    for run in json.loads(path.read_text())["benchmarks"]:
        work, schedules, jobs = run["run_name"].split("/")[:3]
        if run.get("error_occurred"):
            errors.append(f"{run['run_name']}: {run.get('error_message', '?')}")
            continue
        if run.get("run_type") == "aggregate" and run.get("aggregate_name") != "median":
            continue
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[run["time_unit"]]
        times[work][(int(schedules), int(jobs))] = run["real_time"] * scale
    return times, errors


def load_schedule_instructions(path):
    """{work: {(schedules, jobs): instructions per call}} from bench_instructions schedules."""
    counted = defaultdict(dict)
    if path.exists():
        for line in path.read_text().split("\n"):
            if line.strip():
                work, schedules, jobs, count = line.split()
                counted[work][(int(schedules), int(jobs))] = int(count)
    return counted


def schedules_tables(times, counted):
    """A firing against the same claim with no firing due; the calls that do not fire."""
    def ratio(a, b):
        return f"{a / b:.2f}×" if a is not None and b else "–"

    def count(value):
        return f"{value:,}" if value is not None else "–"

    def micros(value):
        return duration(value) if value is not None else "–"

    lines = [
        "## Recurring schedules: the cost of a firing",
        "",
        "`bench_schedules` and `bench_instructions schedules`: a file of N ordinary due jobs "
        "and S schedules (schedule i fires every S s from `now` + i s, so exactly one fires "
        "each second; their jobs at priority 1). *A firing*: the clock moves on 1 s and "
        "`claim_next_job` (which makes the schedule's next firing in the same transaction: "
        "reads the due schedule, parses its rule, inserts the next job and its payload, "
        "updates the schedule's row) claims the due firing, then `complete`. *No firing "
        "due*: the same claim and complete of an ordinary due job on the same file, between "
        "two firings. *Firing's own* is the difference. `synchronous=NORMAL`; instructions "
        "are callgrind's, user space only.",
        "",
        "| schedules | jobs stored | a firing | no firing due | firing's own | × | "
        "instructions: a firing | no firing due | firing's own | × |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fire_t, claim_t = times.get("firing", {}), times.get("claim", {})
    fire_i, claim_i = counted.get("firing", {}), counted.get("claim", {})
    keys = sorted(set(fire_t) | set(fire_i), key=lambda key: (key[1], key[0]))
    own = {}
    for key in keys:
        ft, ct, fi, ci = fire_t.get(key), claim_t.get(key), fire_i.get(key), claim_i.get(key)
        own_t = ft - ct if ft is not None and ct is not None else None
        own_i = fi - ci if fi is not None and ci is not None else None
        if own_i is not None:
            own[key] = own_i
        lines.append(
            f"| {key[0]:,} | {key[1]:,} | {micros(ft)} | {micros(ct)} | {micros(own_t)} | "
            f"{ratio(ft, ct)} | {count(fi)} | {count(ci)} | {count(own_i)} | {ratio(fi, ci)} |"
        )
    lines.append("")
    if len(own) >= 2:
        # Growth along each axis, at the other's largest: the target (issue 11) is none.
        counts = sorted({schedules for schedules, _ in own})
        sizes = sorted({jobs for _, jobs in own})
        facts = []
        few, many, most = counts[0], counts[-1], sizes[-1]
        if few != many and (few, most) in own and (many, most) in own:
            facts.append(
                f"{own[(many, most)] / own[(few, most)]:.2f}× from {few:,} to {many:,} "
                f"schedules (at {most:,} jobs)"
            )
        small, large = sizes[0], sizes[-1]
        if small != large and (many, small) in own and (many, large) in own:
            facts.append(
                f"{own[(many, large)] / own[(many, small)]:.2f}× from {small:,} to {large:,} "
                f"jobs (at {many:,} schedules)"
            )
        if facts:
            lines += [
                "A firing's own instructions (the target, issue 11: they do not grow with the "
                "schedules or jobs stored): " + "; ".join(facts) + ".",
                "",
            ]
    lines += [
        "### What schedules add to the calls that do not fire",
        "",
        "The same calls between two firings on a file of 10,000 schedules, none due, and on "
        "the same jobs without any schedule.",
        "",
        "| call | jobs stored | no schedules | 10,000 schedules | × | instructions: no schedules "
        "| 10,000 schedules | × |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = (
        ("claim", "claim and complete"),
        ("next_job", "`next_job`"),
        ("seconds_until", "`seconds_until_next_job`"),
    )
    sizes = sorted({jobs for by in list(times.values()) + list(counted.values()) for _, jobs in by})
    for work, label in labels:
        for jobs in sizes:
            t0, t1 = times.get(work, {}).get((0, jobs)), times.get(work, {}).get((10000, jobs))
            i0, i1 = counted.get(work, {}).get((0, jobs)), counted.get(work, {}).get((10000, jobs))
            if t0 is None and t1 is None and i0 is None and i1 is None:
                continue
            lines.append(
                f"| {label} | {jobs:,} | {micros(t0)} | {micros(t1)} | {ratio(t1, t0)} | "
                f"{count(i0)} | {count(i1)} | {ratio(i1, i0)} |"
            )
    return lines + [""]


def main():
    results, output, plot_data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    times, errors = load_ops(results / "ops.json")
    schedule_times, schedule_errors = load_schedules(results / "schedules.json")
    errors += schedule_errors
    table, misses = ratio_table(times)

    with plot_data.open("w") as data:
        data.write("# jobs jobsched_us sqlite_us original_us\n")
        next_job = times.get("next_job", {})
        for jobs in sorted(next_job.get("jobsched", {})):
            row = [next_job.get(k, {}).get(jobs, float("nan")) for k in ("jobsched", "sqlite", "original")]
            data.write(f"{jobs} {row[0]:.3f} {row[1]:.3f} {row[2]:.3f}\n")

    out = ["# Benchmarks", ""]
    out.append(
        "Written by `bench/run` (one command; do not edit by hand). Every figure below comes "
        "from one run on the machine described; jobsched and the hand-written C API code run "
        "the same work on copies of the same file, in the same binary, one after the other. "
        "Times are wall-clock per operation (Google Benchmark, `real_time`)."
    )
    out += ["", "## Machine", "", "```", (results / "machine.txt").read_text().rstrip(), "```", ""]
    out += [
        "## jobsched against hand-written SQLite",
        "",
        "The baseline (`bench/baseline.hpp`) is what a careful user would write with the C "
        "API to get the same answers, on the same jobs in the one-table schema its SQL fits "
        "(our version 4, whose partial indexes match its queries): prepared statements "
        "reused, one `UPDATE ... RETURNING` per claim. *original (v1)* replays the Python "
        "original's schema (its version-1 index on `(completed_at, expires_at)`) and its "
        "queries through the C API on the same jobs. Half the stored jobs are due, a quarter "
        "expire tomorrow, none has expired. ⚠ marks a ratio above the "
        f"{TARGET_RATIO}× target.",
        "",
        table,
        "",
        "![next-job latency against jobs stored](bench-next-job.png)",
        "",
    ]
    facts = []
    instructions = load_instructions(results / "instructions.txt")
    for work, label in (("next_job", "next job"), ("claim_complete", "claim and complete")):
        flat = flatness(times, work)
        if flat:
            line = f"- {label}: {flat[2]:.2f}× the time at {flat[1]:,} jobs as at {flat[0]:,}"
            counted = instructions.get(work, {})
            if flat[0] in counted and flat[1] in counted:
                line += (
                    f"; {counted[flat[1]] / counted[flat[0]]:.2f}× the instructions "
                    f"({counted[flat[0]]:,} and {counted[flat[1]]:,})"
                )
            facts.append(line + ".")
    count = times.get("count", {}).get("jobsched", {})
    if count:
        largest = max(count)
        facts.append(f"- counting {largest:,} pending jobs: {duration(count[largest])} (target 50 ms).")
    if misses:
        facts.append(
            "- above the 1.2× target: "
            + "; ".join(f"{label} at {jobs:,} jobs ({ratio:.2f}×)" for label, jobs, ratio in misses)
            + ". See *The targets* below."
        )
    else:
        facts.append("- every operation within 1.2× the hand-written code.")
    if errors:
        facts.append("- benchmarks that failed: " + "; ".join(errors))
    out += ["## Targets", ""] + facts + [""]

    if (results / "instructions.txt").exists():
        out += instruction_table(results / "instructions.txt")

    if (results / "states.txt").exists():
        out += states_table(results / "states.txt")

    schedule_counts = load_schedule_instructions(results / "schedule_instructions.txt")
    if schedule_times or schedule_counts:
        out += schedules_tables(schedule_times, schedule_counts)

    if (results / "drain.txt").exists():
        out += drain_table(results / "drain.txt")
    if (results / "pg_drain.txt").exists():
        out += pg_drain_table(results / "pg_drain.txt")

    for name, title in (
        ("group.txt", "Durable adds from many threads (group commit)"),
        ("counts.txt", "Kept counts: stats, and what they add to writes"),
        ("wake.txt", "Wake latency"),
        ("memory.txt", "Peak memory against jobs stored"),
    ):
        path = results / name
        if path.exists():
            out += [f"## {title}", "", "```", path.read_text().rstrip(), "```", ""]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        out += [analysis.read_text().rstrip(), ""]
    output.write_text("\n".join(out) + "\n")
    if errors:
        sys.exit("bench/report.py: benchmarks failed: " + "; ".join(errors))


if __name__ == "__main__":
    main()
