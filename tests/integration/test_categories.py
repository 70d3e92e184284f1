"""The Opportunities, Users, Businesses, Workflows & Campaigns definitions of
the catalog, end to end against the sandbox API (issue #11).

1. Triggers (triggers/opportunities.ini, users.ini, businesses.ini,
   workflows.ini): the first run is a silent baseline; sandbox mutations then
   come out as exactly the `created`, `updated` (with the exact `changes`
   keys, old and new values) and `deleted` events the definition can see. A
   stage move is `updated` with changes.pipelineStageId; a won opportunity is
   `updated` with changes.status, never `deleted` (pollen asks for
   status=all: without it the sandbox's default, opportunities_default_status
   = open, would hide it; the API's default is undocumented);
   a missing opportunity or business is `deleted` only after a GET by id
   answered 404; businesses.list pages with skip/limit.
2. Actions (actions/opportunities.ini, businesses.ini, users.ini): a rule
   fires on a trigger event; the sandbox's request log shows the exact
   method, path, JSON body and Version header; the sandbox's state changed;
   one `action.succeeded` event names the firing event; the write read back
   by the trigger watching the resource is marked "origin": "pollen".
   A catalog action's query parameters are sent, percent-encoded
   (QueryParameterTest, with a test-only catalog action).
3. Known engine gaps, as expected failures naming the cause: the echo of an
   update outside contacts (echo.c knows only the contact's derived
   fields), and a single-record trigger's deletion under `run --once`.
4. Agency definitions (AgencyTest, a [company] with an agency token):
   snapshots.push_status.location follows a push from processing to
   completed, and snapshots.share_link runs from a rule on snapshots.list.
The contact routes of actions/workflows.ini are covered by test_actions.
"""
import os
import shutil
import time
import unittest

import harness
import test_actions
from test_actions import FAST, LOC, VERSION

OPPS = "[trigger opps]\nuse = opportunities.search\nevery = 1s\n"
BIZ = "[trigger biz]\nuse = businesses.list\nevery = 1s\n"
USERS = "[trigger users]\nuse = users.list\nevery = 1s\n"


def by_type(events, trigger):
    """{type: {record_id: event}} of the detection events of one trigger."""
    out = {}
    for e in events:
        if e.get("trigger") == trigger and e["type"] in test_actions.DETECTION:
            out.setdefault(e["type"], {})[e["record_id"]] = e
    return out


def kinds(events, trigger):
    return sorted((e["type"], e["record_id"]) for e in events
                  if e.get("trigger") == trigger and e["type"] in test_actions.DETECTION)


class CategoryTest(test_actions.RulesTest):
    """A sandbox with 4 contacts, 8 opportunities, 3 users and 5 businesses."""

    def setUp(self):
        harness.PollenTest.setUp(self)
        out = self.sandbox.control("POST", "/_control/seed", {
            "contacts": 4, "opportunities": 8, "users": 3, "businesses": 5, "seed": 21})
        self.ids = out["contact_ids"]
        self.opp_ids = out["opportunity_ids"]
        self.user_ids = out["user_ids"]
        self.biz_ids = out["business_ids"]
        self.meta = self.sandbox.state()["meta"]

    def records(self, kind):
        return {r["id"]: r for r in self.sandbox.state()["records"][kind]}

    def open_opps(self):
        recs = self.records("opportunities")
        return [i for i in self.opp_ids if recs[i]["status"] == "open"]

    def logged_fields(self, since, kind, rid):
        """The top-level fields the sandbox's change log says changed on (kind, rid)."""
        out = set()
        for c in self.sandbox.changes(since):
            if c["kind"] == kind and c["id"] == rid and c["op"] == "updated":
                out |= set(c["fields"])
        return out

    def reads(self, since, operation):
        return [r for r in self.sandbox.requests(since) if r["operation"] == operation]

    def engine_until(self, cfg, n, want, timeout=20):
        """Runs the engine until the detection events after the first n are want ({trigger:
        [(type, id)]}); returns them."""
        self.start_engine(cfg)

        def done():
            new = self.events(cfg)[n:]
            return new if all(kinds(new, t) == w for t, w in want.items()) else None
        try:
            self.wait_for(done, timeout=timeout, what="the events %r" % (want,))
        finally:
            self.stop_engine()
        return self.events(cfg)[n:]

    def baseline(self, triggers):
        cfg = self.write_config(triggers, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "the baseline must be silent")
        return cfg


