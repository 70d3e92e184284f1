"""Progress of long work: a baseline, a reconcile and a for_each trigger's
first full round (through the batch listing, and one parent record at a
time) log where they stand, at most once per interval. The interval is
10 s; POLLEN_PROGRESS_INTERVAL=MS shortens it so the tests need no
10-second runs."""
import re
import time

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
LINE = re.compile(r"^(\S+) info \[trigger:(\S+)\] (.*)$")


def iso_ms(stamp):
    """Milliseconds of the day from the log line's UTC stamp (enough to compare close lines)."""
    h, m, s = stamp[11:23].split(":")
    return (int(h) * 3600 + int(m) * 60) * 1000 + round(float(s) * 1000)


class ProgressTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def progress(self, stderr, what):
        out = []
        for line in stderr.splitlines():
            m = LINE.match(line)
            if m and m.group(3).startswith(what + " in progress:"):
                out.append((iso_ms(m.group(1)), m.group(2), m.group(3)))
        return out

    def run_with(self, cfg, interval):
        env = dict(self.env, POLLEN_PROGRESS_INTERVAL=str(interval))
        return self.pollen("run", "-c", cfg, "--once", env=env).stderr

    def test_baseline_and_reconcile_log_progress_at_most_once_per_interval(self):
        self.sandbox.seed(2000)
        cfg = self.write_config(
            "[trigger c]\nuse = contacts.search\nevery = 1s\npage_size = 10\nreconcile = 1s\n",
            location=FAST)
        interval = 150
        stderr = self.run_with(cfg, interval)
        self.assertIn("baseline recorded: 2000 records", stderr)
        lines = self.progress(stderr, "baseline")
        self.assertGreaterEqual(len(lines), 1, stderr[-3000:])
        self.assertLess(len(lines), 200, "one line per page at most, and fewer")
        counts = []
        for when, trigger, text in lines:
            self.assertEqual(trigger, "c")
            m = re.match(r"baseline in progress: (\d+) records, (\d+) pages, (\d+) requests in "
                         r"\d+s \(\d+\.\d records/s(; about \S+ left of ~2000)?\)$", text)
            self.assertTrue(m, text)
            records, pages = int(m.group(1)), int(m.group(2))
            # The time left, from the API's count, while records remain.
            self.assertEqual(m.group(4) is not None, records < 2000, text)
            self.assertEqual(records, pages * 10, text)
            self.assertGreaterEqual(int(m.group(3)), pages)
            counts.append(records)
        self.assertEqual(counts, sorted(set(counts)), "records only grow")
        for (a, _, _), (b, _, _) in zip(lines, lines[1:]):
            # The engine spaces lines on its monotonic clock; the stamps are wall
            # ms, so allow a millisecond of rounding.
            self.assertGreaterEqual(b - a, interval - 1, (a, b))

        # reconcile = 1s: the next cycle is a reconcile, which reports too.
        time.sleep(1.2)
        stderr = self.run_with(cfg, 0)
        self.assertIn("(reconcile, watermark ", stderr)
        lines = self.progress(stderr, "reconcile")
        self.assertGreaterEqual(len(lines), 100, stderr[-2000:])  # every page but the last
        self.assertEqual(self.progress(stderr, "baseline"), [])
        # An ordinary cycle after a baseline is not long work.
        cfg2 = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\npage_size = 10\n",
                                 location=FAST, name="incr.ini")
        stderr = self.run_with(cfg2, 0)
        self.assertEqual([ln for ln in stderr.splitlines() if " in progress:" in ln], [])

    def test_default_interval_is_ten_seconds(self):
        self.sandbox.seed(300)
        cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\npage_size = 10\n",
                                location=FAST)
        t0 = time.monotonic()
        stderr = self.pollen("run", "-c", cfg, "--once").stderr
        took = time.monotonic() - t0
        lines = self.progress(stderr, "baseline")
        self.assertLessEqual(len(lines), int(took // 10), stderr[-2000:])

    def test_first_for_each_rounds(self):
        self.sandbox.seed(12, tasks=3)
        triggers = ("[trigger contacts]\nuse = contacts.search\nevery = 1s\n"
                    "[trigger tasks]\nuse = contacts.tasks\nfor_each = contacts\nevery = 1s\n")
        cfg = self.write_config(triggers, location=FAST)
        stderr = self.run_with(cfg, 0)
        wide = self.progress(stderr, "first full round")
        self.assertTrue(wide, stderr[-3000:])
        for _, trigger, text in wide:
            self.assertEqual(trigger, "tasks")
            self.assertRegex(text, r"^first full round in progress: \d+ tasks in \d+ pages, "
                                   r"\d+ requests in \d+s \(\d+\.\d tasks/s\)$")
        stderr = self.run_with(cfg, 0)
        self.assertEqual(self.progress(stderr, "first full round"), [], "only the first round")

        each = self.write_config(triggers + "full_round = each\n", location=FAST,
                                 name="each.ini")
        # A state directory of its own: its first round.
        each_text = open(each).read().replace("state_dir = state", "state_dir = state-each")
        with open(each, "w") as f:
            f.write(each_text)
        stderr = self.run_with(each, 0)
        reads = self.progress(stderr, "first sweep round")
        self.assertEqual(len(reads), 12, stderr[-3000:])
        last = reads[-1][2]
        self.assertRegex(last, r"^first sweep round in progress: 12 records of contacts read "
                               r"\(\d+ tasks\), \d+ requests in \d+s \(\d+\.\d reads/s\b")


if __name__ == "__main__":
    harness.main()
