"""Rate limits: the engine against the sandbox's per-location limiter.

HighLevel allows 100 requests per 10 s per location; the engine's default
budget is 90 per 10 s for all the triggers of a location together, fed back
by the X-RateLimit-* headers and by 429s (which block the location for
max(Retry-After, the server's interval)).

- test_default_budget_under_server_limit: seven triggers on one location
  (three contacts.search, three contacts.list, a for_each tasks sweep), the
  DEFAULT location budget, every = 1s, for about 35 s against enough
  contacts that demand is several times the budget: the sandbox never sees
  more than 100 requests in any 10 s window (/_control/max_window, checked
  again from /_control/requests) and never answers 429; real changes made
  under that pressure are all emitted exactly once.
- test_lowered_server_limit: the sandbox's limit drops to 30 per 10 s while
  the engine runs, so 429s happen: the engine stops sending for the server's
  interval, adopts the lower limit (no 429 after that, at most 30 per 10 s),
  and emits the real changes exactly once with no false events.
- test_retry_after_fault: a 429 carrying Retry-After: 4 (the server's
  interval being 1 s): no request of the location reaches the sandbox for
  4 s after it (beyond the ones already on the wire), then polling resumes.
- test_sweep_progress_under_poll_load: polling demand above the location's
  budget must not stop a for_each trigger for good: the tasks of a contact
  its parent just saw change are still read and reported.
- test_budget_lines: with daily_limit = 10 and one request a second, the
  location logs its 24 h count at warn when it passes 50% and 80%, once each,
  and stops at the limit.
"""
import re
import os
import time

import harness

CONTACT_TRIGGERS = ["s1", "s2", "s3", "l1", "l2", "l3"]


def trigger_config(every="1s"):
    text = ""
    for name in CONTACT_TRIGGERS:
        use = "contacts.search" if name.startswith("s") else "contacts.list"
        # reconcile = 0s: full enumerations every cycle (the rate pressure this test needs,
        # and the deletions it waits for).
        extra = "reconcile = 0s\n" if use == "contacts.search" else ""
        text += f"[trigger {name}]\nuse = {use}\nevery = {every}\n{extra}\n"
    # One contact at a time: the sweep's reads of single contacts are what these tests count.
    text += f"[trigger tasks]\nuse = contacts.tasks\nfor_each = s1\nevery = {every}\nfull_round = each\n"
    return text


