"""Rules at run time: the outbox's retries (5xx, 429 and Retry-After), the
dead-letter store and `pollen dlq`, at-least-once delivery across kill -9 and
crash points (with a stable Idempotency-Key), and the generic `exec` and
`http` actions (argv without a shell, a minimal environment, no inherited
descriptors; headers, bodies, retries and dead letters)."""
import datetime
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TRIGGER = "[trigger c]\nuse = contacts.search\nevery = 1s\n"
TASKS_PATH = r"^/contacts/[A-Za-z0-9]{20}/tasks$"
KEY_RE = re.compile(r"^pollen-([0-9a-f]{32})-([0-9a-f]{12})$")


def iso_s(text):
    """Epoch seconds of an engine timestamp such as 2026-11-26T19:46:53.123Z."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def process_gone(pid):
    """The process exited (a zombie counts: it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def settled(events):
    """An action reached a final outcome (stop waiting; the test says which one it wanted)."""
    return any(e["type"] in ("action.succeeded", "action.dead") for e in events)


def task_rule(name="vip", title="Follow up with {{record.firstName | default \"them\"}}",
              extra="", when='record.tags contains "vip"'):
    return (f"[rule {name}]\non = c:created\nwhen = {when}\ndo = contacts.tasks.create\n"
            f"contactId = {{{{record.id}}}}\ntitle = {title}\ndueDate = {{{{now + 1d}}}}\n"
            f"completed = false\n{extra}")


class Receiver:
    """A tiny HTTP endpoint on 127.0.0.1 that records every delivery. `script`
    maps a path prefix to a list of statuses answered in turn (then 200)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.deliveries = []
        self.script = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                arrived = time.time()
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with outer.lock:
                    status = 200
                    for prefix, statuses in outer.script.items():
                        if self.path.startswith(prefix) and statuses:
                            status = statuses.pop(0)
                            break
                    outer.deliveries.append({
                        "time": arrived, "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "raw": raw, "body": body, "status": status})
                out = json.dumps({"ok": status < 300, "message": f"receiver says {status}"}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    self.close_connection = True  # the engine was killed mid-request

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = handle_any

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a killed engine resets its connections: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self):
        with self.lock:
            return list(self.deliveries)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class DispatchTest(harness.PollenTest):
    # No burst limit; a 1 s window, so that the X-RateLimit-Interval-Milliseconds
    # block after a 429 (1 s) is shorter than the Retry-After tested below.
    sandbox_args = ("--rate-limit", "0", "--rate-window-ms", "1000", "--recursion-limit", "6000")

    def setUp(self):
        super().setUp()
        self.sandbox.seed(5, seed=3)

    # -- helpers ---------------------------------------------------------------

    def baseline(self, rules):
        cfg = self.write_config(TRIGGER + rules, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "the first poll is a silent baseline")
        return cfg

    def create_contacts(self, specs):
        """Creates contacts (a list of field dicts); returns their ids in order."""
        changes = self.sandbox.mutate([{"op": "create", "kind": "contact", "fields": f} for f in specs])
        ids = [c["id"] for c in changes if c["kind"] == "contact" and c["op"] == "created"]
        self.assertEqual(len(ids), len(specs))
        return ids

    def actions(self, cfg, rule=None):
        return [e for e in self.events(cfg)
                if e["type"].startswith("action.") and (rule is None or e["rule"] == rule)]

    def created_event(self, cfg, record_id):
        found = [e for e in self.events(cfg) if e["type"] == "created" and e["record_id"] == record_id]
        self.assertEqual(len(found), 1, f"one created event for {record_id}")
        return found[0]

    def task_requests(self, contact_id=None):
        return [r for r in self.sandbox.requests()
                if r["method"] == "POST" and re.match(TASKS_PATH, r["path"])
                and (contact_id is None or r["path"] == f"/contacts/{contact_id}/tasks")]

    def tasks_of(self, contact_id):
        return self.sandbox.state().get("tasks", {}).get(contact_id, [])

    def run_until(self, cfg, predicate, timeout=60, what="condition", env=None):
        """Runs the engine until predicate(events) holds, then stops it (SIGTERM)."""
        self.start_engine(cfg, env=env)
        try:
            return self.wait_for(lambda: predicate(self.events(cfg)), timeout=timeout,
                                 interval=0.25, what=what)
        finally:
            rc = self.stop_engine()
            if rc != 0:
                self.fail(f"the engine exited {rc} on SIGTERM:\n{self.engine_log_text()[-3000:]}")

    def dlq_list(self, cfg):
        out = self.pollen("dlq", "list", "--json", "-c", cfg).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def receiver(self):
        r = Receiver()
        self.addCleanup(r.stop)
        return r

    @staticmethod
    def succeeded_sources(events):
        return [e["source"] for e in events if e["type"] == "action.succeeded"]

    # -- 1. retries --------------------------------------------------------------

    def test_5xx_is_retried_with_backoff_then_succeeds_once(self):
        cfg = self.baseline(task_rule(extra="backoff = 1s\nbackoff_max = 2s\n"))
        (cid,) = self.create_contacts([{"firstName": "Ann", "tags": ["vip"]}])
        self.sandbox.faults([{"kind": "status", "status": 503, "count": 3, "method": "POST",
                              "path": TASKS_PATH}])
        self.run_until(cfg, settled, what="action.succeeded or action.dead")
        source = self.created_event(cfg, cid)["id"]
        acts = self.actions(cfg)
        self.assertEqual([e["type"] for e in acts],
                         ["action.failed"] * 3 + ["action.succeeded"])
        self.assertEqual([e["status"] for e in acts], [503, 503, 503, 201])
        self.assertEqual([e["attempt"] for e in acts], [1, 2, 3, 4])
        for e in acts:
            self.assertEqual((e["rule"], e["action"], e["source"], e["trigger"]),
                             ("vip", "contacts.tasks.create", source, "c"))
            self.assertIsInstance(e["traceId"], str)
            self.assertTrue(e["traceId"])
        self.assertEqual(len({e["id"] for e in acts}), 4, "each action event has its own id")
        # Each failure schedules the retry between backoff (1 s) and backoff_max (2 s) later.
        for e in acts[:3]:
            delay = iso_s(e["retry_at"]) - iso_s(e["time"])
            self.assertGreaterEqual(delay, 0.9, e)
            self.assertLessEqual(delay, 2.0 + 0.002, e)
        # The sandbox saw exactly 4 attempts, 3 refused, the same body each time,
        # never sooner than the backoff (1 s) after the previous one.
        reqs = self.task_requests(cid)
        self.assertEqual([r["status"] for r in reqs], [503, 503, 503, 201])
        self.assertEqual(len({json.dumps(r["body"], sort_keys=True) for r in reqs}), 1)
        self.assertEqual(reqs[0]["body"]["title"], "Follow up with Ann")
        for a, b in zip(reqs, reqs[1:]):
            self.assertGreaterEqual(b["time"] - a["time"], 0.95, "retry sooner than backoff = 1s")
        # The write happened exactly once.
        created = [c for c in self.sandbox.changes()
                   if c["kind"] == "task" and c["op"] == "created" and c.get("contactId") == cid]
        self.assertEqual(len(created), 1)
        self.assertEqual([t["title"] for t in self.tasks_of(cid)], ["Follow up with Ann"])
        # Nothing is left to send.
        self.run_once(cfg)
        self.assertEqual(len(self.task_requests()), 4)
        self.assertEqual(self.dlq_list(cfg), [])

    def test_429_with_retry_after_is_not_retried_inside_the_window(self):
        cfg = self.baseline(task_rule(extra="backoff = 1s\nbackoff_max = 2s\n"))
        (cid,) = self.create_contacts([{"firstName": "Bea", "tags": ["vip"]}])
        # Retry-After: 3 is longer than the backoff (1-2 s) and the server's
        # rate window (1 s): only honouring it explains a 3 s wait.
        self.sandbox.faults([{"kind": "rate_limit", "retry_after": 3, "count": 1, "method": "POST",
                              "path": TASKS_PATH}])
        self.run_until(cfg, settled, what="action.succeeded or action.dead")
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["status"]) for e in acts],
                         [("action.failed", 429), ("action.succeeded", 201)])
        self.assertGreaterEqual(iso_s(acts[0]["retry_at"]) - iso_s(acts[0]["time"]), 2.9,
                                "retry_at ignores Retry-After: 3")
        reqs = self.task_requests(cid)
        self.assertEqual([r["status"] for r in reqs], [429, 201])
        self.assertGreaterEqual(reqs[1]["time"] - reqs[0]["time"], 2.95,
                                "the retry was sent inside the Retry-After: 3 window")
        self.assertEqual(len(self.tasks_of(cid)), 1)
        # The 429 blocks the whole location: no poll either inside the window
        # (0.2 s of slack for a request already on its way).
        t429 = reqs[0]["time"]
        answered = t429 + (reqs[0].get("duration_ms") or 0) / 1000.0
        inside = [(r["path"], round(r["time"] - t429, 2)) for r in self.sandbox.requests()
                  if answered + 0.2 < r["time"] < t429 + 2.95]
        self.assertEqual(inside, [], "requests sent while the location was blocked by Retry-After")

    def test_429_without_retry_after_is_retried_after_backoff(self):
        cfg = self.baseline(task_rule(extra="backoff = 1s\nbackoff_max = 2s\n"))
        (cid,) = self.create_contacts([{"firstName": "Cy", "tags": ["vip"]}])
        self.sandbox.faults([{"kind": "status", "status": 429, "count": 2, "method": "POST",
                              "path": TASKS_PATH}])
        self.run_until(cfg, settled, what="action.succeeded or action.dead")
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["status"]) for e in acts],
                         [("action.failed", 429), ("action.failed", 429), ("action.succeeded", 201)])
        for e in acts[:2]:
            self.assertIn("retry_at", e)
        reqs = self.task_requests(cid)
        self.assertEqual([r["status"] for r in reqs], [429, 429, 201])
        for a, b in zip(reqs, reqs[1:]):
            self.assertGreaterEqual(b["time"] - a["time"], 0.95, "retry sooner than backoff = 1s")
        self.assertEqual(len(self.tasks_of(cid)), 1)

    # -- 2. dead letters -----------------------------------------------------------

    def test_422_goes_to_the_dlq_at_once_then_retry_and_drop(self):
        cfg = self.baseline(task_rule(extra="backoff = 1s\nbackoff_max = 2s\n"))
        a, b, c = self.create_contacts([{"firstName": "Dee", "tags": ["vip"]},
                                        {"firstName": "Eve", "tags": ["vip"]},
                                        {"firstName": "Flo", "tags": ["vip"]}])
        msg = "title is not acceptable for this location"
        self.sandbox.faults([{"kind": "status", "status": 422, "count": 3, "method": "POST",
                              "path": TASKS_PATH,
                              "body": {"statusCode": 422, "message": [msg], "error": "Unprocessable Entity",
                                       "traceId": "trace-422-fixed"}}])
        self.run_once(cfg)
        src = {cid: self.created_event(cfg, cid)["id"] for cid in (a, b, c)}
        acts = self.actions(cfg)
        self.assertEqual(sorted((e["type"], e["status"], e["source"]) for e in acts),
                         sorted(("action.dead", 422, src[cid]) for cid in (a, b, c)))
        for e in acts:
            self.assertIn(msg, e["error"])
            self.assertEqual(e["traceId"], "trace-422-fixed")
            self.assertEqual(e["attempt"], 1)
        self.assertEqual(len(self.task_requests()), 3, "a 422 is never retried")
        # Another run sends nothing: dead letters stay dead.
        time.sleep(1.2)
        self.run_once(cfg)
        self.assertEqual(len(self.task_requests()), 3)
        dead = self.dlq_list(cfg)
        self.assertEqual(len(dead), 3)
        by_contact = {}
        for d in dead:
            for k in ("id", "rule", "action", "request", "dead_reason"):
                self.assertIn(k, d)
            self.assertEqual((d["rule"], d["action"]), ("vip", "contacts.tasks.create"))
            self.assertIn(msg, d["dead_reason"])
            self.assertEqual(d["request"]["method"], "POST")
            cid = d["request"]["path"].split("/")[2]
            self.assertEqual(d["request"]["path"], f"/contacts/{cid}/tasks")
            self.assertEqual(d["request"]["body"]["completed"], False)
            by_contact[cid] = d
        self.assertEqual(set(by_contact), {a, b, c})
        self.assertEqual(len({d["id"] for d in dead}), 3)
        for cid in (a, b, c):
            self.assertEqual(self.tasks_of(cid), [])
        # Clear the fault; re-queue a's dead letter and drop b's.
        self.sandbox.clear_faults()
        out = self.pollen("dlq", "retry", str(by_contact[a]["id"]), "-c", cfg).stdout
        self.assertIn("queued again", out)
        out = self.pollen("dlq", "drop", str(by_contact[b]["id"]), "-c", cfg).stdout
        self.assertIn("dropped", out)
        self.assertEqual([d["id"] for d in self.dlq_list(cfg)], [by_contact[c]["id"]])
        gone = self.pollen("dlq", "retry", str(by_contact[b]["id"]), "-c", cfg, check=False)
        self.assertNotEqual(gone.returncode, 0, "a dropped dead letter cannot be retried")
        self.run_once(cfg)
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["source"]) for e in acts[3:]], [("action.succeeded", src[a])])
        self.assertEqual(acts[3]["status"], 201)
        self.assertEqual([r["status"] for r in self.task_requests(a)], [422, 201])
        self.assertEqual([r["status"] for r in self.task_requests(b)], [422])
        self.assertEqual([t["title"] for t in self.tasks_of(a)], ["Follow up with Dee"])
        self.assertEqual(self.tasks_of(b), [])
        # A retry while the engine runs is picked up by the running engine.
        seen = len(self.sandbox.requests())
        self.start_engine(cfg)
        try:
            self.wait_for(lambda: len(self.sandbox.requests()) > seen, what="the engine's first poll")
            out = self.pollen("dlq", "retry", str(by_contact[c]["id"]), "-c", cfg).stdout
            self.assertIn("queued again", out)
            self.wait_for(lambda: src[c] in self.succeeded_sources(self.events(cfg)), timeout=20,
                          what="the running engine to send the re-queued dead letter")
        finally:
            self.assertEqual(self.stop_engine(), 0)
        self.assertEqual([r["status"] for r in self.task_requests(c)], [422, 201])
        self.assertEqual([t["title"] for t in self.tasks_of(c)], ["Follow up with Flo"])
        self.assertEqual(self.tasks_of(b), [])
        self.assertEqual(self.dlq_list(cfg), [])

    def test_genuinely_invalid_body_is_dead_with_the_apis_message(self):
        # dueDate from a field that is not a date: the sandbox's own validation answers 422.
        cfg = self.baseline(
            "[rule bad-date]\non = c:created\ndo = contacts.tasks.create\ncontactId = {{record.id}}\n"
            "title = t\ndueDate = {{record.firstName}}\ncompleted = false\nbackoff = 1s\n")
        (cid,) = self.create_contacts([{"firstName": "someday"}])
        self.run_once(cfg)
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["status"]) for e in acts], [("action.dead", 422)])
        self.assertIn("dueDate must be a valid ISO 8601 date string", acts[0]["error"])
        self.assertTrue(acts[0]["traceId"])
        self.assertEqual([r["status"] for r in self.task_requests(cid)], [422])
        (dead,) = self.dlq_list(cfg)
        self.assertIn("dueDate must be a valid ISO 8601 date string", dead["dead_reason"])
        self.assertEqual(dead["request"]["body"]["dueDate"], "someday")
        self.assertEqual(self.tasks_of(cid), [])

    def test_max_attempts_ends_in_the_dlq_after_exactly_that_many(self):
        cfg = self.baseline(task_rule(extra="max_attempts = 2\nbackoff = 1s\nbackoff_max = 2s\n"))
        (cid,) = self.create_contacts([{"firstName": "Fay", "tags": ["vip"]}])
        self.sandbox.faults([{"kind": "status", "status": 503, "window_s": 600, "method": "POST",
                              "path": TASKS_PATH}])
        self.run_until(cfg, lambda ev: any(e["type"] == "action.dead" for e in ev), what="action.dead")
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["status"], e["attempt"]) for e in acts],
                         [("action.failed", 503, 1), ("action.dead", 503, 2)])
        self.assertIn("2 attempts", acts[1]["error"])
        # Well past any backoff: still exactly 2 attempts.
        time.sleep(2.5)
        self.run_once(cfg)
        self.assertEqual([r["status"] for r in self.task_requests(cid)], [503, 503])
        (dead,) = self.dlq_list(cfg)
        self.assertEqual(dead["attempts"], 2)
        self.assertIn("503", dead["dead_reason"])
        self.assertEqual(self.tasks_of(cid), [])

    def test_dlq_retry_that_fails_again_reports_new_event_ids(self):
        # Every action event has its own id (consumers deduplicate on it), also
        # when a re-queued dead letter fails the same way as before.
        cfg = self.baseline(task_rule())
        (cid,) = self.create_contacts([{"firstName": "Gus", "tags": ["vip"]}])
        self.sandbox.faults([{"kind": "status", "status": 422, "count": 2, "method": "POST",
                              "path": TASKS_PATH}])
        self.run_once(cfg)
        (letter,) = self.dlq_list(cfg)
        self.pollen("dlq", "retry", str(letter["id"]), "-c", cfg)
        self.run_once(cfg)
        self.assertEqual([r["status"] for r in self.task_requests(cid)], [422, 422])
        acts = self.actions(cfg)
        self.assertEqual([e["type"] for e in acts], ["action.dead", "action.dead"])
        self.assertEqual(len({e["seq"] for e in acts}), 2)
        self.assertEqual(len({e["id"] for e in acts}), 2,
                         f"two different outcomes share one event id: {[(e['seq'], e['id']) for e in acts]}")

    def test_an_action_that_keeps_crashing_the_engine_ends_in_the_dlq(self):
        # The attempt is counted before the send: an action whose every attempt
        # kills the engine must still end in the dead-letter store after
        # max_attempts, instead of crashing the engine forever.
        rcv = self.receiver()
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\nurl = {rcv.url}/hook\n"
                            "timeout = 1s\nmax_attempts = 2\nbackoff = 1s\n")
        (cid,) = self.create_contacts([{"firstName": "Hub"}])
        env = dict(self.env, POLLEN_FAILPOINT="dispatch.after_send_before_ack:1")
        crashes = 0
        deadline = time.time() + 40
        while crashes < 2 and time.time() < deadline:
            proc = self.pollen("run", "-c", cfg, "--once", env=env, check=False)
            if proc.returncode == -signal.SIGKILL:
                crashes += 1
            else:
                self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
                time.sleep(0.5)
        self.assertEqual(crashes, 2)
        self.assertEqual(len(rcv.got()), 2)
        # Past the second attempt's lease (timeout 1s: a few seconds), the next
        # run must bury the action instead of trying a third time.
        time.sleep(8)
        proc = self.pollen("run", "-c", cfg, "--once", env=env, check=False)
        self.assertEqual(proc.returncode, 0,
                         f"attempt {len(rcv.got())} of max_attempts = 2 crashed the engine again")
        self.assertEqual(len(rcv.got()), 2, "a third attempt was sent")
        acts = self.actions(cfg)
        self.assertEqual([e["type"] for e in acts], ["action.dead"])
        (letter,) = self.dlq_list(cfg)
        self.assertEqual(letter["rule"], "hook")

    # -- 3. kill -9 while actions are in flight -----------------------------------

    def test_kill9_while_dispatching_loses_no_action(self):
        cfg = self.baseline(task_rule(title="Follow up {{record.id}}",
                                      extra="backoff = 1s\nbackoff_max = 2s\n"))
        self.sandbox.faults([{"kind": "delay", "ms": 300, "window_s": 3600, "method": "POST",
                              "path": TASKS_PATH}])
        rng = random.Random(4)
        vip, plain, kills = [], [], []
        for i in range(22):
            ids = self.create_contacts([{"firstName": f"V{i}a", "tags": ["vip"]},
                                        {"firstName": f"V{i}b", "tags": ["vip", "gold"]},
                                        {"firstName": f"P{i}", "tags": ["plain"]}])
            vip += ids[:2]
            plain.append(ids[2])
            self.start_engine(cfg)
            time.sleep(rng.uniform(0.15, 1.4))
            kills.append(time.time())
            self.engine.send_signal(signal.SIGKILL)
            self.assertEqual(self.engine.wait(30), -signal.SIGKILL)
            self.engine = None
            self.engine_log.close()
        self.assertGreaterEqual(len(kills), 20)
        # Restart and let everything finish (attempts in flight at a kill come
        # back when their lease expires).
        want = set(vip)

        def all_done(events):
            created = {e["record_id"]: e["id"] for e in events if e["type"] == "created"}
            ok = set(self.succeeded_sources(events))
            return all(cid in created and created[cid] in ok for cid in want)

        self.run_until(cfg, all_done, timeout=150, what="every vip action succeeded")
        events = self.events(cfg)
        created = [e for e in events if e["type"] == "created"]
        self.assertEqual(sorted(e["record_id"] for e in created), sorted(vip + plain),
                         "each contact's created event exactly once")
        by_id = {e["record_id"]: e["id"] for e in created}
        succ = self.succeeded_sources(events)
        self.assertEqual(sorted(succ), sorted(by_id[c] for c in vip),
                         "exactly one action.succeeded per vip contact")
        self.assertEqual([e for e in events if e["type"] == "action.dead"], [])
        self.assertEqual(len({e["id"] for e in events}), len(events), "event ids are unique")
        self.assertEqual(len({e["seq"] for e in events}), len(events))
        tasks = self.sandbox.state().get("tasks", {})
        duplicates = 0
        for cid in vip:
            titles = [t["title"] for t in tasks.get(cid, [])]
            self.assertGreaterEqual(len(titles), 1, f"vip contact {cid} has no follow-up task")
            self.assertEqual(set(titles), {f"Follow up {cid}"})
            duplicates += len(titles) - 1
        for cid in plain:
            self.assertEqual(tasks.get(cid, []), [], "a rule fired on a non-vip contact")
        self.assertLessEqual(duplicates, len(kills) * 4)
        # Every duplicate is explained by a kill: between two successful sends
        # of the same action there was a kill.
        for cid in vip:
            sent = [r["time"] for r in self.task_requests(cid) if r["status"] == 201]
            self.assertEqual(len(sent), len(tasks.get(cid, [])))
            for t1, t2 in zip(sent, sent[1:]):
                self.assertTrue(any(t1 <= k <= t2 for k in kills),
                                f"{cid}: duplicate send at {t2} with no kill since {t1}")
        self.assertEqual(self.dlq_list(cfg), [])
        print(f"\n  {len(kills)} kills, {len(vip)} actions, {duplicates} duplicate(s)", flush=True)

    def test_actions_run_with_bounded_concurrency(self):
        cfg = self.baseline(task_rule(title="Follow up {{record.id}}"))
        self.sandbox.faults([{"kind": "delay", "ms": 400, "window_s": 3600, "method": "POST",
                              "path": TASKS_PATH}])
        ids = self.create_contacts([{"firstName": f"N{i}", "tags": ["vip"]} for i in range(12)])
        self.run_once(cfg)
        self.assertEqual(len(self.succeeded_sources(self.events(cfg))), 12)
        edges = []
        for r in self.task_requests():
            edges += [(r["time"], 1), (r["time"] + r["duration_ms"] / 1000.0, -1)]
        level = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            level += step
            peak = max(peak, level)
        self.assertLessEqual(peak, 4, "more than 4 actions in flight at once")
        self.assertGreaterEqual(peak, 2, "actions are not dispatched concurrently")
        for cid in ids:
            self.assertEqual([t["title"] for t in self.tasks_of(cid)], [f"Follow up {cid}"])

    def failpoint_run(self, point, n_contacts=3):
        """An http rule to a local receiver; the engine dies at `point` (first hit), then
        restarts and finishes. Returns (receiver, cfg, events after the crash, events)."""
        rcv = self.receiver()
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\nurl = {rcv.url}/hook\n"
                            "timeout = 1s\nbackoff = 1s\nbackoff_max = 2s\n")
        ids = self.create_contacts([{"firstName": f"F{i}"} for i in range(n_contacts)])
        env = dict(self.env, POLLEN_FAILPOINT=point + ":1")
        proc = self.pollen("run", "-c", cfg, "--once", env=env, check=False)
        self.assertEqual(proc.returncode, -signal.SIGKILL, f"{point} was not reached:\n{proc.stderr[-3000:]}")
        self.assertIn(f"{point} reached", proc.stderr)
        crashed = self.events(cfg)
        sources = {self.created_event(cfg, cid)["id"] for cid in ids}
        self.run_until(cfg, lambda ev: set(self.succeeded_sources(ev)) >= sources, timeout=60,
                       what="every http action succeeded")
        events = self.events(cfg)
        self.assertEqual(sorted(self.succeeded_sources(events)), sorted(sources),
                         "exactly one action.succeeded per event")
        self.assertEqual(len({e["id"] for e in events}), len(events), "event ids are unique")
        # Every delivery of one event carries the same Idempotency-Key and body.
        per_event = {}
        for d in rcv.got():
            per_event.setdefault(d["body"]["id"], []).append(d)
        self.assertEqual(set(per_event), sources, "every action performed at least once")
        for eid, ds in per_event.items():
            keys = {d["headers"].get("idempotency-key") for d in ds}
            self.assertEqual(len(keys), 1, f"event {eid}: Idempotency-Key changed across deliveries: {keys}")
            m = KEY_RE.match(keys.pop() or "")
            self.assertTrue(m, "Idempotency-Key is pollen-<event id>-<rule hash>")
            self.assertEqual(m.group(1), eid)
            self.assertEqual(len({d["raw"] for d in ds}), 1, "the body differs between deliveries")
        return rcv, per_event, crashed, events

    def test_failpoint_after_send_before_ack_redelivers_with_the_same_key(self):
        rcv, per_event, crashed, events = self.failpoint_run("dispatch.after_send_before_ack")
        self.assertEqual(self.succeeded_sources(crashed), [], "the crash came before any ack")
        dups = {eid: len(ds) for eid, ds in per_event.items() if len(ds) > 1}
        self.assertGreaterEqual(len(dups), 1, "the action sent before the crash must be sent again")
        self.assertLessEqual(sum(n - 1 for n in dups.values()), 4, "duplicates beyond the in-flight window")
        attempts = {e["source"]: e["attempt"] for e in events if e["type"] == "action.succeeded"}
        for eid in dups:
            self.assertGreaterEqual(attempts[eid], 2)

    def test_failpoint_after_inflight_commit_sends_once_later(self):
        rcv, per_event, crashed, events = self.failpoint_run("dispatch.after_inflight_commit")
        self.assertEqual([e for e in crashed if e["type"].startswith("action.")], [])
        self.assertEqual({eid: len(ds) for eid, ds in per_event.items() if len(ds) > 1}, {},
                         "nothing was sent before the crash, so nothing is sent twice")
        attempts = sorted(e["attempt"] for e in events if e["type"] == "action.succeeded")
        self.assertEqual(attempts, [1, 1, 2], "the claimed attempt counts even though it crashed")

    def test_failpoint_after_ack_does_not_resend_the_acked_action(self):
        rcv, per_event, crashed, events = self.failpoint_run("dispatch.after_ack")
        acked = self.succeeded_sources(crashed)
        self.assertEqual(len(acked), 1)
        self.assertEqual(len(per_event[acked[0]]), 1, "an acknowledged action was sent again")
        self.assertLessEqual(sum(len(ds) - 1 for ds in per_event.values()), 3)

    # -- 4. exec -----------------------------------------------------------------

    def write_script(self, name, body):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("#!/usr/bin/env python3\n" + body)
        os.chmod(path, 0o755)
        return path

    def test_exec_argv_environment_stdin_and_descriptors(self):
        out_dir = os.path.join(self.dir, "exec-out")
        os.mkdir(out_dir)
        script = self.write_script("dump.py", f"""\
import json, os, resource, sys
fds = []
limit = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 65536)
for fd in range(limit):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass
with open("/proc/self/environ", "rb") as f:
    env = dict(item.split("=", 1) for item in f.read().decode("utf-8", "surrogateescape").split("\\0") if item)
