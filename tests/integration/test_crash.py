"""Crash safety: `kill -9` at random instants and at every failpoint loses and
duplicates nothing.

The test seeds a small location (60 contacts with 2 tasks and 2 notes each),
records the silent baseline with one `--once` run (it must emit nothing),
and snapshots the sandbox state and change-log position. Then, for
POLLEN_CRASH_ITERATIONS rounds (default 50): a few random realistic
mutations (/_control/mutate {"random": N}: contacts, tasks and notes
created, updated, completed, deleted), then the engine is started and either
`kill -9`ed after a random 0-1500 ms, or (about one round in three) started
with POLLEN_FAILPOINT=NAME:N so that it SIGKILLs itself right before or right
after an LMDB commit of a contacts page/cycle or of a tasks/notes read.
POLLEN_CRASH_SEED replays a run (the seed is printed on stderr).

Then mutations stop and the engine runs `--once` until two consecutive runs
add no event (a child trigger holds a deletion one read when a listing comes
back empty, so one quiet run is not proof of quiescence). The event log is
then checked against the sandbox's baseline state, final state
(/_control/state) and change log (/_control/changes since the baseline):

1. Every event `id` is unique and `seq` strictly increases (no duplicates).
2. Every event belongs to a record the sandbox knows (no phantom records),
   with record_id == record.id and the test's location id.
3. Per record (contact, task, note), the events replayed from the baseline
   copy form a valid history: `created` only when the record is not known
   (never for a baseline record, at most once), `updated`/`deleted` only when
   it is (the contacts trigger also emits `touched`, an update of dateUpdated
   alone, checked as an update); each `updated` carries `changes` listing exactly the top-level
   fields that differ from the previous copy (baseline or previous event)
   with the right old and new values; a `deleted` event carries the last
   copy. At most one `created` and at most one `deleted` per record.
4. Net effect, for every record whose contact still exists: replaying its
   events from the baseline yields exactly the sandbox's final state. So a
   record created after the baseline and still present has exactly one
   `created`; a baseline record deleted since has exactly one `deleted` (and
   it is its last event); a record whose final content differs from the
   baseline has a last event whose `record` equals the final content on every
   field (contacts are compared in the POST /contacts/search shape, the
   sandbox's own search_item, minus the volatile `searchAfter` cursor); a
   record that still exists has no `deleted` event, or it was re-created,
   which (2) forbids.
5. A record the change log never mentions since the baseline has no event.

Intermediate states may be coalesced, and that is correct: polling observes
states, not writes. A record updated twice between two reads produces one
`updated` from the first observed copy to the last (its `changes` are the
net difference), and a record created and deleted between two reads may
produce no event at all (or a `created` and a `deleted` if a read saw it).
What must never happen is a state change that is reported twice, reported
out of order, or never reported in the end; a crash between the snapshot
write and the event write would produce exactly those (the engine commits
both in one LMDB transaction, so it must not).

Tasks and notes of a contact deleted since the baseline are exempt from (4):
they vanish with their contact (the API answers 404 for its task list) and
the engine purges them silently, since the contact's own `deleted` event
reports it; they are still held to (1)-(3) and (5).

test_kill9_during_baseline kills the first poll itself (contacts in pages of
10, then the first tasks/notes sweep) at its failpoints and at random
instants (POLLEN_CRASH_BASELINE_ITERATIONS, default 15): the completed
baseline must still be silent, and later changes must pass the same oracle.
OracleSelfTest feeds the oracle broken logs: it must be able to fail.
"""
import json
import os
import random
import signal
import sys
import time

import harness

sys.path.insert(0, os.path.join(harness.SOURCE_ROOT, "tests", "sandbox"))
from ghl.api import search_item  # noqa: E402  (the search response shape of a stored contact)

CONTACTS = 60
TRIGGERS = """
[trigger contacts]
use = contacts.search
every = 1s
reconcile = %dms
emit = created updated deleted touched

[trigger tasks]
use = contacts.tasks
for_each = contacts
every = 1s
reconcile = 1s

[trigger notes]
use = contacts.notes
for_each = contacts
every = 1s
reconcile = 1s
"""
# contacts.search is incremental (M13): the kills land in incremental cycles and in full
# reconciles alike; only a reconcile reports a deletion, so quiesce waits for one first.
RECONCILE_MS = 2000
TRIGGERS = TRIGGERS % RECONCILE_MS
LOCATION = "rate_limit = 100\nrate_window = 1s\nsweep_share = 0.9\n"
KIND_OF_TRIGGER = {"contacts": "contact", "tasks": "task", "notes": "note"}
FAILPOINTS = ("poll.before_commit", "poll.after_commit", "sweep.before_commit", "sweep.after_commit")
# 1 partial round + 3 empty reads in a row (src/sources/poll/poll_int.h EMPTY_CONFIRMATIONS) + 1.
QUIET_RUNS = 5
VOLATILE = {"contact": {"searchAfter"}, "task": set(), "note": set()}


