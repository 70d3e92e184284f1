"""`pollen tail`: following a running engine and filtering the event log.

- test_follow_started_before_engine: `tail -f` started before the engine
  has created its state directory waits for it, then prints the events of
  mutations made while both run, within a bounded wait, in strictly
  increasing seq order, identical to a later plain `tail`; it exits 0 on
  SIGINT (and also while still waiting for the state directory).
- test_filters: on a log with two triggers and every event type, --from,
  --trigger and --type (alone and combined) print exactly the matching
  events, in order.
- test_limit: --limit N prints the first N matching events and exits 0;
  with -f it waits for them, then stops by itself.
- test_bad_arguments, test_unknown_type_is_usage_error: malformed options
  are usage errors (exit 2).
- test_several_types_last_since: --type given several times matches any of
  them; -n/--last N prints the last N matching events (with the other
  filters and --limit); --since takes an ISO-8601 time or a time ago.
- test_unknown_trigger: a --trigger that is neither configured nor in the
  log exits 2 with a message (also with -f); one removed from the
  configuration whose events the log keeps still prints them.
- test_missing_state_and_last_follow: without a state directory tail exits
  2 naming it; -f says it waits; -n N -f prints the last N, then follows.
"""
import json
import os
import signal
import subprocess
import threading
import time

import harness

TRIGGERS = (
    "[trigger people]\nuse = contacts.search\nevery = 1s\npage_size = 10\nreconcile = 0s\n\n"
    "[trigger listed]\nuse = contacts.list\nevery = 1s\npage_size = 10\n"
)
FAST = "rate_limit = 100\nrate_window = 1s\n"


