"""for_each triggers: the tasks and notes of every contact are watched.
Baseline contacts' tasks and notes are recorded silently; afterwards every
task and note created, updated (completed included) or deleted is emitted
once, with its changes (a deletion once a second read of its contact agrees);
a contact created after the baseline has its tasks
emitted as created; deleting a contact does not emit phantom task events."""
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


class FanoutTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def test_tasks_and_notes_changes(self):
        ids = self.sandbox.seed(15, tasks=2, notes=2, seed=21)["contact_ids"]
        cfg = self.write_config(TRIGGERS, location=FAST)
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
        cfg = self.write_config(TRIGGERS, location=FAST)
        self.run_once(cfg)
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[2]}])
        self.run_once(cfg)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["trigger"], e["type"], e["record_id"]) for e in events],
                         [("contacts", "deleted", ids[2])])


if __name__ == "__main__":
    harness.main()
