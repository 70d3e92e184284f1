"""The raw-hash map and page memo filed between runs (sources/poll/rawpage.c,
rawmemo.c): a no-change `run --once` after another files them in the state
directory, the next one uses them (its pages are memorized), and every change
made between runs is still reported exactly once (an update, a deletion, a
creation); a torn file is ignored and written again."""
import glob
import os

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TRIGGER = "[trigger contacts]\nuse = contacts.search\nevery = 1s\nreconcile = 0s\npage_size = 5\n"


class RawFileTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def filed(self):
        state = os.path.join(self.dir, "state")
        return (glob.glob(os.path.join(state, "rawmap-*.bin")),
                glob.glob(os.path.join(state, "rawmemo-*.bin")))

    def poll(self, cfg):
        """One --once run; returns (its stderr, the events it added)."""
        before = len(self.events(cfg))
        proc = self.run_once(cfg)
        return proc.stderr, self.events(cfg)[before:]

    def test_filed_then_changes_still_reported(self):
        ids = self.sandbox.seed(40)["contact_ids"]
        cfg = self.write_config(TRIGGER, location=FAST)
        _, events = self.poll(cfg)  # baseline
        self.assertEqual(events, [])
        self.assertEqual(self.filed(), ([], []))  # the baseline wrote: nothing filed
        _, events = self.poll(cfg)
        self.assertEqual(events, [])
        maps, memos = self.filed()
        self.assertEqual((len(maps), len(memos)), (1, 1))
        log, events = self.poll(cfg)
        self.assertEqual(events, [])
        self.assertIn("a memorized page", log)

        # An update between runs: reported once, whatever was filed.
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": ids[17],
                              "fields": {"firstName": "Zelda"}}])
        _, events = self.poll(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", ids[17])])
        _, events = self.poll(cfg)  # that run wrote: this one reads the store and files again
        self.assertEqual(events, [])
        log, events = self.poll(cfg)
        self.assertEqual(events, [])
        self.assertIn("a memorized page", log)

        # A deletion and a creation between runs.
        changes = self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[30]},
                                       {"op": "create", "kind": "contact"}])
        new_id = [c["id"] for c in changes if c["kind"] == "contact" and c["op"] == "created"][0]
        seen = []
        for _ in range(3):  # a deletion may wait for its confirmation by id
            _, events = self.poll(cfg)
            seen += [(e["type"], e["record_id"]) for e in events]
            if ("deleted", ids[30]) in seen:
                break
        self.assertEqual(sorted(seen), sorted([("created", new_id), ("deleted", ids[30])]))

        # Torn files are ignored (the store is read) and written again.
        self.poll(cfg)
        maps, memos = self.filed()
        sizes = [os.path.getsize(p) for p in maps + memos]
        for path in maps + memos:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
        log, events = self.poll(cfg)
        self.assertEqual(events, [])
        self.assertNotIn("a memorized page", log)
        self.assertEqual([os.path.getsize(p) for p in maps + memos], sizes)
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": ids[3],
                              "fields": {"lastName": "Quill"}}])
        _, events = self.poll(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in events], [("updated", ids[3])])

if __name__ == "__main__":
    harness.main()
