#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The web dashboard (`jobsched serve`), end to end.

Each group fills its own job file with dashboard_fixture, starts the server on a free port
(--listen 127.0.0.1:0 --port-file) and checks it:

  refusals  addresses and tokens: non-loopback without --allow-remote, --allow-remote without a
            token, bad --listen, a missing file; with a token every request needs it (401);
            writes need their own Origin (403); a foreign Host is refused; SIGTERM stops it
  api       the JSON API against what the fixture made, then each write through it, checked
            in the file with Python's sqlite3
  browser   headless Chromium: the page rendered on load shows the file's counts, a job's
            detail shows its payload in hex, a page elsewhere cannot write (403), pressing
            the page's own retry and cancel buttons changes the file, and a screenshot

Exit 0: passed; 77: skipped (no Chromium, for the browser group); anything else: failed.
"""

import argparse
import fcntl
import http.client
import http.server
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
STATES = ["scheduled", "available", "running", "completed", "failed", "cancelled", "expired"]

# What dashboard_fixture.cpp makes, by queue.
EXPECTED = {
    "": {"scheduled": 2, "available": 1, "running": 0, "completed": 3, "failed": 0,
         "cancelled": 0, "expired": 0},
    "emails": {"scheduled": 0, "available": 2, "running": 1, "completed": 0, "failed": 2,
               "cancelled": 1, "expired": 0},
    "reports": {"scheduled": 1, "available": 0, "running": 0, "completed": 0, "failed": 0,
                "cancelled": 0, "expired": 1},
}
TOTAL_JOBS = 14

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def equal(actual, expected, what):
    return check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


class Server:
    """`jobsched serve` on a free port, stopped (SIGTERM, then killed) at the end."""

    def __init__(self, args, work, db, *extra, listen="127.0.0.1:0"):
        self.port_file = os.path.join(work, "port")
        if os.path.exists(self.port_file):
            os.remove(self.port_file)
        self.log = open(os.path.join(work, "serve.log"), "ab")
        self.process = subprocess.Popen(
            [args.jobsched, "serve", "--db", db, "--listen", listen,
             "--port-file", self.port_file, *extra],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.port_file):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start; see " + self.log.name)
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.origin = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, headers=None, body=None):
        """(status, parsed JSON or text) of one request; POSTs send an empty body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            if method == "POST" and body is None:
                body = b""
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read().decode("utf-8", "replace")
            if response.getheader("Content-Type", "").startswith("application/json"):
                return response.status, json.loads(data)
            return response.status, data
        finally:
            connection.close()

    def get(self, path, headers=None):
        return self.request("GET", path, headers)

    def post(self, path, headers=None):
        """A POST as the page sends it: with its own Origin."""
        return self.request("POST", path, {"Origin": self.origin, **(headers or {})})

    def stop(self, sig=signal.SIGTERM):
        """Stops it with `sig`; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                check(False, f"the server did not stop within 10 s of signal {sig}")
        self.log.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def make_file(args, work):
    db = os.path.join(work, "jobs.db")
    output = subprocess.run([args.fixture, db], check=True, capture_output=True, text=True,
                            timeout=30).stdout
    return db, json.loads(output)


def row(db, job_id):
    connection = sqlite3.connect(db, timeout=10)
    connection.row_factory = sqlite3.Row
    try:
        return connection.execute("SELECT * FROM job WHERE id = ?", (job_id,)).fetchone()
    finally:
        connection.close()


def paused_queues(db):
    connection = sqlite3.connect(db, timeout=10)
    try:
        return sorted(r[0] for r in connection.execute("SELECT queue FROM queue_pause"))
    finally:
        connection.close()


def run_tool(args, *arguments):
    return subprocess.run([args.jobsched, *arguments], capture_output=True, text=True,
                          timeout=15)


# ---- refusals ---------------------------------------------------------------------------

def test_refusals(args, work):
    db, ids = make_file(args, work)

    refused = run_tool(args, "serve", "--db", db, "--listen", "0.0.0.0:0")
    equal(refused.returncode, 2, "a non-loopback address without --allow-remote: exit code")
    check("--allow-remote" in refused.stderr,
          "a non-loopback address without --allow-remote says so: " + refused.stderr)
    refused = run_tool(args, "serve", "--db", db, "--listen", "0.0.0.0:0", "--allow-remote")
    equal(refused.returncode, 2, "--allow-remote without a token: exit code")
    check("--token" in refused.stderr, "--allow-remote without a token says so: " + refused.stderr)
    refused = run_tool(args, "serve", "--db", db, "--listen", "0.0.0.0:0", "--allow-remote",
                       "--token", "")
    equal(refused.returncode, 2, "--allow-remote with an empty token: exit code")
    refused = run_tool(args, "serve", "--db", db, "--listen", "8080")
    equal(refused.returncode, 2, "a --listen without a host: exit code")
    refused = run_tool(args, "serve", "--db", os.path.join(work, "missing.db"),
                       "--listen", "127.0.0.1:0")
    equal(refused.returncode, 3, "a missing file: exit code")
    check(not os.path.exists(os.path.join(work, "missing.db")), "a missing file is not created")

    # Remote, with a token: every request carries it.
    token = "s3cret-token"
    with Server(args, work, db, "--allow-remote", "--token", token,
                listen="0.0.0.0:0") as server:
        equal(server.get("/api/stats")[0], 401, "no token: 401")
        equal(server.get("/")[0], 401, "no token, the page: 401")
        equal(server.get("/api/stats?token=wrong")[0], 401, "a wrong token: 401")
        equal(server.get("/api/stats", {"Authorization": "Bearer wrong"})[0], 401,
              "a wrong bearer token: 401")
        equal(server.get("/api/stats?token=" + token[:6])[0], 401, "a prefix of the token: 401")
        equal(server.get("/api/stats?token=" + token + "x")[0], 401, "the token and more: 401")
        equal(server.get("/api/stats", {"Authorization": "Bearer "})[0], 401, "an empty bearer: 401")
        equal(server.get("/api/stats?token=")[0], 401, "an empty token parameter: 401")
        equal(server.get("/api/stats?token=" + token)[0], 200, "the token as a parameter: 200")
        equal(server.get("/api/stats", {"Authorization": "Bearer " + token})[0], 200,
              "the token as a bearer: 200")
        status, page = server.get("/?token=" + token)
        equal(status, 200, "the page with its token")
        check("/dashboard.js?token=" + token in page, "the page loads its script with the token")
        equal(server.get("/dashboard.js?token=" + token)[0], 200, "the script with its token")
        equal(server.get("/dashboard.js")[0], 401, "the script without the token: 401")

        failed = ids["failed"][0]
        equal(server.post(f"/api/jobs/{failed}/retry")[0], 401, "a write without the token: 401")
        equal(row(db, failed)["failed_at"] is not None, True, "a refused write changes nothing")
        bearer = {"Authorization": "Bearer " + token}
        status, _ = server.request("POST", f"/api/jobs/{failed}/retry",
                                   {**bearer, "Origin": "http://evil.example"})
        equal(status, 403, "a write with the token from a foreign Origin: 403")
        equal(row(db, failed)["failed_at"] is not None, True, "a foreign write changes nothing")
        status, body = server.post(f"/api/jobs/{failed}/retry", bearer)
        equal(status, 200, f"a write with the token and its Origin: 200 ({body})")
        equal(row(db, failed)["failed_at"], None, "the write with the token retried the job")
        equal(server.stop(), 0, "SIGTERM stops the server with exit code 0")

    # A file the first Python scheduler wrote (schema 0): shown, never upgraded by a write.
    old = os.path.join(work, "old.db")
    connection = sqlite3.connect(old)
    connection.executescript(
        "CREATE TABLE job (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB,"
        " created_at REAL NOT NULL, starts_at REAL NOT NULL, expires_at REAL, completed_at REAL);"
        "INSERT INTO job (data, created_at, starts_at) VALUES ('old job', 1, 2);")
    connection.close()
    with Server(args, work, old) as server:
        status, stats = server.get("/api/stats")
        equal((status, stats["schema_version"], stats["needs_upgrade"]), (200, 0, True),
              "an old file is shown as it is")
        equal(stats["totals"]["available"], 1, "an old file's job")
        status, body = server.post("/api/jobs/1/cancel")
        equal(status, 409, f"a change to an old file is refused ({body})")
        check("jobsched migrate" in body.get("error", ""), "the refusal names jobsched migrate")
    connection = sqlite3.connect(old)
    tables = sorted(r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    connection.close()
    check("job_schema" not in tables, f"the old file was not upgraded: {tables}")

    # Loopback, without a token: a foreign Host (DNS rebinding) is refused.
    with Server(args, work, db) as server:
        taken = run_tool(args, "serve", "--db", db, "--listen", f"127.0.0.1:{server.port}")
        equal(taken.returncode, 5, "a port in use: exit code")
        check("cannot listen" in taken.stderr, "a port in use says so: " + taken.stderr)
        equal(server.get("/api/stats")[0], 200, "loopback without a token: 200")
        equal(server.get("/api/stats", {"Host": f"localhost:{server.port}"})[0], 200,
              "Host localhost: 200")
        equal(server.get("/api/stats", {"Host": f"evil.example:{server.port}"})[0], 403,
              "a foreign Host without a token: 403")
        equal(server.stop(signal.SIGINT), 0, "SIGINT stops the server with exit code 0")


# ---- api --------------------------------------------------------------------------------

def test_api(args, work):
    started = time.time()
    db, ids = make_file(args, work)
    with Server(args, work, db) as server:
        status, stats = server.get("/api/stats")
        equal(status, 200, "GET /api/stats")
        elapsed = time.time() - started
        equal({q["queue"]: {s: q["jobs"][s] for s in STATES} for q in stats["queues"]}, EXPECTED,
              "counts by queue and state")
        equal({s: stats["totals"][s] for s in STATES},
              {s: sum(q[s] for q in EXPECTED.values()) for s in STATES}, "totals by state")
        equal(stats["totals"]["total"], TOTAL_JOBS, "all jobs")
        equal(stats["schedules"], 1, "schedules")
        equal(stats["schema_version"], 7, "schema version")
        equal(stats["paused_queues"], ["reports"], "paused queues")
        late = {q["queue"]: q["oldest_due"] for q in stats["queues"]}
        check(late[""] is not None and 30 <= late[""] <= 30 + elapsed + 1,
              f"the default queue's oldest due job is about 30 s late: {late['']}")
        check(late["emails"] is not None and 120 <= late["emails"] <= 120 + elapsed + 1,
              f"emails' oldest due job is about 120 s late: {late['emails']}")
        equal(late["reports"], None, "reports has no due job")
        equal(stats["oldest_due"], late["emails"], "the oldest due of all is emails'")

        # The listing: filters, and keyset pages that hold each job once.
        def listing(query):
            status, page = server.get("/api/jobs?" + query)
            equal(status, 200, "GET /api/jobs?" + query)
            return page

        seen, after = [], None
        for _ in range(10):
            page = listing("limit=4" + ("" if after is None else f"&after={after}"))
            seen += [job["id"] for job in page["jobs"]]
            after = page["next_after"]
            if after is None:
                break
        equal(seen, list(range(1, TOTAL_JOBS + 1)), "pages of 4 list every job once, by id")
        equal([j["id"] for j in listing("state=failed")["jobs"]], ids["failed"], "failed jobs")
        equal(len(listing("queue=emails")["jobs"]), 6, "the emails queue's jobs")
        equal(len(listing("queue=")["jobs"]), 6, "an empty queue= is the default queue")
        equal(len(listing("state=available&queue=emails")["jobs"]), 2, "both filters")
        newest = listing("state=completed&order=newest")["jobs"]
        equal([j["state"] for j in newest], ["completed"] * 3, "completed, newest first")
        equal(server.get("/api/jobs?state=nonsense")[0], 400, "an unknown state: 400")
        equal(server.get("/api/jobs?limit=0")[0], 400, "a zero limit: 400")
        equal(server.get("/api/jobs?after=x")[0], 400, "a bad after: 400")

        # A job's detail: payloads as text, hex, NULL; results; errors.
        status, binary = server.get(f"/api/jobs/{ids['binary']}")
        equal(status, 200, "a job's detail")
        equal(binary["data"].get("hex"), "00 01 02 ff fe 20 62 69 6e 61 72", "a binary payload in hex")
        check("text" not in binary["data"], "a binary payload has no text")
        equal(binary["data"]["size"], 11, "a binary payload's size")
        _, done = server.get(f"/api/jobs/{ids['completed_with_result']}")
        equal(done["result"].get("text"), '{"width": 640, "height": 480}', "a result as text")
        equal(done["state"], "completed", "a completed job's state")
        _, failed = server.get(f"/api/jobs/{ids['failed'][0]}")
        equal(failed["last_error"], "SMTP 550: mailbox unavailable", "a failed job's last error")
        equal((failed["attempts"], failed["max_attempts"]), (1, 1), "its attempts")
        _, null = server.get(f"/api/jobs/{ids['binary'] + 1}")
        equal(null["data"], {"storage_class": "null"}, "a NULL payload")
        equal(server.get("/api/jobs/999")[0], 404, "a job that does not exist: 404")
        equal(server.get("/api/jobs/99999999999999999999")[0], 400, "an id out of range: 400")
        equal(server.post("/api/jobs/99999999999999999999/retry")[0], 400,
              "a write to an id out of range: 400")

        status, schedules = server.get("/api/schedules")
        equal(status, 200, "GET /api/schedules")
        equal([s["name"] for s in schedules["schedules"]], ["heartbeat"], "the schedules")
        next_fire = schedules["schedules"][0]["next_fire"]
        check(abs(next_fire - (started + 1800)) < 60, f"its next firing is in 30 min: {next_fire}")

        # Writes: POST only, from the page's own origin, each checked in the file.
        failed_id = ids["failed"][0]
        equal(server.get(f"/api/jobs/{failed_id}/retry")[0], 405, "a GET write: 405")
        equal(server.request("POST", f"/api/jobs/{failed_id}/retry")[0], 403,
              "a POST with neither Origin nor Referer: 403")
        equal(server.request("POST", f"/api/jobs/{failed_id}/retry",
                             {"Origin": "http://evil.example"})[0], 403, "a foreign Origin: 403")
        equal(server.request("POST", f"/api/jobs/{failed_id}/retry",
                             {"Origin": "null"})[0], 403, "Origin null: 403")
        equal(server.request("POST", f"/api/jobs/{failed_id}/retry",
                             {"Referer": "http://evil.example/"})[0], 403, "a foreign Referer: 403")
        equal(server.request("POST", f"/api/jobs/{failed_id}/retry",
                             {"Origin": f"http://127.0.0.1:{server.port}.evil.example"})[0], 403,
              "an Origin that only starts like ours: 403")
        check(row(db, failed_id)["failed_at"] is not None, "refused writes change nothing")

        status, body = server.post(f"/api/jobs/{failed_id}/retry")
        equal(status, 200, f"retry a failed job ({body})")
        equal(body["job"]["state"], "available", "a retried job is available")
        retried = row(db, failed_id)
        equal((retried["failed_at"], retried["attempts"]), (None, 0), "the file: retried")
        equal(server.post(f"/api/jobs/{ids['completed_with_result']}/retry")[0], 409,
              "retry a completed job: 409")

        other = ids["failed"][1]
        status, body = server.request("POST", f"/api/jobs/{other}/retry",
                                      {"Referer": server.origin + "/"})
        equal(status, 200, f"a write with our Referer and no Origin ({body})")
        equal(row(db, other)["failed_at"], None, "the file: retried through the Referer")

        available = ids["available"]
        status, body = server.post(f"/api/jobs/{available}/cancel")
        equal(status, 200, f"cancel an available job ({body})")
        cancelled = row(db, available)
        check(cancelled["cancelled_at"] is not None, "the file: cancelled")
        equal(cancelled["last_error"], "cancelled from the dashboard", "the file: the reason")
        equal(server.post(f"/api/jobs/{available}/cancel")[0], 409, "cancel it again: 409")

        status, _ = server.post(f"/api/jobs/{ids['binary']}/delete")
        equal(status, 200, "delete a job")
        equal(row(db, ids["binary"]), None, "the file: deleted")
        equal(server.post(f"/api/jobs/{ids['binary']}/delete")[0], 404, "delete it again: 404")

        equal(server.post("/api/queues/emails/pause")[0], 200, "pause a queue")
        equal(paused_queues(db), ["emails", "reports"], "the file: emails paused")
        equal(server.post("/api/queues/reports/resume")[0], 200, "resume a queue")
        equal(paused_queues(db), ["emails"], "the file: reports resumed")
        _, stats = server.get("/api/stats")
        equal({q["queue"]: q["paused"] for q in stats["queues"]},
              {"": False, "emails": True, "reports": False}, "the stats show the pauses")
        equal(server.post("/api/queues//pause")[0], 200, "pause the default queue")
        equal(server.post("/api/queues/a%20b%2Fc/pause")[0], 200, "pause a queue named a b/c")
        equal(paused_queues(db), ["", "a b/c", "emails"], "the file: both paused")
        _, stats = server.get("/api/stats")
        equal([q["queue"] for q in stats["queues"] if q["paused"]], ["", "emails", "a b/c"],
              "a paused queue without jobs is listed, so it can be resumed")
        equal(server.post("/api/queues//resume")[0], 200, "resume the default queue")
        equal(paused_queues(db), ["a b/c", "emails"], "the file: the default queue resumed")
        equal(server.stop(signal.SIGINT), 0, "SIGINT stops the server with exit code 0")


# ---- browser ----------------------------------------------------------------------------

def chromium_command(args, profile):
    return [args.chromium_path, "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
            "--user-data-dir=" + profile]


def dump_dom(args, profile, url):
    return subprocess.run(chromium_command(args, profile) +
                          ["--virtual-time-budget=5000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=60).stdout


def attribute_counts(dom, pattern):
    return {m.group(1): int(m.group(2)) for m in re.finditer(pattern, dom)}


class AttackerSite:
    """One page served from another origin (localhost, another port), in a thread."""

    def __init__(self, page):
        body = page.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class DevTools:
    """Chromium driven over --remote-debugging-pipe (JSON messages ending in NUL, on fds 3/4)."""

    def __init__(self, args, profile):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()
        # The child must see them as fds 3 and 4 (moved up first, so neither overwrites the
        # other); subprocess closes other fds after preexec_fn, so 3 and 4 are kept too.
        def arrange():
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)
        self.process = subprocess.Popen(
            chromium_command(args, profile) + ["--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4, to_browser_read, from_browser_write), preexec_fn=arrange,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def call(self, method, timeout=20, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer to {method} within {timeout} s")
            ready, _, _ = select.select([self.from_browser], [], [], 0.5)
            if ready:
                chunk = os.read(self.from_browser, 65536)
                if not chunk:
                    raise RuntimeError("Chromium closed its debugging pipe")
                self.buffer += chunk

    def open(self, url):
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.1)
        return False

    def close(self):
        try:
            self.session = None
            self.call("Browser.close", timeout=5)
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)


def test_browser(args, work):
    if not args.chromium_path:
        print("SKIP: no Chromium found (install Debian's chromium to run the browser test)")
        return SKIP
    db, ids = make_file(args, work)
    profile = tempfile.mkdtemp(prefix="profile-", dir=work)
    with Server(args, work, db) as server:
        _, stats = server.get("/api/stats")
        url = server.origin + "/"

        # What the page renders on load: the counts of the file.
        dom = dump_dom(args, profile, url)
        check('id="totals"' in dom, "the page loaded")
        totals = attribute_counts(dom, r'id="total-([a-z]+)" data-count="(\d+)"')
        equal(totals, {s: stats["totals"][s] for s in STATES}, "the counts the page shows")
        equal(totals, {s: sum(q[s] for q in EXPECTED.values()) for s in STATES},
              "the counts the page shows, against the fixture")
        for queue, counts in EXPECTED.items():
            match = re.search(r'<tr data-queue="' + re.escape(queue) + r'">(.*?)</tr>', dom)
            if check(match, f"the page has a row for queue {queue!r}"):
                cells = attribute_counts(match.group(1), r'data-state="([a-z]+)">(\d+)<')
                equal(cells, counts, f"the page's counts for queue {queue!r}")
        check(re.search(r'<tr data-queue="reports">.*?badge paused', dom),
              "the page shows reports as paused")
        rows = re.findall(r'<tr class="job[^"]*" data-id="(\d+)" data-state="([a-z]+)"', dom)
        equal(len(rows), TOTAL_JOBS, "the page lists every job (one page of 20)")
        equal(dict((int(i), s) for i, s in rows)[ids["failed"][0]], "failed",
              "the page shows a failed job as failed")
        check('data-schedule="heartbeat"' in dom, "the page shows the schedule")
        check(">&lt;img src=x onerror=alert(1)&gt; mailbox full</td>" in dom and "<img" not in dom,
              "markup in a job's last error is shown as text, never made an element")
        late = re.search(r'id="oldest-due" data-seconds="([0-9.]+)"', dom)
        check(late and float(late.group(1)) >= 120, "the page shows the oldest due lateness")

        # A job's detail, linked as #job=ID: the binary payload in hex.
        dom = dump_dom(args, profile, f"{url}#job={ids['binary']}")
        check("00 01 02 ff fe 20 62 69 6e 61 72" in dom, "the detail shows a binary payload in hex")
        check('id="detail-state"' in dom, "the detail panel opened")

        # A page of another origin (http://localhost:OTHER) posts a form to the dashboard
        # (cross-site request forgery): the browser sends that page's Origin, and gets 403.
        target = ids["failed"][1]
        attack = ("<!DOCTYPE html><form method=post action='" + server.origin +
                  f"/api/jobs/{target}/retry'></form><script>document.forms[0].submit()</script>")
        with AttackerSite(attack) as site:
            dom = dump_dom(args, profile, site.url)
        check("a write must come from the dashboard" in dom,
              "the forged form's POST was refused for its Origin: " + dom[-300:])
        check(row(db, target)["failed_at"] is not None,
              "a POST from another page in the browser does not retry the job")

        # The page's own buttons: retry a failed job and cancel a scheduled one.
        failed = ids["failed"][0]
        scheduled = ids["scheduled"]
        equal(row(db, scheduled)["cancelled_at"], None, "the job to cancel is not cancelled yet")
        browser = DevTools(args, profile)
        try:
            browser.open(url)
            button = "document.querySelector('#jobs button[data-action=\"{}\"][data-id=\"{}\"]')"
            check(browser.wait_for(button.format("retry", failed) + " !== null"),
                  "the page shows the retry button")
            browser.evaluate(button.format("retry", failed) + ".click()")
            check(browser.wait_for(f"document.querySelector('#jobs tr[data-id=\"{failed}\"]')"
                                   ".dataset.state === 'available'"),
                  "after retry the page shows the job as available")
            browser.evaluate("window.confirm = () => true")
            browser.evaluate(button.format("cancel", scheduled) + ".click()")
            check(browser.wait_for(f"document.querySelector('#jobs tr[data-id=\"{scheduled}\"]')"
                                   ".dataset.state === 'cancelled'"),
                  "after cancel the page shows the job as cancelled")
            status = browser.evaluate("document.getElementById('status').textContent")
            check(status and not status.startswith("refused"), f"the page's status: {status}")

            # Pages of 5 and the filters, as a user clicks them.
            browser.open(url + "?limit=5")
            ids_shown = ("Array.from(document.querySelectorAll('#jobs tr.job'))"
                         ".map(r => Number(r.dataset.id)).join(',')")
            check(browser.wait_for(ids_shown + " === '1,2,3,4,5'"), "the first page of 5")
            browser.evaluate("document.getElementById('page-next').click()")
            check(browser.wait_for(ids_shown + " === '6,7,8,9,10'"),
                  "next: the second page: " + str(browser.evaluate(ids_shown)))
            browser.evaluate("document.getElementById('page-next').click()")
            check(browser.wait_for(ids_shown + " === '11,12,13,14'"), "next: the last page")
            check(browser.evaluate("document.getElementById('page-next').disabled"),
                  "no next page after the last")
            browser.evaluate("document.getElementById('page-prev').click()")
            check(browser.wait_for(ids_shown + " === '6,7,8,9,10'"), "previous: the second page")
            choose = ("(() => {{ const s = document.getElementById('{}'); s.value = '{}';"
                      " s.dispatchEvent(new Event('change')); }})()")
            browser.evaluate(choose.format("filter-queue", "emails"))
            check(browser.wait_for(ids_shown + " === '6,7,8,9,10'"),
                  "queue emails, from the first page: " + str(browser.evaluate(ids_shown)))
            browser.evaluate(choose.format("filter-state", "available"))
            # Available jobs in start order: the retried one is due now, after the others.
            check(browser.wait_for(ids_shown + f" === '{ids['binary']},{ids['binary'] + 1},{failed}'"),
                  "emails and available: " + str(browser.evaluate(ids_shown)))
        finally:
            browser.close()
        equal(row(db, failed)["failed_at"], None, "the retry button retried the job in the file")
        check(row(db, scheduled)["cancelled_at"] is not None,
              "the cancel button cancelled the job in the file")

        # The screenshot, of the file as it now is.
        shot = os.path.join(work, "dashboard.png")
        subprocess.run(chromium_command(args, profile) +
                       ["--virtual-time-budget=5000", "--window-size=1280,900",
                        "--screenshot=" + shot, url],
                       capture_output=True, timeout=60)
        check(os.path.exists(shot) and os.path.getsize(shot) > 10000,
              "a screenshot was saved: " + shot)
        print("screenshot: " + shot)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobsched", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--chromium", default="")
    parser.add_argument("--work", required=True)
    parser.add_argument("group", choices=["refusals", "api", "browser"])
    args = parser.parse_args()
    chromium = args.chromium if args.chromium and not args.chromium.endswith("-NOTFOUND") else ""
    args.chromium_path = shutil.which(chromium) if chromium else shutil.which("chromium")
    if os.path.isdir(args.work):
        shutil.rmtree(args.work)
    os.makedirs(args.work)
    result = {"refusals": test_refusals, "api": test_api, "browser": test_browser}[args.group](
        args, args.work)
    if result == SKIP:
        return SKIP
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