class TriggersTest(CategoryTest):

    def test_every_category_trigger_has_a_test(self):
        """The catalog's triggers outside Contacts are exactly the ones tested here or in
        test_mechanisms."""
        proc = self.pollen("catalog", "triggers", "--catalog", harness.SOURCE_ROOT)
        names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
        elsewhere = {  # test_mechanisms (M4-M6 mechanisms), test_associations, test_tasks_search
            "users.get", "users.search", "users.filter_by_email", "snapshots.list",
            "opportunities.search_advanced", "associations.get", "associations.list",
            "locations.tasks.search"}
        ours = {n for n in names if "." in n and not n.startswith("contacts.")} - elsewhere
        self.assertEqual(ours, {
            "opportunities.search", "opportunities.get", "opportunities.pipelines", "users.list",
            "businesses.get", "businesses.list", "workflows.list", "campaigns.list",
            "opportunities.lost_reasons",
            # below: agency triggers
            "snapshots.push_status.location"})

    def test_opportunities_search_get_and_pipelines(self):
        opens = self.open_opps()
        self.assertGreaterEqual(len(opens), 5, "the seed must give open opportunities")
        watched, moved, won, gone, valued = opens[:5]
        pipes = self.records("pipelines")
        old_pipe = sorted(pipes)[0]
        cfg = self.baseline(OPPS + "[trigger one]\nuse = opportunities.get\nevery = 1s\nid = "
                            + watched + "\n[trigger pipes]\nuse = opportunities.pipelines\n"
                            "every = 1s\n")
        before = self.records("opportunities")
        seq = harness.change_log_seq(self.sandbox)
        mark = self.request_seq()
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "opportunity", "fields": {"name": "Fresh deal"}},
            {"op": "move", "kind": "opportunity", "id": moved},
            {"op": "win", "kind": "opportunity", "id": won},
            {"op": "delete", "kind": "opportunity", "id": gone},
            {"op": "value", "kind": "opportunity", "id": valued, "fields": {"monetaryValue": 777}},
            {"op": "update", "kind": "opportunity", "id": watched, "fields": {"name": "Renamed"}},
            {"op": "create", "kind": "pipeline", "fields": {"name": "New pipe"}},
            {"op": "rename", "kind": "pipeline", "id": old_pipe, "fields": {"name": "Old, renamed"}},
        ])
        created = next(c["id"] for c in changes if c["kind"] == "opportunity"
                       and c["op"] == "created")
        new_pipe = next(c["id"] for c in changes if c["kind"] == "pipeline" and c["op"] == "created")
        self.run_once(cfg)
        events = self.events(cfg)
        after = self.records("opportunities")
        self.assertEqual(kinds(events, "opps"), sorted([
            ("created", created), ("updated", moved), ("updated", won), ("deleted", gone),
            ("updated", valued), ("updated", watched)]), events)
        ev = by_type(events, "opps")
        # A stage move: changes.pipelineStageId with old and new stage.
        ch = ev["updated"][moved]["changes"]
        self.assertEqual(ch["pipelineStageId"], {"old": before[moved]["pipelineStageId"],
                                                 "new": after[moved]["pipelineStageId"]})
        self.assertNotEqual(ch["pipelineStageId"]["old"], ch["pipelineStageId"]["new"])
        self.assertEqual(set(ch), self.logged_fields(seq, "opportunity", moved))
        self.assertEqual(set(ch) - {"pipelineStageId", "updatedAt", "lastStageChangeAt",
                                          "lastActionDate"}, set())
        # A win is an update of status, never a deletion.
        ch = ev["updated"][won]["changes"]
        self.assertEqual(ch["status"], {"old": "open", "new": "won"})
        self.assertEqual(set(ch), self.logged_fields(seq, "opportunity", won))
        self.assertNotIn(won, ev.get("deleted", {}))
        ch = ev["updated"][valued]["changes"]
        self.assertEqual(ch["monetaryValue"]["new"], 777)
        self.assertEqual(set(ch), self.logged_fields(seq, "opportunity", valued))
        self.assertEqual(ev["created"][created]["record"]["name"], "Fresh deal")
        self.assertEqual(ev["deleted"][gone]["record"]["name"], before[gone]["name"])
        # Every search asked for status=all; the sandbox's default (open only) would have
        # hidden the won opportunity, which would then have looked deleted.
        searches = self.reads(mark, "search-opportunity")
        self.assertTrue(searches)
        for r in searches:
            self.assertEqual(r["query"].get("status"), "all", r)
            self.assertEqual(r["query"].get("location_id"), LOC, r)
            self.assertEqual(r["headers"].get("Version"), VERSION, r)
        default = self.api("GET", "/opportunities/search?location_id=%s&limit=100" % LOC)
        self.assertNotIn(won, {o["id"] for o in default["opportunities"]})
        self.assertIn(moved, {o["id"] for o in default["opportunities"]})
        # The deletion was confirmed by id (404) after the search, and only for that record.
        confirms = [r for r in self.reads(mark, "get-opportunity")
                    if r["path"] == "/opportunities/" + gone]
        self.assertEqual([r["status"] for r in confirms], [404])
        self.assertLess(max(r["seq"] for r in searches), confirms[0]["seq"])
        # opportunities.get follows the one record.
        self.assertEqual(kinds(events, "one"), [("updated", watched)])
        ch = by_type(events, "one")["updated"][watched]["changes"]
        self.assertEqual(ch["name"], {"old": before[watched]["name"], "new": "Renamed"})
        self.assertEqual(set(ch), self.logged_fields(seq, "opportunity", watched))
        # Pipelines: created and renamed now.
        self.assertEqual(kinds(events, "pipes"), sorted([("created", new_pipe),
                                                         ("updated", old_pipe)]))
        ch = by_type(events, "pipes")["updated"][old_pipe]["changes"]
        self.assertEqual(ch, {"name": {"old": pipes[old_pipe]["name"], "new": "Old, renamed"}})
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), len(events), "nothing more without a change")
        # Deletions: the watched opportunity (GET by id: 404) and a pipeline, which has no GET
        # by id and is confirmed by a second complete listing.
        n = len(self.events(cfg))
        self.sandbox.mutate([{"op": "delete", "kind": "opportunity", "id": watched},
                             {"op": "delete", "kind": "pipeline", "id": new_pipe}])
        new = self.engine_until(cfg, n, {"opps": [("deleted", watched)],
                                         "one": [("deleted", watched)],
                                         "pipes": [("deleted", new_pipe)]})
        self.assertEqual(by_type(new, "pipes")["deleted"][new_pipe]["record"]["name"], "New pipe")

    def test_opportunities_lost_reasons(self):
        reasons = self.records("lostReasons")
        self.assertGreaterEqual(len(reasons), 3)
        renamed, gone = sorted(reasons)[:2]
        cfg = self.baseline("[trigger lost]\nuse = opportunities.lost_reasons\nevery = 1s\n")
        mark = self.request_seq()
        seq = harness.change_log_seq(self.sandbox)
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "lost_reason", "fields": {"name": "Too expensive"}},
            {"op": "rename", "kind": "lost_reason", "id": renamed, "fields": {"name": "No budget"}},
            {"op": "delete", "kind": "lost_reason", "id": gone},
        ])
        new = next(c["id"] for c in changes if c["op"] == "created")
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "lost"), sorted([
            ("created", new), ("updated", renamed), ("deleted", gone)]), events)
        ev = by_type(events, "lost")
        self.assertEqual(ev["created"][new]["record"]["name"], "Too expensive")
        ch = ev["updated"][renamed]["changes"]
        self.assertEqual(set(ch), self.logged_fields(seq, "lost_reason", renamed))
        self.assertEqual(ch["name"], {"old": reasons[renamed]["name"], "new": "No budget"})
        self.assertIn("updatedAt", ch)
        self.assertEqual(ev["deleted"][gone]["record"]["name"], reasons[gone]["name"])
        reads = self.reads(mark, "get-lost-reason")
        self.assertTrue(reads)
        for r in reads:
            self.assertEqual((r["status"], r["query"]["locationId"], r["query"]["skip"],
                              r["query"]["limit"]), (200, LOC, "0", "100"))
            self.assertEqual(r["headers"].get("Version"), VERSION)

    def test_businesses_list_pages_and_get(self):
        biz = sorted(self.records("businesses"))
        self.assertGreaterEqual(len(biz), 5)
        watched = biz[0]
        cfg = self.baseline(BIZ + "page_size = 2\n[trigger one]\nuse = businesses.get\n"
                            "every = 1s\nbusinessId = " + watched + "\n")
        before = self.records("businesses")
        seq = harness.change_log_seq(self.sandbox)
        mark = self.request_seq()
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "business", "fields": {"name": "Acme Widgets"}},
            {"op": "update", "kind": "business", "id": watched, "fields": {"city": "Porto"}},
            {"op": "update", "kind": "business", "id": biz[2], "fields": {"phone": "+15125550101"}},
            {"op": "delete", "kind": "business", "id": biz[3]},
        ])
        created = next(c["id"] for c in changes if c["op"] == "created")
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "biz"), sorted([
            ("created", created), ("updated", watched), ("updated", biz[2]),
            ("deleted", biz[3])]), events)
        ev = by_type(events, "biz")
        ch = ev["updated"][watched]["changes"]
        self.assertEqual(ch["city"], {"old": before[watched].get("city"), "new": "Porto"})
        self.assertEqual(set(ch), self.logged_fields(seq, "business", watched))
        self.assertIn("updatedAt", ch)
        ch = ev["updated"][biz[2]]["changes"]
        self.assertEqual(ch["phone"]["new"], "+15125550101")
        self.assertEqual(set(ch), self.logged_fields(seq, "business", biz[2]))
        self.assertEqual(ev["created"][created]["record"]["name"], "Acme Widgets")
        self.assertEqual(ev["deleted"][biz[3]]["record"]["name"], before[biz[3]]["name"])
        # More than one page of 2, with skip moving by 2, until a short page.
        pages = self.reads(mark, "get-businesses-by-location")
        skips = [int(r["query"].get("skip", "0")) for r in pages]
        self.assertGreaterEqual(len(pages), 3, pages)
        self.assertEqual(skips, [2 * i for i in range(len(pages))])
        for r in pages:
            self.assertEqual(r["query"].get("limit"), "2", r)
            self.assertEqual(r["query"].get("locationId"), LOC, r)
            self.assertEqual(r["headers"].get("Version"), VERSION, r)
        confirms = [r for r in self.reads(mark, "get-business") if r["path"].endswith(biz[3])]
        self.assertEqual([r["status"] for r in confirms], [404])
        self.assertLess(max(r["seq"] for r in pages), confirms[0]["seq"])
        # businesses.get follows the one record.
        self.assertEqual(kinds(events, "one"), [("updated", watched)])
        self.assertEqual(by_type(events, "one")["updated"][watched]["changes"]["city"]["new"],
                         "Porto")
        n = len(events)
        self.sandbox.mutate([{"op": "delete", "kind": "business", "id": watched}])
        new = self.engine_until(cfg, n, {"biz": [("deleted", watched)],
                                         "one": [("deleted", watched)]})
        self.assertEqual(by_type(new, "one")["deleted"][watched]["record"]["city"], "Porto")

    def test_users_list(self):
        self.sandbox.control("POST", "/_control/config", {
            "user_delete_delay_ms": 0, "user_deleted_visible_ms": 0})
        users = sorted(self.user_ids)
        cfg = self.baseline(USERS)
        before = {u["id"]: u for u in self.sandbox.state()["records"]["users"]}
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "user", "fields": {"firstName": "Nadia"}},
            {"op": "update", "kind": "user", "id": users[0], "fields": {"phone": "+15125550142"}},
            {"op": "delete", "kind": "user", "id": users[1]},
        ])
        created = next(c["id"] for c in changes if c["op"] == "created")
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "users"), sorted([
            ("created", created), ("updated", users[0]), ("deleted", users[1])]), events)
        ev = by_type(events, "users")
        self.assertEqual(ev["updated"][users[0]]["changes"],
                         {"phone": {"old": before[users[0]].get("phone"), "new": "+15125550142"}})
        self.assertEqual(ev["created"][created]["record"]["firstName"], "Nadia")
        self.assertEqual(ev["deleted"][users[1]]["record"]["email"], before[users[1]]["email"])

    def test_users_list_asynchronous_delete(self):
        """As through the API, a deleted user first stays listed, then shows deleted: true
        (an update), then leaves the list (the deletion, after a second listing)."""
        # Phases of 1.5 s each, wide enough for a cycle under a sanitizer.
        self.sandbox.control("POST", "/_control/config", {
            "user_delete_delay_ms": 1500, "user_deleted_visible_ms": 1500})
        uid = sorted(self.user_ids)[0]
        cfg = self.baseline(USERS)
        t0 = time.time()
        self.api("DELETE", "/users/" + uid)
        self.run_once(cfg)
        if time.time() - t0 > 1.4:
            self.skipTest("a cycle took longer than the sandbox's first phase")
        self.assertEqual(self.events(cfg), [], "queued: still listed as it was")
        time.sleep(max(0, t0 + 1.6 - time.time()))
        self.run_once(cfg)
        if time.time() - t0 > 2.9:
            self.skipTest("a cycle took longer than the sandbox's second phase")
        events = self.events(cfg)
        self.assertEqual(kinds(events, "users"), [("updated", uid)])
        ch = events[0]["changes"]
        self.assertEqual(list(ch), ["deleted"])
        self.assertIs(ch["deleted"]["new"], True)
        time.sleep(max(0, t0 + 3.1 - time.time()))
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "users"), [("deleted", uid), ("updated", uid)])
        self.assertIs(by_type(events, "users")["deleted"][uid]["record"]["deleted"], True)

    def test_workflows_and_campaigns_lists(self):
        wfs = sorted(self.records("workflows"))
        camps = self.records("campaigns")
        cids = sorted(camps)
        self.assertGreaterEqual(len(wfs), 3)
        self.assertGreaterEqual(len(cids), 3)
        cfg = self.baseline("[trigger wf]\nuse = workflows.list\nevery = 1s\n"
                            "[trigger camp]\nuse = campaigns.list\nevery = 1s\n")
        wf_before = self.records("workflows")
        seq = harness.change_log_seq(self.sandbox)
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "workflow", "fields": {"name": "Onboarding"}},
            {"op": "publish", "kind": "workflow", "id": wfs[0]},
            {"op": "rename", "kind": "workflow", "id": wfs[1], "fields": {"name": "Nurture v2"}},
            {"op": "delete", "kind": "workflow", "id": wfs[2]},
            {"op": "create", "kind": "campaign", "fields": {"name": "Spring"}},
            {"op": "status", "kind": "campaign", "id": cids[0]},
            {"op": "rename", "kind": "campaign", "id": cids[1], "fields": {"name": "Autumn"}},
            {"op": "delete", "kind": "campaign", "id": cids[2]},
        ])
        new_wf = next(c["id"] for c in changes if c["kind"] == "workflow" and c["op"] == "created")
        new_camp = next(c["id"] for c in changes if c["kind"] == "campaign" and c["op"] == "created")
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "wf"), sorted([
            ("created", new_wf), ("updated", wfs[0]), ("updated", wfs[1]), ("deleted", wfs[2])]),
            events)
        ev = by_type(events, "wf")
        ch = ev["updated"][wfs[0]]["changes"]
        self.assertEqual(set(ch), self.logged_fields(seq, "workflow", wfs[0]))
        self.assertEqual(ch["version"], {"old": wf_before[wfs[0]]["version"],
                                         "new": wf_before[wfs[0]]["version"] + 1})
        self.assertIn("updatedAt", ch)
        ch = ev["updated"][wfs[1]]["changes"]
        self.assertEqual(ch["name"]["new"], "Nurture v2")
        self.assertEqual(set(ch), self.logged_fields(seq, "workflow", wfs[1]))
        self.assertEqual(ev["created"][new_wf]["record"]["name"], "Onboarding")
        self.assertEqual(kinds(events, "camp"), sorted([
            ("created", new_camp), ("updated", cids[0]), ("updated", cids[1]),
            ("deleted", cids[2])]), events)
        ev = by_type(events, "camp")
        self.assertEqual(list(ev["updated"][cids[0]]["changes"]), ["status"])
        self.assertEqual(ev["updated"][cids[0]]["changes"]["status"]["old"], camps[cids[0]]["status"])
        self.assertEqual(ev["updated"][cids[1]]["changes"],
                         {"name": {"old": camps[cids[1]]["name"], "new": "Autumn"}})
        self.assertEqual(ev["deleted"][cids[2]]["record"]["name"], camps[cids[2]]["name"])


