#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the jobsched tool on real job files and checks its tables, its JSON and its exit codes.

cli_test.py --jobsched PATH --fixture PATH --work DIR --has-serve 0|1 GROUP
Each GROUP is one CTest test with a fresh directory of its own.
"""

import argparse
import datetime
import hashlib
import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

OK, NOT_FOUND, USAGE, BAD_FILE, BUSY, IO, CONFLICT, UNAVAILABLE = range(8)

# The schema of versions 0 and 1 as the Python programs ran it (tests/support/python_files.hpp).
V0_SCHEMA = """
CREATE TABLE job (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB,
 created_at REAL NOT NULL, starts_at REAL NOT NULL, expires_at REAL, completed_at REAL,
 CONSTRAINT job_must_be_created_before_start CHECK (created_at <= starts_at),
 CONSTRAINT job_must_start_before_expiration
 CHECK (expires_at IS NULL OR starts_at <= expires_at));
CREATE INDEX ix_job_starts_at_expires_at ON job (starts_at, expires_at);
"""
V1_SCHEMA = """
DROP INDEX ix_job_starts_at_expires_at;
CREATE INDEX ix_job_completed_at_expires_at ON job (completed_at, expires_at);
CREATE TABLE job_schema (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
INSERT INTO job_schema (key, value) VALUES ('version', 0);
UPDATE job_schema SET value = 1 WHERE key = 'version';
"""

STATES = ["scheduled", "available", "running", "completed", "failed", "cancelled", "expired"]


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class Tool:
    def __init__(self, jobsched, fixture, work):
        self.jobsched = jobsched
        self.fixture = fixture
        self.work = work
        self.db = os.path.join(work, "job.db")

    def path(self, name):
        return os.path.join(self.work, name)

    def run(self, *args, expect=OK, db=None, stdin=None, env=None):
        """Runs `jobsched --db DB ARGS`, checks the exit code, returns (stdout, stderr)."""
        command = [self.jobsched]
        if db is not False:
            command += ["--db", db or self.db]
        command += list(args)
        result = subprocess.run(command, input=stdin, capture_output=True, cwd=self.work,
                                timeout=30, env=env)
        out = result.stdout.decode("utf-8", "replace")
        err = result.stderr.decode("utf-8", "replace")
        if result.returncode != expect:
            raise Failure(f"{' '.join(command[1:])}: exit {result.returncode}, expected {expect}\n"
                          f"stdout:\n{out}\nstderr:\n{err}")
        if expect != OK and expect != NOT_FOUND:
            check(err.startswith("jobsched: ") or "Run with --help" in err,
                  f"{args}: no message on stderr: {err!r}")
            check(out == "", f"{args}: an error printed to stdout: {out!r}")
        return out, err

    def json(self, *args, expect=OK, db=None, stdin=None):
        out, _ = self.run("--json", *args, expect=expect, db=db, stdin=stdin)
        return json.loads(out)

    def fill(self, db=None):
        """The fixture's file: one job in each state. Returns {state: id}."""
        result = subprocess.run([self.fixture, db or self.db], capture_output=True, check=True,
                                timeout=30)
        return {line.split()[0]: int(line.split()[1])
                for line in result.stdout.decode().splitlines()}


def table(out):
    """The rows of an aligned table as lists of cells (split on two or more spaces)."""
    lines = out.rstrip("\n").split("\n")
    return [re.split(r" {2,}", line.strip()) for line in lines]


def fingerprint(path):
    """The bytes and modification time of a file, and of its -wal when it has content."""
    parts = []
    for name in (path, path + "-wal"):
        if os.path.exists(name) and os.path.getsize(name) > 0:
            with open(name, "rb") as f:
                parts.append((name, hashlib.sha256(f.read()).hexdigest(),
                              os.stat(name).st_mtime_ns))
    return parts


def write_v1_file(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V0_SCHEMA)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO job (data, created_at, starts_at) VALUES ('python', 1690000000, 1690000000)")
    db.execute("INSERT INTO job (data, created_at, starts_at, completed_at)"
               " VALUES (x'00ff10', 1690000000, 1690000060, 1690000100)")
    db.execute("INSERT INTO job (data, created_at, starts_at) VALUES (42, 1690000000, 4102444800)")
    db.commit()
    db.close()


# ---- Groups -------------------------------------------------------------------------------

def test_errors(tool):
    # A missing file: an error for a read, and never created.
    for command in (["info"], ["list"], ["show", "1"], ["next"], ["count"], ["stats"],
                    ["schedules"], ["watch", "--once"], ["migrate"], ["complete", "1"],
                    ["cancel", "1"], ["retry", "1"], ["delete", "1"], ["cleanup"],
                    ["prune", "--completed-older", "7d"], ["pause", "q"], ["resume", "q"],
                    ["schedules", "pause", "s"]):
        _, err = tool.run(*command, expect=BAD_FILE)
        check("no such file" in err and "job.db" in err, f"{command}: {err}")
        check(not os.path.exists(tool.db), f"{command} created the file")

    # A non-job SQLite file: refused by reads and writes, and left alone.
    other = tool.path("other.db")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE customer (name TEXT)")
    db.commit()
    db.close()
    before = fingerprint(other)
    for command in (["info"], ["list"], ["add", "x"], ["schedules", "add", "s", "every", "5m"]):
        _, err = tool.run(*command, db=other, expect=BAD_FILE)
        check("not a job database" in err, err)
    check(fingerprint(other) == before, "a non-job file was changed")
    tables = [r[0] for r in sqlite3.connect(other).execute("SELECT name FROM sqlite_master")]
    check(tables == ["customer"], f"tables were added: {tables}")

    # Not SQLite at all.
    text = tool.path("notes.txt")
    with open(text, "w") as f:
        f.write("not a database\n" * 200)
    _, err = tool.run("info", db=text, expect=BAD_FILE)
    check("notes.txt" in err and "not a database" in err, err)

    # A newer schema version.
    tool.run("add", "x")
    db = sqlite3.connect(tool.db)
    db.execute("UPDATE job_schema SET value = 99")
    db.commit()
    db.close()
    before = fingerprint(tool.db)
    for command in (["info"], ["add", "y"], ["migrate"], ["complete", "1"]):
        _, err = tool.run(*command, expect=BAD_FILE)
        check("99" in err and "job.db" in err, err)
    check(fingerprint(tool.db) == before, "a newer file was changed")
    os.remove(tool.db)

    # Not a file at all: an I/O error.
    os.mkdir(tool.path("a-directory"))
    for command in (["info"], ["add", "x"]):
        _, err = tool.run(*command, db=tool.path("a-directory"), expect=IO)
        check("a-directory" in err, err)

    # Usage errors name the bad value, and change nothing.
    tool.run("add", "x")
    before = tool.json("list")
    for command, words in (
            (["add", "x", "--in", "5x"], ["'5x'", "unit"]),
            (["add", "x", "--in", "m5"], ["'m5'"]),
            (["add", "x", "--in", ""], ["duration", "empty"]),
            (["add", "x", "--expires-in", "10"], ["'10'", "no unit"]),
            (["add", "x", "--at", "2026-13-01"], ["'2026-13-01'", "no such date"]),
            (["add", "x", "--at", "tomorrow"], ["'tomorrow'", "ISO-8601"]),
            (["add", "x", "--at", "2026-12-01T25:00Z"], ["'2026-12-01T25:00Z'"]),
            (["add", "x", "--at", "2026-12-01T10:00:00Zjunk"], ["junk"]),
            (["add", "x", "--in", "5m", "--at", "2030-01-01"], ["--in or --at"]),
            (["add", "x", "--in", "1h", "--expires-in", "1m"], ["expir"]),
            (["add"], ["payload"]),
            (["add", "x", "--file", "f"], ["payload"]),
            (["add", "--file", "no-such-file"], ["no-such-file"]),
            (["add", "x", "--key", "k", "--on-conflict", "sometimes"], ["'sometimes'"]),
            (["list", "--state", "bogus"], ["'bogus'", "scheduled, available"]),
            (["list", "--limit", "0"], ["limit", "0"]),
            (["list", "--limit", "1001"], ["1001"]),
            (["list", "--after", "999"], ["999"]),
            (["prune"], ["--completed-older"]),
            (["prune", "--failed-older", "1y"], ["'1y'"]),
            (["schedules", "add", "s", "cron", "61 * * * *"], ["61", "minute"]),
            (["schedules", "add", "s", "every", "soon"], ["'soon'"]),
            (["schedules", "add", "s", "weekly"], ["weekly"]),
            (["schedules", "add", "s", "every", "5m", "--misfire", "never"], ["'never'"]),
            (["watch", "--once", "--interval", "0s"], ["interval"]),
            (["show", "abc"], ["abc"]),
            (["--busy-timeout", "soon", "count"], ["'soon'"]),
            (["list", "--bogus"], ["--bogus"]),
            (["frobnicate"], ["frobnicate"]),
            ([], ["subcommand"])):
        _, err = tool.run(*command, expect=USAGE)
        for word in words:
            check(word in err, f"{command}: {word!r} not in {err!r}")
    check(tool.json("list") == before, "a usage error changed the file")
    check(len(before["jobs"]) == 1, "a refused add added a job")

    # Help is not an error; the epilog documents the exit codes.
    out, _ = tool.run("--help", db=False)
    for line in ("0  done", "1  not found", "2  usage", "3  bad file", "4  busy", "5  I/O",
                 "6  conflict", "7  unavailable"):
        check(line in out, f"--help lacks {line!r}")
    out, _ = tool.run("list", "--help")
    check("--state" in out and "--after" in out, out)


def test_busy(tool):
    tool.run("add", "x")
    holder = sqlite3.connect(tool.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE job SET priority = priority")
    started = time.time()
    _, err = tool.run("--busy-timeout", "300ms", "add", "y", expect=BUSY)
    check("locked" in err and time.time() - started < 5, err)
    tool.run("complete", "1", "--busy-timeout", "100ms", expect=BUSY)
    # Reads are not held up by a writer (WAL).
    check(tool.run("count")[0] == "1\n", "count while a writer holds the lock")
    holder.execute("ROLLBACK")
    holder.close()
    tool.run("add", "y")
    check(tool.run("count")[0] == "2\n", "add after the lock went")


def test_read_only(tool):
    ids = tool.fill()
    tool.run("schedules", "add", "beat", "every", "1h")
    time.sleep(0.05)
    before = fingerprint(tool.db)
    for command in (["info"], ["list"], ["list", "--state", "failed"], ["show", str(ids["failed"])],
                    ["next"], ["count"], ["stats"], ["stats", "--prometheus"], ["schedules"],
                    ["watch", "--once"]):
        tool.run(*command)
        if "--prometheus" not in command:
            tool.run("--json", *command)
    check(fingerprint(tool.db) == before, "a read command changed the file")

    # An old file is read as it is, and not upgraded.
    old = tool.path("v1.db")
    write_v1_file(old)
    before = fingerprint(old)
    info = tool.json("info", db=old)
    check(info["schema_version"] == 1 and info["needs_upgrade"] is True, info)
    check(info["jobs"]["total"] == 3 and info["jobs"]["completed"] == 1, info)
    out, _ = tool.run("info", db=old)
    check("needs upgrade" in out and "migrate" in out, out)
    for command in (["list"], ["show", "1"], ["next"], ["count"], ["stats"], ["schedules"],
                    ["watch", "--once"]):
        tool.run(*command, db=old)
    check(fingerprint(old) == before, "a read command changed a version-1 file")
    version = sqlite3.connect(old).execute("SELECT value FROM job_schema").fetchone()[0]
    check(version == 1, f"the file was upgraded to {version}")
    check(tool.json("info", db=old)["schema_version"] == 1, "info no longer reads version 1")

    # Version 0: a job table and no job_schema at all.
    oldest = tool.path("v0.db")
    db = sqlite3.connect(oldest)
    db.executescript(V0_SCHEMA)
    db.execute("INSERT INTO job (data, created_at, starts_at) VALUES ('zero', 1, 2)")
    db.commit()
    db.close()
    before = fingerprint(oldest)
    info = tool.json("info", db=oldest)
    check(info["schema_version"] == 0 and info["jobs"]["available"] == 1, info)
    check(tool.json("show", "1", db=oldest)["data"] == {"storage": "text", "text": "zero"}, "v0")
    check(fingerprint(oldest) == before, "a read command changed a version-0 file")


def test_migrate(tool):
    old = tool.path("v1.db")
    write_v1_file(old)
    out, _ = tool.run("migrate", db=old)
    check("from schema version 1 to 7" in out, out)
    info = tool.json("info", db=old)
    check(info["schema_version"] == 7 and not info["needs_upgrade"], info)
    check(info["jobs"]["total"] == 3, info)
    out, _ = tool.run("migrate", db=old)
    check("nothing to do" in out, out)
    again = tool.json("migrate", db=old)
    check(again == {"file": old, "from_version": 7, "to_version": 7, "upgraded": False}, again)

    older = tool.path("v1-json.db")
    write_v1_file(older)
    result = tool.json("migrate", db=older)
    check(result["from_version"] == 1 and result["upgraded"], result)

    # A write command upgrades an old file too, and says so on stderr.
    third = tool.path("v1-write.db")
    write_v1_file(third)
    _, err = tool.run("complete", "1", db=third)
    check("upgraded" in err and "version 1 to 7" in err, err)


def test_jobs(tool):
    ids = tool.fill()
    # list: every job by id, its state, as a table and as JSON.
    rows = table(tool.run("list")[0])
    check(rows[0] == ["ID", "STATE", "QUEUE", "PRI", "STARTS", "EXPIRES", "TRIES", "DATA"], rows[0])
    by_id = {int(row[0]): row for row in rows[1:]}
    for state, job_id in ids.items():
        check(by_id[job_id][1] == state, f"job {job_id}: {by_id[job_id]} is not {state}")
    check(by_id[ids["scheduled"]][7] == "hex:00ff", by_id[ids["scheduled"]])
    check(by_id[ids["failed"]][2] == "mail" and by_id[ids["available"]][2] == "(default)", rows)
    listing = tool.json("list")
    check([job["id"] for job in listing["jobs"]] == sorted(ids.values()), listing)
    check(listing["next_after"] is None, listing)
    for job in listing["jobs"]:
        check(job["state"] == next(s for s, i in ids.items() if i == job["id"]), job)

    # Filters and paging.
    for state, job_id in ids.items():
        jobs = tool.json("list", "--state", state)["jobs"]
        check([job["id"] for job in jobs] == [job_id], f"--state {state}: {jobs}")
    mail = tool.json("list", "--queue", "mail")["jobs"]
    check(sorted(job["id"] for job in mail) == sorted([ids["failed"], ids["running"]]), mail)
    default = tool.json("list", "--queue", "")["jobs"]
    check(len(default) == 5, default)
    seen = []
    after = []
    for _ in range(len(ids) + 1):
        page = tool.json("list", "--limit", "3", *after)
        check(len(page["jobs"]) <= 3, page)
        seen += [job["id"] for job in page["jobs"]]
        if page["next_after"] is None:
            break
        after = ["--after", str(page["next_after"])]
    check(seen == sorted(ids.values()), f"paging saw {seen}, and stopped: {page['next_after']}")
    _, err = tool.run("list", "--limit", "3")
    check("--after 3" in err, err)
    newest = tool.json("list", "--newest")["jobs"]
    check([job["id"] for job in newest] == sorted(ids.values(), reverse=True), newest)

    # show: every field; a missing id is exit 1.
    out, _ = tool.run("show", str(ids["failed"]))
    fields = dict(line.split(":", 1) for line in out.splitlines())
    check(fields["state"].strip() == "failed" and fields["last error"].strip() == "smtp down", out)
    check(fields["data"].strip() == "will fail" and fields["queue"].strip() == "mail", out)
    job = tool.json("show", str(ids["cancelled"]))
    check(job["state"] == "cancelled" and job["last_error"] == "not wanted", job)
    check(job["cancelled_at"].endswith("Z") and job["data"] == {"storage": "blob", "text": "cancel me"}, job)
    check(tool.json("show", str(ids["scheduled"]))["data"] == {"storage": "blob", "hex": "00ff"}, "hex")
    _, err = tool.run("show", "999", expect=NOT_FOUND)
    check("no job 999" in err, err)

    # next and count.
    nxt = tool.json("next")
    check(nxt["id"] == ids["available"] and nxt["delay_seconds"] == 0, nxt)
    rows = table(tool.run("next")[0])
    check(rows[1][0] == str(ids["available"]), rows)
    check(tool.run("count")[0] == "3\n", "count")
    check(tool.json("count") == {"pending": 3}, "count --json")

    empty = tool.path("empty.db")
    tool.run("add", "x", db=empty)
    tool.run("delete", "1", db=empty)
    _, err = tool.run("next", db=empty, expect=NOT_FOUND)
    check("no pending job" in err, err)

    # complete, cancel, retry, delete: each says what it did; exit 1 when it cannot.
    out, _ = tool.run("complete", str(ids["available"]))
    check(out == f"completed job {ids['available']}\n", out)
    check(tool.json("show", str(ids["available"]))["state"] == "completed", "not completed")
    nxt = tool.json("next")
    check(nxt["id"] == ids["scheduled"] and 3500 < nxt["delay_seconds"] <= 3600, nxt)
    tool.run("complete", "999", expect=NOT_FOUND)

    check(tool.json("cancel", str(ids["scheduled"]), "--reason", "by hand") ==
          {"id": ids["scheduled"], "cancelled": True}, "cancel --json")
    job = tool.json("show", str(ids["scheduled"]))
    check(job["state"] == "cancelled" and job["last_error"] == "by hand", job)
    _, err = tool.run("cancel", str(ids["completed"]), expect=NOT_FOUND)
    check("already completed" in err, err)
    _, err = tool.run("cancel", "999", expect=NOT_FOUND)
    check("does not exist" in err, err)

    tool.run("retry", str(ids["failed"]))
    job = tool.json("show", str(ids["failed"]))
    check(job["state"] == "available" and job["attempts"] == 0, job)
    _, err = tool.run("retry", str(ids["running"]), expect=NOT_FOUND)
    check("not failed" in err, err)
    tool.run("retry", "999", expect=NOT_FOUND)

    tool.run("delete", str(ids["cancelled"]))
    tool.run("show", str(ids["cancelled"]), expect=NOT_FOUND)
    _, err = tool.run("delete", str(ids["cancelled"]), expect=NOT_FOUND)
    check("does not exist" in err, err)

    # cleanup: the expired and completed jobs go.
    result = tool.json("cleanup")
    check(result == {"expired": 1, "completed": 2}, result)
    out, _ = tool.run("cleanup")
    check(out == "deleted 0 expired and 0 completed jobs\n", out)
    left = {job["id"] for job in tool.json("list")["jobs"]}
    check(left == {ids["failed"], ids["running"], ids["scheduled"]}, left)

    # Text that is not UTF-8 (written by another program) is replaced in JSON, not fatal.
    odd = tool.path("odd.db")
    odd_ids = tool.fill(odd)
    db = sqlite3.connect(odd)
    db.execute("UPDATE job SET last_error = CAST(x'6f6fff' AS TEXT) WHERE id = ?",
               (odd_ids["failed"],))
    db.commit()
    db.close()
    job = tool.json("show", str(odd_ids["failed"]), db=odd)
    check(job["last_error"] == "oo\ufffd", job)

    # prune: finished jobs older than each age.
    prune_db = tool.path("prune.db")
    prune_ids = tool.fill(prune_db)
    result = tool.json("prune", "--completed-older", "1h", db=prune_db)
    check(result["total"] == 0, result)
    time.sleep(0.2)
    result = tool.json("prune", "--completed-older", "100ms", "--cancelled-older", "100ms",
                       db=prune_db)
    check(result == {"completed": 1, "failed": 0, "cancelled": 1, "total": 2}, result)
    out, _ = tool.run("prune", "--failed-older", "100ms", db=prune_db)
    check(out == "pruned 0 completed, 1 failed and 0 cancelled jobs\n", out)
    left = {job["id"] for job in tool.json("list", db=prune_db)["jobs"]}
    check(left == {prune_ids[s] for s in ("running", "expired", "scheduled", "available")}, left)


def test_add(tool):
    out, _ = tool.run("add", "hello")
    check(out.startswith("added job 1 (starts "), out)
    check(os.path.exists(tool.db), "add did not create the file")
    job = tool.json("add", "--in", "2h30m", "--expires-in", "7d", "--queue", "mail",
                    "--priority", "5", "later")
    check(job["added"] and job["state"] == "scheduled" and job["queue"] == "mail", job)
    check(job["priority"] == 5 and job["data"] == {"storage": "blob", "text": "later"}, job)
    created = parse_iso(job["created_at"])
    check(abs(parse_iso(job["starts_at"]) - created - 9000) < 0.01, job)
    check(abs(parse_iso(job["expires_at"]) - created - 7 * 86400) < 0.01, job)

    for duration, seconds in (("90s", 90), ("1.5h", 5400), ("2w", 14 * 86400), ("250ms", 0.25),
                              ("1d2h3m4s", 93784), ("0s", 0)):
        job = tool.json("add", "--in", duration, "d")
        delay = parse_iso(job["starts_at"]) - parse_iso(job["created_at"])
        check(abs(delay - seconds) < 0.002, f"--in {duration}: {delay}")

    job = tool.json("add", "--at", "2030-01-02T03:04:05.5+01:00", "at")
    check(job["starts_at"] == "2030-01-02T02:04:05.500Z", job)
    job = tool.json("add", "--at", "2031-06-01", "day")
    check(job["starts_at"] == "2031-06-01T00:00:00Z", job)
    job = tool.json("add", "--at", "2031-06-01 12:30", "space")
    check(job["starts_at"] == "2031-06-01T12:30:00Z", job)
    job = tool.json("add", "--at", "2000-01-01T00:00:00Z", "past")
    check(job["state"] == "available", job)

    # Payloads from stdin and from a file, bytes kept exactly.
    job = tool.json("add", "-", stdin=b"from\nstdin\n")
    check(job["data"] == {"storage": "blob", "text": "from\nstdin\n"}, job)
    blob = bytes(range(256))
    with open(tool.path("payload.bin"), "wb") as f:
        f.write(blob)
    job = tool.json("add", "--file", "payload.bin")
    check(job["data"] == {"storage": "blob", "hex": blob.hex()}, job)
    stored = sqlite3.connect(tool.db).execute("SELECT data FROM job_payload WHERE job_id = ?",
                                              (job["id"],)).fetchone()[0]
    check(stored == blob, "the file's bytes were not stored exactly")
    rows = table(tool.run("list", "--queue", "")[0])
    check(any(row[-1].startswith("from\\nstdin\\n") for row in rows), rows)
    job = tool.json("add", "snow \u2603 man")
    check(job["data"]["text"] == "snow \u2603 man", job)

    # Unique keys.
    first = tool.json("add", "--key", "report", "a")
    again = tool.json("add", "--key", "report", "b")
    check(again["id"] == first["id"] and not again["added"], again)
    out, _ = tool.run("add", "--key", "report", "c")
    check(out == f"job {first['id']} already holds key 'report'\n", out)
    _, err = tool.run("add", "--key", "report", "--on-conflict", "fail", "d", expect=CONFLICT)
    check("report" in err, err)
    replaced = tool.json("add", "--key", "report", "--on-conflict", "replace", "e")
    check(replaced["id"] == first["id"] and replaced["data"]["text"] == "e", replaced)

    # $JOBSCHED_DB names the file; --db wins over it.
    env = dict(os.environ, JOBSCHED_DB=tool.path("env.db"))
    tool.run("add", "via env", db=False, env=env)
    check(os.path.exists(tool.path("env.db")), "JOBSCHED_DB was not used")
    out, _ = tool.run("count", db=False, env=env)
    check(out == "1\n", out)


def parse_iso(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_schedules(tool):
    out, _ = tool.run("schedules", "add", "beat", "every", "5m", "--queue", "q", "--data", "tick")
    check(out.startswith("schedule 'beat': every 300 from 0, next firing "), out)
    made = tool.json("schedules", "add", "nightly", "cron", "30 2 * * *", "--expires-after", "1h",
                     "--misfire", "once")
    check(made["misfire"] == "once", made)
    check(made["rule"] == "cron 30 2 * * * in UTC" and made["next_fire"].endswith("02:30:00Z"), made)
    tool.run("schedules", "add", "raw", "every 90 from 0")
    listing = tool.json("schedules")
    check([s["name"] for s in listing] == ["beat", "nightly", "raw"], listing)
    beat = listing[0]
    check(beat["misfire"] == "skip", beat)
    check(beat["queue"] == "q" and beat["data"] == {"storage": "blob", "text": "tick"}, beat)
    check(not beat["paused"] and beat["next_fire"] is not None, beat)
    rows = table(tool.run("schedules")[0])
    check(rows[0] == ["NAME", "RULE", "QUEUE", "PAUSED", "NEXT FIRE", "LAST FIRE"], rows)
    check(rows[1][:4] == ["beat", "every 300 from 0", "q", "no"], rows)
    # Each schedule's next firing is a job.
    firings = [job for job in tool.json("list")["jobs"] if job["firing"]]
    check(sorted(job["firing"]["schedule"] for job in firings) == ["beat", "nightly", "raw"], firings)

    tool.run("schedules", "pause", "beat")
    check(tool.json("schedules")[0]["paused"] is True, "not paused")
    check(tool.json("schedules", "resume", "beat") == {"schedule": "beat", "resumed": True}, "resume")
    check(tool.json("schedules")[0]["paused"] is False, "not resumed")
    out, _ = tool.run("schedules", "delete", "raw")
    check(out == "deleted schedule 'raw'\n", out)
    check([s["name"] for s in tool.json("schedules")] == ["beat", "nightly"], "not deleted")
    for change in ("pause", "resume", "delete"):
        _, err = tool.run("schedules", change, "raw", expect=NOT_FOUND)
        check("no schedule 'raw'" in err, err)


def test_queues(tool):
    ids = tool.fill()
    out, _ = tool.run("pause", "")
    check(out == "queue (default) paused\n", out)
    out, _ = tool.run("pause", "")
    check(out == "queue (default) was already paused\n", out)
    check(tool.json("info")["paused_queues"] == [""], "not paused")
    # next passes over a paused queue's jobs.
    tool.run("next", expect=NOT_FOUND)
    check(tool.json("pause", "mail") == {"queue": "mail", "paused": True, "changed": True}, "mail")
    out, _ = tool.run("info")
    check("paused queues:  (default), mail" in out, out)
    tool.run("resume", "")
    check(tool.json("next")["id"] == ids["available"], "next after resume")
    out, _ = tool.run("resume", "")
    check(out == "queue (default) was not paused\n", out)
    check(tool.json("resume", "mail")["changed"] is True, "resume mail")
    check(tool.json("info")["paused_queues"] == [], "still paused")


def test_stats(tool):
    ids = tool.fill()
    stats = tool.json("stats")
    check(stats["jobs"] == {"scheduled": 1, "available": 1, "running": 1, "completed": 1,
                            "failed": 1, "cancelled": 1, "expired": 1, "pending": 3, "total": 7},
          stats)
    queues = {q["queue"]: q for q in stats["queues"]}
    check(set(queues) == {"", "mail"} and queues["mail"]["jobs"]["running"] == 1, queues)
    check(stats["schema_version"] == 7 and stats["schedules"] == 0, stats)
    check(queues[""]["oldest_due_seconds"] >= 0, queues)
    rows = table(tool.run("stats")[0])
    check(rows[0] == ["QUEUE", "SCHEDULED", "AVAILABLE", "RUNNING", "COMPLETED", "FAILED",
                      "CANCELLED", "EXPIRED", "OLDEST DUE"], rows[0])
    check(rows[1][:8] == ["(default)", "1", "1", "0", "1", "0", "1", "1"], rows[1])
    check(rows[2][:8] == ["mail", "0", "0", "1", "0", "1", "0", "0"], rows[2])
    check(rows[3][:8] == ["total", "1", "1", "1", "1", "1", "1", "1"], rows[3])
    out, _ = tool.run("stats", "--prometheus")
    check('jobsched_jobs{queue="mail",state="failed"} 1\n' in out, out)
    check("# TYPE jobsched_jobs gauge" in out and "jobsched_schema_version 7\n" in out, out)

    info = tool.json("info")
    check(info["file"] == tool.db and info["size_bytes"] == os.path.getsize(tool.db), info)
    check(info["schema_version"] == 7 and info["latest_schema_version"] == 7, info)
    check(info["needs_upgrade"] is False and info["jobs"] == stats["jobs"], info)
    check({q["queue"] for q in info["queues"]} == {"", "mail"}, info)
    out, _ = tool.run("info")
    check("schema version: 7 (latest)" in out and "jobs:           7 (3 pending)" in out, out)
    check(f"size:           {os.path.getsize(tool.db)} bytes" in out, out)


def test_watch(tool):
    ids = tool.fill()
    out, _ = tool.run("watch", "--once")
    check("\x1b[" not in out, "--once cleared the screen")
    check("next jobs:" in out and "QUEUE" in out, out)
    rows = table(out.split("next jobs:\n")[1])
    check([int(row[0]) for row in rows[1:]] == [ids["available"], ids["scheduled"]], rows)
    view = tool.json("watch", "--once", "--jobs", "1")
    check([job["id"] for job in view["next_jobs"]] == [ids["available"]], view)
    check(view["stats"]["jobs"]["pending"] == 3, view)
    # Without --once it refreshes until stopped.
    process = subprocess.Popen([tool.jobsched, "--db", tool.db, "watch", "--interval", "100ms"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    check(out.decode().count("next jobs:") >= 3, f"watch refreshed {out.decode().count('next jobs:')} times")
    # On a terminal it clears the screen before each refresh.
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(tool.jobsched, [tool.jobsched, "--db", tool.db, "watch", "--interval", "100ms"])
    screen = b""
    deadline = time.time() + 10
    while screen.count(b"\x1b[H\x1b[2J") < 2 and time.time() < deadline:
        try:
            screen += os.read(fd, 65536)
        except OSError:
            break
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(fd)
    check(screen.count(b"\x1b[H\x1b[2J") >= 2 and b"next jobs:" in screen, screen[:300])


def test_serve(tool, has_serve):
    tool.run("add", "x")
    out, _ = tool.run("serve", "--help")
    for option in ("--listen", "--allow-remote", "--token", "--port-file"):
        check(option in out, f"serve --help lacks {option}")
    if not has_serve:
        _, err = tool.run("serve", expect=UNAVAILABLE)
        check("no dashboard" in err, err)
        return
    port_file = tool.path("port")
    process = subprocess.Popen([tool.jobsched, "--db", tool.db, "serve", "--listen",
                                "127.0.0.1:0", "--port-file", port_file],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            check(process.poll() is None, f"serve exited with {process.returncode}")
            check(time.time() < deadline, "serve wrote no port file")
            time.sleep(0.05)
        port = int(open(port_file).read().strip())
        check(port > 0, f"port {port}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)


def test_install(tool, cmake, build_dir, bindir):
    prefix = tool.path("prefix")
    subprocess.run([cmake, "--install", build_dir, "--prefix", prefix, "--component",
                    "jobsched_Tools"], check=True, capture_output=True, timeout=60)
    installed = os.path.join(prefix, bindir, "jobsched")
    check(os.access(installed, os.X_OK), f"no {installed}")
    tool.jobsched = installed
    tool.run("add", "installed")
    check(tool.json("count") == {"pending": 1}, "the installed tool does not work")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobsched", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--has-serve", type=int, default=0)
    parser.add_argument("--cmake")
    parser.add_argument("--build-dir")
    parser.add_argument("--bindir", default="bin")
    parser.add_argument("group")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    tool = Tool(args.jobsched, args.fixture, args.work)
    groups = {
        "errors": test_errors, "busy": test_busy, "read_only": test_read_only, "migrate": test_migrate,
        "jobs": test_jobs, "add": test_add, "schedules": test_schedules, "queues": test_queues,
        "stats": test_stats, "watch": test_watch,
        "serve": lambda t: test_serve(t, args.has_serve == 1),
        "install": lambda t: test_install(t, args.cmake, args.build_dir, args.bindir),
    }
    try:
        groups[args.group](tool)
    except Failure as failure:
        print(f"FAIL {args.group}: {failure}", file=sys.stderr)
        return 1
    print(f"ok {args.group}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