def canon(value):
    """Canonical JSON text: key order never matters, true != 1, 1 != "1"."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def strip(kind, rec):
    if rec is None:
        return None
    return {k: v for k, v in rec.items() if k not in VOLATILE[kind]}


def contact_view(rec):
    """A stored contact as POST /contacts/search returns it (minus searchAfter)."""
    rec = {k: v for k, v in rec.items() if k != "deleted"}
    return strip("contact", search_item(rec, None))


def field_diff(old, new):
    """{field: (old, new)} for each top-level field whose canonical value differs."""
    out = {}
    for k in set(old) | set(new):
        a, b = old.get(k), new.get(k)
        if (k in old) != (k in new) or canon(a) != canon(b):
            out[k] = (a, b)
    return out


class Record:
    __slots__ = ("kind", "id", "contact_id", "base", "final", "orphan", "changed")

    def __init__(self, kind, rid):
        self.kind, self.id = kind, rid
        self.contact_id = None
        self.base = None      # copy at the baseline (None: did not exist)
        self.final = None     # copy now (None: does not exist)
        self.orphan = False   # a task or note whose contact is deleted now
        self.changed = False  # the change log mentions it since the baseline


def build_records(base_state, final_state, changes):
    """Every record the oracle knows: baseline, final state, and the change log."""
    recs = {}

    def get(kind, rid):
        r = recs.get((kind, rid))
        if r is None:
            r = recs[(kind, rid)] = Record(kind, rid)
        return r

    for c in base_state["contacts"]:
        if not c.get("deleted"):
            get("contact", c["id"]).base = contact_view(c)
    for kind, key in (("task", "tasks"), ("note", "notes")):
        for cid, items in base_state[key].items():
            for item in items:
                r = get(kind, item["id"])
                r.base, r.contact_id = item, cid
    deleted_contacts = set()
    for c in final_state["contacts"]:
        if c.get("deleted"):
            deleted_contacts.add(c["id"])
            get("contact", c["id"])
        else:
            get("contact", c["id"]).final = contact_view(c)
    for kind, key in (("task", "tasks"), ("note", "notes")):
        for cid, items in final_state[key].items():
            for item in items:
                r = get(kind, item["id"])
                r.contact_id = cid
                if cid not in deleted_contacts:
                    r.final = item
    for ch in changes:
        if ch["kind"] not in ("contact", "task", "note"):
            continue
        r = get(ch["kind"], ch["id"])
        r.changed = True
        if ch.get("contactId"):
            r.contact_id = ch["contactId"]
    for r in recs.values():
        if r.kind != "contact" and r.contact_id in deleted_contacts:
            r.orphan = True
            r.final = None
    return recs


def check_events(events, recs, location_id):
    """Returns a list of problems (empty: the oracle holds). See the module docstring."""
    problems = []
    ids, last_seq = set(), 0
    by_record = {}
    for ev in events:
        seq = ev.get("seq")
        if not isinstance(seq, int) or seq <= last_seq:
            problems.append("seq %r after %d: not strictly increasing" % (seq, last_seq))
        else:
            last_seq = seq
        if ev.get("id") in ids:
            problems.append("event id %s appears twice (seq %s)" % (ev.get("id"), seq))
        ids.add(ev.get("id"))
        kind = KIND_OF_TRIGGER.get(ev.get("trigger"))
        rec = ev.get("record")
        if kind is None or ev.get("type") not in ("created", "updated", "touched", "deleted") or not isinstance(rec, dict):
            problems.append("seq %s: malformed event %s" % (seq, canon(ev)[:300]))
            continue
        if ev.get("location") != location_id:
            problems.append("seq %s: location %r" % (seq, ev.get("location")))
        if rec.get("id") != ev.get("record_id"):
            problems.append("seq %s: record_id %r but record.id %r" % (seq, ev.get("record_id"), rec.get("id")))
        if (kind, ev.get("record_id")) not in recs:
            problems.append("seq %s: %s %s for a %s the sandbox never had" % (seq, ev["type"], ev.get("record_id"), kind))
            continue
        by_record.setdefault((kind, ev["record_id"]), []).append(ev)

    for key, r in sorted(recs.items()):
        evs = by_record.get(key, [])
        what = "%s %s" % (r.kind, r.id)
        if evs and not r.changed:
            problems.append("%s never changed since the baseline but has events: %s"
                            % (what, ", ".join("%s#%d" % (e["type"], e["seq"]) for e in evs)))
            continue
        types = [e["type"] for e in evs]
        if types.count("created") > 1 or types.count("deleted") > 1:
            problems.append("%s: events %s (a change reported twice)" % (what, types))
        state = r.base
        for ev in evs:
            cur = strip(r.kind, ev["record"])
            t, seq = ev["type"], ev["seq"]
            if t == "created":
                if state is not None:
                    problems.append("%s: created#%d but the record was already known (%s)"
                                    % (what, seq, "baseline" if state is r.base else "an earlier event"))
                state = cur
            elif t in ("updated", "touched"):
                if state is None:
                    problems.append("%s: updated#%d for a record not known" % (what, seq))
                    state = cur
                    continue
                want = field_diff(state, cur)
                if t == "touched" and set(want) != {"dateUpdated"}:
                    problems.append("%s: touched#%d changes %s, not dateUpdated alone"
                                    % (what, seq, sorted(want)))
                got = ev.get("changes")
                if not isinstance(got, dict):
                    problems.append("%s: updated#%d without changes" % (what, seq))
                elif not want:
                    problems.append("%s: updated#%d but the record equals the previous copy" % (what, seq))
                else:
                    got = {k: v for k, v in got.items() if k not in VOLATILE[r.kind]}
                    if set(got) != set(want):
                        problems.append("%s: updated#%d changes %s, expected %s (from the previous copy)"
                                        % (what, seq, sorted(got), sorted(want)))
                    for k in set(got) & set(want):
                        g = got[k] if isinstance(got[k], dict) else {}
                        if canon(g.get("old")) != canon(want[k][0]) or canon(g.get("new")) != canon(want[k][1]):
                            problems.append("%s: updated#%d changes.%s = %s, expected old %s new %s"
                                            % (what, seq, k, canon(got[k])[:200], canon(want[k][0])[:100],
                                               canon(want[k][1])[:100]))
                state = cur
            else:
                if state is None:
                    problems.append("%s: deleted#%d for a record not known" % (what, seq))
                elif canon(cur) != canon(state):
                    problems.append("%s: deleted#%d carries %s, not the last known copy %s"
                                    % (what, seq, canon(cur)[:200], canon(state)[:200]))
                state = None
        if r.orphan:
            continue
        if r.final is None and state is not None:
            if r.base is not None and "deleted" not in types:
                problems.append("%s existed at the baseline and was deleted: no deleted event (events %s)"
                                % (what, types))
            else:
                problems.append("%s is gone but its events end with it present (events %s)" % (what, types))
        elif r.final is not None and state is None:
            if "deleted" in types:
                problems.append("%s still exists but has a deleted event (events %s)" % (what, types))
            else:
                problems.append("%s was created after the baseline and exists: no created event (events %s)"
                                % (what, types))
        elif r.final is not None and canon(state) != canon(r.final):
            diff = field_diff(state, r.final)
            problems.append("%s: final content differs from its %s on %s (events %s)"
                            % (what, "last event" if evs else "baseline copy", sorted(diff), types))
    return problems


class CrashTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def start(self, config, failpoint=None):
        env = dict(self.env)
        env.pop("POLLEN_FAILPOINT", None)
        if failpoint:
            env["POLLEN_FAILPOINT"] = failpoint
        return self.start_engine(config, env=env)

    def log_tail(self, n=3000):
        return self.engine_log_text()[-n:]

    def quiesce(self, config, max_runs=20):
        """--once until QUIET_RUNS consecutive runs add no event; returns the number of runs.
        A for_each deletion can take that many runs to surface without being lost: the
        first run may only finish a round a kill interrupted (it continues from the
        cursor), the next one sees the task missing and holds it, and a contact whose
        last task went needs EMPTY_CONFIRMATIONS (3) empty reads in a row, one per round.
        (With two quiet runs the oracle once stopped early under ASan, seed 1455710671.)"""
        quiet, count = 0, len(self.events(config))
        time.sleep(RECONCILE_MS / 1000 + 0.2)  # the first run is a reconcile (deletions)
        for run in range(1, max_runs + 1):
            self.run_once(config)
            now = len(self.events(config))
            quiet = quiet + 1 if now == count else 0
            count = now
            if quiet >= QUIET_RUNS:
                return run
        self.fail("still emitting events after %d --once runs without any mutation" % max_runs)

    def crash_seed(self, env_name="POLLEN_CRASH_SEED"):
        seed = os.environ.get(env_name) or str(random.SystemRandom().randrange(1 << 32))
        print("test_crash: %s=%s" % (env_name, seed), file=sys.stderr, flush=True)
        return seed

    def kill_at_failpoint(self, config, name, n, what):
        """Starts the engine armed with failpoint NAME:N; waits up to 4 s for it to kill
        itself (SIGKILL), else kills it. Returns True if the failpoint fired."""
        proc = self.start(config, "%s:%d" % (name, n))
        deadline = time.time() + 4
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            self.stop_engine(signal.SIGKILL)
            return False
        rc = self.stop_engine()
        self.assertEqual(rc, -signal.SIGKILL, "%s: the engine exited %s instead of dying at failpoint %s:%d\n%s"
                         % (what, rc, name, n, self.log_tail()))
        return True

    def kill_at_random(self, config, delay, what):
        proc = self.start(config)
        time.sleep(delay)
        self.assertIsNone(proc.poll(), "%s: the engine exited on its own (%s)\n%s"
                          % (what, proc.returncode, self.log_tail()))
        self.stop_engine(signal.SIGKILL)

    def verify(self, config, base_seq, base_state, seed):
        """Quiesces, then checks the whole event log against the sandbox (module docstring)."""
        runs = self.quiesce(config)
        final_state = self.sandbox.state()
        changes = self.sandbox.changes(base_seq)
        events = self.events(config)
        recs = build_records(base_state, final_state, changes)
        counts = {}
        for ev in events:
            key = (ev.get("trigger"), ev.get("type"))
            counts[key] = counts.get(key, 0) + 1
        print("test_crash: quiescent after %d --once runs; %d sandbox changes, %d events %s"
              % (runs, len(changes), len(events), sorted(counts.items())), file=sys.stderr, flush=True)
        problems = check_events(events, recs, harness.LOCATION_ID)
        if problems:
            self.fail("%d problems (seed %s):\n  %s" % (len(problems), seed, "\n  ".join(problems[:40])))
        # The run must have exercised something.
        self.assertTrue(any(t == "contacts" for t, _ in counts), "no contact event at all")
        self.assertTrue(any(t in ("tasks", "notes") for t, _ in counts), "no task or note event at all")

    @harness.needs_failpoints
    def test_kill9_loop(self):
        iterations = int(os.environ.get("POLLEN_CRASH_ITERATIONS", "50"))
        seed = self.crash_seed()
        rng = random.Random(seed)

        self.sandbox.seed(CONTACTS, tasks=2, notes=2, seed=7)
        config = self.write_config(TRIGGERS, location=LOCATION)
        self.run_once(config)
        self.assertEqual(self.events(config), [], "the baseline must be silent")
        base_seq = harness.change_log_seq(self.sandbox)
        base_state = self.sandbox.state()

        kills = {"random": 0, "failpoint": 0, "failpoint_missed": 0}
        for i in range(iterations):
            harness.mutate_random(self.sandbox, rng.randint(1, 5), seed="%s:%d" % (seed, i))
            what = "iteration %d" % i
            if rng.random() < 0.35:
                name = rng.choice(FAILPOINTS)
                n = rng.randint(1, 3) if name.startswith("poll.") else rng.randint(1, 40)
                kills["failpoint" if self.kill_at_failpoint(config, name, n, what) else "failpoint_missed"] += 1
            else:
                self.kill_at_random(config, rng.uniform(0, 1.5), what)
                kills["random"] += 1
        print("test_crash: %d iterations: %s" % (iterations, kills), file=sys.stderr, flush=True)
        self.verify(config, base_seq, base_state, seed)

    @harness.needs_failpoints
    def test_kill9_during_baseline(self):
        """An interrupted first poll stays silent and leaves a complete snapshot.

        The baseline (contacts in pages of 10, then every contact's tasks and
        notes) is killed at its failpoints and at random instants until it
        completes; it must emit nothing, and the changes made afterwards must
        then pass the same oracle as test_kill9_loop: a record the interrupted
        baseline failed to record would surface as a spurious `created`, a
        record it recorded twice or wrongly as a duplicate or wrong `changes`."""
        iterations = int(os.environ.get("POLLEN_CRASH_BASELINE_ITERATIONS", "15"))
        seed = self.crash_seed("POLLEN_CRASH_BASELINE_SEED")
        rng = random.Random(seed)

        self.sandbox.seed(CONTACTS, tasks=2, notes=2, seed=11)
        config = self.write_config(TRIGGERS.replace("every = 1s\n", "every = 1s\npage_size = 10\n", 1),
                                   location=LOCATION)
        base_seq = harness.change_log_seq(self.sandbox)
        base_state = self.sandbox.state()
        fired = 0
        for i in range(iterations):
            what = "baseline iteration %d" % i
            if i % 4 == 3:
                self.kill_at_random(config, rng.uniform(0, 0.6), what)
                continue
            name = FAILPOINTS[i % 4]
            n = rng.randint(1, 7) if name.startswith("poll.") else rng.randint(1, 60)
            fired += self.kill_at_failpoint(config, name, n, what)
        print("test_crash: %d baseline iterations, %d failpoint kills" % (iterations, fired),
              file=sys.stderr, flush=True)
        self.run_once(config)
        self.assertEqual(self.events(config), [], "an interrupted baseline must still be silent")

        harness.mutate_random(self.sandbox, 40, seed="%s:after" % seed)
        self.verify(config, base_seq, base_state, seed)


class OracleSelfTest(harness.unittest.TestCase):
    """The oracle itself must be able to fail: feed it broken logs."""

    def setUp(self):
        c1 = {"id": "c1", "firstName": "A", "dateUpdated": "1"}
        self.base = {"contacts": [dict(c1, deleted=False)], "tasks": {"c1": [{"id": "t1", "title": "x"}]},
                     "notes": {"c1": []}}
        self.final = {"contacts": [dict(c1, firstName="B", dateUpdated="2", deleted=False)],
                      "tasks": {"c1": [{"id": "t1", "title": "y"}, {"id": "t2", "title": "z"}]},
                      "notes": {"c1": []}}
        self.changes = [
            {"kind": "contact", "id": "c1", "op": "updated"},
            {"kind": "task", "id": "t1", "op": "updated", "contactId": "c1"},
            {"kind": "task", "id": "t2", "op": "created", "contactId": "c1"},
        ]
        cv0 = contact_view(self.base["contacts"][0])
        cv1 = contact_view(self.final["contacts"][0])
        self.good = [
            self.ev(1, "contacts", "updated", cv1, changes={k: {"old": cv0.get(k), "new": cv1.get(k)}
                                                             for k in field_diff(cv0, cv1)}),
            self.ev(2, "tasks", "updated", {"id": "t1", "title": "y"},
                    changes={"title": {"old": "x", "new": "y"}}),
            self.ev(3, "tasks", "created", {"id": "t2", "title": "z"}),
        ]

    @staticmethod
    def ev(seq, trigger, type_, record, changes=None, eid=None):
        e = {"seq": seq, "id": eid or "e%d" % seq, "trigger": trigger, "location": "L", "type": type_,
             "record_id": record["id"], "record": record}
        if changes is not None:
            e["changes"] = changes
        return e

    def check(self, events):
        return check_events(events, build_records(self.base, self.final, self.changes), "L")

    def test_good_log_passes(self):
        self.assertEqual(self.check(self.good), [])

    def test_duplicate_and_missing_are_caught(self):
        self.assertTrue(self.check(self.good + [dict(self.good[2], seq=4)]))          # id twice, created twice
        self.assertTrue(self.check(self.good[:2]))                                    # t2 never created
        self.assertTrue(self.check(self.good[1:]))                                    # c1 final not reported
        self.assertTrue(self.check([self.good[1], self.good[0], self.good[2]]))       # seq not increasing
        t1_del = self.ev(4, "tasks", "deleted", {"id": "t1", "title": "y"})
        self.assertTrue(self.check(self.good + [t1_del]))                             # t1 still exists
        bad_changes = dict(self.good[1], changes={"title": {"old": "q", "new": "y"}})
        self.assertTrue(self.check([self.good[0], bad_changes, self.good[2]]))        # wrong old value
        self.changes = self.changes[1:]
        self.assertTrue(self.check(self.good))                                        # event for unchanged c1


if __name__ == "__main__":
    harness.main()