stdin = sys.stdin.read()
listing = sorted(int(x) for x in os.listdir("/proc/self/fd"))
out = {{"argv": sys.argv, "env": env, "stdin": stdin, "fds": fds, "listing": listing}}
with open(os.path.join({out_dir!r}, "%d.json" % os.getpid()), "w") as f:
    json.dump(out, f)
""")
        pwned = os.path.join(self.dir, "pwned")
        names = ['"; rm -rf / #', f"$(touch {pwned})", f"`touch {pwned}2`; x", "Two Words"]
        self.env["POLLEN_PARENT_CANARY"] = "must-not-leak"
        self.env["SOME_PARENT_VAR"] = "must-not-leak-either"
        cfg = self.baseline(f"[rule run]\non = c:created\ndo = exec\ncommand = {script}\n"
                            "args = --id {{record.id}} --name {{record.firstName}}\n")
        ids = self.create_contacts([{"firstName": n} for n in names])
        proc = self.run_once(cfg)
        acts = self.actions(cfg)
        self.assertEqual(sorted(e["type"] for e in acts), ["action.succeeded"] * 4,
                         f"{acts}\n{proc.stderr[-3000:]}")
        dumps = []
        for fn in os.listdir(out_dir):
            with open(os.path.join(out_dir, fn)) as f:
                dumps.append(json.load(f))
        self.assertEqual(len(dumps), 4)
        by_id = {d["argv"][2]: d for d in dumps}
        self.assertEqual(set(by_id), set(ids))
        for cid, name in zip(ids, names):
            d = by_id[cid]
            ev = self.created_event(cfg, cid)
            self.assertEqual(ev["record"]["firstName"], name, "the sandbox kept the name as given")
            self.assertEqual(d["argv"], [script, "--id", cid, "--name", name],
                             "each template is exactly one literal argument")
            got = json.loads(d["stdin"])
            self.assertEqual(got["id"], ev["id"])
            self.assertEqual((got["type"], got["trigger"], got["record_id"]), ("created", "c", cid))
            self.assertEqual(got["record"], ev["record"])
            env = d["env"]
            extra = {k for k in env if k not in ("PATH", "LANG") and not k.startswith("POLLEN_")}
            self.assertEqual(extra, set(), f"unexpected variables in the program's environment: {extra}")
            self.assertEqual(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin")
            for leak in ("POLLEN_TEST_TOKEN", "POLLEN_PARENT_CANARY", "POLLEN_BIN", "HOME"):
                self.assertNotIn(leak, env)
            for v in env.values():
                self.assertNotIn(harness.TOKEN, v)
                self.assertNotIn("must-not-leak", v)
            self.assertEqual(d["fds"], [0, 1, 2], "descriptors beyond 0-2 were inherited")
        self.assertFalse(os.path.exists(pwned), "a field was executed by a shell")
        self.assertFalse(os.path.exists(pwned + "2"), "a field was executed by a shell")

    def test_exec_exit_status_decides_success_and_failures_retry(self):
        """Exit 0 succeeds; a non-zero exit and a signal retry, their outcomes saying
        "exit N: output" and "signal NAME"; exec action events name no record."""
        counter = os.path.join(self.dir, "calls")
        script = self.write_script("flaky.py", f"""\
