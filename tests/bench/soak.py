#!/usr/bin/env python3
"""soak: a long run of `pollen run` under continuous change; reports what grows.

Starts the sandbox API (no rate limits) with POLLEN_SOAK_LOCATIONS locations
(default 4), each seeded with POLLEN_SOAK_CONTACTS contacts (default 40, one
task and one note each), a local HTTP receiver on 127.0.0.1 and a tiny exec
script, then runs the engine on one configuration:

  [engine]   min_interval 1s, retention_count POLLEN_SOAK_RETENTION (5000)
  locations  rate_limit 100 per 1s each (the most pollen allows)
  triggers   (all `location = *`, so one copy per location)
             s  contacts.search every 1s page_size 15   (several pages; incremental,
                reconcile every 30s)
             q  contacts.search every 1s page_size 100  (one page; reconcile = 0s:
                a full enumeration every cycle)
             l  contacts.list   every 1s page_size 15   (several pages)
             m  contacts.list   every 1s page_size 100
             tasks, notes: contacts.tasks / contacts.notes for_each = s, every 5s
  rules      tag:  s:created         -> contacts.tags.add (back to the sandbox)
             hook: tasks:created|updated -> http (the local receiver)
             run:  notes:created     -> exec (the script appends the event id)

While it runs, a thread mutates the sandbox every POLLEN_SOAK_MUTATE_EVERY
seconds (default 1; one location after the other): a contact created, two
updated and one deleted, two tasks created, one updated, one completed and
one deleted, two notes created, one updated and one deleted. Creates and
deletes balance, so the data set (and the snapshots) stay the same size while
events keep flowing; the event log grows until retention prunes it.

The soak lasts until POLLEN_SOAK_CYCLES (default 20000) poll cycles have
completed: the `cycle N:` / `baseline recorded` lines of the top-level
triggers in the engine's log (info level: one per complete enumeration);
the first-page requests the sandbox saw are counted too, as a cross-check.
Every POLLEN_SOAK_SAMPLE seconds (default 5) it samples, from /proc/PID:
VmRSS, RssAnon, RssFile and (from smaps) the resident pages of the LMDB map
of data.mdb; the open descriptors (the fewest of 3 reads 20 ms apart, so
that a connection or exec pipe open at that instant does not count; also by
kind: socket, pipe, eventfd, eventpoll, file); the engine's CPU time; the
size of state/data.mdb (st_size and st_blocks*512) and, from `mdb_stat
-efa` (lmdb-utils, optional), the pages in use (pages used minus free pages)
and the entries of every table (events, snap, own, outbox, ...). The
engine's log gives the actions performed and the retention passes
(`retention removed N`, once a minute).

Warm-up: the samples before WARMUP (POLLEN_SOAK_WARMUP, default 0.1) of the
cycles. Results (after warm-up): RSS at warm-up and at the end, max - min,
and the least-squares slope in KB per 1,000 cycles; descriptors min/max;
data.mdb and pages in use over time; the event-log size against
retention_count. Goals (issue #6):

  RSS growth after warm-up < 1 MB   (the resident pages of every mapping but
                                     the data.mdb map; median of the last 5
                                     samples minus the median of the 5 samples
                                     from warm-up)
  descriptors constant              (after warm-up, every descriptor but the
                                     TCP connections: max == min; connections,
                                     which curl's cache opens and closes:
                                     never more than 4 to one host (the
                                     sandbox, the receiver), none elsewhere)
  state bounded by retention        (after every retention pass the log held
                                     at most retention_count events plus the
                                     ones appended during that sample interval;
                                     the pages in use right after a pass (the
                                     live data) grew by at most 10% from the
                                     first third of the passes to the last; and
                                     data.mdb, LMDB's high-water mark, is at
                                     most 1.1x the most pages ever in use: the
                                     pages retention frees are reused)

The map of data.mdb is left out of the RSS goal because its resident pages
are the page cache of the state file (read-only, shared and clean: the
kernel reclaims them whenever it needs the memory): they are bounded by
data.mdb, the third goal; VmRSS with them is reported too. The state goal needs a retention pass that pruned something;
a run too short for one reports the goal as not measured.

Run it with (builds build/ first, then runs only this benchmark):
  scripts/soak                 # = meson test -C build --benchmark --suite soak --verbose
or directly:
  POLLEN_BIN=build/pollen python3 tests/bench/soak.py
Environment: POLLEN_SOAK_CYCLES (e.g. 500 for a quick try), POLLEN_SOAK_LOCATIONS,
POLLEN_SOAK_CONTACTS, POLLEN_SOAK_RETENTION, POLLEN_SOAK_MUTATE_EVERY,
POLLEN_SOAK_SAMPLE, POLLEN_SOAK_WARMUP, POLLEN_SOAK_MAX_SECONDS (safety cap,
default 3600: the soak fails if the cycles are not reached by then),
POLLEN_SOAK_STRICT=1 (exit 1 when a goal is missed or not measured),
POLLEN_SOAK_JSON=FILE (also write every sample and the results as JSON),
POLLEN_SOAK_WRAP="valgrind --leak-check=full --error-exitcode=99" (run the
engine under a tool, whose report lands in engine.log; a non-zero exit fails
the soak; the RSS goal is then not judged), POLLEN_KEEP_TMP=1 (keep the
state, logs and config).
Exit status: 1 if the engine exited or crashed during the soak, did not stop
cleanly (exit 0) on SIGTERM, logged an ERROR line, or did not reach the
cycles; with POLLEN_SOAK_STRICT=1 also when a goal was missed; 0 otherwise.
The duration is reported; no verdict depends on wall-clock time.
"""
import collections
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error