# Static tokens of the sandbox belong to this company (tests/sandbox/README.md).
COMPANY = "sbxCompany0000000001"
AGENCY_TOKEN = "agency-test-token-0123456789"
AGENCY = (f"[company agency]\nid = {COMPANY}\ntoken = env:POLLEN_AGENCY_TOKEN\n"
          "rate_limit = 100\nrate_window = 1s\n")


class AgencyTest(CategoryTest):
    """Agency definitions: a [company] with an agency token (as in test_mechanisms)."""

    def setUp(self):
        super().setUp()
        self.sandbox.control("POST", "/_control/tokens", {"token": AGENCY_TOKEN, "company_id": COMPANY})
        self.env["POLLEN_AGENCY_TOKEN"] = AGENCY_TOKEN
        self.snaps = [s["id"] for s in self.sandbox.state()["records"]["snapshots"]]

    def push(self, snapshot, duration_ms):
        change, = self.sandbox.mutate([{"op": "push", "kind": "snapshot_push", "fields": {
            "snapshotId": snapshot, "duration_ms": duration_ms}}])
        return change["id"]

    def test_snapshot_push_status_location(self):
        snap = self.snaps[0]
        cfg = self.write_config(AGENCY + "[trigger push]\nuse = snapshots.push_status.location\n"
                                f"company = agency\nevery = 1s\nsnapshotId = {snap}\n"
                                f"locationId = {LOC}\n", location=FAST)
        self.pollen("check", "-c", cfg)
        mark = self.request_seq()
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "no push yet: the API's 400, no record")
        pushed = time.time()
        first = self.push(snap, 3000)  # generous: CI runs under ASan
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(kinds(events, "push"), [("created", LOC)], events)
        rec = events[0]["record"]
        self.assertEqual((rec["id"], rec["status"]), (first, "processing"))
        self.assertEqual(events[0]["location"], COMPANY)
        time.sleep(max(0, pushed + 3.1 - time.time()))
        self.run_once(cfg)
        events = self.events(cfg)[1:]
        self.assertEqual(kinds(events, "push"), [("updated", LOC)], events)
        ch = events[0]["changes"]
        self.assertEqual(ch["status"], {"old": "processing", "new": "completed"})
        self.assertEqual(ch["pending"]["new"], [])
        second = self.push(snap, 0)
        self.run_once(cfg)
        events = self.events(cfg)[2:]
        self.assertEqual(kinds(events, "push"), [("updated", LOC)], events)
        self.assertEqual(events[0]["changes"], {"id": {"old": first, "new": second}})
        reads = self.reads(mark, "get-latest-snapshot-push")
        self.assertEqual(len(reads), 4)
        for r in reads:
            self.assertEqual(r["path"], f"/snapshots/snapshot-status/{snap}/location/{LOC}")
            self.assertEqual(r["query"], {"companyId": COMPANY})
            self.assertEqual(r["headers"].get("Version"), VERSION)
        self.assertEqual([r["status"] for r in reads], [400, 200, 200, 200])


    def test_snapshot_share_link_action(self):
        """An agency action runs with the [company]'s agency token when its rule fires on an
        agency trigger; its query companyId is {company}: the [company]'s id."""
        snap = self.snaps[1]
        cfg = self.write_config(
            AGENCY + "[trigger snaps]\nuse = snapshots.list\ncompany = agency\nevery = 1s\n"
            "first_poll = emit\n"
            f"[rule share]\non = snaps:created\nwhen = record.id == \"{snap}\"\n"
            f"do = snapshots.share_link\nsnapshot_id = {{{{record.id}}}}\n"
            f"share_type = location_link\nshare_location_id = {LOC}\n", location=FAST)
        self.pollen("check", "-c", cfg)
        mark = self.request_seq()
        self.run_once(cfg)
        # A 201: the sandbox answers a location token with 401, so the agency token was sent.
        writes = self.writes(mark)
        self.assertEqual(len(writes), 1, writes)
        req = writes[0]
        self.assertEqual((req["method"], req["path"], req["query"], req["status"]),
                         ("POST", "/snapshots/share/link", {"companyId": COMPANY}, 201), req)
        self.assertEqual(req["headers"].get("Version"), VERSION)
        self.assertJSON(req["body"], {"snapshot_id": snap, "share_type": "location_link",
                                      "share_location_id": LOC})
        events = self.events(cfg)
        self.assertEqual(len(by_type(events, "snaps")["created"]), 3)
        self.assertSucceeded(events, "share", "snapshots.share_link", 201, "snaps", "created", snap)


