"""Exactly the created, updated (with correct field-level changes) and
deleted contacts are emitted, no more and no fewer; `fields`, `ignore` and
`emit` filter as documented; a touch (dateUpdated alone) is no event unless
`emit` asks for `touched`, and still feeds for_each children."""
import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"


def contact_changes(changes):
    return [c for c in changes if c["kind"] == "contact"]


class ChangesTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.ids = self.sandbox.seed(40, seed=5)["contact_ids"]

    def baseline(self, triggers):
        cfg = self.write_config(triggers, location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        return cfg

    def test_exact_created_updated_deleted(self):
        # reconcile = 0s: full enumerations every cycle (deletions are decided by them).
        cfg = self.baseline("[trigger c]\nuse = contacts.search\nevery = 1s\nreconcile = 0s\n")
        before = {c["id"]: c for c in self.sandbox.state()["contacts"]}
        ops = [
            {"op": "create", "kind": "contact", "fields": {"firstName": "Ada", "email": "ada@example.com"}},
            {"op": "create", "kind": "contact"},
            {"op": "update", "kind": "contact", "id": self.ids[0], "fields": {"email": "new0@example.com"}},
            {"op": "update", "kind": "contact", "id": self.ids[1], "fields": {"tags": ["vip", "gold"]}},
            {"op": "update", "kind": "contact", "id": self.ids[2], "fields": {"city": "Lisbon", "lastName": "Silva"}},
            {"op": "delete", "kind": "contact", "id": self.ids[3]},
            {"op": "delete", "kind": "contact", "id": self.ids[4]},
        ]
        applied = contact_changes(self.sandbox.mutate(ops))
        created = {c["id"] for c in applied if c["op"] == "created"}
        self.assertEqual(len(created), 2)
        self.run_once(cfg)
        events = self.events(cfg)
        by_type = {}
        for e in events:
            by_type.setdefault(e["type"], []).append(e)
        self.assertEqual({e["record_id"] for e in by_type["created"]}, created)
        self.assertEqual(sorted(e["record_id"] for e in by_type["updated"]), sorted(self.ids[:3]))
        self.assertEqual(sorted(e["record_id"] for e in by_type["deleted"]), sorted(self.ids[3:5]))
        self.assertEqual(len(events), 7)
        updated = {e["record_id"]: e for e in by_type["updated"]}
        ch = updated[self.ids[0]]["changes"]
        self.assertEqual(ch["email"], {"old": before[self.ids[0]]["email"], "new": "new0@example.com"})
        self.assertIn("dateUpdated", ch)
        self.assertEqual(updated[self.ids[1]]["changes"]["tags"]["new"], ["vip", "gold"])
        ch = updated[self.ids[2]]["changes"]
        self.assertEqual(ch["city"]["new"], "Lisbon")
        self.assertEqual(ch["lastName"]["new"], "Silva")
        self.assertEqual(set(ch) - {"city", "lastName", "dateUpdated", "lastNameLowerCase",
                                    "contactName", "fullNameLowerCase"}, set())
        deleted = {e["record_id"]: e for e in by_type["deleted"]}
        self.assertEqual(deleted[self.ids[3]]["record"]["id"], self.ids[3])
        self.assertEqual(deleted[self.ids[3]]["record"]["email"], before[self.ids[3]]["email"])
        self.assertEqual(len({e["id"] for e in events}), len(events))
        # Nothing more on the next poll.
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), 7)

    def test_fields_only_count_listed_fields(self):
        cfg = self.baseline("[trigger emails]\nuse = contacts.search\nevery = 1s\nfields = email\n")
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[5],
                              "fields": {"firstName": "Quentin"}}])
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[5],
                              "fields": {"email": "q@example.com"}}])
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", self.ids[5])])
        self.assertEqual(list(events[0]["changes"]), ["email"])
        self.assertEqual(events[0]["changes"]["email"]["new"], "q@example.com")

    def test_ignore_hides_fields(self):
        cfg = self.baseline(
            "[trigger c]\nuse = contacts.search\nevery = 1s\n"
            "ignore = dateUpdated firstName firstNameLowerCase fullNameLowerCase contactName name\n")
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[6],
                              "fields": {"firstName": "Ignored"}}])
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": self.ids[6],
                              "fields": {"city": "Oslo"}}])
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(len(events), 1)
        self.assertEqual(sorted(events[0]["changes"]), ["city"])

    def test_emit_filters_types(self):
        cfg = self.baseline("[trigger c]\nuse = contacts.search\nevery = 1s\nemit = deleted\n"
                            "reconcile = 0s\n")
        self.sandbox.mutate([
            {"op": "create", "kind": "contact"},
            {"op": "update", "kind": "contact", "id": self.ids[7], "fields": {"city": "Rome"}},
            {"op": "delete", "kind": "contact", "id": self.ids[8]},
        ])
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("deleted", self.ids[8])])


    def test_touch_is_no_update_unless_asked(self):
        """A task written to a contact moves only the contact's dateUpdated: no event on a
        default trigger, `touched` on one whose emit asks for it; the contact's tasks are
        still read (for_each), so the task is reported. A real change stays `updated`."""
        cfg = self.baseline(
            "[trigger c]\nuse = contacts.search\nevery = 1s\n\n"
            "[trigger seen]\nuse = contacts.search\nevery = 1s\n"
            "emit = created updated deleted touched\n\n"
            "[trigger tasks]\nuse = contacts.tasks\nfor_each = c\nevery = 1s\n")
        cid = self.ids[6]
        applied = self.sandbox.mutate([{"op": "create", "kind": "task", "contactId": cid,
                                        "fields": {"title": "Call back"}}])
        tid = [c["id"] for c in applied if c["kind"] == "task"][0]
        self.assertEqual([(c["kind"], c["id"]) for c in contact_changes(applied)], [("contact", cid)],
                         "the sandbox touches the task's contact")
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(sorted((e["trigger"], e["type"], e["record_id"]) for e in events),
                         [("seen", "touched", cid), ("tasks", "created", tid)])
        touched = next(e for e in events if e["type"] == "touched")
        self.assertEqual(list(touched["changes"]), ["dateUpdated"])
        self.assertEqual(touched["record"]["id"], cid)
        # tail --type touched picks them.
        self.assertEqual(self.events(cfg, "--type", "touched"), [touched])

        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": cid,
                              "fields": {"firstName": "Retouched"}}])
        self.run_once(cfg)
        later = self.events(cfg)[len(events):]
        self.assertEqual(sorted((e["trigger"], e["type"], e["record_id"]) for e in later),
                         [("c", "updated", cid), ("seen", "updated", cid)])
        for e in later:
            self.assertEqual(e["changes"]["firstName"]["new"], "Retouched")
            self.assertIn("dateUpdated", e["changes"])


if __name__ == "__main__":
    harness.main()
