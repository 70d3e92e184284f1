"""Listing edge cases that used to invent or lose changes (review-edges.md F2, F4, F13, F15):
an oversized record is reported truncated instead of failing its page forever; no phantom
deletes from a skip/limit page boundary that shifts, from a record without a valid id, or from
a 404 that is not the API's own; 410 confirms a deletion; a page the API repeats abandons
the cycle within a few requests instead of looping."""
import json
import re
import subprocess
import urllib.request

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
BUSINESS = "bizEdges000000000001"
BUSINESS_PATH = f"/contacts/business/{BUSINESS}"
CONFIRM = "^/contacts/[A-Za-z0-9]{20}$"
HTML_404 = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1>" \
           "</center><hr><center>nginx</center></body></html>"


class EdgeTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    # -- helpers ------------------------------------------------------------

    def business_config(self, page_size=5):
        return self.write_config(
            f"[trigger biz]\nuse = contacts.business\nevery = 1s\npage_size = {page_size}\n"
            f"businessId = {BUSINESS}\n", location=FAST)

    def join_business(self, n, **fields):
        ops = [{"kind": "contact", "op": "create", "fields": dict({"businessId": BUSINESS}, **fields)}
               for _ in range(n)]
        return [c["id"] for c in self.sandbox.mutate(ops)]

    def business_listing(self):
        """The business's contact ids in the API's order."""
        url = (f"{self.sandbox.url}{BUSINESS_PATH}?locationId={harness.LOCATION_ID}&limit=100")
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + harness.TOKEN,
                                                   "Version": "2021-07-28"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return [c["id"] for c in json.loads(resp.read())["contacts"]]

    def typed(self, cfg, trigger=None):
        return sorted((e["type"], e["record_id"]) for e in self.events(cfg)
                      if trigger is None or e["trigger"] == trigger)

    def requests_to(self, path_rx, since=0):
        return [r for r in self.sandbox.requests(since) if re.search(path_rx, r["path"])]

    def last_request_seq(self):
        return self.sandbox.control("GET", "/_control/requests?limit=1")["last_seq"]

    # -- F4a: skip/limit shift, and deletions need a second listing ----------

    def test_skip_shift_is_no_deletion_and_real_leave_needs_two_listings(self):
        self.join_business(12)
        cfg = self.business_config(page_size=5)
        self.run_once(cfg)
        order = self.business_listing()
        leaver, shifted = order[0], order[5]
        # Page 2 is slow; while it is in flight the first contact leaves the business and a new
        # one joins: the listing still counts 12, but order[5] slides from page 2 onto page 1.
        self.sandbox.faults([{"kind": "delay", "ms": 2500, "path": "^" + BUSINESS_PATH,
                              "after": 1, "count": 1}])
        proc = subprocess.Popen([harness.POLLEN_BIN, "run", "-c", cfg, "--once"], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self.wait_for(lambda: any(r.get("fault") == "delay"
                                      for r in self.requests_to("^" + BUSINESS_PATH)),
                          timeout=30, what="the delayed page 2")
            self.sandbox.mutate([{"kind": "contact", "op": "update", "id": leaver,
                                  "fields": {"businessId": None}}])
            joiner = self.join_business(1)[0]
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, err[-3000:])
        self.assertEqual([t for t, _ in self.typed(cfg) if t == "deleted"], [],
                         "one listing must never delete (the shifted contact never left)")
        self.assertIn(("created", joiner), self.typed(cfg))
        # The leaver was on page 1, read before it left: the next listing is the first to miss
        # it (held), the one after agrees and deletes it. The shifted contact is back meanwhile.
        self.run_once(cfg)
        self.assertEqual(self.typed(cfg), [("created", joiner)], "one listing must never delete")
        self.run_once(cfg)
        self.assertEqual(self.typed(cfg), [("created", joiner), ("deleted", leaver)])
        self.run_once(cfg)
        self.assertEqual(self.typed(cfg), [("created", joiner), ("deleted", leaver)],
                         f"{shifted} (shifted across the page boundary) never left")

    # -- F4b: a record without a valid id makes the listing incomplete -------

    def test_record_without_id_decides_no_deletion(self):
        self.join_business(6)
        cfg = self.business_config(page_size=100)
        self.run_once(cfg)
        for value in (None, 12345):
            self.sandbox.faults([{"kind": "bad_id", "path": "^" + BUSINESS_PATH, "index": 2,
                                  "value": value}])
            proc = self.run_once(cfg)
            self.assertRegex(proc.stderr, r"\[trigger:biz\].*skipped 1 records without a valid 'id'")
            self.assertRegex(proc.stderr, r"\[trigger:biz\].*deletions wait")
            self.run_once(cfg)
            self.run_once(cfg)
        self.assertEqual(self.typed(cfg), [], "no deleted/created pair for a record with a bad id")

    def fanout_bad_id(self, full_round, tasks_rx):
        """Two reads of the tasks answer a record without a valid id; returns the logs."""
        ids = self.sandbox.seed(2, tasks=2, notes=0, seed=5)["contact_ids"]
        cfg = self.write_config(
            "[trigger contacts]\nuse = contacts.search\nevery = 1s\n\n"
            "[trigger tasks]\nuse = contacts.tasks\nfor_each = contacts\nevery = 1s\n"
            "full_round = %s\n" % full_round, location=FAST)
        self.run_once(cfg)
        self.sandbox.faults([{"kind": "bad_id", "path": tasks_rx, "count": 2}])
        logs = []
        for _ in range(4):
            logs.append(self.run_once(cfg).stderr)
        self.assertEqual(len([r for r in self.requests_to(tasks_rx) if r.get("fault") == "bad_id"]),
                         2, "both faulted reads happened")
        self.assertEqual(self.typed(cfg, "tasks"), [], "no deleted/created pair for a bad id")
        return ids, "\n".join(logs)

    def test_fanout_record_without_id_decides_no_deletion(self):
        ids, text = self.fanout_bad_id("each", "^/contacts/[^/]+/tasks$")
        self.assertRegex(text, r"\[trigger:tasks\].*contactId (%s|%s): skipped 1 tasks without a "
                               r"valid 'id'" % (ids[0], ids[1]))

    def test_full_round_record_without_id_decides_no_deletion(self):
        """The same in a full round through the task search: the round decides no deletion."""
        _, text = self.fanout_bad_id("batch", "^/locations/[^/]+/tasks/search$")
        self.assertIn("no deletions decided", text)

    # -- F4c / F15: which answers confirm a deletion --------------------------

    def confirm_case(self, first_answer):
        ids = self.sandbox.seed(8, seed=3)["contact_ids"]
        # reconcile = 0s: every cycle is a full enumeration with its deletion phase.
        cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\nreconcile = 0s\n",
                                location=FAST)
        self.run_once(cfg)
        gone = ids[4]
        self.sandbox.mutate([{"kind": "contact", "op": "delete", "id": gone}])
        if first_answer is not None:
            self.sandbox.faults([dict({"kind": "status", "method": "GET", "path": CONFIRM},
                                      **first_answer)])
        self.run_once(cfg)
        return cfg, gone

    def test_gateway_html_404_does_not_confirm_a_deletion(self):
        cfg, gone = self.confirm_case({"status": 404, "body": HTML_404})
        self.assertEqual(self.typed(cfg), [], "an nginx 404 page is not the API saying 'gone'")
        applied = [f["applied"] for f in self.sandbox.control("GET", "/_control/faults")["faults"]]
        self.assertIn(applied, ([], [1]), "the confirmation GET met the HTML 404")
        self.assertGreaterEqual(len(self.requests_to(CONFIRM)), 1)
        # The next cycle asks again and the API's own 404 JSON confirms it.
        self.run_once(cfg)
        self.assertEqual(self.typed(cfg), [("deleted", gone)])

    def test_proxy_400_without_api_shape_does_not_confirm(self):
        cfg, gone = self.confirm_case({"status": 400, "body": {"error": "bad gateway request"}})
        self.assertEqual(self.typed(cfg), [])

    def test_api_404_confirms_a_deletion(self):
        cfg, gone = self.confirm_case(None)
        self.assertEqual(self.typed(cfg), [("deleted", gone)])

    def test_410_gone_confirms_a_deletion(self):
        self.sandbox.control("POST", "/_control/config", {"deleted_status": 410})
        cfg, gone = self.confirm_case(None)
        self.assertEqual(self.typed(cfg), [("deleted", gone)])

    # -- F13: a repeated page abandons the cycle -------------------------------

    def check_repeat_abandoned(self, use, path_rx, cfg):
        self.run_once(cfg)
        since = self.last_request_seq()
        self.sandbox.faults([{"kind": "repeat_page", "path": path_rx, "window_s": 120}])
        proc = self.pollen("run", "-c", cfg, "--once", check=False, timeout=60)
        self.assertNotEqual(proc.returncode, 0, "the cycle must fail")
        pages = self.requests_to(path_rx, since)
        self.assertLessEqual(len(pages), 3, "the repeat must be seen within a few pages")
        self.assertRegex(proc.stderr, r"\[trigger:r\].*page 2.*already listed.*not paging.*"
                                      r"cycle abandoned")
        self.assertEqual(self.typed(cfg), [], "an abandoned cycle decides nothing")

    def test_repeated_page_skip_limit_is_abandoned(self):
        self.join_business(30)
        cfg = self.write_config(
            f"[trigger r]\nuse = contacts.business\nevery = 1s\npage_size = 5\n"
            f"businessId = {BUSINESS}\n", location=FAST)
        self.check_repeat_abandoned("contacts.business", "^" + BUSINESS_PATH, cfg)

    def test_repeated_page_cursor_is_abandoned(self):
        self.sandbox.seed(30, seed=4)
        cfg = self.write_config("[trigger r]\nuse = contacts.list\nevery = 1s\npage_size = 5\n",
                                location=FAST)
        self.check_repeat_abandoned("contacts.list", "^/contacts/$", cfg)

    # -- F2: an oversized record never fails its page ----------------------------

    def test_oversized_record_is_reported_truncated(self):
        ids = self.join_business(5)
        cfg = self.write_config(
            f"[trigger big]\nuse = contacts.business\nevery = 1s\nbusinessId = {BUSINESS}\n",
            location=FAST, api="max_body = 2MiB\n")
        self.run_once(cfg)
        big, renamed = ids[1], ids[3]
        self.sandbox.mutate([{"kind": "contact", "op": "update", "id": big,
                              "fields": {"companyName": "a" * 400_000}}])
        self.run_once(cfg)
        first = [e for e in self.events(cfg) if e["record_id"] == big]
        self.assertEqual(len(first), 1)
        self.assertNotIn("truncated", first[0], "a 400 KB change fits in one event")
        # 1.5 MB: the updated event (record + old + new) is about 3.4 MB, over the 2 MiB limit.
        self.sandbox.mutate([{"kind": "contact", "op": "update", "id": big,
                              "fields": {"companyName": "b" * 1_500_000}},
                             {"kind": "contact", "op": "update", "id": renamed,
                              "fields": {"firstName": "Renamed"}}])
        joiner = self.join_business(1)[0]
        proc = self.run_once(cfg)
        self.assertRegex(proc.stderr, r"big: the updated event of record %s is \d+ bytes.*"
                                      r"truncated" % big)
        events = self.events(cfg)
        got = sorted((e["type"], e["record_id"]) for e in events[1:])
        self.assertEqual(got, sorted([("updated", big), ("updated", renamed),
                                      ("created", joiner)]))
        trunc = [e for e in events[1:] if e["record_id"] == big][0]
        self.assertIs(trunc.get("truncated"), True)
        self.assertEqual(trunc["record"]["id"], big)
        self.assertNotIn("companyName", trunc["record"], "the largest field is left out")
        self.assertIn("firstName", trunc["record"], "the fields that fit are kept")
        self.assertEqual(trunc["changes"]["companyName"]["new"], "b" * 1_500_000,
                         "the changed value is kept")
        self.assertEqual(trunc["changes"]["companyName"]["old"], "a" * 400_000)
        self.assertLessEqual(len(json.dumps(trunc, separators=(",", ":"))), 2 << 20)
        # Nothing is left behind: the next cycle has nothing new.
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), len(events))
        # 1.5 MB replaced by another 1.5 MB: old + new alone are over the limit, so the old
        # value becomes null (the new one is worth more), and that change says so.
        self.sandbox.mutate([{"kind": "contact", "op": "update", "id": big,
                              "fields": {"companyName": "c" * 1_500_000}}])
        self.run_once(cfg)
        last = self.events(cfg)[-1]
        self.assertEqual((last["type"], last["record_id"], last.get("truncated")),
                         ("updated", big, True))
        change = last["changes"]["companyName"]
        self.assertIs(change.get("truncated"), True)
        self.assertIsNone(change["old"])
        self.assertEqual(change["new"], "c" * 1_500_000)
        self.assertLessEqual(len(json.dumps(last, separators=(",", ":"))), 2 << 20)


if __name__ == "__main__":
    harness.main()