class ActionsTest(CategoryTest):
    """Each action of actions/opportunities.ini, businesses.ini and users.ini, fired by a rule
    on a trigger event; one engine cycle runs all the rules of a category."""

    def outcome(self, events, rule):
        return [e for e in events if e["type"].startswith("action.") and e.get("rule") == rule]

    def assertConfirmNeeded(self, rules, triggers, destructive):
        """Without its `confirm = yes`, each destructive rule is refused at its `do =` line."""
        cfg = self.write_config(triggers + "\n" + rules.replace("confirm = yes\n", ""),
                                location=FAST, name="noconfirm.ini")
        with open(cfg) as f:
            lines = f.read().splitlines()
        proc = self.pollen("check", "-c", cfg, check=False)
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 2, out)
        for name, action in destructive.items():
            header = lines.index("[rule %s]" % name)
            line = next(i for i in range(header, len(lines)) if lines[i].startswith("do =")) + 1
            self.assertIn("%s:%d: rule '%s' runs destructive action %s: add confirm = yes"
                          % (cfg, line, name, action), out)
        self.assertEqual(len(out.strip().splitlines()), len(destructive), out)

    def assertSucceeded(self, events, rule, action, status, trigger, type_, record_id,
                        trace=True):
        """As in test_actions; trace=False for the routes whose answer is a bare record
        without a traceId (users): the event then has none either."""
        if trace:
            return super().assertSucceeded(events, rule, action, status, trigger, type_,
                                           record_id)
        outcomes = self.outcome(events, rule)
        self.assertEqual([e["type"] for e in outcomes], ["action.succeeded"], outcomes)
        ev = outcomes[0]
        self.assertEqual((ev["action"], ev["status"], ev.get("traceId")), (action, status, None))
        src = {e["id"]: e for e in events}[ev["source"]]
        self.assertEqual((src["trigger"], src["type"], src["record_id"]),
                         (trigger, type_, record_id))
        self.assertNotIn("origin", src)
        return ev

    def write_of(self, writes, operation):
        got = [w for w in writes if w["operation"] == operation]
        self.assertEqual(len(got), 1, [(w["operation"], w["path"]) for w in writes])
        return got[0]

    TESTED = {
        "opportunities.create", "opportunities.update", "opportunities.delete",
        "opportunities.status", "opportunities.followers.add", "opportunities.followers.remove",
        "businesses.create", "businesses.update", "businesses.delete",
        "users.update", "users.delete",
        "users.create",  # in test_action_mechanisms (a secret field, conflict_ok)
        "opportunities.upsert",  # in test_action_mechanisms (per-field defaults)
        "snapshots.share_link",  # in AgencyTest (an agency action)
    }

    def test_every_category_action_has_a_test(self):
        """The actions of these categories in the catalog are exactly the ones tested here."""
        proc = self.pollen("catalog", "actions", "--catalog", harness.SOURCE_ROOT)
        names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
        ours = {n for n in names
                if n.split(".")[0] in ("opportunities", "businesses", "users", "snapshots")}
        self.assertEqual(ours, self.TESTED)

    # -- opportunities ----------------------------------------------------------

    OPP_RULES = (
        "[rule upsell]\non = opps:updated\nwhen = changed(monetaryValue)\n"
        "do = opportunities.create\npipelineId = {{record.pipelineId}}\n"
        "name = Upsell {{record.name}}\nstatus = open\ncontactId = {{record.contactId}}\n"
        "monetaryValue = 250\n"
        "[rule stage]\non = opps:updated\nwhen = changed(pipelineStageId)\n"
        "do = opportunities.update\nid = {{record.id}}\nname = Moved {{record.name}}\n"
        "[rule close]\non = opps:updated\nwhen = changed(assignedTo)\n"
        "do = opportunities.status\nid = {{record.id}}\nstatus = won\n"
        "[rule purge]\non = opps:updated\nwhen = record.name == \"Spam deal\"\n"
        "do = opportunities.delete\nconfirm = yes\nid = {{record.id}}\n"
        "[rule follow]\non = opps:created\nwhen = record.name == \"Follow me\"\n"
        "do = opportunities.followers.add\nid = {{record.id}}\nfollowers = %s\n"
        "[rule unfollow]\non = opps:updated\nwhen = record.name == \"Unfollow\"\n"
        "do = opportunities.followers.remove\nconfirm = yes\nid = {{record.id}}\n"
        "followers = %s\n")

    def run_opportunity_actions(self):
        """Fires the 6 rules in one cycle; returns (cfg, mark, {rule: (opportunity id)})."""
        # The upsell goes to the same contact and pipeline: like a location with duplicate
        # opportunities allowed (the sandbox, like the API's default, refuses them with 400).
        self.sandbox.control("POST", "/_control/config", {"opportunities_allow_duplicates": True})
        users = self.meta["users"][:2]
        opens = self.open_opps()
        self.assertGreaterEqual(len(opens), 5)
        valued, moved, assigned, spam, unfollow = opens[:5]
        assignee = next(u for u in self.meta["users"]
                        if u != self.records("opportunities")[assigned].get("assignedTo"))
        self.sandbox.mutate([{"op": "update", "kind": "opportunity", "id": unfollow,
                              "fields": {"followers": users}}])
        rules = self.OPP_RULES % (" ".join(users), users[0])
        self.assertConfirmNeeded(rules, OPPS, {
            "purge": "opportunities.delete", "unfollow": "opportunities.followers.remove"})
        cfg = self.configure(rules, triggers=OPPS)
        self.before = self.records("opportunities")
        self.users = users
        changes = self.sandbox.mutate([
            {"op": "value", "kind": "opportunity", "id": valued, "fields": {"monetaryValue": 1234}},
            {"op": "move", "kind": "opportunity", "id": moved},
            {"op": "assign", "kind": "opportunity", "id": assigned,
             "fields": {"assignedTo": assignee}},
            {"op": "update", "kind": "opportunity", "id": spam, "fields": {"name": "Spam deal"}},
            {"op": "create", "kind": "opportunity", "fields": {"name": "Follow me"}},
            {"op": "update", "kind": "opportunity", "id": unfollow, "fields": {"name": "Unfollow"}},
        ])
        followed = next(c["id"] for c in changes if c["op"] == "created")
        mark = self.request_seq()
        return cfg, mark, {"upsell": valued, "stage": moved, "close": assigned, "purge": spam,
                           "follow": followed, "unfollow": unfollow}

    def test_opportunity_actions(self):
        cfg, mark, rid = self.run_opportunity_actions()
        before, users = self.before, self.users
        self.run_once(cfg)
        writes, events = self.writes(mark), self.events(cfg)
        self.assertEqual(len(writes), 6, [(w["method"], w["path"]) for w in writes])
        src = before[rid["upsell"]]
        w = self.write_of(writes, "create-opportunity")
        self.assertRequest(w, "POST", "/opportunities/", {
            "locationId": LOC, "pipelineId": src["pipelineId"], "name": "Upsell " + src["name"],
            "status": "open", "contactId": src["contactId"], "monetaryValue": 250}, 201)
        self.assertSucceeded(events, "upsell", "opportunities.create", 201, "opps", "updated",
                             rid["upsell"])
        made = [o for o in self.records("opportunities").values()
                if o["name"] == "Upsell " + src["name"]]
        self.assertEqual([(o["monetaryValue"], o["status"], o["contactId"]) for o in made],
                         [(250, "open", src["contactId"])])
        self.created_by_rule = made[0]["id"]

        w = self.write_of(writes, "update-opportunity")
        self.assertRequest(w, "PUT", "/opportunities/" + rid["stage"],
                           {"name": "Moved " + before[rid["stage"]]["name"]}, 200)
        self.assertSucceeded(events, "stage", "opportunities.update", 200, "opps", "updated",
                             rid["stage"])
        self.assertEqual(self.records("opportunities")[rid["stage"]]["name"],
                         "Moved " + before[rid["stage"]]["name"])

        w = self.write_of(writes, "update-opportunity-status")
        self.assertRequest(w, "PUT", "/opportunities/%s/status" % rid["close"],
                           {"status": "won"}, 200)
        self.assertSucceeded(events, "close", "opportunities.status", 200, "opps", "updated",
                             rid["close"])
        self.assertEqual(self.records("opportunities")[rid["close"]]["status"], "won")

        w = self.write_of(writes, "delete-opportunity")
        self.assertRequest(w, "DELETE", "/opportunities/" + rid["purge"], None, 200)
        self.assertSucceeded(events, "purge", "opportunities.delete", 200, "opps", "updated",
                             rid["purge"])
        self.assertNotIn(rid["purge"], self.records("opportunities"))

        w = self.write_of(writes, "add-followers-opportunity")
        self.assertRequest(w, "POST", "/opportunities/%s/followers" % rid["follow"],
                           {"followers": users}, 201)
        self.assertSucceeded(events, "follow", "opportunities.followers.add", 201, "opps",
                             "created", rid["follow"])
        self.assertEqual(self.records("opportunities")[rid["follow"]]["followers"], users)

        w = self.write_of(writes, "remove-followers-opportunity")
        self.assertRequest(w, "DELETE", "/opportunities/%s/followers" % rid["unfollow"],
                           {"followers": [users[0]]}, 200)
        self.assertSucceeded(events, "unfollow", "opportunities.followers.remove", 200, "opps",
                             "updated", rid["unfollow"])
        self.assertEqual(self.records("opportunities")[rid["unfollow"]]["followers"], [users[1]])

    def opportunity_echoes(self):
        """Runs the 6 rules, then 2 more cycles; returns (cfg, mark, rid, {rule: [(type,
        origin)] of the events on its record after the rules ran})."""
        cfg, mark, rid = self.run_opportunity_actions()
        self.run_once(cfg)
        n = len(self.events(cfg))
        self.run_once(cfg)
        self.run_once(cfg)
        names = {o["id"]: o["name"] for o in self.records("opportunities").values()}
        created = [i for i, name in names.items() if name.startswith("Upsell ")]
        self.assertEqual(len(created), 1, names)
        rid["upsell"] = created[0]
        events = self.events(cfg)[n:]
        seen = {rule: [(e["type"], e.get("origin")) for e in events
                       if e.get("trigger") == "opps" and e.get("record_id") == i
                       and not e["type"].startswith("action.")]
                for rule, i in rid.items()}
        return cfg, mark, rid, seen

    def test_opportunity_create_and_delete_echoes(self):
        """pollen's own create and delete come back marked origin pollen and fire nothing."""
        cfg, mark, rid, seen = self.opportunity_echoes()
        self.assertEqual(self.echo(cfg, "opps", rid["upsell"])["type"], "created")
        self.assertEqual(self.echo(cfg, "opps", rid["purge"])["type"], "deleted")
        writes = [(w["operation"], w["path"]) for w in self.writes(mark)]
        self.assertEqual(writes.count(("create-opportunity", "/opportunities/")), 1, writes)
        self.assertEqual(writes.count(("delete-opportunity", "/opportunities/" + rid["purge"])),
                         1, writes)

    def test_opportunity_update_echoes(self):
        """The echoes of opportunities.update, .status, .followers.add and .followers.remove
        are marked origin "pollen": an opportunity's updatedAt, lastActionDate,
        lastStatusChangeAt and lastStageChangeAt move on every write, and resources/
        opportunities.ini declares them derived; so a rule whose condition still holds does
        not fire again (`unfollow` sends exactly one DELETE .../followers)."""
        cfg, mark, rid, seen = self.opportunity_echoes()
        got = {rule: seen[rule] for rule in ("stage", "close", "follow", "unfollow")}
        self.assertEqual(got, {rule: [("updated", "pollen")] for rule in got})
        self.assertEqual(len(self.writes(mark)), 6)

    # -- businesses -------------------------------------------------------------

    def test_business_actions(self):
        biz = sorted(self.records("businesses"))
        rules = ("[rule branch]\non = biz:updated\nwhen = changed(city)\n"
                 "do = businesses.create\nname = Branch of {{record.name}}\n"
                 "city = {{record.city}}\nemail = branch@example.com\n"
                 "[rule enrich]\non = biz:created\ndo = businesses.update\n"
                 "businessId = {{record.id}}\nwebsite = https://example.com/{{record.id}}\n"
                 "description = Checked\n"
                 "[rule close]\non = biz:updated\nwhen = record.name == \"Defunct\"\n"
                 "do = businesses.delete\nconfirm = yes\nbusinessId = {{record.id}}\n")
        self.assertConfirmNeeded(rules, BIZ, {"close": "businesses.delete"})
        cfg = self.configure(rules, triggers=BIZ)
        before = self.records("businesses")
        changes = self.sandbox.mutate([
            {"op": "update", "kind": "business", "id": biz[0], "fields": {"city": "Braga"}},
            {"op": "create", "kind": "business", "fields": {"name": "Newco"}},
            {"op": "update", "kind": "business", "id": biz[1], "fields": {"name": "Defunct"}},
        ])
        newco = next(c["id"] for c in changes if c["op"] == "created")
        mark = self.request_seq()
        self.run_once(cfg)
        writes, events = self.writes(mark), self.events(cfg)
        self.assertEqual(len(writes), 3, [(w["method"], w["path"]) for w in writes])
        w = self.write_of(writes, "create-business")
        self.assertRequest(w, "POST", "/businesses/", {
            "locationId": LOC, "name": "Branch of " + before[biz[0]]["name"], "city": "Braga",
            "email": "branch@example.com"}, 201)
        self.assertSucceeded(events, "branch", "businesses.create", 201, "biz", "updated", biz[0])
        made = [b for b in self.records("businesses").values()
                if b["name"] == "Branch of " + before[biz[0]]["name"]]
        self.assertEqual([(b["city"], b["email"]) for b in made], [("Braga", "branch@example.com")])
        w = self.write_of(writes, "update-business")
        self.assertRequest(w, "PUT", "/businesses/" + newco, {
            "website": "https://example.com/" + newco, "description": "Checked"}, 200)
        self.assertSucceeded(events, "enrich", "businesses.update", 200, "biz", "created", newco)
        rec = self.records("businesses")[newco]
        self.assertEqual((rec["website"], rec["description"]),
                         ("https://example.com/" + newco, "Checked"))
        w = self.write_of(writes, "delete-Business")
        self.assertRequest(w, "DELETE", "/businesses/" + biz[1], None, 200)
        self.assertSucceeded(events, "close", "businesses.delete", 200, "biz", "updated", biz[1])
        self.assertNotIn(biz[1], self.records("businesses"))
        # The echoes: the branch comes back created and the deletion deleted, both pollen's
        # own; the branch's creation does not fire `enrich`.
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 3)
        self.assertEqual(self.echo(cfg, "biz", made[0]["id"])["type"], "created")
        self.assertEqual(self.echo(cfg, "biz", biz[1])["type"], "deleted")

    def test_business_update_echo(self):
        """pollen's own businesses.update comes back marked origin "pollen": a business's
        updatedAt moves on every write and resources/businesses.ini declares it derived."""
        rules = ("[rule enrich]\non = biz:created\ndo = businesses.update\n"
                 "businessId = {{record.id}}\ndescription = Checked\n")
        cfg = self.configure(rules, triggers=BIZ)
        changes = self.sandbox.mutate([{"op": "create", "kind": "business",
                                        "fields": {"name": "Newco"}}])
        newco = changes[0]["id"]
        mark = self.request_seq()
        self.run_once(cfg)
        self.assertEqual(len(self.writes(mark)), 1)
        self.run_once(cfg)
        self.assertEqual(self.echo(cfg, "biz", newco)["type"], "updated")

    # -- users ------------------------------------------------------------------

    def test_user_actions(self):
        self.sandbox.control("POST", "/_control/config", {
            "user_delete_delay_ms": 0, "user_deleted_visible_ms": 0})
        users = sorted(self.user_ids)
        rules = ("[rule verify]\non = users:updated\nwhen = changed(phone)\n"
                 "do = users.update\nuserId = {{record.id}}\nlastName = Verified\n"
                 "[rule temp]\non = users:created\nwhen = record.firstName == \"Temp\"\n"
                 "do = users.delete\nconfirm = yes\nuserId = {{record.id}}\n")
        self.assertConfirmNeeded(rules, USERS, {"temp": "users.delete"})
        cfg = self.configure(rules, triggers=USERS)
        changes = self.sandbox.mutate([
            {"op": "update", "kind": "user", "id": users[0], "fields": {"phone": "+15125550177"}},
            {"op": "create", "kind": "user", "fields": {"firstName": "Temp"}},
        ])
        temp = next(c["id"] for c in changes if c["op"] == "created")
        mark = self.request_seq()
        self.run_once(cfg)
        writes, events = self.writes(mark), self.events(cfg)
        self.assertEqual(len(writes), 2, [(w["method"], w["path"]) for w in writes])
        self.assertRequest(self.write_of(writes, "update-user"), "PUT", "/users/" + users[0],
                           {"lastName": "Verified"}, 200)
        self.assertSucceeded(events, "verify", "users.update", 200, "users", "updated", users[0],
                             trace=False)
        recs = {u["id"]: u for u in self.sandbox.state()["records"]["users"]}
        self.assertEqual(recs[users[0]]["lastName"], "Verified")
        self.assertRequest(self.write_of(writes, "delete-user"), "DELETE", "/users/" + temp,
                           None, 200)
        self.assertSucceeded(events, "temp", "users.delete", 200, "users", "created", temp)
        # Asynchronous: queued now, gone from the list on the next read.
        self.run_once(cfg)
        self.run_once(cfg)
        self.assertNotIn(temp, {u["id"] for u in self.sandbox.state()["records"]["users"]})
        self.assertEqual(self.echo(cfg, "users", users[0])["type"], "updated")
        self.assertEqual(self.echo(cfg, "users", temp)["type"], "deleted")
        self.assertQuiet(cfg, mark)
        self.assertEqual(len(self.writes(mark)), 2)