import os, signal, sys
with open({counter!r}, "a") as f:
    f.write("x")
n = len(open({counter!r}).read())
print("attempt", n, "failing" if n == 1 else "ok", flush=True)
if n == 2:
    os.kill(os.getpid(), signal.SIGTERM)
sys.exit(1 if n == 1 else 0)
""")
        cfg = self.baseline(f"[rule run]\non = c:created\ndo = exec\ncommand = {script}\n"
                            "args = {{record.id}}\nbackoff = 1s\nbackoff_max = 2s\ntimeout = 10s\n")
        (cid,) = self.create_contacts([{"firstName": "Gil"}])
        self.run_until(cfg, settled, what="action.succeeded or action.dead")
        source = self.created_event(cfg, cid)["id"]
        acts = self.actions(cfg)
        self.assertEqual([(e["type"], e["source"]) for e in acts],
                         [("action.failed", source), ("action.failed", source),
                          ("action.succeeded", source)])
        self.assertEqual(acts[0]["status"], 1)
        self.assertEqual(acts[0]["error"], "exit 1: attempt 1 failing")
        self.assertEqual(acts[1]["error"], "signal SIGTERM: attempt 2 ok")
        for e in acts:
            self.assertNotIn("record_id", e, "an exec action acts on no record")
        log = self.engine_log_text()
        self.assertIn("rule run: exec failed, will retry: exit 1: attempt 1 failing", log)
        self.assertIn("rule run: exec failed, will retry: signal SIGTERM", log)
        self.assertIn("rule run: exec succeeded (exit 0)", log)
        with open(counter) as f:
            self.assertEqual(f.read(), "xxx", "the program ran exactly three times")

    def test_exec_timeout_kills_the_whole_process_group(self):
        pids = os.path.join(self.dir, "pids")
        late = os.path.join(self.dir, "late")
        script = self.write_script("slow.py", f"""\