SOURCE_ROOT = os.environ.get(
    "SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
import harness  # noqa: E402

POLLEN_BIN = os.environ.get("POLLEN_BIN", os.path.join(SOURCE_ROOT, "build", "pollen"))
CYCLES = int(os.environ.get("POLLEN_SOAK_CYCLES", "20000"))
LOCATIONS = int(os.environ.get("POLLEN_SOAK_LOCATIONS", "4"))
CONTACTS = int(os.environ.get("POLLEN_SOAK_CONTACTS", "40"))
RETENTION = int(os.environ.get("POLLEN_SOAK_RETENTION", "5000"))
MUTATE_EVERY = float(os.environ.get("POLLEN_SOAK_MUTATE_EVERY", "1"))
SAMPLE_EVERY = float(os.environ.get("POLLEN_SOAK_SAMPLE", "5"))
WARMUP = float(os.environ.get("POLLEN_SOAK_WARMUP", "0.1"))
MAX_SECONDS = float(os.environ.get("POLLEN_SOAK_MAX_SECONDS", "3600"))
WRAP = shlex.split(os.environ.get("POLLEN_SOAK_WRAP", ""))
GOAL_RSS_KB = 1024
GOAL_STATE_GROWTH = 0.10
# Connections the engine may hold to one host (the sandbox, the receiver):
# CURLMOPT_MAX_HOST_CONNECTIONS (DEFAULT_MAX_HOST_CONNECTIONS, src/http.c).
SOCKET_CAP = 4
# Top-level (enumerating) triggers; each runs once per location.
TOP_TRIGGERS = ("s", "q", "l", "m")
# Log lines at level error that are expected in a soak (none so far).
EXPECTED_ERRORS = ()

CONFIG_HEAD = """[engine]
state_dir = state
min_interval = 1s
log_level = info
retention_count = {retention}

[api]
base_url = {url}
timeout = 10s
"""

CONFIG_LOCATION = """
[location l{n}]
id = {loc}
token = env:POLLEN_SOAK_TOKEN_{n}
rate_limit = 100
rate_window = 1s
daily_limit = 100000000
"""

CONFIG_TAIL = """
[trigger s]
use = contacts.search
location = *
every = 1s
page_size = 15
reconcile = 30s

[trigger q]
use = contacts.search
location = *
every = 1s
page_size = 100
reconcile = 0s

[trigger l]
use = contacts.list
location = *
every = 1s
page_size = 15

[trigger m]
use = contacts.list
location = *
every = 1s
page_size = 100

[trigger tasks]
use = contacts.tasks
location = *
for_each = s
every = 5s

[trigger notes]
use = contacts.notes
location = *
for_each = s
every = 5s

[rule tag]
on = s:created
do = contacts.tags.add
contactId = {{{{record.id}}}}
tags = soak

[rule hook]
on = tasks:created tasks:updated
do = http
url = {receiver}/hook
backoff = 1s

[rule run]
on = notes:created
do = exec
command = {script}
args = {{{{event.id}}}}
timeout = 10s
backoff = 1s
"""

# One mutation batch: creates and deletes balance per kind (a contact's tasks
# and notes leave with it, so tasks and notes are created twice as often).
BATCH = [
    {"kind": "contact", "op": "create"},
    {"kind": "contact", "op": "update"},
    {"kind": "contact", "op": "update"},
    {"kind": "task", "op": "create"},
    {"kind": "task", "op": "create"},
    {"kind": "note", "op": "create"},
    {"kind": "note", "op": "create"},
    {"kind": "task", "op": "update"},
    {"kind": "task", "op": "complete"},
    {"kind": "note", "op": "update"},
    {"kind": "task", "op": "delete"},
    {"kind": "note", "op": "delete"},
    {"kind": "contact", "op": "delete"},
]

LOG_LINE = re.compile(r"^\S+ (debug|info|warn|error) (?:\[([^\]]*)\] )?(.*)$")
CYCLE_LINE = re.compile(r"^(?:cycle \d+:|baseline recorded)")
ACTION_OK = re.compile(r"^rule (\S+): (\S+) succeeded")
ACTION_FAIL = re.compile(r"^rule (\S+): (\S+) failed, will retry")
ACTION_DEAD = re.compile(r"^rule (\S+): (\S+) moved to the dead-letter store")
RETENTION_LINE = re.compile(r"retention removed (\d+)")


class SoakError(Exception):
    pass


def location_id(n):
    return "soakLocation%08d" % n


def token(n):
    return "pit-soak-token-%04d-0123456789" % n


class Receiver:
    """The http action's endpoint: counts deliveries and distinct Idempotency-Keys."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.keys = set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with outer.lock:
                    outer.count += 1
                    outer.keys.add(self.headers.get("Idempotency-Key"))
                out = b'{"ok":true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    self.close_connection = True

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stats(self):
        with self.lock:
            return self.count, len(self.keys)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Mutator(threading.Thread):
    """Applies BATCH to one location after the other, every MUTATE_EVERY seconds."""

    def __init__(self, sandbox, locations):
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.locations = locations
        self.stop_event = threading.Event()
        self.batches = 0
        self.changes = 0
        self.errors = 0
        self.last_error = None

    def run(self):
        i = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            loc = self.locations[i % len(self.locations)]
            i += 1
            # One op per call: a failing op (no task left to pick) must not
            # cancel the rest of the batch.
            for op in BATCH:
                try:
                    out = self.sandbox.control("POST", "/_control/mutate", {"location": loc, "ops": [op]})
                    self.changes += len(out["changes"])
                except (urllib.error.URLError, OSError, ValueError) as e:
                    self.errors += 1
                    self.last_error = "%s %s: %s" % (op["kind"], op["op"], e)
            self.batches += 1
            next_at += MUTATE_EVERY
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self.stop_event.set()
        self.join(30)


class LogReader:
    """Follows the engine's log file; counts cycles, actions, retention and problems."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.cycles = collections.Counter()      # per top-level trigger (NAME@LOCATION)
        self.actions = collections.Counter()     # (rule, outcome)
        self.pruned = 0
        self.prunes = []                         # (line number, removed)
        self.levels = collections.Counter()
        self.errors = []                         # unexpected error lines
        self.warnings = collections.Counter()    # normalised warn lines
        self.lines = 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            self.lines += 1
            self.line(raw.decode("utf-8", "replace"))

    def line(self, text):
        m = LOG_LINE.match(text)
        if not m:
            return
        level, tag, msg = m.group(1), m.group(2) or "", m.group(3)
        self.levels[level] += 1
        if level == "info" and tag.startswith("trigger:") and CYCLE_LINE.match(msg):
            if tag[len("trigger:"):].split("@")[0] in TOP_TRIGGERS:
                self.cycles[tag[len("trigger:"):]] += 1
        elif tag == "dispatch":
            for rx, outcome in ((ACTION_OK, "succeeded"), (ACTION_FAIL, "failed"), (ACTION_DEAD, "dead")):
                a = rx.match(msg)
                if a:
                    self.actions[(a.group(1), outcome)] += 1
                    break
        elif tag == "evlog":
            r = RETENTION_LINE.search(msg)
            if r:
                self.pruned += int(r.group(1))
                self.prunes.append((self.lines, int(r.group(1))))
        if level == "error" and not any(re.search(p, text) for p in EXPECTED_ERRORS):
            self.errors.append(text)
        elif level == "warn":
            # Ids, numbers and trace ids vary: group by the shape of the message.
            key = re.sub(r"[A-Za-z0-9]{20}", "<id>", "[%s] %s" % (tag, msg))
            key = re.sub(r"\d+", "N", key)
            self.warnings[key[:160]] += 1

    def total_cycles(self):
        return sum(self.cycles.values())


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "VmSize", "Threads"):
                out[k] = int(v.split()[0])
    return out


