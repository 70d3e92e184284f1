"""for_each triggers: the tasks and notes of every contact are watched.
Baseline contacts' tasks and notes are recorded silently; afterwards every
task and note created, updated (completed included) or deleted is emitted
once, with its changes. A deletion: with the shipped confirm_delete
(/contacts/{contactId}/tasks/{id}), on the read of the contact that misses
it, also for a contact's last note, after a GET by id says it is gone (a
200 keeps it; a failed GET decides nothing); without confirm_delete (a
catalog copy), once a second read of its contact agrees. A contact created
after the baseline has its tasks emitted as created; deleting a contact does
not emit phantom task events."""
import os
import re
import shutil

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

[trigger notes]
use = contacts.notes
for_each = contacts
every = 1s
"""


def of(changes, kind, op):
    return [c for c in changes if c["kind"] == kind and c["op"] == op]


def child_events(events):
    return sorted((e["trigger"], e["type"], e["record_id"]) for e in events
                  if e["trigger"] != "contacts")


class FanoutTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def catalog_without_child_confirm(self):
        """A copy of the shipped catalog whose for_each children have no confirm_delete."""
        cat = os.path.join(self.dir, "catalog")
        for sub in ("triggers", "actions"):
            shutil.copytree(os.path.join(harness.SOURCE_ROOT, sub), os.path.join(cat, sub))
        path = os.path.join(cat, "triggers", "contacts.ini")
        with open(path) as f:
            text = f.read()
        text, n = re.subn(r"(?m)^confirm_delete = /contacts/\{contactId\}/.*\n", "", text)
        self.assertEqual(n, 2)
        with open(path, "w") as f:
            f.write(text)
        return cat

    def last_seq(self):
        reqs = self.sandbox.requests()
        return reqs[-1]["seq"] if reqs else 0

    def test_tasks_and_notes_changes(self):
        ids = self.sandbox.seed(15, tasks=2, notes=2, seed=21)["contact_ids"]
        cat = self.catalog_without_child_confirm()
        cfg = self.write_config(TRIGGERS, engine=f"catalog = {cat}", location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [], "baseline tasks and notes must be silent")
        state = self.sandbox.state()
        tasks = state["tasks"]
        notes = state["notes"]
        t0 = tasks[ids[0]][0]["id"]
        t1 = tasks[ids[1]][0]["id"]
        t2 = tasks[ids[2]][1]["id"]
        n0 = notes[ids[3]][0]["id"]
        n1 = notes[ids[4]][1]["id"]
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "task", "contactId": ids[5], "fields": {"title": "Call back"}},
            {"op": "update", "kind": "task", "id": t0, "fields": {"title": "Renamed"}},
            {"op": "complete", "kind": "task", "id": t1},
            {"op": "delete", "kind": "task", "id": t2},
            {"op": "create", "kind": "note", "contactId": ids[6], "fields": {"body": "hello"}},
            {"op": "update", "kind": "note", "id": n0, "fields": {"body": "edited"}},
            {"op": "delete", "kind": "note", "id": n1},
        ])
        new_task = of(changes, "task", "created")[0]["id"]
        new_note = of(changes, "note", "created")[0]["id"]
        self.run_once(cfg)
        events = self.events(cfg)
        got = sorted((e["trigger"], e["type"], e["record_id"]) for e in events
                     if e["trigger"] != "contacts")
        want = sorted([
            ("tasks", "created", new_task), ("tasks", "updated", t0), ("tasks", "updated", t1),
            ("notes", "created", new_note), ("notes", "updated", n0),
        ])
        self.assertEqual(got, want, "a deletion waits for a second listing of the contact")
        # The next read of the same contacts agrees: the deletions are decided.
        self.run_once(cfg)
        events = self.events(cfg)
        got = sorted((e["trigger"], e["type"], e["record_id"]) for e in events
                     if e["trigger"] != "contacts")
        want += [("tasks", "deleted", t2), ("notes", "deleted", n1)]
        self.assertEqual(got, sorted(want))
        by_id = {e["record_id"]: e for e in events}
        self.assertEqual(by_id[t0]["changes"]["title"]["new"], "Renamed")
        self.assertEqual(by_id[t1]["changes"], {"completed": {"old": False, "new": True}})
        self.assertEqual(by_id[n0]["changes"]["body"]["new"], "edited")
        self.assertEqual(by_id[new_task]["record"]["title"], "Call back")
        self.assertEqual(by_id[t2]["record"]["id"], t2)
        # Quiet afterwards.
        before = len(events)
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), before)

    def test_child_deletions_confirmed_on_the_same_read(self):
        """M16: a contact's only note deleted, and one of two tasks of another: both are
        reported by the next read of each contact (one read, not a second round),
        after a GET by id under the contact."""
        ids = self.sandbox.seed(6, tasks=2, notes=1, seed=24)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        state = self.sandbox.state()
        note = state["notes"][ids[0]][0]["id"]
        task = state["tasks"][ids[1]][0]["id"]
        kept = state["tasks"][ids[1]][1]["id"]
        self.sandbox.mutate([{"op": "delete", "kind": "note", "id": note},
                             {"op": "delete", "kind": "task", "id": task}])
        since = self.last_seq()
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(child_events(events),
                         sorted([("notes", "deleted", note), ("tasks", "deleted", task)]))
        by_id = {e["record_id"]: e for e in events}
        self.assertEqual(by_id[note]["record"]["id"], note)
        reqs = [(r["method"], r["path"], r["status"]) for r in self.sandbox.requests(since)]
        self.assertEqual(reqs.count(("GET", f"/contacts/{ids[0]}/notes", 200)), 1,
                         "one read of the contact's notes decides")
        self.assertIn(("GET", f"/contacts/{ids[0]}/notes/{note}", 404), reqs)
        self.assertIn(("GET", f"/contacts/{ids[1]}/tasks/{task}", 404), reqs)
        self.assertNotIn(("GET", f"/contacts/{ids[1]}/tasks/{kept}", 200), reqs,
                         "only missing records are asked for")
        # Quiet afterwards.
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), len(events))

    def test_child_still_there_is_not_deleted(self):
        """A list that comes back empty while the tasks exist: the GET by id answers 200,
        so nothing is deleted."""
        ids = self.sandbox.seed(4, tasks=2, notes=0, seed=25)["contact_ids"]
        # One contact at a time (test_wide covers the full round's listing).
        cfg = self.write_config(TRIGGERS.replace("for_each = contacts\nevery = 1s\n\n[trigger notes]",
                                                 "for_each = contacts\nevery = 1s\nfull_round = each\n\n"
                                                 "[trigger notes]"), location=FAST)
        self.run_once(cfg)
        task = self.sandbox.state()["tasks"][ids[2]][0]["id"]
        self.sandbox.faults([{"kind": "empty_list", "path": f"^/contacts/{ids[2]}/tasks$",
                              "window_s": 120}])
        since = self.last_seq()
        self.run_once(cfg)
        reqs = [(r["method"], r["path"], r["status"]) for r in self.sandbox.requests(since)]
        self.assertIn(("GET", f"/contacts/{ids[2]}/tasks/{task}", 200), reqs)
        self.sandbox.clear_faults()
        self.run_once(cfg)
        self.assertEqual(child_events(self.events(cfg)), [])

    def test_failed_confirmation_decides_nothing(self):
        """The GET by id fails (500, then a gateway's HTML 404): no deletion, no phantom;
        once it answers, the next read of the contact reports the deletion once."""
        ids = self.sandbox.seed(4, tasks=0, notes=1, seed=26)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        note = self.sandbox.state()["notes"][ids[1]][0]["id"]
        self.sandbox.mutate([{"op": "delete", "kind": "note", "id": note}])
        confirm = f"^/contacts/{ids[1]}/notes/{note}$"
        for fault in ({"kind": "status", "status": 500},
                      {"kind": "status", "status": 404, "body": "<html>Not Found</html>"}):
            self.sandbox.faults([dict(fault, path=confirm, window_s=120)])
            since = self.last_seq()
            self.run_once(cfg)
            reqs = [(r["path"], r["status"]) for r in self.sandbox.requests(since)]
            self.assertIn((f"/contacts/{ids[1]}/notes/{note}", fault["status"]), reqs)
            self.assertEqual(child_events(self.events(cfg)), [], fault)
            self.sandbox.clear_faults()
        self.run_once(cfg)
        self.assertEqual(child_events(self.events(cfg)), [("notes", "deleted", note)])
        self.run_once(cfg)
        self.assertEqual(child_events(self.events(cfg)), [("notes", "deleted", note)])

    def test_new_contact_tasks_are_created_events(self):
        self.sandbox.seed(5, tasks=1, notes=0, seed=22)
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        changes = self.sandbox.mutate([{"op": "create", "kind": "contact"}])
        cid = of(changes, "contact", "created")[0]["id"]
        changes = self.sandbox.mutate([
            {"op": "create", "kind": "task", "contactId": cid},
            {"op": "create", "kind": "task", "contactId": cid},
        ])
        task_ids = sorted(c["id"] for c in of(changes, "task", "created"))
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(sorted(e["record_id"] for e in events if e["trigger"] == "tasks"),
                         task_ids)
        self.assertEqual([(e["type"], e["record_id"]) for e in events if e["trigger"] == "contacts"],
                         [("created", cid)])

    def test_deleted_contact_emits_no_phantom_task_events(self):
        ids = self.sandbox.seed(6, tasks=2, notes=1, seed=23)["contact_ids"]
        # reconcile = 0s: every contacts cycle is a full enumeration, which decides deletions.
        cfg = self.write_config(TRIGGERS.replace("use = contacts.search\n",
                                                 "use = contacts.search\nreconcile = 0s\n"),
                                location=FAST)
        self.run_once(cfg)
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[2]}])
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["trigger"], e["type"], e["record_id"]) for e in events],
                         [("contacts", "deleted", ids[2])])


if __name__ == "__main__":
    harness.main()
