#!/usr/bin/env python3
"""day: a day in the life of a 100,000-contact location (issue #12's API-economy targets).

Starts the sandbox API (no rate or daily limit of its own: the engine's budget
is what is measured) seeded with POLLEN_DAY_CONTACTS contacts (default
100000), one task and one note each, and runs `pollen run` on:

  [location main]   default budget (90 per 10 s, 200,000 a day)
  [trigger contacts] use = contacts.search, every = 1m, default page size
                     + POLLEN_DAY_EXTRA_TRIGGER_KEYS
  [trigger tasks]    POLLEN_DAY_TASK_TRIGGER (default `use = contacts.tasks`
                     and `for_each = contacts`), every = 1m
                     + POLLEN_DAY_TASK_TRIGGER_KEYS
  (second run, POLLEN_DAY_NOTES=1, or the only one with POLLEN_DAY_NOTES=only:
   [trigger notes] contacts.notes for_each instead of tasks,
   + POLLEN_DAY_NOTE_TRIGGER_KEYS)

Extra keys are `key = value` pairs separated by `;` or newlines, e.g.
POLLEN_DAY_EXTRA_TRIGGER_KEYS="reconcile = 1h". Before the run, `pollen check`
validates the file: a key the binary rejects (unknown key) is dropped with a
warning, so the same command works on older and newer engines.

After the contacts trigger's silent baseline and the child trigger's first
full round (its baseline; waited for at most POLLEN_DAY_CHILD_BASELINE_WAIT
seconds, 1800), the benchmark changes the
sandbox at a steady pace through /_control/mutate, on records picked with
/_control/ids so that no record changes twice (one event per change is then
exactly right): POLLEN_DAY_CONTACT_UPDATES (1000 contact updates per hour),
POLLEN_DAY_TASK_CHANGES (200 task changes per hour: 45% updates, 20%
completions, 25% creates, 10% deletes), POLLEN_DAY_CONTACT_DELETES (10
contact deletes per hour; their latency bound is one reconcile interval), and
in the notes run POLLEN_DAY_NOTE_CHANGES (200 per hour). This lasts
POLLEN_DAY_MINUTES (20); the first POLLEN_DAY_WARMUP_MINUTES (5) are warm-up
and the requests of the rest are the steady state. Then POLLEN_DAY_DRAIN_MINUTES
(3) without changes let the last ones through before the engine stops.

Time compression: POLLEN_DAY_SPEEDUP=S (default 1, at most 60) runs
simulated minutes in 60/S real seconds: `every` becomes 60/S s, the budget
9*S requests per 1 s (capped at pollen's 100) and 200,000*S a day, the change
pace S times faster, and every duration value in the extra keys (`1h`,
`30m`, ...) is divided by S. All minutes above are simulated minutes; the
latencies are reported in simulated time too (real latency times S). The
engine's own processing time does not shrink, so S > 1 favours nothing but
makes the latencies pessimistic.

Results, from the sandbox's request log (/_control/requests), change log
(/_control/changes) and the engine's event log (`pollen tail`):
  - requests per hour in the steady state by endpoint class (contacts: the
    search, split into full enumerations and incremental reads filtered on
    dateUpdated, and the by-id reads; tasks; notes) and extrapolated to 24 h.
    The child's full rounds (task search pages without a contact filter) count
    once per POLLEN_DAY_CHILD_RECONCILE (1d, the default `reconcile` of a
    for_each child) with the pages its first round took, not at the window's rate.
    A full enumeration every reconcile interval (POLLEN_DAY_RECONCILE,
    default 1h, the issue's default) is added when the window saw fewer of
    them: pages of one enumeration (counted at the baseline) times 24 h /
    reconcile;
  - latency from each change (its change-log time) to its event (its `time`),
    p50/p99/max, for contacts and tasks (and notes); deletions separately;
  - exactly once: each change (contact created/updated/deleted, task or note
    created/updated/deleted; a task or note write also moves its contact's
    dateUpdated, a contact change of its own) must have exactly one event of
    the right trigger, type and record id; events no change explains are
    extra. A task change on a contact whose tasks the engine had not read
    yet is counted apart (for_each triggers record a contact's first read
    silently).
Targets (issue #12): requests per day <= 10,000 (contacts and tasks, notes
reported apart), p99 latency <= 2 min, every change exactly once.

Run by `meson test -C build --benchmark --suite day --verbose`, or directly:
  POLLEN_BIN=build/pollen python3 tests/bench/day.py
Other environment: POLLEN_DAY_LOCATION_KEYS (appended to [location main]),
POLLEN_DAY_JSON=FILE (results as JSON), POLLEN_DAY_STRICT=1 (exit 1 when a
target is missed), POLLEN_KEEP_TMP=1 (keep the state, logs and config).
Exit status: 1 if the engine or the sandbox failed, or (strict) a target was
missed; 0 otherwise: the numbers are printed either way.
"""
import bisect
import collections
import datetime
import heapq
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SOURCE_ROOT = os.environ.get(
    "SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
import harness  # noqa: E402

POLLEN_BIN = os.environ.get("POLLEN_BIN", os.path.join(SOURCE_ROOT, "build", "pollen"))


def env_float(name, default):
    return float(os.environ.get(name, default))


CONTACTS = int(os.environ.get("POLLEN_DAY_CONTACTS", "100000"))
SPEEDUP = env_float("POLLEN_DAY_SPEEDUP", "1")
MINUTES = env_float("POLLEN_DAY_MINUTES", "20")
WARMUP = env_float("POLLEN_DAY_WARMUP_MINUTES", "5")
DRAIN = env_float("POLLEN_DAY_DRAIN_MINUTES", "3")
RATE_CONTACT_UPDATES = env_float("POLLEN_DAY_CONTACT_UPDATES", "1000")
RATE_TASK_CHANGES = env_float("POLLEN_DAY_TASK_CHANGES", "200")
RATE_NOTE_CHANGES = env_float("POLLEN_DAY_NOTE_CHANGES", "200")
RATE_CONTACT_DELETES = env_float("POLLEN_DAY_CONTACT_DELETES", "10")
RECONCILE_S = None  # parsed in main() from POLLEN_DAY_RECONCILE
CHILD_RECONCILE_S = None  # parsed in main() from POLLEN_DAY_CHILD_RECONCILE (the child's full rounds)
CHILD_BASELINE_WAIT_S = float(os.environ.get("POLLEN_DAY_CHILD_BASELINE_WAIT", "1800"))

TARGET_REQUESTS_PER_DAY = 10000
TARGET_P99_S = 120.0
CHILD_MIX = [("update", 45), ("complete", 20), ("create", 25), ("delete", 10)]
NOTE_MIX = [("update", 60), ("create", 30), ("delete", 10)]

LOG_LINE = re.compile(r"^\S+ (debug|info|warn|error) (?:\[([^\]]*)\] )?(.*)$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
BAD_KEY = re.compile(r":(\d+): unknown key '([^']+)'")


class DayError(Exception):
    pass


def log(msg):
    print("day: " + msg, file=sys.stderr, flush=True)


def duration_s(text):
    m = DURATION.match(text.strip())
    if not m:
        raise DayError("not a duration: %r" % text)
    return float(m.group(1)) * UNIT_S[m.group(2)]


def scaled(value):
    """A duration value divided by SPEEDUP (as milliseconds); other values unchanged."""
    if SPEEDUP == 1 or not DURATION.match(value.strip()):
        return value
    return "%dms" % max(1, round(duration_s(value) * 1000 / SPEEDUP))


def extra_keys(name):
    """[(key, value)] from an environment variable: `key = value` separated by ';' or newlines."""
    out = []
    for part in re.split(r"[;\n]", os.environ.get(name, "")):
        if part.strip():
            if "=" not in part:
                raise DayError("%s: %r is not `key = value`" % (name, part.strip()))
            k, v = part.split("=", 1)
            out.append((k.strip(), scaled(v.strip())))
    return out


def iso_epoch(text):
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]


def endpoint_class(req):
    """(class, detail) of a request-log entry: contacts / tasks / notes / other."""
    path, op = req["path"], req.get("operation") or ""
    if re.match(r"^/locations/[^/]+/tasks/search$", path):
        body = req.get("body") if isinstance(req.get("body"), dict) else {}
        return "tasks", "search (batch of changed contacts)" if body.get("contactId") else "search (full round)"
    if "/tasks" in path:
        return "tasks", op or "tasks"
    if "/notes" in path:
        return "notes", op or "notes"
    if path == "/contacts/search" and req["method"] == "POST":
        body = req.get("body") if isinstance(req.get("body"), dict) else {}
        incremental = "dateUpdated" in json.dumps(body.get("filters") or [])
        return "contacts", "search (incremental)" if incremental else "search (full)"
    if path.startswith("/contacts"):
        return "contacts", op or path
    return "other", op or path


class Collector(threading.Thread):
    """Copies the sandbox's request log every few seconds (it keeps 200,000 entries) into compact rows."""

    def __init__(self, sandbox):
        super().__init__(daemon=True)
        self.sandbox, self.seq, self.stop_ev = sandbox, 0, threading.Event()
        self.rows = []            # (time, class, detail, status)
        self.first_child_read = {}  # ("tasks"|"notes", contactId) -> first read time
        self.error = None

    def fetch(self):
        out = self.sandbox.control("GET", "/_control/requests?since=%d" % self.seq)
        for r in out["requests"]:
            self.seq = max(self.seq, r["seq"])
            cls, detail = endpoint_class(r)
            self.rows.append((r["time"], cls, detail, r["status"]))
            m = re.match(r"^/contacts/([A-Za-z0-9]+)/(tasks|notes)$", r["path"])
            if m and r["method"] == "GET" and r["status"] == 200:
                self.first_child_read.setdefault((m.group(2), m.group(1)), r["time"])
            m = re.match(r"^/locations/[^/]+/(tasks|notes)/search$", r["path"])
            body = r.get("body") if isinstance(r.get("body"), dict) else {}
            if m and r["status"] == 200 and isinstance(body.get("contactId"), list):
                for cid in body["contactId"]:  # a batch read of these contacts' children
                    self.first_child_read.setdefault((m.group(1), cid), r["time"])
            elif m and r["status"] == 200:  # a location-wide listing reads every contact's children
                self.first_child_read.setdefault((m.group(1), "*"), r["time"])

    def run(self):
        while not self.stop_ev.wait(5):
            try:
                self.fetch()
            except Exception as e:  # noqa: BLE001 (reported at the end)
                self.error = e

    def finish(self):
        self.stop_ev.set()
        self.join()
        self.fetch()


class Day:
    def __init__(self, watch):
        self.watch = watch          # "tasks" or "notes"
        self.dir = tempfile.mkdtemp(prefix="pollen-day-%s-" % watch)
        self.env = dict(os.environ, POLLEN_TEST_TOKEN=harness.TOKEN)
        self.env.pop("POLLEN_FAILPOINT", None)
        self.log_path = os.path.join(self.dir, "engine.log")
        self.config = os.path.join(self.dir, "pollen.ini")
        self.sandbox = self.engine = self.collector = None
        self.skipped_keys = []

    def close(self):
        if self.engine is not None and self.engine.poll() is None:
            self.engine.kill()
            self.engine.wait()
        if self.sandbox is not None:
            self.sandbox.stop()
        if os.environ.get("POLLEN_KEEP_TMP"):
            log("kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- set-up --------------------------------------------------------------------------------

    def control(self, method, path, body=None, timeout=900):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.sandbox.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def start_sandbox(self):
        t0 = time.monotonic()
        self.sandbox = harness.Sandbox(self.dir, "--rate-limit", "0", "--daily-limit", "0")
        self.control("POST", "/_control/seed", {"contacts": CONTACTS, "tasks_per_contact": 1,
                                                "notes_per_contact": 1, "seed": 1, "log": False})
        log("sandbox with %d contacts, %d tasks and %d notes up after %.1f s; state in %s"
            % (CONTACTS, CONTACTS, CONTACTS, time.monotonic() - t0, self.dir))

    def sections(self):
        every = scaled("1m")
        loc = [("id", harness.LOCATION_ID), ("token", "env:POLLEN_TEST_TOKEN")]
        if SPEEDUP != 1:
            if 9 * SPEEDUP > 100:
                log("warning: the budget is capped at 100 requests per 1 s (9 x speedup %.3g would be %d)"
                    % (SPEEDUP, round(9 * SPEEDUP)))
            loc += [("rate_limit", str(min(100, max(1, round(9 * SPEEDUP))))), ("rate_window", "1s"),
                    ("daily_limit", str(int(200000 * SPEEDUP)))]
        loc += extra_keys("POLLEN_DAY_LOCATION_KEYS")
        contacts = [("use", "contacts.search"), ("every", every)] + extra_keys("POLLEN_DAY_EXTRA_TRIGGER_KEYS")
        if self.watch == "tasks":
            child = extra_keys("POLLEN_DAY_TASK_TRIGGER") or [("use", "contacts.tasks"), ("for_each", "contacts")]
            child += [("every", every)] + extra_keys("POLLEN_DAY_TASK_TRIGGER_KEYS")
        else:
            child = [("use", "contacts.notes"), ("for_each", "contacts"), ("every", every)]
            child += extra_keys("POLLEN_DAY_NOTE_TRIGGER_KEYS")
        return [("engine", [("state_dir", "state"), ("min_interval", "1s"), ("log_level", "info")]),
                ("api", [("base_url", self.sandbox.url), ("timeout", "60s")]),
                ("location main", loc), ("trigger contacts", contacts), ("trigger " + self.watch, child)]

    def write_config(self):
        """Writes pollen.ini; drops (with a warning) each key `pollen check` calls unknown."""
        sections, optional = self.sections(), set()
        for name in ("POLLEN_DAY_EXTRA_TRIGGER_KEYS", "POLLEN_DAY_TASK_TRIGGER_KEYS", "POLLEN_DAY_NOTE_TRIGGER_KEYS",
                     "POLLEN_DAY_LOCATION_KEYS"):
            optional.update(k for k, _ in extra_keys(name))
        for _ in range(20):
            lines, where = [], {}
            for head, keys in sections:
                lines.append("[%s]" % head)
                for k, v in keys:
                    lines.append("%s = %s" % (k, v))
                    where[len(lines)] = (head, k)
                lines.append("")
            with open(self.config, "w") as f:
                f.write("\n".join(lines))
            proc = subprocess.run([POLLEN_BIN, "check", "-c", self.config], capture_output=True, text=True,
                                  env=self.env, timeout=120)
            if proc.returncode == 0:
                return
            m = BAD_KEY.search(proc.stderr)
            bad = where.get(int(m.group(1))) if m else None
            if bad is None or bad[1] not in optional:
                raise DayError("pollen check rejects the configuration:\n%s%s" % (proc.stdout, proc.stderr))
            log("warning: this pollen does not know `%s` in [%s]: left out" % (bad[1], bad[0]))
            self.skipped_keys.append("[%s] %s" % bad)
            sections = [(h, [(k, v) for k, v in keys if (h, k) != bad]) for h, keys in sections]
        raise DayError("pollen check keeps failing")

    def start_engine(self):
        self.logf = open(self.log_path, "ab")
        self.engine = subprocess.Popen([POLLEN_BIN, "run", "-c", self.config], env=self.env,
                                       stdout=self.logf, stderr=subprocess.STDOUT)

    def engine_lines(self):
        with open(self.log_path, errors="replace") as f:
            return f.read().splitlines()

    def wait_baseline(self):
        """Waits until the contacts trigger has recorded its baseline; returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            if self.engine.poll() is not None:
                raise DayError("the engine exited %d before its baseline:\n%s"
                               % (self.engine.returncode, "\n".join(self.engine_lines()[-30:])))
            for line in self.engine_lines():
                m = LOG_LINE.match(line)
                if m and (m.group(2) or "").startswith("trigger:contacts") and (
                        m.group(3).startswith("baseline recorded") or re.match(r"cycle \d+:", m.group(3))):
                    return time.monotonic() - t0
            if time.monotonic() - t0 > 3600:
                raise DayError("no baseline of the contacts trigger after an hour")
            time.sleep(2)

    def wait_child_baseline(self):
        """Waits (at most CHILD_BASELINE_WAIT_S) until the child trigger's first full round,
        its baseline, is complete; returns the seconds it took, or None when it was not."""
        t0 = time.monotonic()
        rx = re.compile(r"sweep round 1 complete")
        while time.monotonic() - t0 <= CHILD_BASELINE_WAIT_S:
            if self.engine.poll() is not None:
                raise DayError("the engine exited %d before its baseline" % self.engine.returncode)
            for line in self.engine_lines():
                m = LOG_LINE.match(line)
                if m and (m.group(2) or "").startswith("trigger:" + self.watch) and rx.match(m.group(3)):
                    return time.monotonic() - t0
            time.sleep(2)
        return None

    # --- the changes ---------------------------------------------------------------------------

    def pools(self, hours):
        """Distinct records to change: contacts to update/delete, children to change, contacts to give one."""
        n_upd = int(RATE_CONTACT_UPDATES * hours) + 10
        n_del = int(RATE_CONTACT_DELETES * hours) + 5
        rate_child = RATE_TASK_CHANGES if self.watch == "tasks" else RATE_NOTE_CHANGES
        n_child = int(rate_child * hours * 1.3) + 20  # completions of completed tasks are retried
        contacts = self.control("GET", "/_control/ids?kind=contact&limit=%d&seed=day-contacts"
                                % (n_upd + n_del + n_child))["ids"]
        kind = "task" if self.watch == "tasks" else "note"
        taken = set(contacts[:n_upd + n_del])
        children = [c for c in self.control("GET", "/_control/ids?kind=%s&limit=%d&seed=day-children"
                                            % (kind, n_child + len(taken) + 10))["ids"]
                    if c["contactId"] not in taken][:n_child]
        used = taken | {c["contactId"] for c in children}
        fresh = [c for c in contacts[n_upd + n_del:] if c not in used]
        return {"update": collections.deque(contacts[:n_upd]), "delete": collections.deque(contacts[n_upd:n_upd + n_del]),
                "child": collections.deque(children), "parent": collections.deque(fresh)}

    def child_op(self, i, pools):
        kind = "task" if self.watch == "tasks" else "note"
        mix = CHILD_MIX if kind == "task" else NOTE_MIX
        total = sum(w for _, w in mix)
        slot, verb = (i * 37) % total, None  # a fixed interleaving of the mix
        for v, w in mix:
            if slot < w:
                verb = v
                break
            slot -= w
        if verb == "create":
            fields = {"title": "day %d" % i} if kind == "task" else {"body": "day %d" % i}
            return {"op": "create", "kind": kind, "contactId": pools["parent"].popleft(), "fields": fields}
        c = pools["child"].popleft()
        op = {"op": verb, "kind": kind, "id": c["id"], "contactId": c["contactId"]}
        if verb == "update":
            op["fields"] = {"title": "day %d" % i} if kind == "task" else {"body": "day %d" % i}
        return op

    def change_loop(self, real_seconds):
        """Applies the changes at their pace for real_seconds; returns the number of mutate calls."""
        hours = real_seconds * SPEEDUP / 3600.0
        pools = self.pools(hours)
        rate_child = RATE_TASK_CHANGES if self.watch == "tasks" else RATE_NOTE_CHANGES
        streams = [(s, 3600.0 / (r * SPEEDUP)) for s, r in
                   (("update", RATE_CONTACT_UPDATES), ("child", rate_child), ("delete", RATE_CONTACT_DELETES)) if r > 0]
        t0 = time.monotonic()
        heap = [(period / 2, name, period) for name, period in streams]
        heapq.heapify(heap)
        counts = collections.Counter()
        while heap:
            due, name, period = heapq.heappop(heap)
            if due >= real_seconds:
                continue
            delay = t0 + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self.engine.poll() is not None:
                raise DayError("the engine exited %d during the run" % self.engine.returncode)
            if name == "update":
                op = {"op": "update", "kind": "contact", "id": pools["update"].popleft(),
                      "fields": {"firstName": "Day%d" % counts[name]}}
            elif name == "delete":
                op = {"op": "delete", "kind": "contact", "id": pools["delete"].popleft()}
            else:
                op = self.child_op(counts[name], pools)
            # Completing a task that is already completed changes nothing: take the next one.
            for _ in range(10):
                if self.control("POST", "/_control/mutate", {"ops": [op]})["changes"] or op["op"] != "complete":
                    break
                op = self.child_op(counts[name], pools)
            counts[name] += 1
            heapq.heappush(heap, (due + period, name, period))
        return counts

    # --- the run -------------------------------------------------------------------------------

    def run(self):
        self.start_sandbox()
        self.write_config()
        self.collector = Collector(self.sandbox)
        self.collector.start()
        t_engine = time.time()
        self.start_engine()
        base_s = self.wait_baseline()
        t_base = time.time()
        child_s = self.wait_child_baseline()
        t_child = time.time()
        self.child_baseline = (child_s, t_base, t_child)
        log("%s run: the %s trigger's first full round %s" % (
            self.watch, self.watch, "took %.0f s more" % child_s if child_s is not None else
            "was not complete after %.0f s: changing anyway" % CHILD_BASELINE_WAIT_S))
        log("%s run: the contacts baseline took %.0f s; changing for %g simulated minutes (%.0f s real), "
            "speedup %g" % (self.watch, base_s, MINUTES, MINUTES * 60 / SPEEDUP, SPEEDUP))
        seq0 = self.control("GET", "/_control/changes?since=%d" % 10 ** 12)["last_seq"]
        t_start = time.time()
        counts = self.change_loop(MINUTES * 60 / SPEEDUP)
        t_end = time.time()
        log("changes applied: %s; draining %g simulated minutes" % (dict(counts), DRAIN))
        time.sleep(DRAIN * 60 / SPEEDUP)
        if self.engine.poll() is not None:
            raise DayError("the engine exited %d during the drain" % self.engine.returncode)
        self.engine.send_signal(signal.SIGTERM)
        rc = self.engine.wait(120)
        self.collector.finish()
        if self.collector.error is not None:
            log("warning: a request-log fetch failed once: %s" % self.collector.error)
        changes = self.control("GET", "/_control/changes?since=%d" % seq0)["changes"]
        events = self.events()
        errors = [ln for ln in self.engine_lines() if LOG_LINE.match(ln) and LOG_LINE.match(ln).group(1) == "error"]
        return self.analyse(t_engine, t_base, t_start, t_end, changes, events, rc, errors)

    def events(self):
        proc = subprocess.run([POLLEN_BIN, "tail", "-c", self.config], capture_output=True, text=True,
                              env=self.env, timeout=600)
        if proc.returncode != 0:
            raise DayError("pollen tail exited %d: %s" % (proc.returncode, proc.stderr[-2000:]))
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def analyse(self, t_engine, t_base, t_start, t_end, changes, events, rc, errors):
        rows = self.collector.rows
        times = [r[0] for r in rows]
        w0, w1 = t_start + WARMUP * 60 / SPEEDUP, t_end
        if w1 - w0 <= 0:
            raise DayError("no steady-state window: POLLEN_DAY_MINUTES must exceed POLLEN_DAY_WARMUP_MINUTES")
        window = rows[bisect.bisect_left(times, w0):bisect.bisect_left(times, w1)]
        sim_hours = (w1 - w0) * SPEEDUP / 3600.0
        by_class, by_detail = collections.Counter(), collections.Counter()
        for _, cls, detail, _ in window:
            by_class[cls] += 1
            by_detail[(cls, detail)] += 1
        baseline = rows[:bisect.bisect_left(times, t_base)]
        base_full = sum(1 for r in baseline if r[1] == "contacts" and r[2] == "search (full)")
        per_day = {cls: n / sim_hours * 24 for cls, n in by_class.items()}
        full_day = by_detail[("contacts", "search (full)")] / sim_hours * 24
        reconcile_day = base_full * 86400.0 / RECONCILE_S
        reconcile_add = max(0.0, reconcile_day - full_day)
        per_day["contacts"] = per_day.get("contacts", 0) + reconcile_add
        # The child's full rounds run once per its reconcile (a day by default): the pages
        # of its first one (before the window) once a day, not the window's rate.
        child_s, t_cb0, t_cb1 = self.child_baseline
        child_rows = rows[bisect.bisect_left(times, t_cb0):bisect.bisect_left(times, t_cb1)]
        round_pages = sum(1 for r in child_rows if r[2] == "search (full round)")
        window_round = by_detail[("tasks", "search (full round)")] / sim_hours * 24
        round_add = round_pages * 86400.0 / CHILD_RECONCILE_S if child_s is not None else 0.0
        if "tasks" in per_day or round_add:
            per_day["tasks"] = per_day.get("tasks", 0) - window_round + round_add

        lat, missed, extra, dup = self.match(changes, events)
        res = {"watch": self.watch, "contacts": CONTACTS, "speedup": SPEEDUP, "minutes": MINUTES,
               "warmup_minutes": WARMUP, "drain_minutes": DRAIN, "window_sim_hours": sim_hours,
               "skipped_keys": self.skipped_keys, "engine_exit": rc, "engine_errors": errors[:20],
               "baseline_seconds": t_base - t_engine, "baseline_requests": len(baseline),
               "baseline_full_search_pages": base_full,
               "requests_window": dict(by_class), "requests_by_detail": {"%s: %s" % k: v for k, v in by_detail.items()},
               "requests_per_day": per_day, "reconcile_added_per_day": reconcile_add,
               "child_baseline_seconds": child_s, "child_round_pages": round_pages,
               "child_round_added_per_day": round_add, "child_round_window_per_day": window_round,
               "changes": len(changes), "events": len(events), "latency_s": lat,
               "missed": missed, "extra": extra, "duplicates": dup}
        self.report(res)
        return res

    def match(self, changes, events):
        """Pairs changes with events by (trigger, type, record id) in time order.
        Returns (latencies by class, missed, extra, duplicates)."""
        trig = {"contact": "contacts", "task": "tasks", "note": "notes"}
        expected = collections.defaultdict(list)
        for c in changes:
            if c["kind"] in trig:
                expected[(trig[c["kind"]], c["op"], c["id"])].append(c)
        got = collections.defaultdict(list)
        for e in events:
            if e.get("type") in ("created", "updated", "deleted"):
                got[(e["trigger"], e["type"], e["record_id"])].append(e)
        lat = collections.defaultdict(list)
        missed = collections.Counter()
        dup = collections.Counter()
        first_read = self.collector.first_child_read
        for key, cs in expected.items():
            evs = sorted(got.get(key, []), key=lambda e: e["seq"])
            trigger, op, _ = key
            cls = trigger + (":deleted" if op == "deleted" else "")
            for i, c in enumerate(sorted(cs, key=lambda c: c["seq"])):
                if i < len(evs):
                    lat[cls].append((iso_epoch(evs[i]["time"]) - c["time"]) * SPEEDUP)
                    continue
                if trigger in ("tasks", "notes"):
                    seen = [t for t in (first_read.get((trigger, c["record"].get("contactId") or c.get("contactId"))),
                                        first_read.get((trigger, "*"))) if t is not None]
                    if not seen or min(seen) > c["time"]:
                        missed[cls + " (contact's %s not read before the change)" % trigger] += 1
                        continue
                missed[cls] += 1
            if len(evs) > len(cs):
                dup[cls] += len(evs) - len(cs)
        extra = collections.Counter()
        for key, evs in got.items():
            if key not in expected:
                extra["%s:%s" % (key[0], key[1])] += len(evs)
        out = {}
        for cls, v in lat.items():
            out[cls] = {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
        return out, dict(missed), dict(extra), dict(dup)

    def report(self, r):
        pd = r["requests_per_day"]
        lines = ["", "pollen day in the life (%s run): %d contacts, 1 task and 1 note each; every = 1m; speedup %g; "
                 "steady-state window %.2f simulated h (after %g min of warm-up)"
                 % (r["watch"], r["contacts"], r["speedup"], r["window_sim_hours"], r["warmup_minutes"]),
                 "baseline: %d requests (%d full search pages) in %.0f s" %
                 (r["baseline_requests"], r["baseline_full_search_pages"], r["baseline_seconds"])]
        if r["skipped_keys"]:
            lines.append("keys this pollen rejected (left out): " + ", ".join(r["skipped_keys"]))
        row = "  %-40s %10s %12s"
        lines += ["", row % ("requests by endpoint", "per hour", "per 24 h"), row % ("-" * 40, "-" * 10, "-" * 12)]
        for (cls, detail), n in sorted(((tuple(k.split(": ", 1)), v) for k, v in r["requests_by_detail"].items())):
            lines.append(row % ("%s: %s" % (cls, detail), "%.0f" % (n / r["window_sim_hours"]),
                                "%.0f" % (n / r["window_sim_hours"] * 24)))
        if r["reconcile_added_per_day"] > 0:
            lines.append(row % ("contacts: reconcile estimate (added)", "",
                                "%.0f" % r["reconcile_added_per_day"]))
            lines.append("    (%d pages per full enumeration, every %s, POLLEN_DAY_RECONCILE; the window saw fewer)"
                         % (r["baseline_full_search_pages"], os.environ.get("POLLEN_DAY_RECONCILE", "1h")))
        if r["child_baseline_seconds"] is not None:
            lines.append(row % ("tasks: full rounds (added, once a day)", "",
                                "%.0f" % r["child_round_added_per_day"]))
            lines.append("    (%d pages per full round of the child, every %s, POLLEN_DAY_CHILD_RECONCILE; "
                         "the first took %.0f s; %.0f/day of window full-round pages taken out)"
                         % (r["child_round_pages"], os.environ.get("POLLEN_DAY_CHILD_RECONCILE", "1d"),
                            r["child_baseline_seconds"], r["child_round_window_per_day"]))
        for cls in ("contacts", "tasks", "notes", "other"):
            if cls in pd:
                lines.append(row % ("= %s" % cls, "%.0f" % (pd[cls] / 24), "%.0f" % pd[cls]))
        watched = pd.get("contacts", 0) + pd.get("tasks", 0)
        lines += ["", "  %-40s %10s %10s %10s %6s" % ("latency change -> event (simulated s)", "p50", "p99", "max", "n")]
        for cls, v in sorted(r["latency_s"].items()):
            lines.append("  %-40s %10.1f %10.1f %10.1f %6d" % (cls, v["p50"], v["p99"], v["max"], v["n"]))
        lines.append("")
        lines.append("  sandbox changes %d, engine events %d" % (r["changes"], r["events"]))
        for name in ("missed", "duplicates", "extra"):
            lines.append("  %-10s %s" % (name, ", ".join("%s %d" % kv for kv in sorted(r[name].items())) or "none"))
        p99 = max([v["p99"] for cls, v in r["latency_s"].items() if not cls.endswith(":deleted")
                   and cls in ("contacts", r["watch"])] or [float("inf")])
        strict_missed = {k: v for k, v in r["missed"].items() if not k.endswith(":deleted")}
        exact = not strict_missed and not r["duplicates"] and not r["extra"]
        goals = [
            ("requests per day, contacts + %s" % r["watch"] if r["watch"] == "tasks" else
             "requests per day, contacts (notes apart: %.0f)" % pd.get("notes", 0),
             watched if r["watch"] == "tasks" else pd.get("contacts", 0), "<= %d" % TARGET_REQUESTS_PER_DAY,
             (watched if r["watch"] == "tasks" else pd.get("contacts", 0)) <= TARGET_REQUESTS_PER_DAY),
            ("p99 latency, contacts and %s (s)" % r["watch"], p99, "<= %d" % TARGET_P99_S, p99 <= TARGET_P99_S),
            ("every change exactly once (deletions apart)", "yes" if exact else "no", "yes", exact),
        ]
        deleted = [v["max"] for cls, v in r["latency_s"].items() if cls.endswith(":deleted")]
        if deleted:
            goals.append(("deletions: max latency (s)", max(deleted), "<= reconcile %.0f" % RECONCILE_S,
                          max(deleted) <= RECONCILE_S))
        lines += ["", "  %-46s %12s %16s %s" % ("target (issue #12)", "measured", "target", "verdict")]
        for name, val, tgt, ok in goals:
            shown = "%.0f" % val if isinstance(val, float) else str(val)
            lines.append("  %-46s %12s %16s %s" % (name, shown, tgt, "met" if ok else "MISSED"))
        if r["engine_errors"]:
            lines.append("  engine ERROR lines: %d (first: %s)" % (len(r["engine_errors"]), r["engine_errors"][0]))
        r["targets_met"] = all(ok for *_, ok in goals)
        print("\n".join(lines), flush=True)


def main():
    global RECONCILE_S, CHILD_RECONCILE_S
    RECONCILE_S = duration_s(os.environ.get("POLLEN_DAY_RECONCILE", "1h"))
    CHILD_RECONCILE_S = duration_s(os.environ.get("POLLEN_DAY_CHILD_RECONCILE", "1d"))
    if not 0 < SPEEDUP <= 60:
        log("POLLEN_DAY_SPEEDUP must be in (0, 60]: `every` cannot go below 1 s")
        return 2
    results, status = [], 0
    notes = os.environ.get("POLLEN_DAY_NOTES", "0")
    watches = {"0": ["tasks"], "1": ["tasks", "notes"], "only": ["notes"]}.get(notes)
    if watches is None:
        log("POLLEN_DAY_NOTES must be 0, 1 or only")
        return 2
    for watch in watches:
        day = Day(watch)
        try:
            r = day.run()
            results.append(r)
            if r["engine_exit"] != 0 or r["engine_errors"]:
                status = 1
            if os.environ.get("POLLEN_DAY_STRICT") == "1" and not r["targets_met"]:
                status = 1
        except DayError as e:
            log("FAILED: %s" % e)
            status = 1
        finally:
            day.close()
    if os.environ.get("POLLEN_DAY_JSON"):
        with open(os.environ["POLLEN_DAY_JSON"], "w") as f:
            json.dump(results, f, indent=2)
    return status


if __name__ == "__main__":
    sys.exit(main())
