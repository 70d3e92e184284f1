"""Failpoints are compiled only into test builds (meson's `failpoints`
feature: off for buildtype=release and minsize). The harness asks the binary
(`pollen __failpoints`) and the crash tests skip, saying why, on a binary
without them; this build (debugoptimized, like CI's) has them all."""
import os
import re
import stat
import subprocess
import sys

import harness

SRC = os.path.join(harness.SOURCE_ROOT, "src")


def points_in_source():
    """Every FAILPOINT("x") and FAILPOINT_ERROR("x") name under src/."""
    found = set()
    for dirpath, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".c") and n != "failpoint.c":
                with open(os.path.join(dirpath, n), encoding="utf-8") as f:
                    found.update(re.findall(r'\bFAILPOINT(?:_ERROR)?\("([^"]+)"\)', f.read()))
    return found


class FailpointsTest(harness.PollenTest):
    def test_the_binary_lists_every_point_in_the_source(self):
        proc = self.pollen("__failpoints")
        self.assertEqual(set(proc.stdout.split()), points_in_source())
        self.assertTrue(harness.has_failpoints())

    def test_a_misspelt_point_is_reported(self):
        cfg = self.write_config("[trigger contacts]\nuse = contacts.search\nevery = 1s\n")
        proc = self.run_once(cfg, env=dict(self.env, POLLEN_FAILPOINT="poll.before_comit"))
        self.assertIn("POLLEN_FAILPOINT names no failpoint: 'poll.before_comit'", proc.stderr)

    def test_crash_tests_skip_on_a_binary_without_failpoints(self):
        """A stand-in for a release binary: `__failpoints` exits 1. The crash
        test is reported as skipped with the reason, and the run passes."""
        fake = os.path.join(self.dir, "pollen")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\n[ \"$1\" = __failpoints ] && { echo 'no failpoints' >&2; exit 1; }\n"
                    "echo 'not expected to run' >&2; exit 99\n")
        os.chmod(fake, stat.S_IRWXU)
        env = dict(self.env, POLLEN_BIN=fake)
        test = os.path.join(harness.SOURCE_ROOT, "tests", "integration", "test_crash.py")
        proc = subprocess.run([sys.executable, test, "CrashTest.test_kill9_loop"], env=env,
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertIn("skipped", proc.stderr)
        self.assertIn("this pollen binary has no failpoints", proc.stderr)
        self.assertNotIn("not expected to run", proc.stderr)


if __name__ == "__main__":
    harness.main()
