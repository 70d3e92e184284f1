"""for_each sweeps at the edges: one contact whose tasks cannot be read never
blocks the others (skipped for the round, named in the log, reported once an
hour); a for_each trigger added to a running deployment starts silently;
`run --once` always exits (1 when a trigger failed, naming it); `run
--dry-run` reads each parent once and exits; a wall clock stepped back does
not stall the sweep; full rounds start `reconcile` after the last one ended,
also across a restart, while changed contacts are still read at once; cycle
and round lines say how many requests they used.

TASKS and NOTES sweep every 1 s (reconcile = 1s) as the edge cases need rounds
back to back; the default is a day. TASKS reads one contact at a time
(full_round = each): these are the edges of per-parent rounds (test_wide
covers rounds through the task search)."""
import datetime
import os
import re
import subprocess
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
CONTACTS = """
[trigger contacts]
use = contacts.search
every = 1s
"""
TASKS = """
[trigger tasks]
use = contacts.tasks
for_each = contacts
every = 1s
reconcile = 1s
full_round = each
"""
NOTES = """
[trigger notes]
use = contacts.notes
for_each = contacts
every = 1s
reconcile = 1s
"""
ROUND_RX = re.compile(r"^(\S+) info \[trigger:tasks\] sweep round (\d+) (starts|complete)(.*)$", re.M)


def log_time(stamp):
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def created(changes, kind):
    return [c["id"] for c in changes if c["kind"] == kind and c["op"] == "created"]


class SweepTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def task_reads(self, since=0):
        """contact id -> number of GET /contacts/{id}/tasks the sandbox saw."""
        reads = {}
        for r in self.sandbox.requests(since):
            m = re.fullmatch(r"/contacts/([^/]+)/tasks", r["path"])
            if m:
                reads[m.group(1)] = reads.get(m.group(1), 0) + 1
        return reads

    def batch_reads(self, since=0):
        """contact id -> number of answered task searches (the child's batch reads) naming it."""
        reads = {}
        for r in self.sandbox.requests(since):
            if r["path"].endswith("/tasks/search") and r["status"] == 200:
                for c in (r["body"] or {}).get("contactId") or []:
                    reads[c] = reads.get(c, 0) + 1
        return reads

    def poison_first_contact(self, status, sweep_only=False):
        """8 contacts with a task each, a baseline, then `status` on the
        tasks of the contact that sorts first (queued first: it changed too)
        and a new task on each other (which queues them behind it). The batch
        task search fails too (500), so the queued contacts are read one by
        one, as without a batch definition. sweep_only:
        task writes do not queue contacts (their dateUpdated is ignored), only
        the round-robin sweep finds them."""
        ids = sorted(self.sandbox.seed(8, tasks=1, seed=31)["contact_ids"])
        ignore = "ignore = dateUpdated\n" if sweep_only else ""
        cfg = self.write_config(CONTACTS + ignore + TASKS, location=FAST)
        self.run_once(cfg)
        bad = ids[0]
        fault = {"kind": "status", "status": status} if isinstance(status, int) else {"kind": status}
        self.sandbox.faults([dict(fault, window_s=120, path=f"^/contacts/{bad}/tasks"),
                             {"kind": "status", "status": 500, "window_s": 120,
                              "path": "/tasks/search$"}])
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": bad,
                              "fields": {"firstName": "Poisoned"}}])
        changes = self.sandbox.mutate([{"op": "create", "kind": "task", "contactId": c}
                                       for c in ids[1:]])
        return cfg, bad, sorted(created(changes, "task"))

    # -- F3: head-of-line blocking ------------------------------------------

    def test_failing_contact_does_not_block_the_sweep(self):
        self.assert_not_blocked(sweep_only=False)

    def test_failing_contact_does_not_block_the_round_robin(self):
        self.assert_not_blocked(sweep_only=True)

    def assert_not_blocked(self, sweep_only):
        cfg, bad, new_tasks = self.poison_first_contact(500, sweep_only)
        self.start_engine(cfg)

        def task_events():
            return sorted(e["record_id"] for e in self.events(cfg) if e["trigger"] == "tasks")

        self.wait_for(lambda: task_events() == new_tasks, timeout=30,
                      what="the tasks created on the other 7 contacts")
        # A round later the failing contact is still reported only once.
        self.wait_for(lambda: self.engine_log_text().count(f"contactId {bad}: skipped") >= 2,
                      timeout=30, what="two skipped rounds")
        self.stop_engine()
        log = self.engine_log_text()
        self.assertRegex(log, rf"warn \[trigger:tasks\] contactId {bad} \(/contacts/\{{contactId\}}"
                              rf"/tasks\): HTTP 500")
        self.assertNotRegex(log, r"warn \[trigger:tasks\] /contacts/\{contactId\}/tasks:",
                            "failure lines must name the contact, not the path template")
        loud = re.findall(rf"warn \[trigger:tasks\] contactId {bad}: skipped", log)
        self.assertEqual(len(loud), 1, "a persistently failing contact is reported once an hour")

    def test_forbidden_contact_is_skipped_and_once_exits_1(self):
        self.assert_once_skips(403, reads=1)

    def test_invalid_json_contact_is_skipped_after_three_reads(self):
        self.assert_once_skips("invalid_json", reads=3)

    def assert_once_skips(self, fault, reads):
        """--once reads the other contacts, reads the poisoned one `reads` times, exits 1."""
        cfg, bad, new_tasks = self.poison_first_contact(fault)
        start = time.time()
        proc = self.pollen("run", "-c", cfg, "--once", check=False, timeout=60)
        self.assertLess(time.time() - start, 30)
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertNotIn("Sanitizer", proc.stderr)  # exit status 1 must be pollen's own
        self.assertEqual(sorted(e["record_id"] for e in self.events(cfg) if e["trigger"] == "tasks"),
                         new_tasks)
        self.assertEqual(self.task_reads().get(bad, 0), 1 + reads,  # the baseline run, then --once
                         "a 4xx is read once in the round, other failures 3 times")
        self.assertIn("--once: 1 of the contacts records could not be read", proc.stderr)
        self.assertIn("stopping (--once: failed to complete a cycle: tasks)", proc.stderr)

    # -- F12: a for_each trigger added later -------------------------------

    def test_for_each_trigger_added_later_starts_silently(self):
        self.sandbox.seed(3, seed=32)
        only_contacts = self.write_config(CONTACTS, location=FAST)
        self.run_once(only_contacts)
        changes = self.sandbox.mutate([{"op": "create", "kind": "contact"} for _ in range(10)])
        contacts = created(changes, "contact")
        self.sandbox.mutate([{"op": "create", "kind": "note", "contactId": c} for c in contacts])
        self.run_once(only_contacts)
        with_notes = self.write_config(CONTACTS + NOTES, location=FAST, name="notes.ini")
        self.run_once(with_notes)
        self.assertEqual([e for e in self.events(with_notes) if e["trigger"] == "notes"], [],
                         "existing notes must be a silent baseline for the new trigger")
        note = created(self.sandbox.mutate([{"op": "create", "kind": "note",
                                             "contactId": contacts[4]}]), "note")
        self.run_once(with_notes)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(with_notes)
                          if e["trigger"] == "notes"], [("created", note[0])])

    def test_a_first_read_reports_notes_added_since_the_trigger_started(self):
        """A contact whose notes are first read after the trigger started
        (its read failed in the first round) reports the note added since as
        created (created_field = dateAdded); its older note stays silent."""
        ids = sorted(self.sandbox.seed(4, notes=1, seed=33)["contact_ids"])
        late = ids[0]
        cfg = self.write_config(CONTACTS + NOTES, location=FAST)
        self.sandbox.faults([{"kind": "status", "status": 500, "window_s": 300,
                              "path": f"^/contacts/{late}/notes$"}])
        proc = self.pollen("run", "-c", cfg, "--once", check=False, timeout=90)
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.sandbox.clear_faults()
        self.assertEqual([e for e in self.events(cfg) if e["trigger"] == "notes"], [])
        note = created(self.sandbox.mutate([{"op": "create", "kind": "note",
                                             "contactId": late}]), "note")
        self.run_once(cfg)
        self.assertEqual([(e["type"], e["record_id"]) for e in self.events(cfg)
                          if e["trigger"] == "notes"], [("created", note[0])],
                         "only the note added after the trigger started is reported")

    # -- run --once always exits ---------------------------------------------

    def unreachable(self, cfg):
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace(self.sandbox.url, "http://127.0.0.1:9"))

    def assert_once_fails(self, cfg, env=None, parent_failed_line=True):
        start = time.time()
        proc = self.pollen("run", "-c", cfg, "--once", check=False, timeout=90, env=env)
        self.assertLess(time.time() - start, 60)
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertNotIn("Sanitizer", proc.stderr)  # exit status 1 must be pollen's own
        if parent_failed_line:
            self.assertIn("--once: tasks skipped because contacts failed", proc.stderr)
        self.assertIn("stopping (--once: failed to complete a cycle: contacts, tasks)", proc.stderr)

    def test_once_exits_1_when_the_api_is_unreachable_on_fresh_state(self):
        cfg = self.write_config(CONTACTS + TASKS, location=FAST)
        self.unreachable(cfg)
        self.assert_once_fails(cfg)

    def test_once_exits_1_on_401_with_seeded_state(self):
        self.sandbox.seed(4, tasks=1, seed=33)
        cfg = self.write_config(CONTACTS + TASKS, location=FAST)
        ok = self.run_once(cfg)
        self.assertIn("stopping (--once: every trigger completed a cycle and no action is due)",
                      ok.stderr)
        env = dict(self.env, POLLEN_TEST_TOKEN="pit-wrong-token-000000000")
        # A 401 may also fail the credential, which stops both triggers at once.
        self.assert_once_fails(cfg, env=env, parent_failed_line=False)

    def test_once_exits_1_when_the_oauth_credential_fails(self):
        """invalid_grant stops the location's triggers: --once still ends, with 1."""
        self.sandbox.seed(3, tasks=1, seed=37)
        secret = "cs-sweep-secret-0123456789"
        self.env["POLLEN_CLIENT_SECRET"] = secret
        self.sandbox.control("POST", "/_control/oauth/clients", {
            "client_id": "sweep-app", "client_secret": secret, "scopes": "contacts.readonly"})
        cfg = os.path.join(self.dir, "oauth.ini")
        with open(cfg, "w") as f:
            f.write(f"[engine]\nstate_dir = state\nmin_interval = 1s\nlog_level = debug\n"
                    f"[api]\nbase_url = {self.sandbox.url}\ntimeout = 10s\n"
                    f"[oauth app]\nclient_id = sweep-app\nclient_secret = env:POLLEN_CLIENT_SECRET\n"
                    f"scopes = contacts.readonly\nuser_type = Location\n"
                    f"[location main]\nid = {harness.LOCATION_ID}\noauth = app\n{FAST}\n"
                    + CONTACTS + TASKS)
        code = self.sandbox.control("POST", "/_control/oauth/codes", {
            "client_id": "sweep-app", "user_type": "Location",
            "location_id": harness.LOCATION_ID})["code"]
        self.pollen("auth", "login", "-c", cfg, "app", "--code", code, timeout=60)
        store = os.path.join(self.dir, "state", "oauth-app.json")
        with open(store, "rb") as f:
            spent = f.read()
        # Rotate the pair (the old refresh token is spent), then put the old pair back.
        self.sandbox.control("POST", "/_control/oauth/expire_all", {})
        self.run_once(cfg)
        with open(store, "wb") as f:
            f.write(spent)
        start = time.time()
        proc = self.pollen("run", "-c", cfg, "--once", check=False, timeout=60)
        self.assertLess(time.time() - start, 30)
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        self.assertIn("invalid_grant", proc.stderr)
        self.assertIn("stopping (--once: failed to complete a cycle: contacts, tasks)", proc.stderr)

    # -- run --dry-run terminates --------------------------------------------

    def test_dry_run_reads_each_queued_contact_once(self):
        ids = sorted(self.sandbox.seed(8, tasks=1, seed=34)["contact_ids"])
        cfg = self.write_config(CONTACTS + TASKS, location=FAST)
        self.run_once(cfg)
        # Leave queue entries behind: the parent queues 3 updated contacts,
        # then the process dies at the first task read it would record.
        self.sandbox.mutate([{"op": "update", "kind": "contact", "id": c,
                              "fields": {"firstName": "Changed"}} for c in ids[3:6]])
        self.sandbox.faults([{"kind": "delay", "ms": 1500, "count": 1, "path": "/tasks$"}])
        killed = self.pollen("run", "-c", cfg, "--once", check=False, timeout=60,
                             env=dict(self.env, POLLEN_FAILPOINT="sweep.before_commit"))
        self.assertEqual(killed.returncode, -9, killed.stderr[-3000:])
        since = self.sandbox.requests()[-1]["seq"]
        proc = self.pollen("run", "-c", cfg, "--dry-run", check=False, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        reads = self.task_reads(since)
        for c, n in self.batch_reads(since).items():  # the 3 queued ones: one batch read
            reads[c] = reads.get(c, 0) + n
        self.assertEqual(reads, {c: 1 for c in ids}, "each contact is read exactly once")

    def test_dry_run_on_fresh_state_explains_the_silent_baseline(self):
        self.sandbox.seed(3, seed=35)
        cfg = self.write_config(CONTACTS, location=FAST)
        proc = self.pollen("run", "-c", cfg, "--dry-run", timeout=30)
        self.assertNotIn("baseline recorded", proc.stderr)
        self.assertIn("3 records would be a silent baseline", proc.stderr)
        self.assertIn("set first_poll = emit", proc.stderr)

    # -- F14: scheduling on the monotonic clock ----------------------------

    def test_wall_clock_step_back_does_not_stall_the_sweep(self):
        ids = self.sandbox.seed(4, tasks=1, seed=36)["contact_ids"]
        # Task writes bump the contact's dateUpdated: ignored, only the sweep finds them.
        cfg = self.write_config(CONTACTS + "ignore = dateUpdated\n" + TASKS, location=FAST)
        # The last round "started" 6 h ahead of the clock the daemon sees.
        self.run_once(cfg, env=dict(self.env, POLLEN_WALL_OFFSET_MS=str(6 * 3600 * 1000)))
        task = created(self.sandbox.mutate([{"op": "create", "kind": "task",
                                             "contactId": ids[2]}]), "task")
        self.start_engine(cfg)
        self.wait_for(lambda: [e["record_id"] for e in self.events(cfg)
                               if e["trigger"] == "tasks"] == task,
                      timeout=20, what="the sweep to find the new task")


    # -- reconcile: full rounds at most once per interval -------------------

    def rounds(self):
        """[(round, 'starts'|'complete', wall time, rest of the line)] from the engine log."""
        return [(int(m.group(2)), m.group(3), log_time(m.group(1)), m.group(4))
                for m in ROUND_RX.finditer(self.engine_log_text())]

    def test_full_rounds_start_reconcile_after_the_last_ended(self):
        self.sandbox.seed(4, tasks=1, seed=38)
        cfg = self.write_config(CONTACTS + TASKS.replace("reconcile = 1s", "reconcile = 3s"),
                                location=FAST)
        self.start_engine(cfg)
        self.wait_for(lambda: any(r == 3 and what == "complete" for r, what, _, _ in self.rounds()),
                      timeout=40, what="three full rounds")
        self.stop_engine()
        rounds = self.rounds()
        ends = {r: t for r, what, t, _ in rounds if what == "complete"}
        starts = {r: t for r, what, t, _ in rounds if what == "starts"}
        for r in (2, 3):
            gap = starts[r] - ends[r - 1]
            self.assertGreaterEqual(gap, 2.9, f"round {r} started {gap:.2f} s after round {r - 1} ended")
            self.assertLess(gap, 6, f"round {r} waited {gap:.2f} s, reconcile is 3 s")
        # Nothing changed: a round costs one request per contact, and says so.
        later = [rest for r, what, _, rest in rounds if what == "complete" and r > 1]
        self.assertTrue(later and all("requests=4," in rest for rest in later), later)
        self.assertTrue(all("the next full round in 3s" in rest for rest in later), later)
        # Every top-level cycle line says what it cost: one page of four contacts.
        cycles = re.findall(r"\[trigger:contacts\] cycle \d+: .*", self.engine_log_text())
        self.assertTrue(cycles, "no cycle lines")
        for line in cycles:
            self.assertRegex(line, r", requests=1( \(.*\))?$")

    def test_restart_waits_for_reconcile_but_reads_changed_contacts(self):
        ids = sorted(self.sandbox.seed(5, tasks=1, seed=39)["contact_ids"])
        cfg = self.write_config(CONTACTS + TASKS.replace("reconcile = 1s", "reconcile = 1h"),
                                location=FAST)
        self.run_once(cfg)  # the baseline: --once always runs a full round
        since = self.sandbox.requests()[-1]["seq"]
        self.start_engine(cfg)
        self.wait_for(lambda: len(re.findall(r"\[trigger:contacts\] cycle \d+:",
                                             self.engine_log_text())) >= 3,
                      timeout=30, what="three contacts cycles")
        self.assertEqual(self.task_reads(since), {}, "a full round ran before its reconcile was due")
        task = created(self.sandbox.mutate([{"op": "create", "kind": "task",
                                             "contactId": ids[3]}]), "task")
        self.wait_for(lambda: [e["record_id"] for e in self.events(cfg)
                               if e["trigger"] == "tasks"] == task,
                      timeout=20, what="the new task of the changed contact")
        self.stop_engine()
        self.assertEqual(self.task_reads(since), {ids[3]: 1}, "only the changed contact is read")
        self.assertNotIn("sweep round 2 starts", self.engine_log_text())


if __name__ == "__main__":
    harness.main()
