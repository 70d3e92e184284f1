#!/usr/bin/env python3
"""bench_poll: CPU time and peak RSS of `pollen run --once` on 100,000 contacts.

Starts the sandbox API (--rate-limit 0) seeded with POLLEN_BENCH_CONTACTS
contacts (default 100000, no tasks or notes) and a configuration with one
contacts.search trigger (page_size 500) on a location budget of 100
requests per 1 s, then measures, with os.wait4 on the child (user + sys CPU
seconds and ru_maxrss), three `pollen run --once` runs:

  (a) the first full poll: the silent baseline (must emit no event);
  (b) a no-change poll (must emit no event), POLLEN_BENCH_REPEAT times
      (default 3), each followed by a bare-parse run (below) so that the pair
      sees the same machine load; the pair with the median ratio counts;
  (c) a poll after 1% of the contacts changed (/_control/mutate, contact
      updates in batches of 100; must emit one `updated` per changed contact).

After the first (b) it replays the POST /contacts/search requests the engine
made (the exact bodies, from /_control/requests) with urllib, saves the
response bodies, and runs parse_only (tests/bench/parse_only.c) on them: the
CPU time of just cJSON-parsing (and freeing) those bytes, the floor of any
poll (the cheapest of POLLEN_BENCH_PASSES passes). It also samples the
child's RssAnon and RssFile from /proc: ru_maxrss counts the LMDB map's
file pages the process touched. It prints a table and checks two goals:

  no-change poll CPU / bare parse CPU <= 1.5
  peak RSS of every poll < 64 MB

Run by `meson test -C BUILD --benchmark --verbose`, or directly:
  POLLEN_BIN=build/pollen PARSE_ONLY=build/tests/bench/parse_only python3 tests/bench/bench_poll.py
Environment: POLLEN_BENCH_CONTACTS, POLLEN_BENCH_PASSES (parse_only passes,
default 3), POLLEN_BENCH_REPEAT, POLLEN_BENCH_STRICT=1 (exit 1 when a goal is missed),
POLLEN_BENCH_CALLGRIND=1 (also count the instructions of a no-change poll
and of the bare parse under valgrind --tool=callgrind: a ratio that other
load on the machine cannot skew; adds about 3 minutes; the .out files stay
with POLLEN_KEEP_TMP=1 for callgrind_annotate),
POLLEN_BENCH_JSON=FILE (also write the results as JSON), POLLEN_KEEP_TMP=1.
Exit status: 0, or 1 if a run failed, emitted unexpected events, or (strict)
missed a goal. Wall-clock time is never a result.
"""
import json
import os
import shutil
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
PARSE_ONLY = os.environ.get("PARSE_ONLY", os.path.join(os.path.dirname(POLLEN_BIN), "tests", "bench", "parse_only"))
CONTACTS = int(os.environ.get("POLLEN_BENCH_CONTACTS", "100000"))
PASSES = int(os.environ.get("POLLEN_BENCH_PASSES", "3"))
REPEAT = int(os.environ.get("POLLEN_BENCH_REPEAT", "3"))
PAGE_SIZE = 500
CHANGED = CONTACTS // 100
BATCH = 100
GOAL_RATIO = 1.5
GOAL_RSS_MB = 64

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
rate_limit = 100
rate_window = 1s

