#!/usr/bin/env python3
"""nodered: pollen against Node-RED on the peers' job, CPU per no-change cycle.

The job: poll POST /contacts/search with pages of 500 over
POLLEN_NODERED_CONTACTS contacts (default 100000), diff each record against
the previous scan, and create a task for every new contact.

  Node-RED 4.x (installed from npm into POLLEN_NODERED_DIR, default
  ~/.cache/pollen-bench/node-red; never into the repository, not a dependency
  of pollen) runs tests/bench/nodered-flow.json: an `http in` POST /scan
  starts a scan, an `http request` node fetches each page, a JavaScript
  function node hashes each record (MD5 of its JSON without the volatile
  searchAfter cursor, Node's native crypto) into a Map and compares it with
  the previous scan's Map, loops to the next page, and at the last page sends
  one `http request` POST /contacts/{id}/tasks per new contact and answers
  the scan's summary.
  pollen runs `pollen run --once` on a contacts.search trigger with
  page_size 500 and reconcile = 0s (a full enumeration every cycle, the
  peers' job; + POLLEN_NODERED_POLLEN_KEYS, `key = value` separated by `;`;
  a key this pollen does not know fails the run) and a rule `on =
  contacts:created`, `do = contacts.tasks.create`.

Both first record a baseline (no task), then POLLEN_NODERED_CYCLES (3)
no-change cycles each, alternating (pollen, Node-RED) so that both see the same
machine load: CPU per cycle is user+sys from /proc/PID/stat of the Node-RED
process around its POST /scan, and from wait4 of `pollen run --once`. The
best (lowest) cycle of each counts. Finally 3 contacts are created and one
more cycle of each must create exactly 3 tasks (checked in the sandbox's
request log), so that both did the same job.

Prints a table and the ratio Node-RED CPU / pollen CPU (issue #12's target:
>= 5, pollen at least 5x cheaper).

Run by `meson test -C build --benchmark --suite nodered --verbose`, or:
  POLLEN_BIN=build/pollen python3 tests/bench/nodered.py
Environment: POLLEN_NODERED_CONTACTS, POLLEN_NODERED_CYCLES, POLLEN_NODERED_DIR,
POLLEN_NODERED_VERSION (npm spec, default node-red@4), POLLEN_NODERED_POLLEN_KEYS,
POLLEN_NODERED_STRICT=1 (exit 1 when the target is missed), POLLEN_NODERED_JSON=FILE,
POLLEN_KEEP_TMP=1.
Exit status: 77 (meson's skip) when node/npm are missing or the install
fails (npm unreachable); 1 if a run failed or the jobs disagree (or, strict,
the target is missed); 0 otherwise.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("SOURCE_ROOT", os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from bench_poll import spawn_measured  # noqa: E402

POLLEN_BIN = os.environ.get("POLLEN_BIN", os.path.join(SOURCE_ROOT, "build", "pollen"))
CONTACTS = int(os.environ.get("POLLEN_NODERED_CONTACTS", "100000"))
CYCLES = int(os.environ.get("POLLEN_NODERED_CYCLES", "3"))
CACHE = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
NR_DIR = os.environ.get("POLLEN_NODERED_DIR", os.path.join(CACHE, "pollen-bench", "node-red"))
NR_SPEC = os.environ.get("POLLEN_NODERED_VERSION", "node-red@4")
FLOW = os.path.join(HERE, "nodered-flow.json")
NEW_CONTACTS = 3
TARGET_RATIO = 5.0
SKIP = 77

CONFIG = """[engine]
state_dir = state
min_interval = 1s
log_level = info

[api]
base_url = {url}
timeout = 60s

[location main]
id = {location}
token = env:POLLEN_TEST_TOKEN

[trigger contacts]
use = contacts.search
every = 1m
page_size = 500
reconcile = 0s
{extra}
[rule welcome]
on = contacts:created
do = contacts.tasks.create
contactId = {{{{record.id}}}}
title = Welcome
dueDate = {{{{now + 1d}}}}
completed = false
"""

SETTINGS = """module.exports = {
    uiHost: "127.0.0.1",
    uiPort: %d,
    userDir: %s,
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    functionGlobalContext: { crypto: require("crypto") },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    telemetry: { enabled: false },
};
"""


class BenchError(Exception):
    pass


class Skip(Exception):
    pass


def log(msg):
    print("nodered: " + msg, file=sys.stderr, flush=True)


def install_nodered():
    """Path of red.js, installing Node-RED into NR_DIR first when needed (Skip when impossible)."""
    red = os.path.join(NR_DIR, "node_modules", "node-red", "red.js")
    if os.path.exists(red):
        return red
    if not shutil.which("node") or not shutil.which("npm"):
        raise Skip("node and npm are needed to install Node-RED (apt-get install nodejs npm)")
    os.makedirs(NR_DIR, exist_ok=True)
    log("installing %s into %s (npm)" % (NR_SPEC, NR_DIR))
    proc = subprocess.run(["npm", "install", "--prefix", NR_DIR, "--no-audit", "--no-fund", NR_SPEC],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not os.path.exists(red):
        raise Skip("npm install %s failed (is the npm registry reachable?):\n%s" % (NR_SPEC, proc.stderr[-1500:]))
    return red


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """user + sys CPU seconds of a running process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[11]) / tick, int(fields[12]) / tick


