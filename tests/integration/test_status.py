"""`pollen status -c FILE [--json]`: what each trigger, location, the outbox
and the database are doing, read beside a running engine or without one.

- test_never_run: before any run (no state directory) every trigger reads
  "never run", exit 0, and status creates nothing; usage errors exit 2.
- test_for_each_child: a for_each child after its first round: idle, its
  rounds and when the last one ended (children keep no cycle record).
- test_after_run_once: after a baseline and a second --once run, the last
  cycle's records, events and requests match what happened (requests
  counted from the sandbox's request log, events from `tail`), the
  location's 24 h count is every request made, the event log's seqs match
  `tail`, exit 0; the text form says the same.
- test_beside_running_engine: while an engine runs, status says so (its
  pid), shows the next due time about one interval after the last cycle,
  shows "running" while a slow page is under way, and leaves the engine's
  lock alone (a second engine is still refused).
- test_failing_trigger: a 503 on every listing: the --once run fails,
  status exits 1 with "backing off" and the error with the API's traceId;
  a later good run clears it (exit 0, failures 0).
- test_stopped_by_auth: a refused token: "stopped by auth", exit 1.
- test_outbox_and_dead_letters: actions to a closed port: one rule retries
  (outbox retrying, its next attempt later), one gives up at once (dead
  letters); status counts both.
"""
import json
import os
import re
import socket
import subprocess
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
PEOPLE = "[trigger people]\nuse = contacts.search\nevery = 2s\npage_size = 10\nreconcile = 0s\n"


