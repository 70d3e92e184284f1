"""locations.tasks.search: every task of the location in one paged listing.

It emits the same events as contacts.tasks (the same records, resource
task): both triggers run in one engine over the same mutations and report
the same (type, task id, changes, record). The baseline is silent; a task
created, updated, completed (an update with changes.completed, never a
deletion) or deleted is reported exactly once, a deletion in the cycle the
task disappears, as contacts.tasks does: confirm_delete asks
GET /contacts/{record.contactId}/tasks/{id} with the task's last-known
contactId (a 404 confirms it, also when the contact itself was deleted; a 200
after a listing that glitched keeps the task; a copy without a usable
contactId, or a 401/403 answer, waits for a second listing that agrees). A no-change cycle costs one
request while the location has fewer tasks than a page (the response has no
total, so a full page asks for the next one), and the pages of a bigger
location are read with body skip/limit, 100 at a time."""
import json
import urllib.request

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
; read per contact, to compare with the location-wide trigger (test_wide: its full rounds)
full_round = each

[trigger all_tasks]
use = locations.tasks.search
every = 1s
"""
SEARCH = "task-search"


def by_trigger(events, trigger):
    """{(type, record_id): (changes, record)} of one trigger's events; fails on a repeat."""
    out = {}
    for e in events:
        if e["trigger"] == trigger:
            key = (e["type"], e["record_id"])
            assert key not in out, "reported twice: %r" % (key,)
            out[key] = (e.get("changes"), e["record"])
    return out


class TasksSearchTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def last_seq(self):
        reqs = self.sandbox.requests()
        return reqs[-1]["seq"] if reqs else 0

    def searches(self, since):
        return [r for r in self.sandbox.requests(since) if r["operation"] == SEARCH]

    def confirms(self, since):
        """(path, status) of the GETs by id of single tasks since seq `since`."""
        return [(r["path"], r["status"]) for r in self.sandbox.requests(since)
                if r["method"] == "GET" and "/tasks/" in r["path"]]

    def listing(self):
        """The location's task search answer, as the API gives it (one page)."""
        req = urllib.request.Request(
            "%s/locations/%s/tasks/search" % (self.sandbox.url, harness.LOCATION_ID),
            data=json.dumps({"skip": 0, "limit": 100}).encode(), method="POST",
            headers={"Authorization": "Bearer " + harness.TOKEN, "Version": "2021-07-28",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def answer_next_search(self, body):
        """The next task search answers 200 with body instead of the real listing."""
        self.sandbox.faults([{"kind": "status", "status": 200, "body": body, "count": 1,
                              "method": "POST", "path": "/tasks/search$"}])

    def test_same_events_as_contacts_tasks(self):
        ids = self.sandbox.seed(20, tasks=3, seed=31)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "baseline tasks must be silent")

        tasks = self.sandbox.state()["tasks"]
        pending = [t for cid in ids for t in tasks[cid] if not t["completed"]]
        t_edit, t_done = tasks[ids[0]][0]["id"], pending[-1]["id"]
        t_gone, t_both = tasks[ids[2]][1]["id"], tasks[ids[3]][2]["id"]
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "task", "contactId": ids[5], "fields": {"title": "Call back"}},
            {"op": "create", "kind": "task", "contactId": ids[6], "fields": {"title": "Send quote"}},
            {"op": "update", "kind": "task", "id": t_edit, "fields": {"title": "Renamed"}},
            {"op": "complete", "kind": "task", "id": t_done},
            {"op": "delete", "kind": "task", "id": t_gone},
            {"op": "update", "kind": "task", "id": t_both, "fields": {"body": "moved", "title": "Both"}},
        ])
        created = [c["id"] for c in changes if c["kind"] == "task" and c["op"] == "created"]
        self.assertEqual(len(created), 2)
        since = self.last_seq()
        self.run_once(cfg)
        want = {("created", created[0]), ("created", created[1]), ("updated", t_edit),
                ("updated", t_done), ("updated", t_both), ("deleted", t_gone)}
        events = self.events(cfg)
        self.assertEqual(set(by_trigger(events, "all_tasks")), want,
                         "the deletion is confirmed by id in the cycle the task disappears")
        self.assertEqual(set(by_trigger(events, "tasks")), want, "as contacts.tasks reports it")
        self.assertIn(("/contacts/%s/tasks/%s" % (ids[2], t_gone), 404), self.confirms(since),
                      "asked under the task's last-known contactId")
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(len(self.searches(since)), 1, "the next cycle lists once")
        self.assertEqual(self.confirms(since), [], "and asks about nothing")
        events = self.events(cfg)
        search = by_trigger(events, "all_tasks")
        self.assertEqual(set(search), want, "each mutation exactly once")
        self.assertEqual(search[("updated", t_done)][0], {"completed": {"old": False, "new": True}},
                         "a completion is an update of completed")
        self.assertEqual(search[("updated", t_edit)][0]["title"]["new"], "Renamed")
        self.assertEqual(set(search[("updated", t_both)][0]), {"body", "title"})
        self.assertEqual(search[("created", created[0])][1]["title"], "Call back")
        self.assertEqual(search[("deleted", t_gone)][1]["id"], t_gone)
        self.assertEqual(by_trigger(events, "tasks"), search, "the same events as contacts.tasks")

        # Quiet afterwards, and a no-change cycle is one request (63 tasks < one page of 100).
        before = len(events)
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), before)
        reqs = self.searches(since)
        self.assertEqual(len(reqs), 1, "one request for the whole location")
        self.assertEqual(reqs[0]["body"], {"skip": 0, "limit": 100})
        self.assertEqual(reqs[0]["status"], 200)

    def test_task_of_a_deleted_contact(self):
        """A contact's deletion takes its tasks out of the listing: each is asked for under
        that contact (404) and reported deleted in the same cycle, once."""
        ids = self.sandbox.seed(8, tasks=2, seed=34)["contact_ids"]
        cfg = self.write_config("[trigger all_tasks]\nuse = locations.tasks.search\nevery = 1s\n",
                                location=FAST)
        self.run_once(cfg)
        gone = sorted(t["id"] for t in self.sandbox.state()["tasks"][ids[3]])
        self.assertEqual(len(gone), 2)
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[3]}])
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(sorted((e["type"], e["record_id"]) for e in self.events(cfg)),
                         [("deleted", tid) for tid in gone])
        self.assertEqual(sorted(self.confirms(since)),
                         [("/contacts/%s/tasks/%s" % (ids[3], tid), 404) for tid in gone])
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 2, "reported once")

    def test_confirm_200_after_a_listing_glitch(self):
        """One listing lacks a task that still exists: its GET by id answers 200, so
        nothing is reported, then or on the next (complete) listing."""
        ids = self.sandbox.seed(6, tasks=2, seed=35)["contact_ids"]
        cfg = self.write_config("[trigger all_tasks]\nuse = locations.tasks.search\nevery = 1s\n",
                                location=FAST)
        self.run_once(cfg)
        body = self.listing()
        kept = [t for t in body["tasks"] if t["contactId"] == ids[1]][0]
        body["tasks"] = [t for t in body["tasks"] if t["id"] != kept["id"]]
        self.answer_next_search(body)
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(self.confirms(since),
                         [("/contacts/%s/tasks/%s" % (ids[1], kept["id"]), 200)])
        self.assertEqual(self.events(cfg), [], "a task that still exists is not deleted")
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(self.confirms(since), [], "listed again: nothing to ask")
        self.assertEqual(self.events(cfg), [])

    def test_copy_without_a_usable_contact(self):
        """A last-known copy whose contactId cannot be a path segment ('..') cannot be
        asked for: warned once, and reported deleted when the next listing agrees."""
        ids = self.sandbox.seed(6, tasks=1, seed=36)["contact_ids"]
        cfg = self.write_config("[trigger all_tasks]\nuse = locations.tasks.search\nevery = 1s\n",
                                location=FAST)
        body = self.listing()
        odd = [t for t in body["tasks"] if t["contactId"] == ids[2]][0]
        odd["contactId"] = ".."
        self.answer_next_search(body)
        self.run_once(cfg)  # the baseline keeps the odd copy
        self.sandbox.mutate([{"op": "delete", "kind": "task", "id": odd["id"]}])
        since = self.last_seq()
        first = self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "held: no GET by id can be built")
        second = self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("deleted", odd["id"])], "the second listing agrees")
        self.assertEqual(self.confirms(since), [], "never asked")
        warned = "cannot confirm the deletion of %s by id ({record.contactId}" % odd["id"]
        self.assertEqual((first.stderr + second.stderr).count(warned), 1, first.stderr)
        self.assertIn("trigger:all_tasks", [l for l in first.stderr.splitlines() if warned in l][0])

    def test_confirm_not_authorized(self):
        """A credential the API does not let read the task by id (403 on the confirm GET,
        e.g. a token without contacts.readonly): warned once, and reported deleted when the
        next listing agrees, never left unreported."""
        ids = self.sandbox.seed(6, tasks=1, seed=37)["contact_ids"]
        cfg = self.write_config("[trigger all_tasks]\nuse = locations.tasks.search\nevery = 1s\n",
                                location=FAST)
        self.run_once(cfg)
        tid = self.sandbox.state()["tasks"][ids[4]][0]["id"]
        self.sandbox.mutate([{"op": "delete", "kind": "task", "id": tid}])
        self.sandbox.faults([{"kind": "status", "status": 403, "method": "GET",
                              "path": "^/contacts/[^/]+/tasks/[^/]+$", "window_s": 300}])
        since = self.last_seq()
        first = self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "held after one listing")
        second = self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("deleted", tid)], "the second listing agrees")
        path = "/contacts/%s/tasks/%s" % (ids[4], tid)
        self.assertEqual(self.confirms(since), [(path, 403), (path, 403)])
        warned = "cannot confirm the deletion of %s by id (HTTP 403" % tid
        self.assertEqual((first.stderr + second.stderr).count(warned), 1, first.stderr)

    def test_pages_of_a_bigger_location(self):
        """250 tasks: three pages (skip 0, 100, 200), a change on the last page found."""
        ids = self.sandbox.seed(50, tasks=5, seed=32)["contact_ids"]
        cfg = self.write_config("[trigger all_tasks]\nuse = locations.tasks.search\nevery = 1s\n",
                                location=FAST)
        since = self.last_seq()
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        self.assertEqual([(r["body"]["skip"], r["body"]["limit"]) for r in self.searches(since)],
                         [(0, 100), (100, 100), (200, 100)])
        last = self.sandbox.state()["tasks"][ids[-1]][-1]["id"]
        self.sandbox.mutate([{"op": "update", "kind": "task", "id": last, "fields": {"title": "Late"}}])
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)], [("updated", last)])

    def test_switching_use_records_a_baseline(self):
        """A [trigger] moved from contacts.tasks to locations.tasks.search starts with a
        silent baseline, then reports under the same trigger name (so its rules apply)."""
        ids = self.sandbox.seed(10, tasks=2, seed=33)["contact_ids"]
        per_contact = "\n".join(line for line in TRIGGERS.split("[trigger all_tasks]")[0].splitlines()
                                 if not line.startswith((";", "full_round")))
        cfg = self.write_config(per_contact, location=FAST)
        self.run_once(cfg)
        cfg = self.write_config(per_contact.replace("use = contacts.tasks\nfor_each = contacts",
                                                    "use = locations.tasks.search"), location=FAST)
        with open(cfg) as f:
            self.assertIn("use = locations.tasks.search", f.read())
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "the switch is silent")
        tid = self.sandbox.state()["tasks"][ids[4]][0]["id"]
        self.sandbox.mutate([{"op": "update", "kind": "task", "id": tid, "fields": {"title": "After"}}])
        self.run_once(cfg)
        got = [(e["trigger"], e["type"], e["record_id"]) for e in self.events(cfg) if e["trigger"] == "tasks"]
        self.assertEqual(got, [("tasks", "updated", tid)])


if __name__ == "__main__":
    harness.main()