def smaps_rss_kb(pid, name="data.mdb"):
    """(resident KB of every mapping, of the mappings of the file `name`), from
    one read of /proc/PID/smaps. One read, because the kernel may reclaim the
    map's clean pages at any time: VmRSS from /proc/PID/status read a few ms
    apart could count pages that smaps no longer shows."""
    total, mine, inside = 0, 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(" ", 1)[0]
            if "-" in first and line[0] in "0123456789abcdef":
                inside = line.rstrip().endswith("/" + name)
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                total += kb
                if inside:
                    mine += kb
    return total, mine


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


TCP_STATES = {"01": "established", "02": "syn-sent", "06": "time-wait", "07": "close", "08": "close-wait",
              "09": "last-ack", "04": "fin-wait1", "05": "fin-wait2", "0A": "listen"}


def tcp_sockets(pid):
    """inode -> (remote port, state) of the TCP sockets in the process's namespace."""
    out = {}
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f)
                for line in f:
                    p = line.split()
                    out[p[9]] = (int(p[2].rsplit(":", 1)[1], 16), TCP_STATES.get(p[3], p[3]))
        except OSError:
            pass
    return out


def fd_kinds(pid, peers):
    """Descriptors by kind: TCP sockets by peer (peers: port -> name) as
    "tcp:NAME" or "tcp:other PORT STATE"; "socket" (not TCP: curl's wake-up
    socket pair), "pipe", "eventfd", "eventpoll", ..., "file"."""
    kinds = collections.Counter()
    d = "/proc/%d/fd" % pid
    tcp = None
    for name in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, name))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:"):
            if tcp is None:
                tcp = tcp_sockets(pid)
            conn = tcp.get(target[len("socket:["):-1])
            if conn is None:
                kinds["socket"] += 1
            elif conn[0] in peers:
                kinds["tcp:" + peers[conn[0]]] += 1
            else:
                kinds["tcp:other %d %s" % conn] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target[len("anon_inode:"):].strip("[]")] += 1
        else:
            kinds["file"] += 1
    return kinds


def fd_sample(pid, peers):
    """The fewest descriptors of 3 reads 20 ms apart (a connection or an exec
    pipe open at one instant is not a leak), with their kinds."""
    best = None
    for i in range(3):
        k = fd_kinds(pid, peers)
        if best is None or sum(k.values()) < sum(best.values()):
            best = k
        if i < 2:
            time.sleep(0.02)
    return sum(best.values()), dict(best)


