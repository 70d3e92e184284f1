"""Incremental polling with a watermark plus a periodic full reconcile (M13)
on contacts.search: what an incremental cycle asks for and costs, that it
never decides a deletion, that the watermark W comes from the server's
timestamps (never pollen's clock), commits with its page (a crash between
pages skips nothing, equal timestamps at a page boundary included), and that
the reconcile is the only source of `deleted` and repairs what an
incremental read missed; that a reconcile's pages go in the location's sweep
share, and that the 422-degraded mode survives restarts until its retry."""
import os
import threading
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
SEARCH = "search-contacts-advanced"
LAG_MS = 120000  # the default watermark_lag (2m)


def iso_ms(s):
    """'2026-11-26T19:46:53.123Z' -> epoch ms."""
    import calendar
    base, frac = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac[:3].ljust(3, "0"))


class IncrementalTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.ids = self.sandbox.seed(40, seed=11)["contact_ids"]

    def config(self, extra=""):
        return self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\n" + extra,
                                 location=FAST)

    def last_seq(self):
        return self.sandbox.control("GET", "/_control/requests?since=0&limit=1").get("last_seq", 0)

    def searches(self, since):
        return [r for r in self.sandbox.requests(since) if r["operation"] == SEARCH]

    def baseline(self, extra="", incremental=True):
        cfg = self.config(extra)
        proc = self.run_once(cfg)
        self.assertIn("baseline recorded", proc.stderr)
        self.assertEqual("(reconcile, watermark " in proc.stderr, incremental, proc.stderr)
        self.assertEqual(self.events(cfg), [])
        return cfg

    def run_logged(self, cfg, env=None):
        """One --once run; returns (its search requests, its stderr)."""
        seq = self.last_seq()
        proc = self.run_once(cfg, env=env)
        return self.searches(seq), proc.stderr

    @staticmethod
    def gte(req):
        """The watermark an incremental search asked from, or None for a full listing."""
        for f in (req["body"] or {}).get("filters") or []:
            if f.get("field") == "dateUpdated" and f.get("operator") == "range":
                return f["value"]["gte"]
        return None

    def max_updated(self):
        return max(iso_ms(c["dateUpdated"]) for c in self.sandbox.state()["contacts"]
                   if not c.get("deleted"))

    def update(self, *ids, **fields):
        ops = [{"op": "update", "kind": "contact", "id": i,
                "fields": fields or {"city": "C%d" % n}} for n, i in enumerate(ids)]
        return self.sandbox.mutate(ops)

    # -- the incremental cycle -------------------------------------------------

    def test_no_change_cycle_costs_one_request(self):
        cfg = self.baseline()
        reqs, err = self.run_logged(cfg)
        self.assertEqual(len(reqs), 1, reqs)
        body = reqs[0]["body"]
        self.assertEqual(body["sort"], [{"field": "dateUpdated", "direction": "asc"}])
        self.assertIsNotNone(self.gte(reqs[0]))
        self.assertNotIn("searchAfter", body)
        self.assertIn("(incremental, watermark ", err)
        self.assertEqual(self.events(cfg), [])
        # The baseline left W a little behind (its own duration); the first incremental read
        # brought it to the largest dateUpdated there is. From then on every run asks from
        # exactly there and costs one request.
        w = self.max_updated()
        for _ in range(2):
            again, _ = self.run_logged(cfg)
            self.assertEqual(len(again), 1)
            self.assertEqual(self.gte(again[0]), w - LAG_MS)
        self.assertEqual(self.events(cfg), [])

    def test_updates_created_and_watermark_from_server_time(self):
        cfg = self.baseline()
        changes = self.update(self.ids[0], self.ids[1])
        changes += self.sandbox.mutate([{"op": "create", "kind": "contact"}])
        created = [c["id"] for c in changes if c["op"] == "created"]
        reqs, err = self.run_logged(cfg)
        self.assertEqual(len(reqs), 1)
        events = self.events(cfg)
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in events),
                         sorted([("updated", self.ids[0]), ("updated", self.ids[1]),
                                 ("created", created[0])]))
        # W is now the largest dateUpdated the server handed out: the next cycle asks from
        # exactly W - watermark_lag, and re-reading the overlap emits nothing.
        w = self.max_updated()
        reqs, _ = self.run_logged(cfg)
        self.assertEqual(self.gte(reqs[0]), w - LAG_MS)
        self.assertEqual(len(self.events(cfg)), 3)

    def test_user_filters_are_kept(self):
        cfg = self.baseline('filters = [{"field":"city","operator":"eq","value":"Lisbon"}]\n')
        self.update(self.ids[2], city="Porto")
        self.update(self.ids[3], city="Lisbon")
        reqs, _ = self.run_logged(cfg)
        filters = reqs[0]["body"]["filters"]
        self.assertEqual(len(filters), 2, filters)
        self.assertEqual(filters[0]["field"], "city")
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("created", self.ids[3])])

    # -- pacing: a reconcile's pages in the sweeps' share ------------------------

    @staticmethod
    def most_in_a_second(reqs):
        times = sorted(r["time"] for r in reqs)
        lo = best = 0
        for hi, t in enumerate(times):
            while t - times[lo] >= 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def test_reconcile_pages_go_in_the_sweep_share(self):
        # sweep_share = 0.1 of 100 a second: a reconcile's pages after the first start
        # at most 10 a second; the first page is a poll. 40 pages (page_size = 1).
        loc = FAST + "sweep_share = 0.1\n"
        trig = "[trigger c]\nuse = contacts.search\nevery = 1s\npage_size = 1\n"
        cfg = self.write_config(trig, location=loc)
        seq = self.last_seq()
        proc = self.run_once(cfg)
        self.assertIn("baseline recorded", proc.stderr)
        self.assertIn("(reconcile, watermark ", proc.stderr)
        reqs = self.searches(seq)
        self.assertGreaterEqual(len(reqs), 40)
        self.assertLessEqual(self.most_in_a_second(reqs), 11, [r["time"] for r in reqs])
        # reconcile = 0s: every cycle is an ordinary full enumeration, in the poll class,
        # which takes the whole budget (the same pages, far more than 11 in a second).
        cfg = self.write_config(trig + "reconcile = 0s\n", location=loc)
        seq = self.last_seq()
        self.run_once(cfg)
        reqs = self.searches(seq)
        self.assertGreaterEqual(len(reqs), 40)
        self.assertGreater(self.most_in_a_second(reqs), 15, [r["time"] for r in reqs])

    # -- deletions: only a reconcile -------------------------------------------

    def test_deletion_found_only_by_the_reconcile(self):
        cfg = self.baseline()
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": self.ids[4]}])
        self.update(self.ids[5])
        seq = self.last_seq()
        reqs, err = self.run_logged(cfg)
        self.assertIsNotNone(self.gte(reqs[0]))
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("updated", self.ids[5])])
        # No confirmation GET either: an incremental cycle has no deletion phase.
        self.assertEqual([r for r in self.sandbox.requests(seq) if r["method"] == "GET"], [])
        # Still nothing on later incremental cycles (a restart does not force a reconcile).
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 1)
        # reconcile = 1s: the next cycle is a full enumeration, which finds the deletion.
        cfg = self.config("reconcile = 1s\n")
        time.sleep(1.2)
        reqs, err = self.run_logged(cfg)
        self.assertIsNone(self.gte(reqs[0]))
        self.assertIn("(reconcile, watermark ", err)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)][1:],
                         [("deleted", self.ids[4])])

    def test_reconcile_zero_polls_full_every_cycle(self):
        cfg = self.baseline("reconcile = 0s\n", incremental=False)
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": self.ids[6]}])
        reqs, err = self.run_logged(cfg)
        self.assertIsNone(self.gte(reqs[0]))
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("deleted", self.ids[6])])

    def test_reconcile_repairs_what_an_incremental_read_missed(self):
        # watermark_lag = 0 and a record the API returns broken (no id) while a later one
        # moves W past it: no incremental cycle asks for it again; the reconcile does.
        cfg = self.baseline("watermark_lag = 0s\n")
        self.run_once(cfg)  # W = the newest seeded dateUpdated: the next read starts there
        w = self.max_updated()
        first = sum(1 for c in self.sandbox.state()["contacts"] if iso_ms(c["dateUpdated"]) == w)
        self.update(self.ids[7])
        time.sleep(0.01)
        self.update(self.ids[8])
        # ids[7] comes right after the contacts at W itself.
        self.sandbox.faults([{"kind": "bad_id", "index": first, "path": "^/contacts/search$"}])
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("updated", self.ids[8])])
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 1)
        cfg = self.config("watermark_lag = 0s\nreconcile = 1s\n")
        time.sleep(1.2)
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)][1:],
                         [("updated", self.ids[7])])

    # -- paging, crashes, lag, clocks ------------------------------------------

    def equal_timestamps(self, a, b, tries=40):
        """Updates a and b in one mutate call until the server gives them the same
        dateUpdated; returns that value (or None if the clock always moved between them)."""
        for n in range(tries):
            changes = self.update(a, b, city="T%d" % n)
            stamps = {c["id"]: c.get("record", {}).get("dateUpdated") for c in changes}
            state = {c["id"]: c["dateUpdated"] for c in self.sandbox.state()["contacts"]
                     if c["id"] in (a, b)}
            if state[a] == state[b]:
                return state[a]
            del stamps
        return None

    def test_crash_between_pages_equal_timestamps(self):
        cfg = self.baseline("watermark_lag = 0s\npage_size = 1\n")
        a, b = sorted(self.ids[9:11])  # the API breaks dateUpdated ties by id
        stamp = self.equal_timestamps(a, b)
        for point in ("poll.after_commit:1", "poll.before_commit:2"):
            env = dict(self.env, POLLEN_FAILPOINT=point)
            proc = self.pollen("run", "-c", cfg, "--once", check=False, env=env)
            self.assertNotEqual(proc.returncode, 0, point)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in events),
                         [("updated", a), ("updated", b)], (stamp, events))
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 2)
        if stamp is None:
            self.skipTest("could not give two contacts the same dateUpdated (clock moved)")

    def test_record_updated_during_paging(self):
        cfg = self.baseline("page_size = 2\n")
        ids = self.ids[12:20]
        for i in ids:  # one by one: 8 distinct timestamps, 4+ pages
            self.update(i)
        # Page 2 of the incremental read is held 1.5 s; meanwhile a record already read
        # (ids[0]) and one not read yet (ids[-1]) change again: both move behind the cursor.
        self.sandbox.faults([{"kind": "delay", "ms": 1500, "path": "^/contacts/search$",
                              "after": 1}])
        result = {}

        def run():
            result["proc"] = self.run_once(cfg)

        t = threading.Thread(target=run)
        t.start()
        self.wait_for(lambda: self.sandbox.control("GET", "/_control/faults")["faults"][0]
                      ["seen"] >= 2, timeout=60, what="page 2 held")
        self.update(ids[0], ids[-1], city="Moved")
        t.join(120)
        events = self.events(cfg)
        per_id = {}
        for e in events:
            per_id.setdefault(e["record_id"], []).append(e["type"])
        self.assertEqual(set(per_id), set(ids))
        # Each record's final copy was emitted, and the moved ones exactly once more at most.
        state = {c["id"]: c for c in self.sandbox.state()["contacts"]}
        last = {}
        for e in events:
            last[e["record_id"]] = e["record"]
        for i in ids:
            self.assertEqual(last[i]["city"], state[i]["city"], i)
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), len(events))

    def test_search_lag_below_the_overlap(self):
        cfg = self.baseline()
        self.sandbox.control("POST", "/_control/config", {"search_lag_ms": 1500})
        self.update(self.ids[20])
        self.run_once(cfg)  # the index does not show it yet
        self.assertEqual(self.events(cfg), [])
        time.sleep(1.7)
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("updated", self.ids[20])])

    def test_clock_step_does_not_move_the_watermark(self):
        cfg = self.baseline()
        self.update(self.ids[21])
        day = 86400000
        back = dict(self.env, POLLEN_WALL_OFFSET_MS=str(-day))
        self.run_once(cfg, env=back)
        self.assertEqual(len(self.events(cfg)), 1)
        w = self.max_updated()
        # A day back: still incremental, asking from the server's W, not the clock.
        reqs, err = self.run_logged(cfg, env=back)
        self.assertEqual(self.gte(reqs[0]), w - LAG_MS)
        self.assertIn("(incremental, ", err)
        # A day forward: the reconcile looks due (a wall-clock schedule), W stays the server's.
        fwd = dict(self.env, POLLEN_WALL_OFFSET_MS=str(day))
        reqs, err = self.run_logged(cfg, env=fwd)
        self.assertIsNone(self.gte(reqs[0]))
        reqs, err = self.run_logged(cfg, env=fwd)
        self.assertEqual(self.gte(reqs[0]), w - LAG_MS)
        self.assertEqual(len(self.events(cfg)), 1)

    def test_incremental_read_longer_than_a_full_listing(self):
        cfg = self.baseline("page_size = 10\n")
        self.run_once(cfg)  # W = the newest seeded contact
        ops = [{"op": "update", "kind": "contact", "id": i, "fields": {"city": "Big"}}
               for i in self.ids]
        ops += [{"op": "create", "kind": "contact"} for _ in range(15)]
        created = [c["id"] for c in self.sandbox.mutate(ops) if c["op"] == "created"]
        reqs, err = self.run_logged(cfg)
        self.assertIn("more than the last full listing (40): the next cycle is a full "
                      "reconcile", err)
        self.assertTrue(all(self.gte(r) is not None for r in reqs))
        self.assertLess(len(reqs), 6)  # it stopped early (55 records at 10 a page)
        reqs, err = self.run_logged(cfg)
        self.assertIsNone(self.gte(reqs[0]))
        self.assertIn("(reconcile, watermark ", err)
        events = self.events(cfg)
        self.assertEqual(sorted(e["record_id"] for e in events if e["type"] == "updated"),
                         sorted(self.ids))
        self.assertEqual(sorted(e["record_id"] for e in events if e["type"] == "created"),
                         sorted(created))
        self.assertEqual(len(events), 55)

    def test_filter_refused_degrades_to_full_scans(self):
        cfg = self.baseline()
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": self.ids[22]}])
        self.sandbox.faults([{"kind": "status", "status": 422, "path": "^/contacts/search$"}])
        reqs, err = self.run_logged(cfg)
        self.assertIn("refused the incremental filter", err)
        self.assertIn("traceId", err)
        self.assertEqual(reqs[0]["status"], 422)
        self.assertIsNotNone(self.gte(reqs[0]))
        self.assertTrue(all(self.gte(r) is None for r in reqs[1:]), reqs)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("deleted", self.ids[22])])

    def test_refused_filter_survives_restarts_and_is_retried_a_day_later(self):
        cfg = self.baseline()
        self.sandbox.faults([{"kind": "status", "status": 422, "path": "^/contacts/search$"}])
        reqs, err = self.run_logged(cfg)
        self.assertIn("refused the incremental filter", err)
        self.assertEqual([r["status"] for r in reqs][:1], [422])
        # Restarts (the fault is spent, and reconcile = 1h is not due): still full
        # enumerations, never the filter. Before the mode was kept, these were incremental.
        for _ in range(2):
            reqs, err = self.run_logged(cfg)
            self.assertGreater(len(reqs), 0)
            self.assertTrue(all(self.gte(r) is None for r in reqs), reqs)
            self.assertIn("refused the incremental filter earlier", err)
            self.assertIn("(reconcile, watermark ", err)
        self.update(self.ids[5])
        # A day later the filter is tried again; the API takes it: incremental again.
        later = dict(self.env, POLLEN_WALL_OFFSET_MS=str(86400000 + 60000))
        reqs, err = self.run_logged(cfg, env=later)
        self.assertIn("trying the incremental filter of contacts.search again", err)
        self.assertIsNone(self.gte(reqs[0]))  # this cycle is the reconcile due by then
        for _ in range(2):
            reqs, err = self.run_logged(cfg, env=later)
            self.assertEqual(len(reqs), 1, reqs)
            self.assertIsNotNone(self.gte(reqs[0]))
            self.assertIn("(incremental, watermark ", err)
            self.assertNotIn("refused", err)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("updated", self.ids[5])])


