"""First poll behaviour: a baseline records silently; first_poll = emit
reports every existing record once; a second poll without changes emits
nothing; the state survives a restart (no second baseline)."""
import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"


class BaselineTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def test_baseline_is_silent_then_changes_flow(self):
        ids = self.sandbox.seed(30)["contact_ids"]
        cfg = self.write_config("[trigger contacts]\nuse = contacts.search\nevery = 1s\n",
                                location=FAST)
        proc = self.run_once(cfg)
        self.assertIn("baseline recorded: 30 records", proc.stderr)
        self.assertEqual(self.events(cfg), [])
        # A second poll with no change emits nothing and takes no new baseline.
        proc = self.run_once(cfg)
        self.assertNotIn("baseline", proc.stderr)
        self.assertEqual(self.events(cfg), [])
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": ids[3],
                              "fields": {"firstName": "Zelda"}}])
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", ids[3])])
        self.assertEqual(events[0]["changes"]["firstName"]["new"], "Zelda")

    def test_first_poll_emit_reports_every_record_once(self):
        ids = self.sandbox.seed(25)["contact_ids"]
        cfg = self.write_config(
            "[trigger everyone]\nuse = contacts.search\nevery = 1s\nfirst_poll = emit\n",
            location=FAST)
        self.run_once(cfg)
        events = self.events(cfg)
        self.assertEqual(sorted(e["record_id"] for e in events), sorted(ids))
        self.assertTrue(all(e["type"] == "created" for e in events))
        self.assertEqual(len({e["id"] for e in events}), len(events))
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        for e in events:
            self.assertEqual(e["trigger"], "everyone")
            self.assertEqual(e["location"], harness.LOCATION_ID)
            self.assertEqual(e["record"]["id"], e["record_id"])
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.run_once(cfg)
        self.assertEqual(len(self.events(cfg)), len(ids))

    def test_list_endpoint_baseline(self):
        self.sandbox.seed(12)
        cfg = self.write_config("[trigger listed]\nuse = contacts.list\nevery = 1s\n",
                                location=FAST)
        self.run_once(cfg)
        self.assertEqual(self.events(cfg), [])
        created = self.sandbox.mutate([{"op": "create", "kind": "contact"}])
        new_id = [c["id"] for c in created if c["kind"] == "contact" and c["op"] == "created"][0]
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)],
                         [("created", new_id)])


if __name__ == "__main__":
    harness.main()