EXTRA_ACTION = """
[opportunities.followers.clear]
; Test only: the remove-followers route with its isRemoveAllFollowers query
; parameter, and a free-text one to show the values are percent-encoded.
title = Remove All Followers
operation_id = remove-followers-opportunity
spec = apps/opportunities.json
method = DELETE
path = /opportunities/{id}/followers
version = 2021-07-28
scope = opportunities.write
success = 200
destructive = yes
idempotent = yes
gone_ok = yes
target = id
target_resource = opportunity
param.id = path string required
param.isRemoveAllFollowers = query string required
param.reason = query string optional
param.unset = query string optional
"""


class QueryParameterTest(CategoryTest):
    """An action's `param.NAME = query ...` parameters are sent in the query string,
    percent-encoded (record text cannot add or change parameters); one that renders
    nothing is left out."""

    def test_query_parameters_are_sent(self):
        cat = os.path.join(self.dir, "catalog")
        for part in ("triggers", "actions"):
            shutil.copytree(os.path.join(harness.SOURCE_ROOT, part), os.path.join(cat, part))
        with open(os.path.join(cat, "actions", "extra.ini"), "w") as f:
            f.write(EXTRA_ACTION)
        users = self.meta["users"][:2]
        oid = self.open_opps()[0]
        self.sandbox.mutate([{"op": "update", "kind": "opportunity", "id": oid,
                              "fields": {"followers": users}}])
        rules = ("[rule clear]\non = opps:updated\nwhen = changed(name)\n"
                 "do = opportunities.followers.clear\nconfirm = yes\nid = {{record.id}}\n"
                 "isRemoveAllFollowers = true\nreason = {{record.name}}\n"
                 "unset = {{record.noSuchField}}\n")
        mark = self.request_seq()
        cfg = self.write_config(OPPS + rules, engine="catalog = " + cat, location=FAST)
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        name = "A&B=1 c/d?e#f%20"
        self.sandbox.mutate([{"op": "update", "kind": "opportunity", "id": oid,
                              "fields": {"name": name}}])
        self.run_once(cfg)
        writes = self.writes(mark)
        self.assertEqual(len(writes), 1, writes)
        w = writes[0]
        self.assertEqual((w["method"], w["path"], w["status"], w["body"]),
                         ("DELETE", "/opportunities/%s/followers" % oid, 200, None), w)
        self.assertEqual(w["query"], {"isRemoveAllFollowers": "true", "reason": name}, w)
        self.assertEqual(w["headers"].get("Version"), VERSION)
        self.assertEqual(self.records("opportunities")[oid]["followers"], [])
        self.assertSucceeded(self.events(cfg), "clear", "opportunities.followers.clear", 200,
                             "opps", "updated", oid)


class SingleRecordOnceTest(CategoryTest):

    def test_single_record_deletion_with_once_cycles(self):
        """A single-record trigger's own GET by id answering 404 in the API's error shape
        is the confirmation by id: the deletion is reported by that very cycle, so separate
        `run --once` processes report it too, exactly once."""
        biz = self.biz_ids[0]
        cfg = self.baseline("[trigger one]\nuse = businesses.get\nevery = 1s\nbusinessId = "
                            + biz + "\n")
        self.sandbox.mutate([{"op": "delete", "kind": "business", "id": biz}])
        self.run_once(cfg)
        self.assertEqual(kinds(self.events(cfg), "one"), [("deleted", biz)])
        for _ in range(2):
            self.run_once(cfg)
        self.assertEqual(kinds(self.events(cfg), "one"), [("deleted", biz)])


if __name__ == "__main__":
    harness.main()