def iso_ms(s):
    import calendar
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac[:3])


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class StatusTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def status(self, config, *args, want=None):
        proc = self.pollen("status", "-c", config, *args, check=False)
        if want is not None:
            self.assertEqual(proc.returncode, want, proc.stdout + proc.stderr)
        return proc

    def status_json(self, config, want=None):
        proc = self.status(config, "--json", want=want)
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 1, proc.stdout)
        return json.loads(lines[0]), proc.returncode

    def trigger(self, doc, name="people"):
        return next(t for t in doc["triggers"] if t["name"] == name)

    def last_seq(self):
        return self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]

    def test_never_run(self):
        cfg = self.write_config(PEOPLE, location=FAST)
        doc, _ = self.status_json(cfg, want=0)
        t = self.trigger(doc)
        self.assertEqual(t["state"], "never run")
        self.assertIsNone(t["last_cycle"])
        self.assertFalse(t["failing"])
        self.assertEqual(doc["status"], "ok")
        self.assertFalse(doc["engine"]["running"])
        self.assertEqual(doc["locations"][0]["name"], "main")
        self.assertIsNone(doc["locations"][0]["as_of"])
        text = self.status(cfg, want=0).stdout
        self.assertIn("people (contacts.search on main, every 2s): never run", text)
        self.assertIn("nothing recorded yet", text)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")),
                         "status created the state directory")
        # Usage and configuration errors exit 2.
        self.assertEqual(self.pollen("status", check=False).returncode, 2)
        self.assertEqual(self.pollen("status", "-c", cfg, "--bogus", check=False).returncode, 2)
        self.assertEqual(self.pollen("status", "-c", cfg + ".missing", check=False).returncode, 2)

    def test_for_each_child(self):
        self.sandbox.seed(4, tasks=1, seed=8)
        cfg = self.write_config(PEOPLE + "\n[trigger tasks]\nuse = contacts.tasks\n"
                                "for_each = people\nevery = 1s\n", location=FAST)
        doc, _ = self.status_json(cfg, want=0)
        self.assertEqual(self.trigger(doc, "tasks")["state"], "never run")
        self.run_once(cfg)
        doc, _ = self.status_json(cfg, want=0)
        child = self.trigger(doc, "tasks")
        self.assertEqual(child["for_each"], "people")
        self.assertEqual(child["state"], "idle")
        self.assertGreaterEqual(child["cycles"], 1)
        self.assertIsNone(child["last_cycle"])
        self.assertIn("last full round ended", self.status(cfg, want=0).stdout)

    def test_after_run_once(self):
        self.sandbox.seed(25, seed=3)
        cfg = self.write_config(PEOPLE, location=FAST)
        seq0 = self.last_seq()
        self.run_once(cfg)
        made = len(self.sandbox.requests(seq0))
        doc, _ = self.status_json(cfg, want=0)
        t = self.trigger(doc)
        self.assertEqual(t["state"], "idle")
        c = t["last_cycle"]
        self.assertEqual((c["outcome"], c["baseline"], c["records"], c["events"], c["requests"]),
                         ("ok", True, 25, 0, made))
        self.assertIsNone(c["error"])
        self.assertIsNone(t["next_due"], "run --once schedules no next cycle")
        self.assertEqual(t["consecutive_failures"], 0)
        self.assertEqual(doc["locations"][0]["requests_24h"], made)
        self.assertEqual(doc["event_log"]["events"], 0)

        self.sandbox.mutate([{"kind": "contact", "op": "create"}] * 2)
        seq1 = self.last_seq()
        self.run_once(cfg)
        made2 = len(self.sandbox.requests(seq1))
        events = self.events(cfg)
        doc, _ = self.status_json(cfg, want=0)
        c = self.trigger(doc)["last_cycle"]
        self.assertEqual((c["outcome"], c["baseline"], c["records"], c["events"], c["requests"]),
                         ("ok", False, 27, len(events), made2))
        self.assertEqual(len(events), 2)
        self.assertEqual(doc["locations"][0]["requests_24h"], made + made2)
        self.assertEqual(doc["locations"][0]["limit_window"], 100)
        log = doc["event_log"]
        self.assertEqual((log["events"], log["oldest_seq"], log["newest_seq"]),
                         (2, events[0]["seq"], events[-1]["seq"]))
        self.assertGreater(log["bytes"], 0)
        self.assertLess(log["bytes"], doc["database"]["used_bytes"])
        self.assertGreater(doc["database"]["file_bytes"], 0)
        self.assertGreaterEqual(doc["database"]["max_bytes"], doc["database"]["map_bytes"])
        text = self.status(cfg, want=0).stdout
        self.assertRegex(text, rf"ok: 27 records, 2 events, {made2} requests")
        self.assertIn(f"{made + made2} in the last 24h", text)

    def test_beside_running_engine(self):
        self.sandbox.seed(15, seed=4)
        cfg = self.write_config(PEOPLE, location=FAST)
        self.start_engine(cfg)

        def cycled():
            doc, _ = self.status_json(cfg)
            t = self.trigger(doc)
            return doc if t["last_cycle"] and t["cycles"] >= 2 else None

        doc = self.wait_for(cycled, timeout=60, what="two cycles in status")
        self.assertTrue(doc["engine"]["running"])
        self.assertEqual(doc["engine"]["pid"], self.engine.pid)
        t = self.trigger(doc)
        self.assertIn(t["state"], ("idle", "running"))
        ended = iso_ms(t["last_ok"])
        due = iso_ms(t["next_due"])
        # every 2s from the cycle's start, plus up to 5% jitter
        self.assertGreater(due, ended)
        self.assertLessEqual(due - ended, 2100 + 200)

        # A slow page: status shows the cycle under way.
        self.sandbox.faults([{"kind": "delay", "ms": 4000, "method": "POST",
                              "path": "^/contacts/search$", "count": 1}])
        self.wait_for(lambda: self.trigger(self.status_json(cfg)[0])["state"] == "running",
                      timeout=30, interval=0.3, what='state "running"')
        # Status never takes the engine's lock: a second engine is still refused.
        second = self.pollen("run", "-c", cfg, "--once", check=False)
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertIsNone(self.engine.poll())
        self.assertEqual(self.stop_engine(), 0)
        doc, _ = self.status_json(cfg, want=0)
        self.assertFalse(doc["engine"]["running"])
        self.assertNotEqual(self.trigger(doc)["state"], "running")

    def test_failing_trigger(self):
        self.sandbox.seed(5, seed=5)
        cfg = self.write_config(PEOPLE, location=FAST)
        self.run_once(cfg)
        self.sandbox.faults([{"kind": "status", "status": 503, "path": "^/contacts/search$",
                              "window_s": 300}])
        seq = self.last_seq()
        proc = self.run_once(cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        made = len(self.sandbox.requests(seq))
        doc, rc = self.status_json(cfg, want=1)
        self.assertEqual(doc["status"], "failing")
        t = self.trigger(doc)
        self.assertEqual(t["state"], "backing off")
        self.assertTrue(t["failing"])
        self.assertEqual(t["consecutive_failures"], 1)
        c = t["last_cycle"]
        self.assertEqual((c["outcome"], c["requests"], c["records"]), ("failed", made, 0))
        self.assertRegex(c["error"], r"HTTP 503 traceId [0-9a-f-]{8,}")
        text = self.status(cfg, want=1).stdout
        self.assertRegex(text, r"people .*: backing off")
        self.assertRegex(text, r"error: gave up after \d+ attempts at page 1: POST /contacts/search: "
                               r"HTTP 503 traceId ")
        self.sandbox.clear_faults()
        self.run_once(cfg)
        doc, _ = self.status_json(cfg, want=0)
        t = self.trigger(doc)
        self.assertEqual((t["state"], t["consecutive_failures"], t["last_cycle"]["outcome"]),
                         ("idle", 0, "ok"))

    def test_stopped_by_auth(self):
        self.sandbox.seed(3, seed=6)
        cfg = self.write_config(PEOPLE, location=FAST)
        env = dict(self.env, POLLEN_TEST_TOKEN="pit-wrong-token-0000000000")
        self.pollen("run", "-c", cfg, "--once", check=False, env=env)
        doc, _ = self.status_json(cfg, want=1)
        t = self.trigger(doc)
        self.assertEqual(t["state"], "stopped by auth")
        self.assertEqual(t["last_cycle"]["outcome"], "auth")
        self.assertIn("the token was refused", t["last_cycle"]["error"])
        self.assertIn("stopped by auth", self.status(cfg, want=1).stdout)

    def test_outbox_and_dead_letters(self):
        self.sandbox.seed(2, seed=7)
        port = closed_port()
        rules = (f"[rule retry]\non = people:created\ndo = http\nurl = http://127.0.0.1:{port}/a\n"
                 "timeout = 1s\nbackoff = 1h\nbackoff_max = 2h\n\n"
                 f"[rule once]\non = people:created\ndo = http\nurl = http://127.0.0.1:{port}/b\n"
                 "timeout = 1s\nmax_attempts = 1\n")
        cfg = self.write_config(PEOPLE + "first_poll = emit\n\n" + rules, location=FAST)
        self.run_once(cfg, check=False)
        doc, _ = self.status_json(cfg, want=0)
        ob = doc["outbox"]
        self.assertEqual((ob["retrying"], ob["pending"], ob["in_flight"], ob["dead_letters"]),
                         (2, 0, 0, 2), ob)
        nxt = iso_ms(ob["next_attempt"])
        self.assertGreater(nxt, time.time() * 1000 + 30 * 60 * 1000)  # backoff 1h, jittered
        text = self.status(cfg, want=0).stdout
        self.assertRegex(text, r"outbox: 0 pending, 2 retrying \(next attempt .*\), 0 in flight; "
                               r"2 dead letters")


if __name__ == "__main__":
    harness.main()