[trigger contacts]
use = contacts.search
every = 1s
page_size = {page}
"""


class BenchError(Exception):
    pass


def _sample_rss(pid, peak, stop):
    """Peak RssAnon / RssFile (kB) of a running process, sampled from /proc every 10 ms."""
    path = "/proc/%d/status" % pid
    while not stop.is_set():
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(("RssAnon:", "RssFile:")):
                        k, v = line.split(":")
                        peak[k] = max(peak.get(k, 0), int(v.split()[0]))
        except OSError:
            return
        stop.wait(0.01)


def spawn_measured(argv, env, log_path):
    """Runs argv to completion. Returns a dict: rc, cpu (user+sys s), user, sys, maxrss_mb
    (ru_maxrss), anon_mb and file_mb (sampled peaks of RssAnon and RssFile), minflt."""
    with open(log_path, "ab") as log:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, log.fileno(), 1), (os.POSIX_SPAWN_DUP2, log.fileno(), 2)])
        peak, stop = {}, threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(pid, peak, stop), daemon=True)
        sampler.start()
        try:
            _, status, ru = os.wait4(pid, 0)
        finally:
            stop.set()
            sampler.join()
    return {"rc": os.waitstatus_to_exitcode(status), "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
            "sys": ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024.0, "anon_mb": peak.get("RssAnon", 0) / 1024.0,
            "file_mb": peak.get("RssFile", 0) / 1024.0, "minflt": ru.ru_minflt}


class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pollen-bench-")
        self.sandbox = None
        self.env = dict(os.environ, POLLEN_TEST_TOKEN=harness.TOKEN)
        self.env.pop("POLLEN_FAILPOINT", None)
        self.log = os.path.join(self.dir, "engine.log")
        self.results = {"contacts": CONTACTS, "page_size": PAGE_SIZE, "phases": []}

    def close(self):
        if self.sandbox is not None:
            self.sandbox.stop()
        if os.environ.get("POLLEN_KEEP_TMP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def events(self):
        proc = subprocess.run([POLLEN_BIN, "tail", "-c", self.config], capture_output=True, text=True,
                              env=self.env, timeout=600)
        if proc.returncode != 0:
            raise BenchError("pollen tail exited %d: %s" % (proc.returncode, proc.stderr[-2000:]))
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def search_requests(self, since):
        reqs = self.sandbox.requests(since)
        return [r for r in reqs if r["method"] == "POST" and r["path"] == "/contacts/search"]

    def poll(self, label):
        """One measured `pollen run --once`; returns (its measurements, search requests, new events)."""
        before_events = len(self.events())
        req_seq = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        m = spawn_measured([POLLEN_BIN, "run", "-c", self.config, "--once"], self.env, self.log)
        if m["rc"] != 0:
            raise BenchError("%s: pollen run --once exited %d; log tail:\n%s"
                             % (label, m["rc"], open(self.log, errors="replace").read()[-3000:]))
        reqs = self.search_requests(req_seq)
        new_events = self.events()[before_events:]
        m.update({"phase": label, "requests": len(reqs), "events": len(new_events)})
        print("  %-34s %7.3f s CPU (user %.3f sys %.3f) maxrss %6.1f MB (anon %.1f, file %.1f) %4d requests %6d events"
              % (label, m["cpu"], m["user"], m["sys"], m["maxrss_mb"], m["anon_mb"], m["file_mb"], len(reqs),
                 len(new_events)), file=sys.stderr, flush=True)
        return m, reqs, new_events

    def replay(self, reqs):
        """POSTs the same search bodies and saves the response bytes; returns the file paths."""
        pages_dir = os.path.join(self.dir, "pages")
        os.makedirs(pages_dir, exist_ok=True)
        paths, records, total = [], 0, 0
        for i, r in enumerate(reqs):
            headers = {"Authorization": "Bearer " + harness.TOKEN, "Content-Type": "application/json",
                       "Version": r["headers"].get("Version", "2021-07-28")}
            req = urllib.request.Request(self.sandbox.url + "/contacts/search", method="POST",
                                         data=json.dumps(r["body"]).encode(), headers=headers)
            with urllib.request.urlopen(req, timeout=120) as resp:
                raw = resp.read()
            records += len(json.loads(raw)["contacts"])
            total += len(raw)
            path = os.path.join(pages_dir, "page-%04d.json" % i)
            with open(path, "wb") as f:
                f.write(raw)
            paths.append(path)
        if records != CONTACTS:
            raise BenchError("replayed %d pages with %d contacts, expected %d" % (len(paths), records, CONTACTS))
        self.results["pages"] = {"count": len(paths), "bytes": total}
        return paths

    def parse_only(self, paths):
        out_path = os.path.join(self.dir, "parse_only.out")
        m = spawn_measured([PARSE_ONLY, str(PASSES)] + paths, self.env, out_path)
        text = open(out_path).read()
        if m["rc"] != 0:
            raise BenchError("parse_only exited %d: %s" % (m["rc"], text[-2000:]))
        return json.loads(text.strip().splitlines()[-1])

    def callgrind(self, argv, name, toggles=()):
        """Instructions executed by argv under valgrind --tool=callgrind (all, or only inside
        the functions named in toggles). Deterministic, unlike CPU time on a shared machine."""
        out = os.path.join(self.dir, "callgrind.%s.out" % name)
        cmd = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
        cmd += ["--toggle-collect=" + t for t in toggles]
        m = spawn_measured(cmd + argv, self.env, os.path.join(self.dir, "callgrind.%s.log" % name))
        if m["rc"] != 0:
            raise BenchError("callgrind %s exited %d" % (name, m["rc"]))
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise BenchError("no instruction total in " + out)

    def run(self):
        t0 = time.monotonic()
        self.sandbox = harness.Sandbox(self.dir, "--rate-limit", "0", "--seed-contacts", str(CONTACTS),
                                       "--tasks-per-contact", "0", "--notes-per-contact", "0")
        print("bench_poll: sandbox with %d contacts up after %.1f s; state in %s"
              % (CONTACTS, time.monotonic() - t0, self.dir), file=sys.stderr, flush=True)
        self.config = os.path.join(self.dir, "pollen.ini")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(url=self.sandbox.url, location=harness.LOCATION_ID, page=PAGE_SIZE))
        pages = -(-CONTACTS // PAGE_SIZE)

        base, reqs, evs = self.poll("(a) first poll (baseline)")
        if evs:
            raise BenchError("the baseline emitted %d events" % len(evs))
        if len(reqs) < pages:
            raise BenchError("the baseline made %d search requests for %d pages" % (len(reqs), pages))

        # Each no-change poll is paired with a parse_only run right after it, so
        # that both see the same machine load; the ratio is the median pair's.
        runs, parses, paths = [], [], None
        for i in range(REPEAT):
            m, reqs, evs = self.poll("(b) no-change poll #%d" % (i + 1))
            if evs:
                raise BenchError("the no-change poll emitted %d events" % len(evs))
            if len(reqs) < pages:
                raise BenchError("the no-change poll made %d search requests for %d pages" % (len(reqs), pages))
            if paths is None:
                paths = self.replay(reqs)
            runs.append(m)
            parses.append(self.parse_only(paths))
            print("  %-34s %7.3f s CPU (cheapest of %d passes)" % ("    bare parse+free", parses[-1]["cpu_s_min"],
                                                                   PASSES), file=sys.stderr, flush=True)
        pairs = sorted(zip(runs, parses), key=lambda mp: mp[0]["cpu"] / mp[1]["cpu_s_min"])
        nochange, parse = pairs[len(pairs) // 2]
        nochange = dict(nochange, phase="(b) no-change poll (median pair)",
                        ratios=[m["cpu"] / p["cpu_s_min"] for m, p in zip(runs, parses)])
        nochange["maxrss_mb"] = max(m["maxrss_mb"] for m in runs)
        nochange["anon_mb"] = max(m["anon_mb"] for m in runs)
        nochange["file_mb"] = max(m["file_mb"] for m in runs)
        self.results["parse_only"] = parse

        changed = set()
        for start in range(0, CHANGED, BATCH):
            ops = [{"kind": "contact", "op": "update"}] * min(BATCH, CHANGED - start)
            for ch in self.sandbox.mutate(ops):
                if ch["kind"] == "contact" and ch["op"] == "updated":
                    changed.add(ch["id"])
        after, _, evs = self.poll("(c) poll after 1%% changed (%d)" % len(changed))
        updated = {e["record_id"] for e in evs if e["type"] == "updated" and e["trigger"] == "contacts"}
        if len(evs) != len(changed) or updated != changed:
            raise BenchError("after changing %d contacts the poll emitted %d events (%d distinct updated contacts, "
                             "%d of the changed ones)" % (len(changed), len(evs), len(updated), len(updated & changed)))

        self.results["phases"] = [base, nochange, after]
        if os.environ.get("POLLEN_BENCH_CALLGRIND") == "1":
            before_events = len(self.events())
            poll_ir = self.callgrind([POLLEN_BIN, "run", "-c", self.config, "--once"], "poll")
            if len(self.events()) != before_events:
                raise BenchError("the no-change poll under callgrind emitted events")
            parse_ir = self.callgrind([PARSE_ONLY, "1"] + paths, "parse",
                                      ("cJSON_ParseWithLength", "cJSON_Delete"))
            self.results["callgrind"] = {"poll_ir": poll_ir, "parse_ir": parse_ir}
            print("  %-34s %.3f G instructions; bare parse+free %.3f G"
                  % ("no-change poll under callgrind", poll_ir / 1e9, parse_ir / 1e9), file=sys.stderr, flush=True)
        return self.report(parse)

    def report(self, parse):
        ph = self.results["phases"]
        nochange = ph[1]
        floor = parse["cpu_s_min"]
        ratio = nochange["cpu"] / floor if floor > 0 else float("inf")
        peak = max(p["maxrss_mb"] for p in ph)
        anon = max(p["anon_mb"] for p in ph)
        ratio_ok, rss_ok = ratio <= GOAL_RATIO, peak < GOAL_RSS_MB
        self.results.update({"ratio_nochange_over_parse": ratio, "peak_rss_mb": peak, "peak_anon_mb": anon,
                             "goal_ratio_met": ratio_ok, "goal_rss_met": rss_ok})
        pg = self.results["pages"]
        row = "%-40s %8s %8s %8s %12s %10s %10s"
        lines = [
            "",
            "pollen poll benchmark: %d contacts, page_size %d, %d pages, %.1f MB of JSON per enumeration"
            % (CONTACTS, PAGE_SIZE, pg["count"], pg["bytes"] / 1e6),
            "",
            row % ("phase", "CPU s", "user s", "sys s", "peak RSS MB", "anon MB*", "file MB*"),
            row % ("-" * 40, "-" * 8, "-" * 8, "-" * 8, "-" * 12, "-" * 10, "-" * 10),
        ]
        for p in ph:
            lines.append("%-40s %8.3f %8.3f %8.3f %12.1f %10.1f %10.1f"
                         % (p["phase"], p["cpu"], p["user"], p["sys"], p["maxrss_mb"], p["anon_mb"], p["file_mb"]))
        lines.append("%-40s %8.3f %8s %8s %12s" % ("bare cJSON parse+free of (b)'s pages", floor, "", "",
                                                   "(%.1f)" % (parse["maxrss_kb"] / 1024.0)))
        lines.append("%-40s %8.3f" % ("  cJSON_Parse (mean of passes)", parse["parse_s_per_pass"]))
        lines.append("%-40s %8.3f" % ("  cJSON_Delete (mean of passes)", parse["free_s_per_pass"]))
        lines += [
            "",
            "(b): %d no-change polls, each followed by a bare parse (cheapest of %d passes; its RSS holds every"
            % (REPEAT, PASSES),
            "body in memory); shown: the pair with the median ratio (ratios %s)."
            % " ".join("%.2f" % x for x in nochange["ratios"]),
            "* anon/file: peaks of RssAnon/RssFile sampled every 10 ms (peak over all (b) runs);",
            "file pages are mostly the LMDB map (state/data.mdb), counted in ru_maxrss.",
            "",
            "no-change poll CPU / bare parse CPU = %.2f   goal <= %.1f: %s"
            % (ratio, GOAL_RATIO, "met" if ratio_ok else "MISSED"),
            "peak RSS (ru_maxrss) of the polls = %.1f MB   goal < %d MB: %s   (anonymous memory: %.1f MB)"
            % (peak, GOAL_RSS_MB, "met" if rss_ok else "MISSED", anon),
        ]
        cg = self.results.get("callgrind")
        if cg:
            self.results["ratio_instructions"] = cg["poll_ir"] / cg["parse_ir"]
            lines.append("instructions (callgrind, noise-free): no-change poll %.2f G / bare parse+free %.2f G = %.2f"
                         % (cg["poll_ir"] / 1e9, cg["parse_ir"] / 1e9, cg["poll_ir"] / cg["parse_ir"]))
        print("\n".join(lines), flush=True)
        if os.environ.get("POLLEN_BENCH_JSON"):
            with open(os.environ["POLLEN_BENCH_JSON"], "w") as f:
                json.dump(self.results, f, indent=2)
        strict = os.environ.get("POLLEN_BENCH_STRICT") == "1"
        return 1 if strict and not (ratio_ok and rss_ok) else 0


def main():
    bench = Bench()
    try:
        return bench.run()
    except BenchError as e:
        print("bench_poll: FAILED: %s" % e, file=sys.stderr)
        return 1
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