class Follower:
    """`pollen tail -f` as a subprocess; its stdout lines collected by a thread."""

    def __init__(self, test, config, *args):
        self.proc = subprocess.Popen([harness.POLLEN_BIN, "tail", "-c", config, "-f", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=test.env)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line)

    def events(self):
        with self.lock:
            return [json.loads(ln) for ln in self.lines if ln.strip()]

    def interrupt(self, sig=signal.SIGINT, timeout=10):
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.thread.join(5)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        self.proc.stdout.close()
        return rc, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TailTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def engine_log_text(self):
        """The engine's log (closes the file, unlike harness's version: no ResourceWarning)."""
        path = os.path.join(self.dir, "engine.log")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def setUp(self):
        super().setUp()
        self.followers = []

    def tearDown(self):
        for f in self.followers:
            f.kill()
        super().tearDown()

    def follow(self, config, *args):
        f = Follower(self, config, *args)
        self.followers.append(f)
        return f

    def assert_seq_increasing(self, events):
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(set(seqs)), "seq must be strictly increasing")

    def mutate_round(self, ids, tag):
        """One create, one update and one delete; the expected (type, record_id) of each trigger."""
        created = self.sandbox.mutate([{"kind": "contact", "op": "create",
                                        "fields": {"firstName": "Tail" + tag}}])[0]["id"]
        upd, dele = ids.pop(0), ids.pop(0)
        self.sandbox.mutate([
            {"kind": "contact", "op": "update", "id": upd, "fields": {"lastName": "Followed" + tag}},
            {"kind": "contact", "op": "delete", "id": dele},
        ])
        return {("created", created), ("updated", upd), ("deleted", dele)}

    def test_follow_started_before_engine(self):
        ids = self.sandbox.seed(20)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        state = os.path.join(self.dir, "state")
        self.assertFalse(os.path.exists(state))

        # SIGINT while still waiting for the state directory: exit 0, nothing printed.
        early = self.follow(cfg)
        time.sleep(0.8)
        self.assertIsNone(early.proc.poll(), "tail -f must wait for the state directory")
        rc, err = early.interrupt()
        self.assertEqual(rc, 0, err)
        self.assertEqual(early.events(), [])

        tail = self.follow(cfg)
        only_people = self.follow(cfg, "--trigger", "people", "--type", "updated")
        time.sleep(0.8)
        self.assertIsNone(tail.proc.poll(), "tail -f exited before the engine started")
        self.assertFalse(os.path.exists(state))

        self.start_engine(cfg)
        self.wait_for(lambda: self.engine_log_text().count("baseline recorded") == 2, timeout=30,
                      what="both baselines")
        expected = set()
        for tag in ("A", "B"):
            changes = self.mutate_round(ids, tag)
            for trig in ("people", "listed"):
                expected |= {(trig, t, r) for t, r in changes}
            # Bounded wait: the engine polls every second and tail polls every 250 ms.
            self.wait_for(lambda: {(e["trigger"], e["type"], e["record_id"])
                                   for e in tail.events()} >= expected,
                          timeout=20, what=f"round {tag} in the tail -f output")

        rc, err = tail.interrupt()
        self.assertEqual(rc, 0, f"tail -f must exit 0 on SIGINT: {err}")
        followed = tail.events()
        self.assert_seq_increasing(followed)
        got = [(e["trigger"], e["type"], e["record_id"]) for e in followed]
        self.assertEqual(sorted(got), sorted(expected), "exactly the real changes, once each")

        self.assertEqual(self.stop_engine(), 0)
        # The follower printed what a plain tail prints afterwards, byte for byte.
        self.assertEqual(followed, self.events(cfg))
        # It reads the log every 250 ms on its own: on a loaded machine it may not have
        # read the last event yet when the engine stops (a bounded wait, not a timing assertion).
        self.wait_for(lambda: len(only_people.events()) >= 2, timeout=20,
                      what="both updates in the filtered tail -f output")
        rc, err = only_people.interrupt(signal.SIGTERM)
        self.assertEqual(rc, 0, err)
        filtered = only_people.events()
        self.assertEqual([(e["trigger"], e["type"]) for e in filtered], [("people", "updated")] * 2)
        self.assertEqual(filtered, [e for e in followed
                                    if e["trigger"] == "people" and e["type"] == "updated"])

    def build_log(self):
        """Baseline plus three rounds of changes on two triggers: 18 events."""
        ids = self.sandbox.seed(20)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        for tag in ("A", "B", "C"):
            self.mutate_round(ids, tag)
            self.run_once(cfg)
        every = self.events(cfg)
        self.assertEqual(len(every), 18, [(e["trigger"], e["type"]) for e in every])
        self.assert_seq_increasing(every)
        return cfg, ids, every

    def tail_limited(self, cfg, *args):
        """`pollen tail` whose --limit is reached: the events it printed; it must exit 0."""
        proc = self.pollen("tail", "-c", cfg, *args, check=False)
        events = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.strip()]
        return events, proc

    def test_filters(self):
        cfg, _, every = self.build_log()
        seqs = [e["seq"] for e in every]

        def tail(*args):
            return self.events(cfg, *args)

        def where(pred):
            return [e for e in every if pred(e)]

        mid = seqs[7]
        self.assertEqual(tail("--from", str(mid)), where(lambda e: e["seq"] >= mid))
        self.assertEqual(tail("--from", "0"), every)
        self.assertEqual(tail("--from", str(seqs[-1])), every[-1:])
        self.assertEqual(tail("--from", str(seqs[-1] + 1)), [])
        self.assertEqual(tail("--from", "1000000000"), [])
        for trig in ("people", "listed"):
            got = tail("--trigger", trig)
            self.assertEqual(len(got), 9)
            self.assertEqual(got, where(lambda e: e["trigger"] == trig))
        for typ in ("created", "updated", "deleted"):
            got = tail("--type", typ)
            self.assertEqual(len(got), 6)
            self.assertEqual(got, where(lambda e: e["type"] == typ))
        self.assertEqual(tail("--trigger", "listed", "--type", "deleted"),
                         where(lambda e: e["trigger"] == "listed" and e["type"] == "deleted"))
        self.assertEqual(tail("--from", str(mid), "--trigger", "people", "--type", "updated"),
                         where(lambda e: e["seq"] >= mid and e["trigger"] == "people"
                               and e["type"] == "updated"))
        # A limit that is never reached changes nothing.
        self.assertEqual(tail("--limit", "100"), every)
        self.assertEqual(tail("--type", "deleted", "--limit", "7"), where(lambda e: e["type"] == "deleted"))
        for e in every:
            self.assertEqual(e["location"], harness.LOCATION_ID)
            self.assertEqual(set(e) - {"changes"},
                             {"seq", "id", "time", "trigger", "location", "type", "record_id",
                              "record"}, e)
            self.assertEqual("changes" in e, e["type"] == "updated", e)

    def test_limit(self):
        cfg, ids, every = self.build_log()
        seqs = [e["seq"] for e in every]
        mid = seqs[7]
        cases = [
            (["--limit", "1"], every[:1]),
            (["--limit", "5"], every[:5]),
            (["--limit", "18"], every),
            (["--type", "updated", "--limit", "2"], [e for e in every if e["type"] == "updated"][:2]),
            (["--from", str(mid), "--limit", "3"], [e for e in every if e["seq"] >= mid][:3]),
            (["--from", str(mid), "--trigger", "people", "--type", "created", "--limit", "1"],
             [e for e in every if e["seq"] >= mid and e["trigger"] == "people"
              and e["type"] == "created"][:1]),
        ]
        for args, want in cases:
            got, proc = self.tail_limited(cfg, *args)
            self.assertEqual(got, want, args)
        for args, want in cases:
            got, proc = self.tail_limited(cfg, *args)
            self.assertEqual((proc.returncode, proc.stderr), (0, ""),
                             f"tail {' '.join(args)}: reaching --limit is success")

        # -f with --limit: waits for the next matching event, prints it, exits 0 by itself.
        nxt = Follower(self, cfg, "--from", str(seqs[-1] + 1), "--type", "deleted", "--limit", "1")
        self.followers.append(nxt)
        time.sleep(0.8)
        self.assertIsNone(nxt.proc.poll(), "nothing to print yet: tail -f keeps waiting")
        changes = self.mutate_round(ids, "D")
        self.run_once(cfg)
        rc = nxt.proc.wait(15)
        nxt.thread.join(5)
        got = nxt.events()
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["type"], "deleted")
        self.assertIn(("deleted", got[0]["record_id"]), changes)
        later = self.events(cfg, "--from", str(seqs[-1] + 1), "--type", "deleted")
        self.assertEqual(got, later[:1])
        self.assertEqual(rc, 0, nxt.proc.stderr.read())

    def test_bad_arguments(self):
        cfg = self.write_config(TRIGGERS, location=FAST)
        for args in (["--from", "abc"], ["--from", "-1"], ["--limit", "x"], ["--limit", "-2"],
                     ["--bogus"], ["extra"]):
            proc = self.pollen("tail", "-c", cfg, *args, check=False, timeout=10)
            self.assertEqual(proc.returncode, 2, f"tail {' '.join(args)}: {proc.stderr}")
            self.assertEqual(proc.stdout, "")
        proc = self.pollen("tail", check=False, timeout=10)
        self.assertEqual(proc.returncode, 2, "tail without -c")

    def test_unknown_type_is_usage_error(self):
        """--type accepts created, updated or deleted: a typo must not silently match nothing
        (with -f it would wait forever)."""
        cfg = self.write_config(TRIGGERS, location=FAST)
        for typ in ("updatd", "UPDATED", ""):
            proc = self.pollen("tail", "-c", cfg, "--type", typ, check=False, timeout=10)
            self.assertEqual(proc.returncode, 2, f"tail --type {typ!r}: {proc.stderr}")
            self.assertIn("type", proc.stderr)

    def test_several_types_last_since(self):
        cfg, _, every = self.build_log()

        def tail(*args):
            return self.events(cfg, *args)

        def where(pred):
            return [e for e in every if pred(e)]

        # --type several times: any of them; a repeat changes nothing.
        self.assertEqual(tail("--type", "created", "--type", "deleted"),
                         where(lambda e: e["type"] in ("created", "deleted")))
        self.assertEqual(tail("--type", "updated", "--type", "updated"),
                         where(lambda e: e["type"] == "updated"))
        self.assertEqual(tail("--trigger", "listed", "--type", "created", "--type", "updated"),
                         where(lambda e: e["trigger"] == "listed"
                               and e["type"] in ("created", "updated")))
        # -n/--last N: the last N matching events.
        self.assertEqual(tail("-n", "3"), every[-3:])
        self.assertEqual(tail("--last", "1"), every[-1:])
        self.assertEqual(tail("-n", "0"), [])
        self.assertEqual(tail("-n", "100"), every)
        self.assertEqual(tail("--type", "updated", "-n", "2"),
                         where(lambda e: e["type"] == "updated")[-2:])
        self.assertEqual(tail("--trigger", "people", "--type", "deleted", "--type", "created",
                              "--last", "3"),
                         where(lambda e: e["trigger"] == "people"
                               and e["type"] in ("deleted", "created"))[-3:])
        self.assertEqual(tail("-n", "4", "--limit", "2"), every[-4:-2])
        mid = every[7]["seq"]
        self.assertEqual(tail("--from", str(mid), "-n", "50"), where(lambda e: e["seq"] >= mid))
        # --since: an ISO-8601 time (the events' own format, a date, no zone), or a time ago.
        cut = every[9]["time"]
        later = where(lambda e: e["time"] >= cut)
        self.assertLess(len(later), len(every), "the rounds are recorded at different times")
        self.assertEqual(tail("--since", cut), later)
        self.assertEqual(tail("--since", cut.rstrip("Z")), later)
        self.assertEqual(tail("--since", "2000-01-01"), every)
        self.assertEqual(tail("--since", "9999-01-01T00:00:00Z"), [])
        self.assertEqual(tail("--since", "1d"), every)
        self.assertEqual(tail("--since", "1h", "--type", "deleted", "-n", "1"),
                         where(lambda e: e["type"] == "deleted")[-1:])
        self.assertEqual(tail("--since", cut, "--last", "2"), later[-2:])
        for bad in ("yesterday", "10 minutes", "0s", "2026-13-01", ""):
            proc = self.pollen("tail", "-c", cfg, "--since", bad, check=False, timeout=10)
            self.assertEqual((proc.returncode, proc.stdout), (2, ""), bad)
            self.assertIn("bad --since", proc.stderr)
        for bad in ("x", "-1", "3x"):
            proc = self.pollen("tail", "-c", cfg, "-n", bad, check=False, timeout=10)
            self.assertEqual((proc.returncode, proc.stdout), (2, ""), bad)
            self.assertIn("--last needs a number", proc.stderr)

    def test_unknown_trigger(self):
        cfg, _, every = self.build_log()
        for args in ([], ["-f"], ["--type", "created"]):
            proc = self.pollen("tail", "-c", cfg, "--trigger", "nosuch", *args, check=False,
                               timeout=10)
            self.assertEqual((proc.returncode, proc.stdout), (2, ""), args)
            self.assertIn("no trigger 'nosuch': it is not in the configuration and the event "
                          "log has no event of it", proc.stderr)
        # A trigger removed from the configuration: its recorded events are still there.
        people_only = self.write_config(TRIGGERS.split("[trigger listed]")[0], location=FAST,
                                        name="people.ini")
        self.assertEqual(self.events(people_only, "--trigger", "listed"),
                         [e for e in every if e["trigger"] == "listed"])
        # A configured trigger without events yet is no error.
        more = self.write_config(TRIGGERS + "\n[trigger fresh]\nuse = contacts.list\nevery = 1s\n",
                                 location=FAST, name="more.ini")
        self.assertEqual(self.events(more, "--trigger", "fresh"), [])

    def test_missing_state_and_last_follow(self):
        ids = self.sandbox.seed(20)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        state = os.path.join(self.dir, "state")
        for args in ([], ["-n", "2"], ["--trigger", "people"]):
            proc = self.pollen("tail", "-c", cfg, *args, check=False, timeout=10)
            self.assertEqual((proc.returncode, proc.stdout), (2, ""), args)
            self.assertIn(f"pollen tail: {state} holds no state: no engine has run with this "
                          "configuration yet", proc.stderr)
        waiting = self.follow(cfg)
        time.sleep(0.8)
        self.assertIsNone(waiting.proc.poll(), "tail -f waits for the state directory")
        rc, err = waiting.interrupt()
        self.assertEqual(rc, 0, err)
        self.assertIn("holds no state yet; waiting for the engine to create it", err)
        self.assertFalse(os.path.exists(state), "tail created the state directory")

        self.run_once(cfg)
        self.mutate_round(ids, "A")
        self.run_once(cfg)
        before = self.events(cfg)
        self.assertEqual(len(before), 6)
        last2 = self.follow(cfg, "-n", "2")
        nothing_old = self.follow(cfg, "-n", "0", "--type", "created")
        self.wait_for(lambda: len(last2.events()) >= 2, timeout=20, what="the last two events")
        changes = self.mutate_round(ids, "B")
        self.run_once(cfg)
        after = self.events(cfg)
        self.assertEqual(len(after), 12)
        self.wait_for(lambda: len(last2.events()) >= 8, timeout=20, what="the new events")
        self.wait_for(lambda: len(nothing_old.events()) >= 2, timeout=20, what="new creations")
        rc, err = last2.interrupt()
        self.assertEqual(rc, 0, err)
        self.assertEqual(last2.events(), after[4:])
        rc, err = nothing_old.interrupt()
        self.assertEqual(rc, 0, err)
        self.assertEqual(nothing_old.events(), [e for e in after[6:] if e["type"] == "created"])
        self.assertEqual({e["record_id"] for e in nothing_old.events()},
                         {r for t, r in changes if t == "created"})


if __name__ == "__main__":
    harness.main()
