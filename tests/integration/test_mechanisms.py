"""The catalog mechanisms of issue #11 end to end against the sandbox:
records at the response root (users.get, M1), a {company} binding
(users.search, M3), soft-delete flags (users.search, M11), body paging
with `limit` (opportunities.search_advanced, M4) and agency definitions
polled for a [company] with an agency token (snapshots.list,
users.filter_by_email, M15)."""
import json
import time
import urllib.request

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
# Static tokens of the sandbox belong to this company (tests/sandbox/README.md).
COMPANY = "sbxCompany0000000001"
AGENCY_TOKEN = "agency-test-token-0123456789"
AGENCY = (f"[company agency]\nid = {COMPANY}\ntoken = env:POLLEN_AGENCY_TOKEN\n"
          "rate_limit = 100\nrate_window = 1s\n")


class MechanismsTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def api(self, method, path, body=None):
        """A request with the location's token, as a client of the API would send it."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.sandbox.url + path, data=data, method=method, headers={
            "Authorization": "Bearer " + harness.TOKEN, "Version": "2021-07-28",
            "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def users(self):
        return self.api("GET", f"/users/search?companyId={COMPANY}&locationId={harness.LOCATION_ID}"
                               "&limit=100")["users"]

    # -- M1: users.get, the bare user object --------------------------------

    def test_users_get_bare_object_updated(self):
        uid = self.users()[0]["id"]
        cfg = self.write_config(f"[trigger u]\nuse = users.get\nevery = 1s\nuserId = {uid}\n",
                                location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        self.assertTrue(any(r["path"] == f"/users/{uid}" and r["status"] == 200
                            for r in self.sandbox.requests()))
        self.api("PUT", f"/users/{uid}", {"firstName": "Renamed"})
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", uid)])
        self.assertEqual(events[0]["changes"]["firstName"]["new"], "Renamed")
        self.assertEqual(events[0]["record"]["id"], uid)
        self.assertNotIn("traceId", events[0]["record"])
        # Nothing more when nothing changed.
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 1)

    # -- M3 + M11: users.search -----------------------------------------------

    def search_config(self):
        return self.write_config("[trigger us]\nuse = users.search\nevery = 1s\npage_size = 2\n",
                                 location=FAST + f"company_id = {COMPANY}\n")

    def test_users_search_company_created_and_one_deleted(self):
        self.sandbox.control("POST", "/_control/config",
                             {"user_delete_delay_ms": 300, "user_deleted_visible_ms": 2500})
        cfg = self.search_config()
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        reqs = [r for r in self.sandbox.requests() if r["path"] == "/users/search"]
        self.assertTrue(reqs)
        for r in reqs:
            self.assertEqual(r["query"]["companyId"], COMPANY)
            self.assertEqual(r["query"]["locationId"], harness.LOCATION_ID)
            self.assertEqual(r["query"]["limit"], "2")
        self.assertEqual(sorted(r["query"]["skip"] for r in reqs)[:2], ["0", "2"])

        created = self.sandbox.mutate([{"op": "create", "kind": "user"}])
        new_id = next(c["id"] for c in created if c["op"] == "created")
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("created", new_id)])

        victim = next(u["id"] for u in self.users() if u["id"] != new_id)
        self.sandbox.mutate([{"op": "delete", "kind": "user", "id": victim}])
        # The user first shows deleted: true, and is still listed.
        self.wait_for(lambda: any(u["id"] == victim and u["deleted"] for u in self.users()),
                      timeout=10, what="the deleted flag")
        self.run_once(cfg)
        events = self.events(cfg)
        deleted = [e for e in events if e["type"] == "deleted"]
        self.assertEqual([e["record_id"] for e in deleted], [victim])
        self.assertEqual(len(events), 2)
        # Then it vanishes: no second deleted event.
        self.wait_for(lambda: all(u["id"] != victim for u in self.users()), timeout=10,
                      what="the user to vanish")
        self.run_once(cfg)
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 2)

    def test_check_requires_company_for_static_token(self):
        cfg = self.write_config("[trigger us]\nuse = users.search\nevery = 1s\n", location=FAST)
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stderr, r"pollen\.ini:\d+: trigger 'us': users\.search sends the "
                                      r"companyId \(\{company\}\)")
        self.assertIn("add company_id = <companyId> to [location main]", proc.stderr)
        ok = self.search_config()
        self.pollen("check", "-c", ok)

    # -- M4: opportunities.search_advanced --------------------------------------

    def test_search_advanced_body_limit_and_stage_move(self):
        self.sandbox.seed(10, seed=3)
        self.sandbox.mutate([{"op": "create", "kind": "opportunity"} for _ in range(5)])
        # reconcile = 0s: every run is a full enumeration, so the deletion below is decided
        # by the next run (incremental cycles never decide one: test_incremental).
        cfg = self.write_config("[trigger o]\nuse = opportunities.search_advanced\nevery = 1s\n"
                                "page_size = 2\nreconcile = 0s\n", location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        bodies = [r["body"] for r in self.sandbox.requests()
                  if r["method"] == "POST" and r["path"] == "/opportunities/search"]
        self.assertEqual(len(bodies), 3)  # 2 + 2 + 1
        for b in bodies:
            self.assertEqual(b["limit"], 2)
            self.assertNotIn("pageLimit", b)
            self.assertEqual(b["locationId"], harness.LOCATION_ID)
        self.assertEqual(bodies[0].get("page"), 1)
        self.assertNotIn("searchAfter", bodies[0])
        for b in bodies[1:]:
            self.assertIsInstance(b["searchAfter"], list)
            self.assertNotIn("page", b)

        opp = self.api("POST", "/opportunities/search",
                       {"locationId": harness.LOCATION_ID, "limit": 1, "page": 1})["opportunities"][0]
        moved = self.sandbox.mutate([{"op": "move", "kind": "opportunity", "id": opp["id"]}])
        self.assertTrue(moved)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", opp["id"])])
        ch = events[0]["changes"]
        self.assertEqual(ch["pipelineStageId"]["old"], opp["pipelineStageId"])
        self.assertNotEqual(ch["pipelineStageId"]["new"], opp["pipelineStageId"])
        self.assertIn("updatedAt", ch)
        # A deleted opportunity is confirmed by id and reported once.
        self.sandbox.mutate([{"op": "delete", "kind": "opportunity", "id": opp["id"]}])
        time.sleep(0.01)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events[1:]], [("deleted", opp["id"])])

    # -- M15: agency definitions ----------------------------------------------

    def agency_setup(self):
        self.sandbox.control("POST", "/_control/tokens", {"token": AGENCY_TOKEN, "company_id": COMPANY})
        self.env["POLLEN_AGENCY_TOKEN"] = AGENCY_TOKEN

    def test_snapshots_list_with_the_agency_token(self):
        self.agency_setup()
        cfg = self.write_config(AGENCY + "[trigger snaps]\nuse = snapshots.list\ncompany = agency\n"
                                "every = 1s\nfirst_poll = emit\n", location=FAST)
        self.pollen("check", "-c", cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(len(events), 3)
        self.assertEqual({e["type"] for e in events}, {"created"})
        self.assertEqual({e["location"] for e in events}, {COMPANY})
        reqs = [r for r in self.sandbox.requests() if r["path"] == "/snapshots/"]
        self.assertEqual([(r["status"], r["query"].get("companyId")) for r in reqs], [(200, COMPANY)])
        # The same trigger on a location is refused by check.
        bad = self.write_config("[trigger snaps]\nuse = snapshots.list\n", location=FAST,
                                name="bad.ini")
        proc = self.pollen("check", "-c", bad, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("snapshots.list is an agency definition", proc.stderr)

    def test_filter_by_email_watch_list(self):
        self.agency_setup()
        users = self.users()[:2]
        emails = ",".join(u["email"] for u in users)
        cfg = self.write_config(AGENCY + "[trigger watch]\nuse = users.filter_by_email\n"
                                f"company = agency\nevery = 1s\nemails = {emails}\npage_size = 1\n",
                                location=FAST)
        self.sandbox.control("POST", "/_control/config",
                             {"user_delete_delay_ms": 200, "user_deleted_visible_ms": 60000})
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        bodies = [r["body"] for r in self.sandbox.requests()
                  if r["path"] == "/users/search/filter-by-email"]
        self.assertEqual([(b["skip"], b["limit"]) for b in bodies], [("0", "1"), ("1", "1"), ("2", "1")][:len(bodies)])
        self.assertGreaterEqual(len(bodies), 2)
        for b in bodies:
            self.assertEqual((b["companyId"], b["projection"], b["emails"]), (COMPANY, "all", emails))
        self.api("PUT", f"/users/{users[0]['id']}", {"lastName": "Watched"})
        self.sandbox.mutate([{"op": "delete", "kind": "user", "id": users[1]["id"]}])
        self.wait_for(lambda: any(u["id"] == users[1]["id"] and u["deleted"] for u in self.users()),
                      timeout=10, what="the deleted flag")
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in events),
                         sorted([("updated", users[0]["id"]), ("deleted", users[1]["id"])]))


if __name__ == "__main__":
    harness.main()