def mdb_stat(state_dir):
    """Pages and per-table entries from mdb_stat -efa, or None without lmdb-utils."""
    exe = shutil.which("mdb_stat")
    if exe is None:
        return None
    proc = subprocess.run([exe, "-e", "-f", "-a", state_dir], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-200:]}
    out = {"tables": {}}
    section = None
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            section = line.strip()
            continue
        k, _, v = line.strip().partition(":")
        v = v.strip()
        if section == "Environment Info":
            if k == "Number of pages used":
                out["pages_used"] = int(v)
            elif k == "Page size":
                out["page_size"] = int(v)
            elif k == "Number of readers used":
                out["readers"] = int(v)
            elif k == "Last transaction ID":
                out["txn_id"] = int(v)
        elif section == "Freelist Status":
            if k == "Free pages":
                out["free_pages"] = int(v)
        elif section and section.startswith("Status of ") and k == "Entries":
            out["tables"][section[len("Status of "):]] = int(v)
    if "pages_used" in out:
        out["pages_in_use"] = out["pages_used"] - out.get("free_pages", 0)
    return out


def slope(xs, ys):
    """Least-squares slope of ys over xs (0 with fewer than 2 distinct xs)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


class Soak:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pollen-soak-")
        self.state_dir = os.path.join(self.dir, "state")
        self.sandbox = None
        self.receiver = None
        self.mutator = None
        self.engine = None
        self.engine_log = None
        self.locations = [location_id(n) for n in range(1, LOCATIONS + 1)]
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        self.env.pop("POLLEN_FAILPOINT", None)
        for n in range(1, LOCATIONS + 1):
            self.env["POLLEN_SOAK_TOKEN_%d" % n] = token(n)
        self.log_path = os.path.join(self.dir, "engine.log")
        self.exec_log = os.path.join(self.dir, "exec.log")
        self.samples = []
        self.req_seq = 0
        self.requests = collections.Counter()
        self.results = {}

    # -- set-up -----------------------------------------------------------------

    def setup(self):
        t0 = time.monotonic()
        self.sandbox = harness.Sandbox(self.dir, "--rate-limit", "0", "--daily-limit", "0",
                                       tokens={token(n): location_id(n) for n in range(1, LOCATIONS + 1)})
        for loc in self.locations:
            self.sandbox.control("POST", "/_control/seed", {
                "location": loc, "contacts": CONTACTS, "tasks_per_contact": 1, "notes_per_contact": 1,
                "seed": 6, "log": False})
        self.receiver = Receiver()
        script = os.path.join(self.dir, "on-note.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nprintf '%%s\\n' \"$1\" >> %s\n" % shlex.quote(self.exec_log))
        os.chmod(script, 0o755)
        self.config = os.path.join(self.dir, "pollen.ini")
        text = CONFIG_HEAD.format(retention=RETENTION, url=self.sandbox.url)
        for n, loc in enumerate(self.locations, 1):
            text += CONFIG_LOCATION.format(n=n, loc=loc)
        text += CONFIG_TAIL.format(receiver=self.receiver.url, script=script)
        with open(self.config, "w") as f:
            f.write(text)
        proc = subprocess.run([POLLEN_BIN, "check", "-c", self.config], capture_output=True, text=True,
                              env=self.env, timeout=60)
        if proc.returncode != 0:
            raise SoakError("pollen check rejected the soak configuration:\n" + proc.stdout + proc.stderr)
        print("soak: %d locations x %d contacts, %d top-level triggers (%s, each per location) + 2 for_each; "
              "target %d cycles; retention_count %d; state in %s (set-up %.1f s)"
              % (LOCATIONS, CONTACTS, len(TOP_TRIGGERS) * LOCATIONS, " ".join(TOP_TRIGGERS), CYCLES, RETENTION,
                 self.dir, time.monotonic() - t0), file=sys.stderr, flush=True)

    def close(self):
        if self.mutator is not None:
            self.mutator.stop()
        if self.engine is not None and self.engine.poll() is None:
            self.engine.kill()
            self.engine.wait()
        if self.engine_log is not None:
            self.engine_log.close()
        if self.receiver is not None:
            self.receiver.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        if os.environ.get("POLLEN_KEEP_TMP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- sampling -----------------------------------------------------------------

    def poll_requests(self):
        """Counts the sandbox's requests since the last call, by kind."""
        out = self.sandbox.control("GET", "/_control/requests?since=%d" % self.req_seq)
        for r in out["requests"]:
            self.req_seq = max(self.req_seq, r["seq"])
            path, method, body, query = r["path"], r["method"], r.get("body") or {}, r.get("query") or {}
            if method == "POST" and path == "/contacts/search":
                self.requests["search first page" if "searchAfter" not in body else "search next page"] += 1
            elif method == "GET" and path == "/contacts/":
                first = "startAfterId" not in query and "startAfter" not in query
                self.requests["list first page" if first else "list next page"] += 1
            elif method == "GET" and path.endswith("/tasks"):
                self.requests["tasks read"] += 1
            elif method == "GET" and path.endswith("/notes"):
                self.requests["notes read"] += 1
            elif method == "GET" and re.fullmatch(r"/contacts/[A-Za-z0-9]+", path):
                self.requests["contact by id (delete check)"] += 1
            elif method == "POST" and path.endswith("/tags"):
                self.requests["tags add (action)"] += 1
            else:
                self.requests["other %s %s" % (method, r.get("operation"))] += 1
            if r.get("status") is not None and r["status"] >= 500:
                self.requests["5xx answers"] += 1

    def sample(self, t0, log):
        pid = self.engine.pid
        st = proc_status(pid)
        smaps_kb, map_kb = smaps_rss_kb(pid)
        nfd, kinds = fd_sample(pid, {self.sandbox.port: "sandbox",
                                     self.receiver.server.server_address[1]: "receiver"})
        try:
            stt = os.stat(os.path.join(self.state_dir, "data.mdb"))
            size, blocks = stt.st_size, stt.st_blocks * 512
        except OSError:
            size = blocks = 0
        # The event count (mdb_stat) and the pruned total (the log) must be
        # from the same side of a retention pass: read again if one ended.
        log.poll()
        pruned = log.pruned
        mdb = mdb_stat(self.state_dir)
        log.poll()
        if log.pruned != pruned:
            mdb = mdb_stat(self.state_dir)
        self.poll_requests()
        events = (mdb or {}).get("tables", {}).get("events")
        s = {
            "t": round(time.monotonic() - t0, 1),
            "cpu_s": cpu_seconds(pid), "sandbox_cpu_s": cpu_seconds(self.sandbox.proc.pid),
            "cycles": log.total_cycles(),
            "first_pages": self.requests["search first page"] + self.requests["list first page"],
            "rss_kb": st.get("VmRSS"), "anon_kb": st.get("RssAnon"), "file_kb": st.get("RssFile"),
            "map_kb": map_kb, "rss_nomap_kb": smaps_kb - map_kb,
            "shmem_kb": st.get("RssShmem"), "hwm_kb": st.get("VmHWM"), "threads": st.get("Threads"),
            "fds": nfd, "fd_kinds": kinds,
            "mdb_size": size, "mdb_blocks": blocks,
            "pages_in_use": (mdb or {}).get("pages_in_use"),
            "readers": (mdb or {}).get("readers"),
            "tables": (mdb or {}).get("tables"),
            "events": events,
            "pruned": log.pruned,
            "appended": events + log.pruned if events is not None else None,
            "actions": sum(v for (_, o), v in log.actions.items() if o == "succeeded"),
            "mutations": self.mutator.changes if self.mutator else 0,
        }
        self.samples.append(s)
        return s

    def progress(self, s):
        print("  t=%6.0fs cycles %6d  RSS %6d KB (without the map %6d, anon %6d)  fds %3d  data.mdb %7.1f MB  "
              "in use %s pages  events %s  pruned %d  actions %d"
              % (s["t"], s["cycles"], s["rss_kb"], s["rss_nomap_kb"], s["anon_kb"], s["fds"], s["mdb_size"] / 1e6,
                 s["pages_in_use"], s["events"], s["pruned"], s["actions"]), file=sys.stderr, flush=True)

    # -- the soak -----------------------------------------------------------------

    def run(self):
        self.setup()
        self.engine_log = open(self.log_path, "ab")
        argv = WRAP + [POLLEN_BIN, "run", "-c", self.config]
        t0 = time.monotonic()
        self.engine = subprocess.Popen(argv, stdout=self.engine_log, stderr=subprocess.STDOUT, env=self.env)
        log = LogReader(self.log_path)
        # Events start to flow once the baselines are in.
        deadline = time.monotonic() + 120
        while log.total_cycles() < len(TOP_TRIGGERS) * LOCATIONS:
            if self.engine.poll() is not None:
                raise SoakError("the engine exited %d before its baselines; log tail:\n%s"
                                % (self.engine.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise SoakError("no baselines after 120 s; log tail:\n" + self.log_tail())
            time.sleep(0.2)
            log.poll()
        self.mutator = Mutator(self.sandbox, self.locations)
        self.mutator.start()
        next_sample = time.monotonic()
        n = 0
        reached = False
        while True:
            if self.engine.poll() is not None:
                raise SoakError("the engine exited %d during the soak after %d cycles; log tail:\n%s"
                                % (self.engine.returncode, log.total_cycles(), self.log_tail()))
            s = self.sample(t0, log)
            if n % 6 == 0:
                self.progress(s)
            n += 1
            if s["cycles"] >= CYCLES:
                reached = True
                break
            if s["t"] > MAX_SECONDS:
                break
            next_sample += SAMPLE_EVERY
            time.sleep(max(0.0, next_sample - time.monotonic()))
        self.progress(s)
        self.mutator.stop()
        duration = time.monotonic() - t0
        self.engine.send_signal(signal.SIGTERM)
        try:
            rc = self.engine.wait(60)
        except subprocess.TimeoutExpired:
            self.engine.kill()
            self.engine.wait()
            rc = "hung: killed after 60 s"
        log.poll()
        self.poll_requests()  # the actions sent after the last sample
        self.results.update({
            "duration_s": round(duration, 1), "reached": reached, "exit": rc,
            "final_mdb": mdb_stat(self.state_dir),
        })
        self.tail_check()
        return self.report(log, reached, rc)

    def tail_check(self):
        proc = subprocess.run([POLLEN_BIN, "tail", "-c", self.config], capture_output=True, text=True,
                              env=self.env, timeout=600)
        if proc.returncode != 0:
            raise SoakError("pollen tail exited %d: %s" % (proc.returncode, proc.stderr[-2000:]))
        evs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        types = collections.Counter(e["type"] for e in evs)
        self.results["tail"] = {
            "events": len(evs), "first_seq": evs[0]["seq"] if evs else None,
            "last_seq": evs[-1]["seq"] if evs else None, "types": dict(types),
            "echoes": sum(1 for e in evs if e.get("origin") == "pollen"),
        }
        dlq = subprocess.run([POLLEN_BIN, "dlq", "list", "-c", self.config], capture_output=True, text=True,
                             env=self.env, timeout=120)
        self.results["dlq_lines"] = len([x for x in dlq.stdout.splitlines() if x.strip()])

    def log_tail(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-40:])
        except OSError:
            return ""

    # -- results ------------------------------------------------------------------

    def report(self, log, reached, rc):
        S = self.samples
        target_warm = WARMUP * CYCLES
        wi = next((i for i, s in enumerate(S) if s["cycles"] >= target_warm), 0)
        post = S[wi:]
        warm, end = S[wi], S[-1]

        def med(xs):
            return statistics.median(xs) if xs else 0

        def series(key):
            return [s[key] for s in post if s.get(key) is not None]

        cyc = [s["cycles"] for s in post]
        rss, anon, vm = series("rss_nomap_kb"), series("anon_kb"), series("rss_kb")
        rss_growth = med(rss[-5:]) - med(rss[:5])
        anon_growth = med(anon[-5:]) - med(anon[:5])
        vm_growth = med(vm[-5:]) - med(vm[:5])
        rss_slope = slope(cyc, rss) * 1000
        anon_slope = slope(cyc, anon) * 1000
        vm_slope = slope(cyc, vm) * 1000
        maps = series("map_kb")
        fds = series("fds")
        socks = [sum(v for k, v in s["fd_kinds"].items() if k.startswith("tcp:")) for s in post]
        others = [s["fds"] - n for s, n in zip(post, socks)]
        per_host = max([s["fd_kinds"].get(k, 0) for s in post for k in ("tcp:sandbox", "tcp:receiver")] or [0])
        strays = sorted({k for s in post for k in s["fd_kinds"] if k.startswith("tcp:other")})
        cpu_per_k = ((end["cpu_s"] - warm["cpu_s"]) / (end["cycles"] - warm["cycles"]) * 1000
                     if end["cycles"] > warm["cycles"] else 0)
        kinds_seen = sorted({k for s in post for k in s["fd_kinds"]})
        kind_ranges = {k: (min(s["fd_kinds"].get(k, 0) for s in post), max(s["fd_kinds"].get(k, 0) for s in post))
                       for k in kinds_seen}

        # Retention passes: between two samples, the log lost events. After the
        # pass it may hold retention_count plus what was appended in that interval.
        passes = []
        for a, b in zip(S, S[1:]):
            if b["events"] is None or a["events"] is None or b["pruned"] <= a["pruned"]:
                continue
            appended = b["appended"] - a["appended"]
            passes.append({"t": b["t"], "removed": b["pruned"] - a["pruned"], "events_after": b["events"],
                           "appended_in_interval": appended, "over": b["events"] - appended - RETENTION,
                           "pages_in_use": b["pages_in_use"], "mdb_size": b["mdb_size"]})
        first_pass = next((i for i, s in enumerate(S) if s["pruned"] > 0), None)
        sizes_after = [s["mdb_size"] for s in S[first_pass:]] if first_pass is not None else []
        mdb_at_pass = S[first_pass]["mdb_size"] if first_pass is not None else None
        mdb_growth = (max(sizes_after) - mdb_at_pass) / mdb_at_pass if mdb_at_pass else None
        pages = [s["pages_in_use"] for s in S if s["pages_in_use"] is not None]
        page_size = (self.results.get("final_mdb") or {}).get("page_size", 4096)
        # Live data right after each pass (the low point of the saw-tooth):
        # the last third of the passes against the first third.
        after_pass = [p["pages_in_use"] for p in passes if p["pages_in_use"] is not None]
        third = max(1, len(after_pass) // 3)
        live_growth = ((med(after_pass[-third:]) - med(after_pass[:third])) / med(after_pass[:third])
                       if after_pass else None)
        # data.mdb is LMDB's high-water mark: with freed pages reused it stays
        # near the most pages ever in use at once.
        file_over_live = end["mdb_size"] / (max(pages) * page_size) if pages else None

        # Under a tool (valgrind) the RSS is mostly the tool's own (memcheck
        # keeps 20 MB of freed blocks in quarantine): not a result.
        rss_ok = None if WRAP else rss_growth < GOAL_RSS_KB
        # Connections come and go with curl's connection cache (at most
        # SOCKET_CAP per host, and to no one else); every other descriptor
        # must stay exactly the same.
        fds_ok = bool(fds) and max(others) == min(others) and per_host <= SOCKET_CAP and not strays
        if not passes:
            state_ok = None
        elif live_growth is None or file_over_live is None:
            # Without mdb_stat only the event counts are known: a miss, or not measured.
            state_ok = None if all(p["over"] <= 0 for p in passes) else False
        else:
            state_ok = (all(p["over"] <= 0 for p in passes) and live_growth <= GOAL_STATE_GROWTH
                        and file_over_live <= 1 + GOAL_STATE_GROWTH)
        errors_ok = not log.errors
        self.results.update({
            "config": {"cycles_target": CYCLES, "locations": LOCATIONS, "contacts_per_location": CONTACTS,
                       "top_level_triggers": len(TOP_TRIGGERS) * LOCATIONS, "retention_count": RETENTION,
                       "mutate_every_s": MUTATE_EVERY, "sample_every_s": SAMPLE_EVERY, "warmup": WARMUP,
                       "wrap": WRAP},
            "cycles": log.total_cycles(), "cycles_by_trigger": dict(log.cycles),
            "requests": dict(self.requests),
            "mutations": {"batches": self.mutator.batches, "changes": self.mutator.changes,
                          "errors": self.mutator.errors, "last_error": self.mutator.last_error},
            "actions": {"%s %s" % k: v for k, v in sorted(log.actions.items())},
            "receiver": dict(zip(("deliveries", "distinct_keys"), self.receiver.stats())),
            "exec_runs": sum(1 for _ in open(self.exec_log)) if os.path.exists(self.exec_log) else 0,
            "log_levels": dict(log.levels), "errors": log.errors[:20],
            "warnings": dict(log.warnings.most_common(15)),
            "warmup_sample": wi, "warmup": warm, "end": end,
            "rss_without_map": {"warm_kb": warm["rss_nomap_kb"], "end_kb": end["rss_nomap_kb"], "min_kb": min(rss),
                                "max_kb": max(rss), "growth_kb": rss_growth, "slope_kb_per_1000_cycles": rss_slope},
            "vmrss": {"warm_kb": warm["rss_kb"], "end_kb": end["rss_kb"], "min_kb": min(vm), "max_kb": max(vm),
                      "growth_kb": vm_growth, "slope_kb_per_1000_cycles": vm_slope, "hwm_kb": end["hwm_kb"]},
            "map": {"min_kb": min(maps), "max_kb": max(maps)},
            "anon": {"warm_kb": warm["anon_kb"], "end_kb": end["anon_kb"], "min_kb": min(anon),
                     "max_kb": max(anon), "growth_kb": anon_growth, "slope_kb_per_1000_cycles": anon_slope},
            "fds": {"min": min(fds), "max": max(fds), "kinds": kind_ranges, "non_tcp_min": min(others),
                    "non_tcp_max": max(others), "tcp_max": max(socks), "tcp_max_per_host": per_host,
                    "tcp_cap_per_host": SOCKET_CAP, "tcp_other": strays},
            "cpu": {"engine_s": end["cpu_s"], "sandbox_s": end["sandbox_cpu_s"],
                    "engine_s_per_1000_cycles_after_warmup": cpu_per_k},
            "retention_passes": passes, "mdb_growth_after_first_pass": mdb_growth,
            "live_pages_growth_after_passes": live_growth, "mdb_size_over_max_pages_in_use": file_over_live,
            "goals": {"rss": rss_ok, "fds": fds_ok, "state": state_ok, "no_errors": errors_ok},
            "samples": S,
        })

        L = []
        L.append("")
        L.append("pollen soak: %d poll cycles in %.0f s (%.1f per s) over %d top-level triggers; "
                 "%d locations x %d contacts; retention_count %d"
                 % (log.total_cycles(), self.results["duration_s"], log.total_cycles() / self.results["duration_s"],
                    len(TOP_TRIGGERS) * LOCATIONS, LOCATIONS, CONTACTS, RETENTION))
        L.append("first-page requests the sandbox saw (one per cycle): %d"
                 % (self.requests["search first page"] + self.requests["list first page"]))
        L.append("requests: " + ", ".join("%s %d" % kv for kv in sorted(self.requests.items())))
        m = self.results["mutations"]
        L.append("sandbox mutations: %d batches, %d changes, %d failed ops%s"
                 % (m["batches"], m["changes"], m["errors"], " (last: %s)" % m["last_error"] if m["errors"] else ""))
        L.append("actions: " + (", ".join("%s %d" % kv for kv in self.results["actions"].items()) or "none")
                 + "; receiver got %d (%d distinct keys); exec ran %d"
                 % (self.results["receiver"]["deliveries"], self.results["receiver"]["distinct_keys"],
                    self.results["exec_runs"]))
        tl = self.results["tail"]
        L.append("event log at the end: %d events (seq %s..%s; %d appended in all, %d pruned); types %s"
                 % (tl["events"], tl["first_seq"], tl["last_seq"], tl["last_seq"] or 0, log.pruned,
                    json.dumps(tl["types"], sort_keys=True)))
        L.append("CPU: engine %.1f s (%.2f s per 1,000 cycles after warm-up), sandbox %.1f s"
                 % (end["cpu_s"], cpu_per_k, end["sandbox_cpu_s"]))
        L.append("log lines: %s" % json.dumps(dict(log.levels), sort_keys=True))
        for w, c in log.warnings.most_common(8):
            L.append("  warn x%d: %s" % (c, w))
        L.append("")
        row = "%6s %7s %8s %8s %8s %8s %4s %10s %10s %7s %7s %7s %7s"
        L.append(row % ("t s", "cycles", "RSS KB", "-map KB", "anon KB", "map KB", "fds", "data.mdb", "disk",
                        "in use", "events", "pruned", "actions"))
        step = max(1, len(S) // 24)
        picks = sorted(set(list(range(0, len(S), step)) + [wi, len(S) - 1]))
        for i in picks:
            s = S[i]
            L.append(row % ("%.0f" % s["t"], s["cycles"], s["rss_kb"], s["rss_nomap_kb"], s["anon_kb"], s["map_kb"],
                            s["fds"],
                            "%.2f MB" % (s["mdb_size"] / 1e6), "%.2f MB" % (s["mdb_blocks"] / 1e6),
                            s["pages_in_use"], s["events"], s["pruned"], s["actions"])
                     + ("   <- warm-up ends" if i == wi else ""))
        L.append("(RSS: VmRSS; -map: resident pages of every mapping but the data.mdb map (smaps); map: those of")
        L.append(" the map; anon: RssAnon;")
        L.append(" in use: LMDB pages used minus free pages, from mdb_stat; disk: st_blocks*512)")
        if end.get("tables"):
            L.append("tables at the end (entries): " + ", ".join(
                "%s %d (warm-up %s)" % (k, v, (warm.get("tables") or {}).get(k)) for k, v in sorted(end["tables"].items())))
        L.append("")
        L.append("after warm-up (sample %d, %d cycles):" % (wi, warm["cycles"]))
        L.append("  RSS without the data.mdb map  %d -> %d KB; min %d max %d; growth (median of last 5 - median "
                 "of first 5) %+.0f KB; slope %+.1f KB per 1,000 cycles"
                 % (warm["rss_nomap_kb"], end["rss_nomap_kb"], min(rss), max(rss), rss_growth, rss_slope))
        L.append("  VmRSS %d -> %d KB; min %d max %d; growth %+.0f KB; slope %+.1f KB per 1,000 cycles; "
                 "peak (VmHWM) %d KB; of which the data.mdb map %d..%d KB"
                 % (warm["rss_kb"], end["rss_kb"], min(vm), max(vm), vm_growth, vm_slope, end["hwm_kb"],
                    min(maps), max(maps)))
        L.append("  anon  %d -> %d KB; min %d max %d; growth %+.0f KB; slope %+.1f KB per 1,000 cycles"
                 % (warm["anon_kb"], end["anon_kb"], min(anon), max(anon), anon_growth, anon_slope))
        L.append("  fds   min %d max %d; by kind %s" % (min(fds), max(fds), json.dumps(kind_ranges, sort_keys=True)))
        L.append("  data.mdb %.2f -> %.2f MB (max %.2f MB); pages in use %s -> %s (max %s)"
                 % (warm["mdb_size"] / 1e6, end["mdb_size"] / 1e6, max(s["mdb_size"] for s in S) / 1e6,
                    warm["pages_in_use"], end["pages_in_use"], max(pages) if pages else None))
        for p in passes:
            L.append("  retention pass at t=%.0fs removed %d: %d events left, %d appended in that interval "
                     "-> %d kept by the pass (retention_count %d); %s pages in use, data.mdb %.2f MB"
                     % (p["t"], p["removed"], p["events_after"], p["appended_in_interval"],
                        p["events_after"] - p["appended_in_interval"], RETENTION, p["pages_in_use"],
                        p["mdb_size"] / 1e6))
        if first_pass is not None:
            L.append("  data.mdb grew %.1f%% from the first pass to the end (%.2f -> %.2f MB)"
                     % (100 * mdb_growth, mdb_at_pass / 1e6, max(sizes_after) / 1e6))
        L.append("")

        def verdict(ok):
            return "not measured" if ok is None else ("met" if ok else "MISSED")
        L.append("goal RSS growth after warm-up < 1 MB (without the data.mdb map): %+.0f KB "
                 "(slope %+.1f KB/1000 cycles): %s"
                 % (rss_growth, rss_slope, verdict(rss_ok)))
        L.append("goal descriptors constant after warm-up: all %d..%d; all but TCP %d..%d (must not change); "
                 "TCP connections %d..%d, at most %d to one host (cap %d, curl's connection cache)%s: %s"
                 % (min(fds), max(fds), min(others), max(others), min(socks), max(socks), per_host, SOCKET_CAP,
                    "; OTHER connections: " + ", ".join(strays) if strays else "", verdict(fds_ok)))
        if not passes:
            L.append("goal state bounded by retention: no retention pass during the soak: not measured")
        else:
            L.append("goal state bounded by retention: %d passes, each left at most retention_count events "
                     "(worst %+d); pages in use after a pass: %s (limit +%d%%); data.mdb %s the most pages "
                     "ever in use (limit %.2fx): %s"
                     % (len(passes), max(p["over"] for p in passes),
                        "%+.1f%% from the first third of the passes to the last" % (100 * live_growth)
                        if live_growth is not None else "not measured (no mdb_stat)",
                        100 * GOAL_STATE_GROWTH,
                        "%.2fx" % file_over_live if file_over_live is not None else "(not measured) vs",
                        1 + GOAL_STATE_GROWTH, verdict(state_ok)))
        L.append("no ERROR lines in the log: %d: %s" % (len(log.errors), verdict(errors_ok)))
        for e in log.errors[:10]:
            L.append("  " + e)
        print("\n".join(L), flush=True)

        if os.environ.get("POLLEN_SOAK_JSON"):
            with open(os.environ["POLLEN_SOAK_JSON"], "w") as f:
                json.dump(self.results, f, indent=1, default=str)
        status = 0
        if not reached:
            print("soak: FAILED: only %d of %d cycles in %.0f s" % (log.total_cycles(), CYCLES, MAX_SECONDS),
                  file=sys.stderr)
            status = 1
        if rc != 0:
            print("soak: FAILED: the engine did not stop cleanly on SIGTERM: %s" % rc, file=sys.stderr)
            status = 1
        if not errors_ok:
            print("soak: FAILED: the engine logged %d ERROR line(s)" % len(log.errors), file=sys.stderr)
            status = 1
        if os.environ.get("POLLEN_SOAK_STRICT") == "1" and not (rss_ok and fds_ok and state_ok):
            status = 1
        return status


def main():
    soak = Soak()
    try:
        return soak.run()
    except SoakError as e:
        print("soak: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        soak.close()


if __name__ == "__main__":
    sys.exit(main())