class OpportunityIncrementalTest(harness.PollenTest):
    """opportunities.search_advanced: the same mechanism on the POST opportunity search
    (a range filter and a sort on date_updated; the records carry updatedAt)."""
    sandbox_args = ("--rate-limit", "0")

    def test_incremental_then_reconcile(self):
        out = self.sandbox.control("POST", "/_control/seed", {"contacts": 2, "opportunities": 8,
                                                               "seed": 21})
        opps = out["opportunity_ids"]
        trig = "[trigger o]\nuse = opportunities.search_advanced\nevery = 1s\n"
        cfg = self.write_config(trig, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        self.sandbox.mutate([
            {"op": "update", "kind": "opportunity", "id": opps[1], "fields": {"name": "Renamed"}},
            {"op": "delete", "kind": "opportunity", "id": opps[2]},
        ])
        seq = self.sandbox.control("GET", "/_control/requests?since=0&limit=1")["last_seq"]
        proc = self.run_once(cfg)
        reqs = [r for r in self.sandbox.requests(seq) if r["path"] == "/opportunities/search"]
        self.assertEqual(len(reqs), 1)
        body = reqs[0]["body"]
        self.assertEqual(body["sort"], [{"field": "date_updated", "direction": "asc"}])
        self.assertEqual(body["filters"][0]["field"], "date_updated")
        self.assertIn("(incremental, watermark ", proc.stderr)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("updated", opps[1])])
        cfg = self.write_config(trig + "reconcile = 1s\n", location=FAST)
        time.sleep(1.2)
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)][1:],
                         [("deleted", opps[2])])


if __name__ == "__main__":
    harness.main()
