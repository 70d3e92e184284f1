"""Full rounds through the batch listing (wide.c): a for_each child whose
definition names a batch listing (contacts.tasks: locations.tasks.search)
reads every parent's records with that one location-wide listing, 100 tasks
a request, instead of one GET per contact. Its first round is the baseline
(silent); later rounds report what the queued reads of changed contacts did
not see (created, updated, completed, and deleted after a GET by id says
so), each once. A listing that comes back short never deletes: a few unseen
tasks are asked for by id (200: kept), many are not asked for at all.
`full_round = each` keeps the reads one contact at a time.

In these tests the contacts trigger ignores dateUpdated, so the touch a task
write gives its contact queues nothing: only the full round can see the
change."""
import re

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TRIGGERS = """
[trigger contacts]
use = contacts.search
every = 1s
ignore = dateUpdated

[trigger tasks]
use = contacts.tasks
for_each = contacts
every = 1s
"""
SEARCH = re.compile(r"^/locations/[^/]+/tasks/search$")
SINGLE_LIST = re.compile(r"^/contacts/[^/]+/tasks$")
BY_ID = re.compile(r"^/contacts/[^/]+/tasks/[^/]+$")


def task_events(events):
    return sorted((e["type"], e["record_id"]) for e in events if e["trigger"] == "tasks")


class WideRoundTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def requests_since(self, since):
        return [(r["method"], r["path"], r["status"]) for r in self.sandbox.requests(since)]

    def last_seq(self):
        reqs = self.sandbox.requests(0)
        return reqs[-1]["seq"] if reqs else 0

    def baseline(self, contacts, tasks, seed):
        ids = sorted(self.sandbox.seed(contacts, tasks=tasks, seed=seed)["contact_ids"])
        cfg = self.write_config(TRIGGERS, location=FAST)
        since = self.last_seq()
        self.run_once(cfg)
        return ids, cfg, self.requests_since(since)

    def test_the_baseline_is_one_listing(self):
        """60 contacts with 2 tasks each: the child's first round is two pages of the
        task search (100 + 20), no GET per contact, and no event."""
        ids, cfg, reqs = self.baseline(60, 2, seed=71)
        searches = [r for r in reqs if SEARCH.match(r[1])]
        self.assertEqual(len(searches), 2, reqs)
        self.assertEqual([r for r in reqs if SINGLE_LIST.match(r[1]) or BY_ID.match(r[1])], [])
        self.assertEqual(task_events(self.events(cfg)), [])
        # A round with nothing changed: the same two pages, nothing asked by id, no event.
        since = self.last_seq()
        self.run_once(cfg)
        reqs = self.requests_since(since)
        self.assertEqual(len([r for r in reqs if SEARCH.match(r[1])]), 2)
        self.assertEqual([r for r in reqs if BY_ID.match(r[1])], [])
        self.assertEqual(task_events(self.events(cfg)), [])

    def test_a_round_reports_what_no_queued_read_saw(self):
        """Created, renamed, completed and deleted tasks (one a contact's last), with no
        contact queued: the round reports each once; the deletions after a GET by id
        (404), the kept tasks never asked for."""
        ids, cfg, _ = self.baseline(12, 2, seed=72)
        tasks = self.sandbox.state()["tasks"]
        open_task = next(t["id"] for c in ids[2:] for t in tasks[c] if not t["completed"])
        last = ids[11]
        ops = [{"op": "create", "kind": "task", "contactId": ids[0], "fields": {"title": "New"}},
               {"op": "update", "kind": "task", "id": tasks[ids[1]][0]["id"],
                "fields": {"title": "Renamed"}},
               {"op": "complete", "kind": "task", "id": open_task},
               {"op": "delete", "kind": "task", "id": tasks[ids[10]][0]["id"]}]
        ops += [{"op": "delete", "kind": "task", "id": t["id"]} for t in tasks[last]]
        done = self.sandbox.mutate(ops)
        created = [d["id"] for d in done if d["kind"] == "task" and d["op"] == "created"]
        since = self.last_seq()
        self.run_once(cfg)
        events = self.events(cfg)
        want = sorted([("created", created[0]), ("updated", tasks[ids[1]][0]["id"]),
                       ("updated", open_task), ("deleted", tasks[ids[10]][0]["id"])] +
                      [("deleted", t["id"]) for t in tasks[last]])
        self.assertEqual(task_events(events), want)
        by_id = {e["record_id"]: e for e in events if e["trigger"] == "tasks"}
        self.assertIn("title", by_id[tasks[ids[1]][0]["id"]]["changes"])
        self.assertIn("completed", by_id[open_task]["changes"])
        reqs = self.requests_since(since)
        self.assertEqual(len([r for r in reqs if SEARCH.match(r[1])]), 1,
                         "one page of the round; no contact was queued")
        asked = sorted(r[1].rsplit("/", 1)[1] for r in reqs if BY_ID.match(r[1]))
        self.assertEqual(asked, sorted([tasks[ids[10]][0]["id"]] + [t["id"] for t in tasks[last]]),
                         "only the unseen tasks are asked for")
        # The contact none of whose tasks was listed is read on its own first (it may be
        # gone with them: a GET by id cannot tell), then its tasks asked for.
        self.assertEqual([r[1] for r in reqs if SINGLE_LIST.match(r[1])], ["/contacts/%s/tasks" % last])
        # Quiet afterwards.
        self.run_once(cfg)
        self.assertEqual(task_events(self.events(cfg)), want)

    def test_a_short_listing_keeps_the_tasks_that_still_exist(self):
        """The search leaves out some tasks once: one missing from a contact with another
        listed is asked for by id (200: kept); a contact with none listed is read on its
        own (its tasks are there); nothing is deleted."""
        ids, cfg, _ = self.baseline(4, 2, seed=73)
        tasks = self.sandbox.state()["tasks"]
        listing = [t for c in ids[1:] for t in tasks[c]]
        hidden = listing.pop()  # the last task of ids[3]; ids[0]'s two are left out too
        self.sandbox.faults([{"kind": "status", "status": 200, "body": {"tasks": listing},
                              "count": 1, "method": "POST", "path": SEARCH.pattern}])
        since = self.last_seq()
        self.run_once(cfg)
        reqs = self.requests_since(since)
        self.assertEqual([r for r in reqs if BY_ID.match(r[1])],
                         [("GET", "/contacts/%s/tasks/%s" % (ids[3], hidden["id"]), 200)])
        self.assertEqual([r[1] for r in reqs if SINGLE_LIST.match(r[1])],
                         ["/contacts/%s/tasks" % ids[0]])
        self.sandbox.clear_faults()
        self.run_once(cfg)
        self.assertEqual(task_events(self.events(cfg)), [])

    def test_a_listing_missing_many_decides_nothing(self):
        """120 tasks, and the search answers an empty list: more than the round may ask
        about (100), so it asks for none, deletes nothing, and says why."""
        ids, cfg, _ = self.baseline(60, 2, seed=74)
        self.sandbox.faults([{"kind": "empty_list", "path": SEARCH.pattern, "count": 1}])
        since = self.last_seq()
        out = self.run_once(cfg)
        reqs = self.requests_since(since)
        self.assertEqual([r for r in reqs if BY_ID.match(r[1])], [])
        self.assertIn("no deletions are decided from this round", out.stderr)
        self.sandbox.clear_faults()
        self.run_once(cfg)
        self.assertEqual(task_events(self.events(cfg)), [])

    def test_a_refused_listing_reads_contacts_one_by_one(self):
        """The search answers 403 (a credential without its scope): the round goes on one
        contact at a time, and a change is still reported once."""
        ids, cfg, _ = self.baseline(5, 1, seed=75)
        task = self.sandbox.state()["tasks"][ids[3]][0]["id"]
        self.sandbox.mutate([{"op": "update", "kind": "task", "id": task,
                              "fields": {"title": "Refused"}}])
        self.sandbox.faults([{"kind": "status", "status": 403, "path": SEARCH.pattern,
                              "count": 100}])
        since = self.last_seq()
        out = self.run_once(cfg)
        reqs = self.requests_since(since)
        self.assertEqual(len([r for r in reqs if SINGLE_LIST.match(r[1])]), 5, reqs)
        self.assertIn("full rounds and batch reads are off", out.stderr)
        self.assertEqual(task_events(self.events(cfg)), [("updated", task)])

    def test_dry_run_lists_once_and_records_nothing(self):
        """--dry-run after a baseline: the round lists the tasks once, a change is found
        but not recorded (the next real run still reports it), and the run exits 0."""
        ids, cfg, _ = self.baseline(6, 1, seed=77)
        task = self.sandbox.state()["tasks"][ids[2]][0]["id"]
        self.sandbox.mutate([{"op": "update", "kind": "task", "id": task,
                              "fields": {"title": "Dry"}}])
        since = self.last_seq()
        proc = self.pollen("run", "-c", cfg, "--dry-run", check=False, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertEqual(len([r for r in self.requests_since(since) if SEARCH.match(r[1])]), 1)
        self.assertEqual(task_events(self.events(cfg)), [])
        self.run_once(cfg)
        self.assertEqual(task_events(self.events(cfg)), [("updated", task)])

    def test_full_round_each_reads_one_contact_at_a_time(self):
        """`full_round = each`: the baseline reads every contact's tasks, no search."""
        self.sandbox.seed(6, tasks=1, seed=76)
        cfg = self.write_config(TRIGGERS + "full_round = each\n", location=FAST)
        since = self.last_seq()
        self.run_once(cfg)
        reqs = self.requests_since(since)
        self.assertEqual(len([r for r in reqs if SINGLE_LIST.match(r[1])]), 6)
        self.assertEqual([r for r in reqs if SEARCH.match(r[1])], [])

    def test_full_round_only_on_for_each_triggers(self):
        """`full_round` on a trigger that is not for_each is refused with its line."""
        cfg = self.write_config(TRIGGERS.replace("ignore = dateUpdated",
                                                 "ignore = dateUpdated\nfull_round = each"))
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stderr, r"pollen\.ini:\d+: full_round: contacts\.search is not a "
                                      r"for_each trigger")


if __name__ == "__main__":
    harness.main()