def http_json(method, url, body=None, timeout=1800):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip() else None


class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pollen-nodered-")
        self.env = dict(os.environ, POLLEN_TEST_TOKEN=harness.TOKEN)
        self.env.pop("POLLEN_FAILPOINT", None)
        self.sandbox = self.nodered = None
        self.log = os.path.join(self.dir, "engine.log")

    def close(self):
        if self.nodered is not None and self.nodered.poll() is None:
            self.nodered.send_signal(signal.SIGTERM)
            try:
                self.nodered.wait(20)
            except subprocess.TimeoutExpired:
                self.nodered.kill()
                self.nodered.wait()
        if self.sandbox is not None:
            self.sandbox.stop()
        if os.environ.get("POLLEN_KEEP_TMP"):
            log("kept " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start_nodered(self, red):
        user_dir = os.path.join(self.dir, "node-red")
        os.makedirs(user_dir)
        with open(FLOW) as f:
            flow = f.read()
        for k, v in (("@SANDBOX_URL@", self.sandbox.url), ("@TOKEN@", harness.TOKEN),
                     ("@LOCATION@", harness.LOCATION_ID)):
            flow = flow.replace(k, v)
        with open(os.path.join(user_dir, "flows.json"), "w") as f:
            f.write(flow)
        self.nr_port = free_port()
        settings = os.path.join(user_dir, "settings.js")
        with open(settings, "w") as f:
            f.write(SETTINGS % (self.nr_port, json.dumps(user_dir)))
        self.nr_log = open(os.path.join(self.dir, "node-red.log"), "w")
        self.nodered = subprocess.Popen(["node", red, "--settings", settings, "--userDir", user_dir,
                                         "--no-telemetry"], stdout=self.nr_log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/ready" % self.nr_port, timeout=5).read()
                break
            except OSError:
                if self.nodered.poll() is not None or time.time() > deadline:
                    raise BenchError("Node-RED did not start:\n" + open(self.nr_log.name).read()[-3000:])
                time.sleep(0.5)
        version = json.load(open(os.path.join(os.path.dirname(red), "package.json")))["version"]
        log("Node-RED %s (node %s) up on port %d" % (version, subprocess.run(
            ["node", "--version"], capture_output=True, text=True).stdout.strip(), self.nr_port))
        return version

    def nodered_cycle(self, label):
        before = proc_cpu(self.nodered.pid)
        out = http_json("POST", "http://127.0.0.1:%d/scan" % self.nr_port, {})
        after = proc_cpu(self.nodered.pid)
        if not out or out.get("records") is None:
            raise BenchError("%s: the Node-RED scan failed: %s" % (label, out))
        m = {"cpu": after[0] - before[0], "user": after[1] - before[1], "sys": after[2] - before[2],
             "pages": out["pages"], "records": out["records"], "changed": out["changed"], "created": out["created"]}
        self.show("Node-RED " + label, m)
        return m

    def pollen_cycle(self, label):
        seq = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        m = spawn_measured([POLLEN_BIN, "run", "-c", self.config, "--once"], self.env, self.log)
        if m["rc"] != 0:
            raise BenchError("%s: pollen run --once exited %d:\n%s"
                             % (label, m["rc"], open(self.log, errors="replace").read()[-3000:]))
        reqs = self.sandbox.requests(seq)
        m["pages"] = sum(1 for r in reqs if r["path"] == "/contacts/search")
        self.show("pollen " + label, m)
        return m

    @staticmethod
    def show(label, m):
        log("  %-34s %7.3f s CPU (user %.3f sys %.3f) %4d search pages"
            % (label, m["cpu"], m["user"], m["sys"], m["pages"]))

    def task_posts(self, since):
        return sorted(r["path"] for r in self.sandbox.requests(since)
                      if r["method"] == "POST" and r["path"].endswith("/tasks"))

    def run(self):
        red = install_nodered()
        t0 = time.monotonic()
        self.sandbox = harness.Sandbox(self.dir, "--rate-limit", "0", "--daily-limit", "0")
        self.sandbox.control("POST", "/_control/seed", {"contacts": CONTACTS, "tasks_per_contact": 0,
                                                        "notes_per_contact": 0, "seed": 1, "log": False})
        log("sandbox with %d contacts up after %.1f s; state in %s" % (CONTACTS, time.monotonic() - t0, self.dir))
        version = self.start_nodered(red)
        extra = "".join("%s\n" % p.strip() for p in os.environ.get("POLLEN_NODERED_POLLEN_KEYS", "").split(";")
                        if p.strip())
        self.config = os.path.join(self.dir, "pollen.ini")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(url=self.sandbox.url, location=harness.LOCATION_ID, extra=extra))

        self.pollen_cycle("baseline")
        base = self.nodered_cycle("baseline")
        if base["records"] != CONTACTS:
            raise BenchError("the Node-RED baseline saw %d records of %d" % (base["records"], CONTACTS))
        runs = {"pollen": [], "nodered": []}
        for i in range(CYCLES):
            runs["pollen"].append(self.pollen_cycle("no-change #%d" % (i + 1)))
            m = self.nodered_cycle("no-change #%d" % (i + 1))
            if m["created"] or m["changed"] or m["records"] != CONTACTS:
                raise BenchError("the Node-RED no-change scan found changes: %s" % m)
            runs["nodered"].append(m)

        seq = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        new = [c["id"] for c in self.sandbox.mutate([{"op": "create", "kind": "contact"}] * NEW_CONTACTS)]
        want = sorted("/contacts/%s/tasks" % cid for cid in new)
        self.pollen_cycle("after %d new contacts" % NEW_CONTACTS)
        got_pollen = self.task_posts(seq)
        seq = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        self.nodered_cycle("after %d new contacts" % NEW_CONTACTS)
        deadline = time.time() + 30
        while len(self.task_posts(seq)) < NEW_CONTACTS and time.time() < deadline:
            time.sleep(0.5)
        got_nodered = self.task_posts(seq)
        if got_pollen != want or got_nodered != want:
            raise BenchError("one task per new contact expected %s; pollen sent %s, Node-RED %s"
                             % (want, got_pollen, got_nodered))
        return self.report(version, runs)

    def report(self, version, runs):
        best = {k: min(v, key=lambda m: m["cpu"]) for k, v in runs.items()}
        ratio = best["nodered"]["cpu"] / best["pollen"]["cpu"] if best["pollen"]["cpu"] > 0 else float("inf")
        row = "  %-28s %10s %10s %10s %8s   %s"
        lines = ["", "pollen vs Node-RED %s: %d contacts, full scan with pages of 500, diff, a task per new contact"
                 % (version, CONTACTS), "",
                 row % ("no-change cycle", "best CPU s", "user s", "sys s", "pages", "all cycles (CPU s)"),
                 row % ("-" * 28, "-" * 10, "-" * 10, "-" * 10, "-" * 8, "-" * 20)]
        for name, key in (("pollen (run --once)", "pollen"), ("Node-RED (function node)", "nodered")):
            b = best[key]
            lines.append(row % (name, "%.3f" % b["cpu"], "%.3f" % b["user"], "%.3f" % b["sys"], b["pages"],
                                " ".join("%.3f" % m["cpu"] for m in runs[key])))
        ok = ratio >= TARGET_RATIO
        lines += ["", "  both created one task per new contact (%d) in the change cycle" % NEW_CONTACTS,
                  "  Node-RED CPU / pollen CPU = %.2f   target >= %.0f (issue #12): %s"
                  % (ratio, TARGET_RATIO, "met" if ok else "MISSED")]
        print("\n".join(lines), flush=True)
        if os.environ.get("POLLEN_NODERED_JSON"):
            with open(os.environ["POLLEN_NODERED_JSON"], "w") as f:
                json.dump({"nodered_version": version, "contacts": CONTACTS, "runs": runs, "ratio": ratio}, f, indent=2)
        return 1 if os.environ.get("POLLEN_NODERED_STRICT") == "1" and not ok else 0


def main():
    bench = Bench()
    try:
        return bench.run()
    except Skip as e:
        print("nodered: SKIPPED: %s" % e, file=sys.stderr)
        return SKIP
    except BenchError as e:
        print("nodered: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
