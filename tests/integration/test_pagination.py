"""Pagination reaches every record across page boundaries in both styles:
start_after/startAfterId (GET /contacts/) and page + searchAfter
(POST /contacts/search), including a listing that ends exactly on a page
boundary, and deletions are decided only over the complete enumeration."""
import json
import urllib.parse

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"


class PaginationTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def check_all_once(self, trigger_use, count, page_size, extra=""):
        """page_size None: the trigger sets none (the definition's maximum)."""
        ids = self.sandbox.seed(count, seed=11)["contact_ids"]
        size = f"page_size = {page_size}\n" if page_size is not None else ""
        cfg = self.write_config(
            f"[trigger all]\nuse = {trigger_use}\nevery = 1s\nfirst_poll = emit\n" + size + extra,
            location=FAST)
        self.run_once(cfg)
        events = self.events(cfg)
        got = [e["record_id"] for e in events]
        self.assertEqual(len(got), len(set(got)), "a record was reported twice")
        self.assertEqual(sorted(got), sorted(ids))
        return ids, cfg

    def api_requests(self, path):
        return [r for r in self.sandbox.requests() if r["path"] == path]

    def test_search_after_reaches_every_record(self):
        ids, cfg = self.check_all_once("contacts.search", 250, 100)
        reqs = self.api_requests("/contacts/search")
        self.assertEqual(len(reqs), 3)
        bodies = [r["body"] for r in reqs]
        self.assertEqual(bodies[0].get("page"), 1)
        self.assertNotIn("searchAfter", bodies[0])
        for b in bodies[1:]:
            self.assertIn("searchAfter", b)
            self.assertNotIn("page", b)
        self.assertTrue(all(b["pageLimit"] == 100 and b["locationId"] == harness.LOCATION_ID
                            for b in bodies))

    def test_default_page_size_is_the_maximum(self):
        # No page_size anywhere: pages as large as the API allows (contacts.search: 500),
        # so 1,000 contacts cost 3 requests (the third, empty, proves the end), not 11 at the
        # former default of 100.
        self.check_all_once("contacts.search", 1000, None)
        bodies = [r["body"] for r in self.api_requests("/contacts/search")]
        self.assertEqual([b["pageLimit"] for b in bodies], [500, 500, 500])

    def test_search_after_exact_page_boundary(self):
        # reconcile = 0s: the second run is a full enumeration too (it decides deletions).
        ids, cfg = self.check_all_once("contacts.search", 200, 50, "reconcile = 0s\n")
        # 4 full pages and an empty fifth that proves the end.
        self.assertEqual(len(self.api_requests("/contacts/search")), 5)
        # A deletion on a page boundary is found after the complete enumeration.
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[49]}])
        self.run_once(cfg)
        events = self.events(cfg, "--type", "deleted")
        self.assertEqual([e["record_id"] for e in events], [ids[49]])

    def test_full_enumeration_skips_a_needless_deletion_scan(self):
        # A no-change full enumeration of several pages proves from its counts that
        # every stored entry was seen: no walk of the snapshot (cycle.c, scan_needless).
        ids, cfg = self.check_all_once("contacts.search", 200, 50, "reconcile = 0s\n")
        proc = self.run_once(cfg)
        self.assertIn("deletion scan: all 200 entries were seen", proc.stderr)
        # One deleted and one created in the same run: the count of stored entries
        # is unchanged, yet the deleted one is found (the proof fails, the scan runs).
        self.sandbox.mutate([{"op": "delete", "kind": "contact", "id": ids[120]},
                             {"op": "create", "kind": "contact"}])
        proc = self.run_once(cfg)
        self.assertNotIn("deletion scan: all", proc.stderr)
        events = self.events(cfg, "--type", "deleted")
        self.assertEqual([e["record_id"] for e in events], [ids[120]])
        self.assertEqual(len(self.events(cfg, "--type", "created")), 201)
        # The deleted one's entry is gone: the next no-change run skips the scan again.
        proc = self.run_once(cfg)
        self.assertIn("deletion scan: all 200 entries were seen", proc.stderr)

    def test_start_after_reaches_every_record(self):
        ids, cfg = self.check_all_once("contacts.list", 230, 100)
        reqs = self.api_requests("/contacts/")
        self.assertEqual(len(reqs), 3)
        queries = [urllib.parse.parse_qs(r["query"]) if isinstance(r["query"], str) else r["query"]
                   for r in reqs]
        self.assertNotIn("startAfterId", queries[0])
        for q in queries[1:]:
            self.assertIn("startAfterId", q)
            self.assertIn("startAfter", q)
        self.assertTrue(all(str(harness.LOCATION_ID) in json.dumps(q) for q in queries))

    def test_start_after_exact_page_boundary(self):
        self.check_all_once("contacts.list", 100, 50)
        # The second page is full, but its meta says there is no next page.
        self.assertEqual(len(self.api_requests("/contacts/")), 2)


if __name__ == "__main__":
    harness.main()
