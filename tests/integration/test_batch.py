"""Batch reads of a for_each child (contacts.tasks, `batch = locations.tasks.search`):
ten contacts whose tasks change in one cycle are read with ONE task search
(contactId = the ten ids) instead of ten GET /contacts/{id}/tasks, and the
events are exactly those a read of each contact gives (created, updated with
its changes, completed, deleted after a GET by id), each once. When the
search fails, the same contacts are read one by one: the same events, none
lost or doubled; a refused one (403) turns batches off. A listing of several
pages is read to its end before any contact's group is applied. A contact
that changes again while its tasks are being read (singly or in a batch) is
read again at once, not at the next full round.

The engine runs with the default reconcile (1 d), so after the baseline only
changed (queued) contacts are read."""
import re
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TRIGGERS = """
[trigger contacts]
use = contacts.search
every = 1s

[trigger tasks]
use = contacts.tasks
for_each = contacts
every = 1s
"""
# The full round is an hour away: only queued contacts are read.
TRIGGERS_1H = TRIGGERS + "reconcile = 1h\n"
SEARCH = re.compile(r"/locations/[^/]+/tasks/search")
SINGLE = re.compile(r"/contacts/([^/]+)/tasks")


class BatchTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def change_ten_contacts(self):
        """12 contacts with 2 tasks each, a baseline; then, in one mutation, on 10 of them:
        a task created (3), renamed (3), completed (2) or deleted (2). Returns the
        changed contact ids, the expected (type, id) events and the expected changes
        of the updated tasks."""
        ids = sorted(self.sandbox.seed(12, tasks=2, seed=51)["contact_ids"])
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        self.assertEqual([e for e in self.events(cfg) if e["trigger"] == "tasks"], [])
        tasks = self.sandbox.state()["tasks"]
        changed = ids[:10]
        # The two completions go to contacts with an open task.
        open_ = [c for c in changed if any(not t["completed"] for t in tasks[c])]
        self.assertGreaterEqual(len(open_), 2, "the seed gives two contacts an open task")
        rest = [c for c in changed if c not in open_[:2]]
        ops = []
        want = []
        changes = {}
        for i, c in enumerate(rest[:6] + open_[:2] + rest[6:]):
            t = tasks[c][0]["id"]
            if 6 <= i < 8:
                t = next(x["id"] for x in tasks[c] if not x["completed"])
            if i < 3:
                ops.append({"op": "create", "kind": "task", "contactId": c,
                            "fields": {"title": f"New {i}"}})
            elif i < 6:
                ops.append({"op": "update", "kind": "task", "id": t, "fields": {"title": f"Renamed {i}"}})
                want.append(("updated", t))
                changes[t] = {"title": f"Renamed {i}"}
            elif i < 8:
                ops.append({"op": "complete", "kind": "task", "id": t})
                want.append(("updated", t))
                changes[t] = {"completed": True}
            else:
                ops.append({"op": "delete", "kind": "task", "id": t})
                want.append(("deleted", t))
            # The contact changes in the same cycle (a task write may not touch it).
            ops.append({"op": "update", "kind": "contact", "id": c, "fields": {"lastName": f"B{i}"}})
        done = self.sandbox.mutate(ops)
        want += [("created", d["id"]) for d in done if d["kind"] == "task" and d["op"] == "created"]
        return cfg, changed, sorted(want), changes

    def task_events(self, cfg):
        return [e for e in self.events(cfg) if e["trigger"] == "tasks"]

    def run_and_check(self, cfg, want, changes, then=None):
        """Runs the engine until the expected task events are in (then calls then(), if
        given, with the engine still running); checks them exactly once."""
        since = self.sandbox.requests()[-1]["seq"]
        self.start_engine(cfg)
        self.wait_for(lambda: len(self.task_events(cfg)) >= len(want), timeout=60,
                      what=f"{len(want)} task events")
        # A few more cycles: nothing else, nothing twice.
        seen = self.sandbox.requests()[-1]["seq"]
        self.wait_for(lambda: sum(1 for r in self.sandbox.requests(seen)
                                  if r["path"] == "/contacts/search") >= 3,
                      timeout=30, what="three more contact polls")
        if then is not None:
            then()
        self.stop_engine()
        events = self.task_events(cfg)
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in events), want)
        for e in events:
            if e["type"] == "updated":
                got = {k: v["new"] for k, v in e["changes"].items()}
                self.assertEqual(got, changes[e["record_id"]], e)
        return self.sandbox.requests(since)

    def test_changed_contacts_are_read_with_one_search(self):
        cfg, changed, want, changes = self.change_ten_contacts()
        reqs = self.run_and_check(cfg, want, changes)
        searches = [r for r in reqs if SEARCH.fullmatch(r["path"])]
        self.assertEqual(len(searches), 1, "ten changed contacts: one task search")
        self.assertEqual(sorted(searches[0]["body"]["contactId"]), changed)
        self.assertEqual(searches[0]["status"], 200)
        singles = [r["path"] for r in reqs if r["method"] == "GET" and SINGLE.fullmatch(r["path"])]
        self.assertEqual(singles, [], "no contact's tasks are read one by one")
        # The two deletions were confirmed by id under their contact, once each.
        gets = [r["path"] for r in reqs if r["method"] == "GET" and "/tasks/" in r["path"]]
        self.assertEqual(len(gets), 2, gets)
        self.assertIn("batch read of 10 contacts records", self.engine_log_text())

    def test_a_search_of_several_pages(self):
        """110 tasks of 10 changed contacts: two pages (skip 0 and 100, limit 100), and
        only the one task that changed is reported (nothing missing from a group)."""
        ids = sorted(self.sandbox.seed(10, tasks=11, seed=52)["contact_ids"])
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        task = self.sandbox.state()["tasks"][ids[9]][10]["id"]
        ops = [{"op": "update", "kind": "contact", "id": c, "fields": {"lastName": "P"}}
               for c in ids]
        ops.append({"op": "update", "kind": "task", "id": task, "fields": {"title": "Paged"}})
        self.sandbox.mutate(ops)
        reqs = self.run_and_check(cfg, [("updated", task)], {task: {"title": "Paged"}})
        searches = [r for r in reqs if SEARCH.fullmatch(r["path"])]
        self.assertEqual([(r["body"]["skip"], r["body"]["limit"]) for r in searches],
                         [(0, 100), (100, 100)])
        self.assertFalse([r for r in reqs if r["method"] == "GET" and "/tasks" in r["path"]],
                         "no single reads, no confirmations: every task was in the listing")

    def test_a_contact_gone_with_its_tasks_is_read_on_its_own(self):
        """A queued contact with nothing in the batch listing while it had tasks may be
        gone with them (the search leaves a deleted contact out, and a GET by id cannot
        tell that from deleted tasks): it is read on its own (404), and none of its
        tasks is reported deleted."""
        ids = sorted(self.sandbox.seed(4, tasks=2, seed=57)["contact_ids"])
        cfg = self.write_config(TRIGGERS_1H, location=FAST)
        self.run_once(cfg)
        done = self.sandbox.mutate([{"op": "update", "kind": "contact", "id": c,
                                     "fields": {"lastName": "Gone %d" % i}}
                                    for i, c in enumerate(ids[:2])])
        recs = [d["record"] for d in done if d["kind"] == "contact"]
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[1]}])
        # The contacts trigger still sees ids[1] updated (its deletion shows at a reconcile).
        self.sandbox.faults([{"kind": "status", "status": 200, "count": 1, "method": "POST",
                              "path": "^/contacts/search$",
                              "body": {"contacts": recs, "total": len(recs)}}])
        since = self.sandbox.requests()[-1]["seq"]
        self.run_once(cfg)
        reqs = [(r["method"], r["path"], r["status"]) for r in self.sandbox.requests(since)]
        self.assertIn(("GET", "/contacts/%s/tasks" % ids[1], 404), reqs)
        self.assertEqual([r for r in reqs if re.fullmatch(r"/contacts/[^/]+/tasks/[^/]+", r[1])],
                         [], "no task is asked for by id")
        self.assertEqual(self.task_events(cfg), [])

    def test_a_failed_search_falls_back_to_reads_one_by_one(self):
        cfg, changed, want, changes = self.change_ten_contacts()
        self.sandbox.faults([{"kind": "status", "status": 500, "window_s": 120,
                              "path": "/tasks/search$"}])
        reqs = self.run_and_check(cfg, want, changes)
        searches = [r for r in reqs if SEARCH.fullmatch(r["path"])]
        self.assertEqual(len(searches), 1, "a failed search is not retried as a batch")
        reads = sorted(SINGLE.fullmatch(r["path"]).group(1) for r in reqs
                       if r["method"] == "GET" and SINGLE.fullmatch(r["path"]))
        self.assertEqual(reads, changed, "each changed contact is read once, one by one")
        self.assertRegex(self.engine_log_text(),
                         r"batch read of 10 contacts records \(locations\.tasks\.search\) failed: "
                         r"page 1: HTTP 500; reading them one by one")

    def test_a_refused_search_turns_batch_reads_off(self):
        """403 (a credential without the search's scope): read one by one, and no
        batch is tried again while the engine runs (no refused request every cycle)."""
        cfg, changed, want, changes = self.change_ten_contacts()
        self.sandbox.faults([{"kind": "status", "status": 403, "count": 1,
                              "path": "/tasks/search$"}])

        def change_three_more():
            since = self.sandbox.requests()[-1]["seq"]
            self.sandbox.mutate([{"op": "update", "kind": "contact", "id": c,
                                  "fields": {"lastName": "Again"}} for c in changed[:3]])
            self.wait_for(lambda: sorted(SINGLE.fullmatch(r["path"]).group(1)
                                         for r in self.sandbox.requests(since)
                                         if SINGLE.fullmatch(r["path"])) == changed[:3],
                          timeout=30, what="the three contacts read one by one")

        reqs = self.run_and_check(cfg, want, changes, then=change_three_more)
        self.assertEqual(len([r for r in reqs if SEARCH.fullmatch(r["path"])]), 1,
                         "no batch after the refusal")
        self.assertIn("batch reads are off until restart", self.engine_log_text())

    # -- a parent that changes again while its read is in flight -------------

    def read_while_changed_again(self, contacts, path, bytes_per_s):
        """Renames the first task of each of contacts (and touches them), answers
        the child's read at path slowly (trickle, about five seconds), and while
        that answer is on its way renames the first contact's task again (and
        touches it, so the parent queues it again). Both renames are reported,
        once each, the second within seconds: the read must not drop the newer
        queue entry (reconcile is an hour)."""
        cfg = self.write_config(TRIGGERS_1H, location=FAST)
        self.run_once(cfg)
        tasks = {c: self.sandbox.state()["tasks"][c][0]["id"] for c in contacts}
        self.start_engine(cfg)
        fid = self.sandbox.faults([{"kind": "trickle", "bytes_per_s": bytes_per_s, "count": 1,
                                    "path": path}])["ids"][0]
        ops = []
        for i, c in enumerate(contacts):
            ops += [{"op": "update", "kind": "task", "id": tasks[c], "fields": {"title": f"One {i}"}},
                    {"op": "update", "kind": "contact", "id": c, "fields": {"lastName": "One"}}]
        self.sandbox.mutate(ops)
        self.wait_for(lambda: not any(f["id"] == fid and f["applied"] == 0
                                      for f in self.sandbox.control("GET", "/_control/faults")["faults"]),
                      timeout=30, what="the child's read of the changed contacts")
        time.sleep(0.5)  # the answer is computed; it takes seconds to arrive
        c = contacts[0]
        self.sandbox.mutate([
            {"op": "update", "kind": "task", "id": tasks[c], "fields": {"title": "Two"}},
            {"op": "update", "kind": "contact", "id": c, "fields": {"lastName": "Two"}}])
        changed_at = time.time()
        want = sorted([(tasks[x], f"One {i}") for i, x in enumerate(contacts)] + [(tasks[c], "Two")])

        def titles():
            return sorted((e["record_id"], e["changes"]["title"]["new"])
                          for e in self.task_events(cfg) if e["type"] == "updated")
        self.wait_for(lambda: len(titles()) >= len(want), timeout=30,
                      what="the second rename of the task read while it changed")
        self.assertLess(time.time() - changed_at, 30)
        since = self.sandbox.requests()[-1]["seq"]
        self.wait_for(lambda: sum(1 for r in self.sandbox.requests(since)
                                  if r["path"] == "/contacts/search") >= 3,
                      timeout=30, what="three more contact polls")
        self.stop_engine()
        self.assertEqual(titles(), want, "each rename reported once")
        self.assertEqual(len(self.task_events(cfg)), len(want))

    def test_a_contact_changed_again_while_read_is_read_again(self):
        ids = sorted(self.sandbox.seed(3, tasks=1, seed=53)["contact_ids"])
        self.read_while_changed_again(ids[:1], f"^/contacts/{ids[0]}/tasks$", 50)

    def test_a_contact_changed_again_while_batch_read_is_read_again(self):
        ids = sorted(self.sandbox.seed(3, tasks=1, seed=54)["contact_ids"])
        self.read_while_changed_again(ids[:2], "/tasks/search$", 90)
        self.assertIn("batch read of 2 contacts records", self.engine_log_text())


if __name__ == "__main__":
    harness.main()