import os, subprocess, sys, time
child = subprocess.Popen(["/bin/sh", "-c", "sleep 4; touch {late}"])
with open({pids!r}, "w") as f:
    f.write("%d %d" % (os.getpid(), child.pid))
time.sleep(60)
""")
        cfg = self.baseline(f"[rule slow]\non = c:created\ndo = exec\ncommand = {script}\n"
                            "timeout = 1s\nmax_attempts = 1\n")
        self.create_contacts([{"firstName": "Kim"}])
        started = time.time()
        self.run_until(cfg, lambda ev: any(e["type"] == "action.dead" for e in ev), timeout=30,
                       what="action.dead")
        (dead,) = self.actions(cfg)
        self.assertEqual(dead["type"], "action.dead")
        self.assertIn("timed out", dead["error"])
        self.assertLess(time.time() - started, 30)
        with open(pids) as f:
            pid, child = (int(x) for x in f.read().split())

        self.wait_for(lambda: process_gone(pid) and process_gone(child), timeout=10,
                      what="the program and its child to be killed")
        time.sleep(4.5)
        self.assertFalse(os.path.exists(late), "the program's child outlived the timeout")

    # -- 5. http -----------------------------------------------------------------

    def test_http_action_sends_event_key_and_headers(self):
        rcv = self.receiver()
        cfg = self.baseline(
            f"[rule whole]\non = c:created\ndo = http\nurl = {rcv.url}/hook/{{{{event.type}}}}\n"
            "header.X-Token = tok-{{record.id}}\nheader.X-Static = static value\n"
            f"[rule fields]\non = c:created\ndo = http\nurl = {rcv.url}/fields\nmethod = PUT\n"
            "body.id = {{record.id}}\nbody.tags = {{record.tags}}\n"
            "body.name = {{record.lastName | default \"none\"}}\nbody.greeting = Hi {{record.firstName}}\n")
        (cid,) = self.create_contacts([{"firstName": "Hal", "tags": ["vip", "gold"]}])
        self.run_once(cfg)
        ev = self.created_event(cfg, cid)
        self.assertEqual(sorted((e["rule"], e["type"]) for e in self.actions(cfg)),
                         [("fields", "action.succeeded"), ("whole", "action.succeeded")])
        got = rcv.got()
        self.assertEqual(len(got), 2)
        whole = [d for d in got if d["path"] == "/hook/created"]
        fields = [d for d in got if d["path"] == "/fields"]
        self.assertEqual((len(whole), len(fields)), (1, 1))
        w, f = whole[0], fields[0]
        self.assertEqual(w["method"], "POST")
        self.assertEqual(f["method"], "PUT")
        for d in (w, f):
            self.assertTrue(d["headers"].get("content-type", "").startswith("application/json"))
        self.assertEqual(w["headers"].get("x-token"), f"tok-{cid}")
        self.assertEqual(w["headers"].get("x-static"), "static value")
        self.assertEqual(w["body"]["id"], ev["id"])
        self.assertEqual((w["body"]["type"], w["body"]["record_id"]), ("created", cid))
        self.assertEqual(w["body"]["record"], ev["record"])
        self.assertEqual(f["body"], {"id": cid, "tags": ["vip", "gold"],
                                     "name": ev["record"].get("lastName", "none"),
                                     "greeting": "Hi Hal"})
        keys = []
        for d in (w, f):
            m = KEY_RE.match(d["headers"].get("idempotency-key", ""))
            self.assertTrue(m, d["headers"])
            self.assertEqual(m.group(1), ev["id"])
            keys.append(m.group(0))
        self.assertNotEqual(keys[0], keys[1], "two rules on one event need different keys")

    def test_http_500_is_retried_with_the_same_key_and_400_is_dead(self):
        rcv = self.receiver()
        rcv.script = {"/retry": [500, 500], "/dead": [400]}
        cfg = self.baseline(
            f"[rule retry]\non = c:created\nwhen = record.tags contains \"r\"\ndo = http\n"
            f"url = {rcv.url}/retry\nbackoff = 1s\nbackoff_max = 2s\n"
            f"[rule dead]\non = c:created\nwhen = record.tags contains \"d\"\ndo = http\n"
            f"url = {rcv.url}/dead\nbackoff = 1s\nbackoff_max = 2s\n")
        r_id, d_id = self.create_contacts([{"firstName": "Ida", "tags": ["r"]},
                                           {"firstName": "Jo", "tags": ["d"]}])
        self.run_until(cfg, lambda ev: settled([e for e in ev if e.get("rule") == "retry"])
                       and settled([e for e in ev if e.get("rule") == "dead"]),
                       what="both rules' actions settled")
        retry = self.actions(cfg, "retry")
        self.assertEqual([(e["type"], e["status"]) for e in retry],
                         [("action.failed", 500), ("action.failed", 500), ("action.succeeded", 200)])
        dead = self.actions(cfg, "dead")
        self.assertEqual([(e["type"], e["status"]) for e in dead], [("action.dead", 400)])
        self.assertIn("receiver says 400", dead[0]["error"])
        rs = [d for d in rcv.got() if d["path"] == "/retry"]
        self.assertEqual([d["status"] for d in rs], [500, 500, 200])
        self.assertEqual(len({d["headers"]["idempotency-key"] for d in rs}), 1,
                         "the Idempotency-Key changed between retries")
        self.assertEqual(KEY_RE.match(rs[0]["headers"]["idempotency-key"]).group(1),
                         self.created_event(cfg, r_id)["id"])
        for a, b in zip(rs, rs[1:]):
            self.assertGreaterEqual(b["time"] - a["time"], 0.95)
        self.assertEqual(len([d for d in rcv.got() if d["path"] == "/dead"]), 1, "a 400 is never retried")
        (letter,) = self.dlq_list(cfg)
        self.assertEqual(letter["rule"], "dead")
        self.assertEqual(letter["request"]["url"], f"{rcv.url}/dead")
        self.assertIn("400", letter["dead_reason"])
        self.assertEqual(self.created_event(cfg, d_id)["id"], dead[0]["source"])

    # -- wall-clock steps (issue #10, F14) -------------------------------------------

    def test_retry_after_a_wall_clock_step_back_is_not_delayed_by_the_step(self):
        """next_at is wall time: an engine restarted with the clock 6 h back still
        retries at once (a due time further ahead than any wait it sets is due now)."""
        with socket.socket() as s:  # a port nothing listens on: connection refused
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\n"
                            f"url = http://127.0.0.1:{port}/hook\nbackoff = 1s\nbackoff_max = 2s\n")
        self.create_contacts([{"firstName": "Kim"}])
        failed = lambda ev: [e for e in ev if e["type"] == "action.failed"]
        self.run_until(cfg, lambda ev: len(failed(ev)) == 1, what="the first attempt")
        back = dict(self.env, POLLEN_WALL_OFFSET_MS=str(-6 * 3600 * 1000))
        self.run_until(cfg, lambda ev: len(failed(ev)) >= 2, timeout=15, env=back,
                       what="the retry after a 6 h step back")
        self.assertEqual([e["attempt"] for e in failed(self.events(cfg))][:2], [1, 2])

    def test_lease_of_a_crashed_engine_after_a_wall_clock_step_back(self):
        """The lease of an engine killed after its claim (now + 7 s) is not stretched by
        a 6 h step back before the restart: the action is sent within seconds."""
        rcv = self.receiver()
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\nurl = {rcv.url}/hook\n"
                            "timeout = 1s\nbackoff = 1s\n")
        self.create_contacts([{"firstName": "Lee"}])
        env = dict(self.env, POLLEN_FAILPOINT="dispatch.after_inflight_commit:1")
        proc = self.pollen("run", "-c", cfg, "--once", env=env, check=False)
        self.assertEqual(proc.returncode, -signal.SIGKILL, proc.stderr[-3000:])
        back = dict(self.env, POLLEN_WALL_OFFSET_MS=str(-6 * 3600 * 1000))
        self.run_until(cfg, lambda ev: self.succeeded_sources(ev) != [], timeout=20, env=back,
                       what="the claimed action sent after the restart")
        self.assertEqual(len(rcv.got()), 1)

    # -- 6. delivery when the store fails, and at shutdown (issue #10) -------------

    def deep_contact(self, depth):
        """Creates a contact whose custom field value is a list nested `depth` levels
        (sent as raw text: Python's json would recurse too deep); returns its id."""
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(6000)  # to read the events and answers that carry it
        self.addCleanup(sys.setrecursionlimit, old)
        value = "[" * depth + '"x"' + "]" * depth
        body = ('{"ops":[{"op":"create","kind":"contact","fields":{"firstName":"Deep",'
                '"customFields":[{"id":"cfDeep00000000000001","value":%s}]}}]}' % value)
        req = urllib.request.Request(self.sandbox.url + "/_control/mutate", data=body.encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            changes = json.loads(resp.read())["changes"]
        (cid,) = [c["id"] for c in changes if c["kind"] == "contact" and c["op"] == "created"]
        return cid

    def created_ids(self, cfg):
        return [e["record_id"] for e in self.events(cfg) if e["type"] == "created"]

    def stop_promptly(self, limit=10):
        started = time.time()
        rc = self.stop_engine()
        self.assertEqual(rc, 0, self.engine_log_text()[-3000:])
        self.assertLess(time.time() - started, limit, "SIGTERM did not stop the engine promptly")

    def test_poison_entry_is_dead_lettered_and_the_engine_keeps_working(self):
        """F1: an event whose http request (the whole event as body) nests deeper than a
        stored outbox entry can be read back never stalls the dispatcher: it is
        dead-lettered with its reason, later changes are still delivered, SIGTERM works,
        and `pollen dlq drop` removes it."""
        rcv = self.receiver()
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\nurl = {rcv.url}/hook\n")
        poison = self.deep_contact(995)
        self.start_engine(cfg)
        dead = self.wait_for(lambda: [e for e in self.actions(cfg) if e["type"] == "action.dead"],
                             timeout=30, what="the poison action to be dead-lettered")
        (later,) = self.create_contacts([{"firstName": "Later"}])
        self.wait_for(lambda: any((d["body"] or {}).get("record_id") == later for d in rcv.got()),
                      timeout=30, what="the later contact's action to be delivered")
        self.stop_promptly()
        source = self.created_event(cfg, poison)["id"]
        self.assertEqual([(e["rule"], e["source"]) for e in dead], [("hook", source)])
        self.assertIn("nests", dead[0]["error"])
        self.assertEqual([d for d in rcv.got() if (d["body"] or {}).get("record_id") == poison], [])
        log = self.engine_log_text()
        self.assertIn(f"rule hook: cannot render the action for event {source}", log)
        self.assertIn(poison, log)
        self.assertNotIn("cannot claim", log)
        (letter,) = self.dlq_list(cfg)
        self.assertEqual((letter["rule"], letter["source"]), ("hook", source))
        self.assertIn("nests", letter["dead_reason"])
        refused = self.pollen("dlq", "retry", str(letter["id"]), "-c", cfg, check=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("it has no request", refused.stderr)
        out = self.pollen("dlq", "drop", str(letter["id"]), "-c", cfg).stdout
        self.assertIn("dropped", out)
        self.assertEqual(self.dlq_list(cfg), [])

    def test_a_claim_that_keeps_failing_parks_the_entry_and_polling_continues(self):
        """F1: a claim the store keeps refusing (failpoint dispatch.claim) backs the entry
        off instead of spinning: polling goes on, the error is logged a bounded number of
        times, SIGTERM works, and once the store works the action is sent once."""
        rcv = self.receiver()
        cfg = self.baseline(f"[rule hook]\non = c:created\ndo = http\nurl = {rcv.url}/hook\n")
        (stuck,) = self.create_contacts([{"firstName": "Stuck"}])
        env = dict(self.env, POLLEN_FAILPOINT_ERROR="dispatch.claim")
        self.start_engine(cfg, env=env)
        self.wait_for(lambda: "cannot claim action" in self.engine_log_text(), timeout=30,
                      what="a failed claim")
        (later,) = self.create_contacts([{"firstName": "Later"}])
        self.wait_for(lambda: later in self.created_ids(cfg), timeout=30,
                      what="the later contact to be reported while claims fail")
        time.sleep(3)
        self.stop_promptly()
        log = self.engine_log_text()
        self.assertLessEqual(log.count("cannot claim action"), 3, log[-3000:])
        self.assertEqual(rcv.got(), [])
        self.assertEqual(self.actions(cfg), [])
        # The store works again: both actions are sent, once each.
        self.start_engine(cfg)
        self.wait_for(lambda: len([e for e in self.actions(cfg) if e["type"] == "action.succeeded"]) == 2,
                      timeout=40, what="both actions to succeed")
        self.stop_promptly()
        self.assertEqual(sorted(d["body"]["record_id"] for d in rcv.got()), sorted([stuck, later]))

    def test_sigterm_lets_a_running_exec_action_finish_and_records_it(self):
        """F8: SIGTERM while an exec action runs: the program finishes inside the shutdown
        grace, its success is recorded (attempt 1) and it is not run again after a restart."""
        runs = os.path.join(self.dir, "runs")
        script = self.write_script("slow_ok.py", f"""\
import time
with open({runs!r}, "a") as f:
    f.write("start\\n")
time.sleep(1.5)
with open({runs!r}, "a") as f:
    f.write("done\\n")
""")
        cfg = self.baseline(f"[rule run]\non = c:created\ndo = exec\ncommand = {script}\ntimeout = 10s\n")
        (cid,) = self.create_contacts([{"firstName": "Term"}])
        self.start_engine(cfg)
        self.wait_for(lambda: os.path.exists(runs), timeout=30, interval=0.05, what="the program to start")
        time.sleep(0.5)
        self.stop_promptly()
        (ok,) = self.actions(cfg)
        self.assertEqual((ok["type"], ok["attempt"], ok["source"]),
                         ("action.succeeded", 1, self.created_event(cfg, cid)["id"]))
        self.run_once(cfg)
        with open(runs) as f:
            self.assertEqual(f.read(), "start\ndone\n", "the program ran more than once")
        self.assertEqual(self.actions(cfg), [ok])

    def test_sigterm_cancels_what_outlives_the_shutdown_grace(self):
        """F8: an action still running when [engine] shutdown_grace ends is killed and
        left for its lease (nothing recorded); the engine stops promptly."""
        started = os.path.join(self.dir, "started")
        script = self.write_script("endless.py", f"""\
import time
open({started!r}, "w").close()
time.sleep(60)
""")
        cfg = self.write_config(TRIGGER + f"[rule run]\non = c:created\ndo = exec\ncommand = {script}\n"
                                "timeout = 2m\n", engine="shutdown_grace = 1s", location=FAST)
        self.run_once(cfg)
        self.create_contacts([{"firstName": "Long"}])
        self.start_engine(cfg)
        self.wait_for(lambda: os.path.exists(started), timeout=30, interval=0.05,
                      what="the program to start")
        self.stop_promptly(limit=8)
        self.assertIn("the shutdown grace is over: 1 action(s) still in flight", self.engine_log_text())
        self.assertEqual(self.actions(cfg), [])

    def test_sigterm_lets_a_slow_highlevel_create_finish_and_records_it(self):
        """F8: SIGTERM while a HighLevel create is in flight (the sandbox delays it):
        the answer is awaited and recorded; exactly one task exists, also after a restart."""
        cfg = self.baseline(task_rule())
        (cid,) = self.create_contacts([{"firstName": "Slow", "tags": ["vip"]}])
        self.sandbox.faults([{"kind": "delay", "ms": 2500, "method": "POST", "path": TASKS_PATH}])
        self.start_engine(cfg)
        self.wait_for(lambda: cid in self.created_ids(cfg), timeout=30, interval=0.1,
                      what="the created event")
        time.sleep(0.5)
        self.stop_promptly()
        (ok,) = self.actions(cfg)
        self.assertEqual((ok["type"], ok["attempt"]), ("action.succeeded", 1))
        self.run_once(cfg)
        self.assertEqual(len(self.tasks_of(cid)), 1, "the task was created twice")
        self.assertEqual(len(self.task_requests(cid)), 1)
        self.assertEqual(self.actions(cfg), [ok])

    def test_exec_with_a_background_child_holding_its_output_completes(self):
        """F9: a program that leaves `sleep 120 &` holding its stdout and exits 0 is
        recorded as succeeded soon after it exits (its process group is killed), the
        other actions still run, and SIGTERM stops the engine promptly."""
        pids = os.path.join(self.dir, "pids")
        script = self.write_script("bg.py", f"""\
import subprocess
p = subprocess.Popen(["/bin/sleep", "120"])
with open({pids!r}, "a") as f:
    f.write("%d\\n" % p.pid)
print("left a child behind")
""")
        cfg = self.baseline(f"[rule bg]\non = c:created\ndo = exec\ncommand = {script}\ntimeout = 3s\n")
        ids = self.create_contacts([{"firstName": f"Bg{i}"} for i in range(5)])
        self.start_engine(cfg)
        self.wait_for(lambda: len(self.actions(cfg)) == 5, timeout=30,
                      what="an outcome for each of the 5 exec actions")
        self.stop_promptly()
        acts = self.actions(cfg)
        self.assertEqual({e["type"] for e in acts}, {"action.succeeded"})
        self.assertEqual(sorted(e["source"] for e in acts),
                         sorted(self.created_event(cfg, i)["id"] for i in ids))
        self.assertIn("kept its output open", self.engine_log_text())
        with open(pids) as f:
            children = [int(x) for x in f.read().split()]
        self.assertEqual(len(children), 5)

        self.wait_for(lambda: all(process_gone(p) for p in children), timeout=10,
                      what="the background children to be killed")

    def test_dry_run_reports_a_rule_that_cannot_render(self):
        """Newcomer row #20: a rule whose template cannot render prints an error line in
        the dry run (and on stderr) naming the rule, the event and the record; the real
        run's warning names them too. The error names the expression that rendered empty,
        and `dlq retry` refuses the dead letter (it has no request to send)."""
        cfg = self.baseline("[rule broken]\non = c:created\ndo = contacts.tags.add\n"
                            "contactId = {{record.nosuchfield}}\ntags = seen\n")
        (cid,) = self.create_contacts([{"firstName": "Nemo"}])
        proc = self.pollen("run", "--dry-run", "-c", cfg)
        (line,) = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
        self.assertEqual((line["rule"], line["record_id"], line["trigger"]), ("broken", cid, "c"))
        self.assertNotIn("request", line)
        self.assertTrue(line["error"].startswith("cannot render the action: "), line)
        why = "contactId: '{{record.nosuchfield}}' rendered empty ('' is not a valid id)"
        self.assertIn(why, line["error"])
        self.assertIn("rule broken: cannot render the action for event %s" % line["source"],
                      proc.stderr)
        self.assertIn(cid, proc.stderr)
        proc = self.run_once(cfg)
        source = self.created_event(cfg, cid)["id"]
        self.assertEqual(source, line["source"])
        (dead,) = self.actions(cfg)
        self.assertEqual((dead["type"], dead["source"]), ("action.dead", source))
        self.assertIn(f"rule broken: cannot render the action for event {source} (trigger c, "
                      f"record {cid})", proc.stderr)
        (letter,) = self.dlq_list(cfg)
        self.assertIn(why, letter["dead_reason"])
        proc = self.pollen("dlq", "retry", str(letter["id"]), "-c", cfg, check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn(f"dead letter {letter['id']} cannot be retried: it has no request",
                      proc.stderr)
        self.assertIn(why, proc.stderr)
        self.assertEqual(self.dlq_list(cfg), [letter])


    def test_dry_run_number_fields_take_only_json_number_text(self):
        """An integer field rendered from event text takes a plain JSON number only: " 12",
        "0x1A" and "inf" (which strtod accepted) are render errors naming the field and
        the text. The field comes from a catalog copy with one extra action."""
        cat = os.path.join(self.dir, "catalog")
        for sub in ("triggers", "actions"):
            shutil.copytree(os.path.join(harness.SOURCE_ROOT, sub), os.path.join(cat, sub))
        with open(os.path.join(cat, "actions", "contacts.ini"), "a") as f:
            f.write("\n[test.score]\ntitle = Score\noperation_id = score\nversion = 2021-07-28\n"
                    "method = POST\npath = /contacts/{contactId}/score\nscope = contacts.write\n"
                    "success = 200\ndestructive = no\nidempotent = yes\n"
                    "param.contactId = path string required\nfield.score = integer required\n")
        rule = ("[rule score]\non = c:created\ndo = test.score\ncontactId = {{record.id}}\n"
                "score = {{record.firstName}}\n")
        cfg = self.write_config(TRIGGER + rule, engine=f"catalog = {cat}", location=FAST)
        self.run_once(cfg)
        names = ["12", " 12", "0x1A", "inf"]
        ids = self.create_contacts([{"firstName": n} for n in names])
        proc = self.pollen("run", "--dry-run", "-c", cfg)
        # An error line names the record; a request line has it in its path.
        lines = {l.get("record_id") or l["request"]["path"].split("/")[2]: l
                 for l in map(json.loads, proc.stdout.splitlines())}
        self.assertEqual(lines[ids[0]]["request"]["body"], {"score": 12})
        for cid, name in zip(ids[1:], names[1:]):
            self.assertNotIn("request", lines[cid])
            self.assertIn(f"score: '{name}' is not an integer (plain JSON number text only)",
                          lines[cid]["error"])


if __name__ == "__main__":
    harness.main()
