"""`pollen dlq` and `pollen outbox`: the tables, --json, and `dlq retry --all`.

- test_tables_json_and_retry_all: after one --once run with an exec action
  that fails and waits an hour to retry, two that die at once and one that
  cannot be rendered, `outbox list` shows the retrying entry (attempts, the
  next attempt time, its error shortened to one line) and its count line;
  `dlq list` shows the three dead letters (id, when, rule, action, attempts,
  shortened error) under a header, with the ids and entries `--json` prints
  as stored. `dlq retry --all` re-queues the two that have a request, names
  the one that has none (it stays), and `outbox list` then shows them
  pending, due now.
- test_in_flight_and_pending: while a running engine's four delivery slots
  are held by exec actions, `outbox list` shows those four in flight and the
  others pending, beside the running engine; once released the outbox
  empties and says so.
"""
import datetime
import json
import os
import re
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TRIGGER = "[trigger c]\nuse = contacts.search\nevery = 1s\n"


def parse_table(text):
    """(header, rows, the closing line) of a CLI table: cells are separated by 2+ spaces."""
    lines = text.rstrip("\n").split("\n")
    split = [re.split(r"\s{2,}", ln) for ln in lines[:-1]]
    return split[0], split[1:], lines[-1]


def iso_s(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


class QueuesTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        self.sandbox.seed(3, seed=5)
        self.hold = os.path.join(self.dir, "hold")
        self.script = os.path.join(self.dir, "act.py")
        with open(self.script, "w") as f:
            f.write(f"""#!/usr/bin/env python3
import os, sys, time
if sys.argv[1] == "hold":
    while os.path.exists({self.hold!r}):
        time.sleep(0.05)
    sys.exit(0)
print("a long line of output that no table cell can hold: " + "x" * 120)
sys.exit(int(sys.argv[1]))
""")
        os.chmod(self.script, 0o755)

    def rule(self, name, first, args, extra=""):
        return (f"[rule {name}]\non = c:created\nwhen = record.firstName == \"{first}\"\n"
                f"do = exec\ncommand = {self.script}\nargs = {args}\n{extra}\n")

    def configure(self):
        rules = (self.rule("flaky", "Retry", "3", "backoff = 1h\nbackoff_max = 2h\n")
                 + self.rule("doomed", "Dead", "4", "max_attempts = 1\n")
                 + self.rule("held", "Held", "hold")
                 + "[rule broken]\non = c:created\nwhen = record.firstName == \"Broken\"\n"
                   "do = contacts.tasks.create\ncontactId = {{record.nosuchfield}}\n"
                   "title = x\ndueDate = {{now + 1d}}\ncompleted = false\n")
        cfg = self.write_config(TRIGGER + rules, location=FAST)
        self.run_once(cfg)
        return cfg

    def create(self, *names):
        self.sandbox.mutate([{"op": "create", "kind": "contact", "fields": {"firstName": n}}
                             for n in names])

    def json_lines(self, *args):
        out = self.pollen(*args).stdout
        return [json.loads(ln) for ln in out.splitlines() if ln.strip()]

    def table(self, *args):
        proc = self.pollen(*args)
        self.assertEqual(proc.stderr, "")
        return parse_table(proc.stdout)

    def test_tables_json_and_retry_all(self):
        cfg = self.configure()
        self.create("Retry", "Dead", "Dead", "Broken")
        before = time.time()
        self.run_once(cfg)

        # The outbox: the one entry waiting an hour for its second attempt.
        (queued,) = self.json_lines("outbox", "list", "--json", "-c", cfg)
        self.assertEqual((queued["rule"], queued["attempts"], queued["state"]), ("flaky", 1, "pending"))
        header, rows, last = self.table("outbox", "list", "-c", cfg)
        self.assertEqual(header, ["ID", "STATE", "RULE", "ACTION", "ATTEMPTS", "NEXT", "LAST ERROR"])
        (row,) = rows
        self.assertEqual(row[:5], [str(queued["id"]), "retrying", "flaky", "exec", "1"])
        self.assertGreater(iso_s(row[5]), before + 600, "the next attempt is the backoff away")
        self.assertLess(iso_s(row[5]), time.time() + 2 * 3600 + 60)
        self.assertTrue(row[6].startswith("exit"), row)
        self.assertTrue(row[6].endswith("..."), row)
        self.assertLessEqual(len(row[6]), 80)
        self.assertNotIn("\n", row[6])
        self.assertEqual(last, "0 pending, 1 retrying, 0 in flight")

        # The dead letters: as stored with --json, a table without.
        dead = self.json_lines("dlq", "list", "--json", "-c", cfg)
        self.assertEqual(sorted(d["rule"] for d in dead), ["broken", "doomed", "doomed"])
        header, rows, last = self.table("dlq", "list", "-c", cfg)
        self.assertEqual(header, ["ID", "DIED", "RULE", "ACTION", "ATTEMPTS", "ERROR"])
        self.assertEqual([r[0] for r in rows], [str(d["id"]) for d in dead], "in id order")
        for r, d in zip(rows, dead):
            self.assertEqual(r[2:5], [d["rule"], d["action"], str(d["attempts"])])
            self.assertLess(abs(iso_s(r[1]) - time.time()), 120, r)
            self.assertLessEqual(len(r[5]), 80)
            if d["rule"] == "doomed":
                self.assertGreater(len(d["dead_reason"]), 80, "--json keeps the whole error")
                self.assertTrue(r[5].startswith("gave up after 1 attempts: exit"), r)
                self.assertTrue(r[5].endswith("..."), r)
            else:
                self.assertTrue(r[5].startswith("cannot render the action: contactId"), r)
        self.assertTrue(last.startswith("3 dead letter(s);"), last)

        # retry --all: the two with a request go back; the one without stays, named.
        broken = next(d["id"] for d in dead if d["rule"] == "broken")
        proc = self.pollen("dlq", "retry", "--all", "-c", cfg)
        self.assertEqual(proc.stdout, "2 dead letter(s) queued again\n")
        self.assertIn(f"1 dead letter(s) cannot be retried (no request to send", proc.stderr)
        self.assertTrue(proc.stderr.rstrip().endswith(f": {broken}"), proc.stderr)
        self.assertEqual([d["id"] for d in self.json_lines("dlq", "list", "--json", "-c", cfg)],
                         [broken])
        header, rows, last = self.table("outbox", "list", "-c", cfg)
        self.assertEqual(last, "2 pending, 1 retrying, 0 in flight")
        pending = [r for r in rows if r[1] == "pending"]
        self.assertEqual(sorted(r[0] for r in pending),
                         sorted(str(d["id"]) for d in dead if d["rule"] == "doomed"))
        for r in pending:
            self.assertEqual(r[2:6], ["doomed", "exec", "0", "now"])
        # Nothing left to retry: 0, and still exit 0.
        self.pollen("dlq", "drop", str(broken), "-c", cfg)
        proc = self.pollen("dlq", "retry", "--all", "-c", cfg)
        self.assertEqual((proc.stdout, proc.stderr), ("0 dead letter(s) queued again\n", ""))
        self.assertEqual(self.pollen("dlq", "list", "-c", cfg).stdout, "no dead letters\n")
        self.assertEqual(self.pollen("dlq", "list", "--json", "-c", cfg).stdout, "")

    def test_in_flight_and_pending(self):
        cfg = self.configure()
        self.assertEqual(self.pollen("outbox", "list", "-c", cfg).stdout, "the outbox is empty\n")
        self.assertEqual(self.pollen("outbox", "list", "--json", "-c", cfg).stdout, "")
        open(self.hold, "w").close()
        self.create(*["Held"] * 6)
        self.start_engine(cfg)
        try:
            def four_in_flight():
                entries = self.json_lines("outbox", "list", "--json", "-c", cfg)
                return len(entries) == 6 and sum(e["state"] == "inflight" for e in entries) == 4
            self.wait_for(four_in_flight, timeout=30, what="four actions in flight")
            header, rows, last = self.table("outbox", "list", "-c", cfg)
            self.assertEqual(last, "2 pending, 0 retrying, 4 in flight")
            self.assertEqual(sorted(r[1] for r in rows), ["in flight"] * 4 + ["pending"] * 2)
            for r in rows:
                self.assertEqual(r[2:5], ["held", "exec", "1" if r[1] == "in flight" else "0"])
                self.assertEqual(r[5], "-" if r[1] == "in flight" else "now")
            os.unlink(self.hold)
            self.wait_for(lambda: self.pollen("outbox", "list", "-c", cfg).stdout
                          == "the outbox is empty\n", timeout=30, what="the outbox to empty")
        finally:
            if os.path.exists(self.hold):
                os.unlink(self.hold)
            self.assertEqual(self.stop_engine(), 0)
        self.assertEqual(sum(e["type"] == "action.succeeded" for e in self.events(cfg)), 6)


if __name__ == "__main__":
    harness.main()