class RateLimitTest(harness.PollenTest):
    # The sandbox's defaults: 100 requests per 10 s per location.
    sandbox_args = ()

    def engine_log_text(self):
        """The engine's log (closes the file, unlike harness's version: no ResourceWarning)."""
        path = os.path.join(self.dir, "engine.log")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def max_window(self, window_ms=10000, exclude_429=False):
        q = f"/_control/max_window?location={harness.LOCATION_ID}&window_ms={window_ms}"
        if exclude_429:
            q += "&exclude_429=1"
        return self.sandbox.control("GET", q)["max"]

    @staticmethod
    def window_max(times, seconds):
        """Most arrival times in any half-open window of `seconds`."""
        times = sorted(times)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def swept_contacts(self, n):
        """Contacts whose tasks the for_each trigger has read (recorded) already."""
        out = []
        for r in self.sandbox.requests():
            parts = r["path"].split("/")
            if r["status"] == 200 and len(parts) == 4 and parts[3] == "tasks" and parts[2] not in out:
                out.append(parts[2])
        return out if len(out) >= n else None

    def real_changes(self):
        """Creates, updates and deletes one contact (and retitles a task of the updated one).

        The updated contact is one the tasks sweep has read before: the first read of a
        baseline contact's tasks is silent, so only then is the retitle an event."""
        swept = self.wait_for(lambda: self.swept_contacts(3), timeout=60, what="the tasks sweep")
        created = self.sandbox.mutate([{"kind": "contact", "op": "create",
                                        "fields": {"firstName": "Budget", "lastName": "Bound"}}])[0]["id"]
        upd, dele = swept[0], swept[2]
        self.sandbox.mutate([
            {"kind": "task", "op": "update", "contactId": upd, "fields": {"title": "Throttled title"}},
            {"kind": "contact", "op": "update", "id": upd, "fields": {"firstName": "Throttled"}},
            {"kind": "contact", "op": "delete", "id": dele},
        ])
        expect = []
        for t in CONTACT_TRIGGERS:
            expect += [(t, "created", created), (t, "updated", upd), (t, "deleted", dele)]
        return expect, upd

    def check_events(self, cfg, expect, task_owner):
        events = self.events(cfg)
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(set(seqs)), "seq must be strictly increasing")
        self.assertEqual(len({e["id"] for e in events}), len(events), "duplicate event ids")
        contact_events = sorted((e["trigger"], e["type"], e["record_id"])
                                for e in events if e["trigger"] != "tasks")
        self.assertEqual(contact_events, sorted(expect))
        tasks = [e for e in events if e["trigger"] == "tasks"]
        # The retitled task at most once, and nothing else (whether the sweep gets budget
        # under this load is test_sweep_progress_under_poll_load's business).
        self.assertLessEqual(len(tasks), 1, tasks)
        for e in tasks:
            self.assertEqual((e["type"], e["record"].get("contactId")), ("updated", task_owner))
            self.assertEqual(e["changes"]["title"]["new"], "Throttled title")

    def contact_events(self, cfg):
        return [e for e in self.events(cfg) if e["trigger"] != "tasks"]

    def test_default_budget_under_server_limit(self):
        self.sandbox.seed(200, tasks=1)
        cfg = self.write_config(trigger_config())   # no rate_limit: the default 90 per 10 s
        first = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        t0 = time.time()
        self.start_engine(cfg)
        time.sleep(10)
        expect, upd = self.real_changes()
        self.wait_for(lambda: len(self.contact_events(cfg)) >= len(expect), timeout=60,
                      what="the real changes under rate pressure")
        time.sleep(max(0, 35 - (time.time() - t0)))
        self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])

        reqs = [r for r in self.sandbox.requests(first) if r["location"] == harness.LOCATION_ID]
        statuses = {r["status"] for r in reqs}
        self.assertNotIn(429, statuses, "the sandbox answered 429")
        peak = self.max_window()
        self.assertLessEqual(peak, 100, "more than 100 requests in a 10 s window")
        self.assertLessEqual(self.window_max([r["time"] for r in reqs], 10.0), 100)
        # The premise: demand (7 triggers every second) was far above the budget, so it bound.
        self.assertGreaterEqual(peak, 60, f"the budget never bound (peak {peak} per 10 s)")
        # 404: the GET by id confirming the deletion.
        self.assertEqual(statuses - {200, 201, 404}, set(), "unexpected answers")
        self.check_events(cfg, expect, upd)
        log = self.engine_log_text()
        self.assertNotIn("HTTP 429", log)
        self.assertNotIn(harness.TOKEN, log)

    def test_lowered_server_limit(self):
        self.sandbox.seed(200, tasks=1)
        cfg = self.write_config(trigger_config())
        first = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        self.start_engine(cfg)
        time.sleep(10)   # the engine now spends about 90 per 10 s
        self.sandbox.control("POST", "/_control/config", {"rate_limit": 30})
        lowered = time.time()
        expect, upd = self.real_changes()
        self.wait_for(lambda: len(self.contact_events(cfg)) >= len(expect), timeout=120,
                      what="the real changes after the 429s")
        # Stay long enough to see the engine live under the new limit.
        time.sleep(max(0, 32 - (time.time() - lowered)))
        self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])

        reqs = [r for r in self.sandbox.requests(first) if r["location"] == harness.LOCATION_ID]
        throttled = [r for r in reqs if r["status"] == 429]
        self.assertTrue(throttled, "the lowered limit should have produced 429s")
        first429 = throttled[0]["time"]
        # Backing off: after the first 429 the location is blocked for the server's
        # interval (10 s); only requests already on the wire may still arrive.
        inside = [r for r in reqs if first429 + 0.5 <= r["time"] < first429 + 9.5]
        self.assertEqual(inside, [], f"{len(inside)} requests inside the 10 s block after a 429")
        # Recovery: the engine adopted X-RateLimit-Max 30; no 429 after the burst.
        burst_end = throttled[-1]["time"]
        self.assertLess(burst_end - first429, 0.5, "429s kept coming after the first one")
        after = [r["time"] for r in reqs if r["time"] > burst_end]
        self.assertTrue(after, "the engine never resumed")
        self.assertLessEqual(self.window_max(after, 10.0), 30,
                             "more than the server's new limit per 10 s after recovery")
        self.check_events(cfg, expect, upd)
        log = self.engine_log_text()
        self.assertRegex(log, r"warn \[trigger:\w+\] HTTP 429 from the API for location main")
        self.assertNotIn(harness.TOKEN, log)

    def test_retry_after_fault(self):
        self.sandbox.seed(60, tasks=1)
        # The server's interval is 1 s, so only Retry-After can explain a longer pause.
        self.sandbox.control("POST", "/_control/config", {"rate_window_ms": 1000, "rate_limit": 0})
        cfg = self.write_config(trigger_config(),
                                location="rate_limit = 100\nrate_window = 10s\n")
        self.start_engine(cfg)
        time.sleep(4)
        first = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        self.sandbox.faults([{"kind": "rate_limit", "retry_after": 4, "count": 1}])
        self.wait_for(lambda: any(r["status"] == 429 for r in self.sandbox.requests(first)),
                      timeout=20, what="the 429")
        time.sleep(7)
        self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])
        reqs = [r for r in self.sandbox.requests(first) if r["location"] == harness.LOCATION_ID]
        t429 = [r["time"] for r in reqs if r["status"] == 429][0]
        inside = [r for r in reqs if t429 + 0.25 <= r["time"] < t429 + 4.0]
        self.assertEqual(inside, [], "requests inside the Retry-After window")
        later = [r for r in reqs if r["time"] >= t429 + 4.0]
        self.assertTrue(later and all(r["status"] == 200 for r in later),
                        "polling resumed after Retry-After")
        self.assertEqual(self.events(cfg), [], "no false events")
        self.assertRegex(self.engine_log_text(), r"\[trigger:\w+\] HTTP 429")

    def test_budget_lines(self):
        self.sandbox.seed(3)
        cfg = self.write_config("[trigger s1]\nuse = contacts.search\nevery = 1s\n",
                                location="daily_limit = 10\n")
        self.start_engine(cfg)
        self.wait_for(lambda: "passed 80%" in self.engine_log_text(), timeout=30,
                      what="the 80% budget line")
        time.sleep(4)  # the limit is reached: no more requests, no more lines
        self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])
        log = self.engine_log_text()
        lines = re.findall(r" warn \[location:main\] budget: .*", log)
        self.assertEqual(lines, [
            " warn [location:main] budget: 5 requests in the last 24 h (50% of daily_limit 10; "
            "passed 50%), sweeps 0 of their 2",
            " warn [location:main] budget: 8 requests in the last 24 h (80% of daily_limit 10; "
            "passed 80%), sweeps 0 of their 2"], log[-3000:])
        self.assertEqual(len([r for r in self.sandbox.requests()
                              if r["location"] == harness.LOCATION_ID]), 10)
        self.assertRegex(log, r"\[trigger:s1\] cycle \d+: .*, requests=1( \(.*\))?\n")

    def test_sweep_progress_under_poll_load(self):
        """Polling demand above the budget must not stop a for_each trigger for good.

        Two contact triggers need 18 requests a second (40 contacts, page_size 5,
        every = 1s) from a budget of 5 a second. A contact's task is retitled and the
        contact renamed: the parent sees the rename and queues the contact for its tasks
        trigger, which must then read it (just-changed contacts go first) and report the
        retitled task."""
        ids = self.sandbox.seed(40, tasks=1)["contact_ids"]
        # Only the engine's own budget binds here: no 429 (and its 10 s pause) from the
        # sandbox, which still counts the fast baseline run's requests.
        self.sandbox.control("POST", "/_control/config", {"rate_limit": 0})
        triggers = ("[trigger contacts]\nuse = contacts.search\nevery = 1s\npage_size = 5\n\n"
                    "[trigger others]\nuse = contacts.list\nevery = 1s\npage_size = 5\n\n"
                    "[trigger tasks]\nuse = contacts.tasks\nfor_each = contacts\nevery = 1s\n")
        fast = self.write_config(triggers, location="rate_limit = 100\nrate_window = 1s\n",
                                 name="fast.ini")
        self.run_once(fast)   # baseline of both triggers, every task recorded
        self.assertEqual(self.events(fast), [])
        loaded = self.write_config(triggers, location="rate_limit = 10\nrate_window = 2s\n")
        self.start_engine(loaded)
        time.sleep(3)
        upd = ids[5]
        first = self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]
        self.sandbox.mutate([
            {"kind": "task", "op": "update", "contactId": upd, "fields": {"title": "Starved title"}},
            {"kind": "contact", "op": "update", "id": upd, "fields": {"firstName": "Starving"}},
        ])
        self.wait_for(lambda: [e for e in self.events(loaded) if e["trigger"] == "contacts"],
                      timeout=30, what="the parent's updated event")
        deadline = time.time() + 30
        while time.time() < deadline and not [e for e in self.events(loaded) if e["trigger"] == "tasks"]:
            time.sleep(0.5)
        self.assertEqual(self.stop_engine(), 0, self.engine_log_text()[-3000:])
        task_reads = [r for r in self.sandbox.requests(first) if r["path"].endswith("/tasks")]
        tasks = [e for e in self.events(loaded) if e["trigger"] == "tasks"]
        self.assertEqual([(e["type"], e["record"]["title"]) for e in tasks], [("updated", "Starved title")],
                         f"the tasks trigger made {len(task_reads)} requests in 30 s of polling "
                         "load and never reported the retitled task of a contact its parent "
                         "had just seen change")


if __name__ == "__main__":
    harness.main()
