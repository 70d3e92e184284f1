"""`pollen check` and `pollen run` on broken configurations.

A table of broken configurations, each written to a temporary file; for each:
- `pollen check -c FILE` exits 2 and prints `FILE:LINE: message` with the
  line that holds the problem and a message that says what is wrong (and,
  where it can, what to do); every line it prints has the FILE:LINE: form;
- `pollen run -c FILE` refuses to start (exit 2) and creates no state
  directory;
- the token (a canary in the environment variable, or in a token file, or
  written literally into the file) never appears in any output.
A good configuration exits 0 (and check writes nothing either); several
problems in one file are all reported at once, in line order.
No sandbox is needed: nothing is contacted.

The Quick start fails loudly (ScriptsTest):
- test_demo_refuses_a_busy_port: scripts/demo with POLLEN_DEMO_PORT on a
  port another program listens on exits 1 at once, saying so and naming
  POLLEN_DEMO_PORT, and never connects to that program.
- test_build_prints_the_meson_error: scripts/build with a bad meson option
  exits non-zero and prints meson's error.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import harness

CANARY = "pit-canary-7f3a9c1e5b2d4680aa11"          # POLLEN_CHECK_TOKEN's value
LITERAL = "pit-literal-3c9e1b7a0d5f42e8bb22"         # a token pasted into the file
FILE_CANARY = "pit-file-canary-51d0c7e2a9b34f6e8c33"  # the content of token files

BASE = """\
; a good configuration: each case below breaks exactly one thing
[engine]
state_dir = state
min_interval = 1s

[api]
base_url = http://127.0.0.1:9

[location main]
id = testLocation00000001
token = env:POLLEN_CHECK_TOKEN

[trigger contacts]
use = contacts.search
every = 1m

[trigger tasks]
use = contacts.tasks
for_each = contacts
every = 5m
"""


def sub(old, new, count=1):
    """A case's text: BASE with `old` replaced by `new` (old must be in BASE)."""
    assert old in BASE, old
    return BASE.replace(old, new, count)


# name: (text, needle, occurrence, message regex). The expected line is the
# line holding the `occurrence`-th line that contains `needle`; "{first}" in
# the regex stands for the line of its first occurrence.
CASES = {
    "unknown_section": (
        BASE + "\n[engin]\nx = 1\n", "[engin]", 1,
        r"unknown section kind \[engin\] \(expected \[engine\], \[api\], \[api NAME\], \[location NAME\], "),
    "section_without_name": (
        BASE + "\n[trigger]\nuse = contacts.search\n", "[trigger]", 1, r"\[trigger\] needs a name: \[trigger NAME\]"),
    "unknown_key": (
        sub("min_interval = 1s", "min_interval = 1s\nstate_dri = x"), "state_dri", 1,
        r"unknown key 'state_dri' in \[engine\]; did you mean 'state_dir'\?"),
    "key_outside_section": (
        "foo = bar\n" + BASE, "foo = bar", 1, r"key 'foo' is outside any \[section\]"),
    "line_without_equals": (
        sub("every = 1m", "every 1m"), "every 1m", 1, r"expected 'key = value', a \[section\] or a comment"),
    "bad_duration": (
        sub("every = 1m", "every = 5 minutes"), "5 minutes", 1,
        r"bad duration '5 minutes' for 'every' \(use a whole number with ms, s, m, h or d"),
    "every_above_15m": (
        sub("every = 1m", "every = 16m"), "every = 16m", 1,
        r"every = 16m is out of range \(allowed 1s\.\.15m"),
    "every_below_min_interval": (
        sub("every = 1m", "every = 5s").replace("min_interval = 1s", "min_interval = 10s"),
        "every = 5s", 1, r"every = 5s is out of range \(allowed 10s\.\.15m; the lower bound is \[engine\] min_interval\)"),
    "max_db_size_below_the_initial_map": (
        sub("min_interval = 1s", "min_interval = 1s\nmax_db_size = 64MiB"), "max_db_size", 1,
        r"max_db_size = 64MiB is out of range \(allowed 1GiB\.\.16TiB"),
    "proxy_not_a_url": (
        sub("base_url = http://127.0.0.1:9", "base_url = http://127.0.0.1:9\nproxy = 127.0.0.1:3128"),
        "proxy =", 1, r"proxy must be a URL such as http://HOST:PORT"),
    "every_zero": (
        sub("every = 5m", "every = 0s"), "every = 0s", 1, r"every = 0s is out of range"),
    "empty_value": (
        sub("every = 1m", "every ="), "every =", 1, r"empty value for 'every'"),
    "missing_use": (
        BASE + "\n[trigger x]\nevery = 1m\n", "[trigger x]", 1, r"missing required key 'use' in \[trigger x\]"),
    "unknown_catalog_trigger": (
        sub("use = contacts.search", "use = contacts.serch"), "contacts.serch", 1,
        r"unknown catalog trigger 'contacts\.serch'; did you mean 'contacts\.search'\?"),
    "unknown_location": (
        sub("every = 1m", "every = 1m\nlocation = nowhere"), "location = nowhere", 1,
        r"unknown location 'nowhere' \(no \[location nowhere\] section\)"),
    "literal_token": (
        sub("env:POLLEN_CHECK_TOKEN", LITERAL), "token =", 1,
        r"token must be env:VAR or file:PATH, never the token itself"),
    "missing_env_var": (
        sub("env:POLLEN_CHECK_TOKEN", "env:POLLEN_NO_SUCH_VAR_X"), "token =", 1,
        r"environment variable POLLEN_NO_SUCH_VAR_X is not set"),
    "empty_env_var": (
        sub("env:POLLEN_CHECK_TOKEN", "env:POLLEN_EMPTY_TOKEN"), "token =", 1,
        r"environment variable POLLEN_EMPTY_TOKEN is empty"),
    "env_var_with_line_break": (
        sub("env:POLLEN_CHECK_TOKEN", "env:POLLEN_BROKEN_TOKEN"), "token =", 1,
        r"POLLEN_BROKEN_TOKEN contains a control character or a line break"),
    "token_file_mode_0644": (
        sub("env:POLLEN_CHECK_TOKEN", "file:token644"), "token =", 1,
        r"permissions 0644 for '.*token644' are too open; run: chmod 600 "),
    "token_file_missing": (
        sub("env:POLLEN_CHECK_TOKEN", "file:no-such-token"), "token =", 1,
        r"token file '.*no-such-token': No such file or directory"),
    "token_file_two_lines": (
        sub("env:POLLEN_CHECK_TOKEN", "file:token2lines"), "token =", 1,
        r"token from file '.*token2lines' contains a control character or a line break"),
    "overlong_line": (
        sub("every = 1m", "every = 1m\nquery = " + "x" * 200), "query = ", 1,
        r"line is 208 bytes long; the limit is 198 \(continue a long value on indented lines\)"),
    "overlong_comment": (
        sub("every = 1m", "every = 1m\n; " + "c" * 197), "; ccc", 1, r"line is 199 bytes long; the limit is 198"),
    "overlong_last_line_without_newline": (
        BASE + "; " + "d" * 300, "; ddd", 1, r"line is 302 bytes long; the limit is 198"),
    "duplicate_key": (
        sub("every = 1m", "every = 1m\nevery = 2m"), "every = ", 2,
        r"duplicate key 'every' \(first set on line {first}\)"),
    "duplicate_section": (
        BASE + "\n[trigger contacts]\nuse = contacts.list\n", "[trigger contacts]", 2,
        r"duplicate section \[trigger contacts\] \(first on line {first}\)"),
    "for_each_of_non_contact_trigger": (
        BASE + "\n[trigger notes]\nuse = contacts.notes\nfor_each = tasks\n", "for_each = tasks", 1,
        r"for_each: \[trigger tasks\] \(contacts\.tasks\) yields 'task' records; contacts\.notes needs 'contact' records"),
    "for_each_of_unknown_trigger": (
        sub("for_each = contacts", "for_each = nosuch"), "for_each = nosuch", 1, r"for_each: no \[trigger nosuch\]"),
    "for_each_on_definition_without_fan_out": (
        sub("every = 1m", "every = 1m\nfor_each = tasks"), "for_each = tasks", 1,
        r"for_each: contacts\.search takes no for_each \(it has no fan-out parameter\)"),
    "missing_required_parameter": (
        BASE + "\n[trigger one]\nuse = contacts.get\nevery = 1m\n", "[trigger one]", 1,
        r"\[trigger one\] is missing parameter 'contactId' \(required by contacts\.get\)"),
    "require_one_parameter": (
        BASE + "\n[trigger dup]\nuse = contacts.duplicate\nevery = 1m\n", "[trigger dup]", 1,
        r"\[trigger dup\] needs at least one of: email number"),
    "unknown_parameter": (
        sub("every = 1m", "every = 1m\ncolour = blue"), "colour", 1,
        r"unknown key 'colour' in \[trigger contacts\]"),
    "fan_out_parameter_set_by_hand": (
        sub("for_each = contacts", "for_each = contacts\ncontactId = abc"), "contactId", 1,
        r"'contactId' is fed by for_each = contacts; remove this line"),
    "invalid_json_parameter": (
        sub("every = 1m", 'every = 1m\nfilters = [{"field": }]'), "filters =", 1,
        r"'filters' is not valid JSON"),
    "page_size_above_definition_maximum": (
        sub("every = 1m", "every = 1m\npage_size = 501"), "page_size", 1,
        r"page_size = 501 is out of range \(contacts\.search allows 1\.\.500\)"),
    "page_size_above_list_maximum": (
        sub("use = contacts.search", "use = contacts.list").replace("every = 1m", "every = 1m\npage_size = 101"),
        "page_size", 1, r"page_size = 101 is out of range \(contacts\.list allows 1\.\.100\)"),
    "emit_unknown_type": (
        sub("every = 1m", "every = 1m\nemit = created modified"), "emit =", 1,
        r"emit: unknown event type 'modified' \(allowed: created updated deleted touched\)"),
    "first_poll_unknown": (
        sub("every = 1m", "every = 1m\nfirst_poll = sometimes"), "first_poll", 1,
        r"bad value 'sometimes' for 'first_poll' \(allowed: baseline emit\)"),
    "sweep_share_out_of_range": (
        sub("token = env:POLLEN_CHECK_TOKEN", "token = env:POLLEN_CHECK_TOKEN\nsweep_share = 1.5"), "sweep_share", 1,
        r"bad value '1\.5' for 'sweep_share' \(expected a number from 0\.05 to 1\)"),
    "sweep_daily_share_out_of_range": (
        sub("token = env:POLLEN_CHECK_TOKEN", "token = env:POLLEN_CHECK_TOKEN\nsweep_daily_share = 0"),
        "sweep_daily_share", 1,
        r"bad value '0' for 'sweep_daily_share' \(expected a number from 0\.01 to 1\)"),
    "reconcile_below_one_second": (
        sub("every = 5m", "every = 5m\nreconcile = 500ms"), "reconcile", 1,
        r"reconcile = 500ms is out of range \(allowed 1s\.\.30d, or 0s on an incremental definition\)"),
    "rate_limit_above_100": (
        sub("token = env:POLLEN_CHECK_TOKEN", "token = env:POLLEN_CHECK_TOKEN\nrate_limit = 101"), "rate_limit", 1,
        r"bad value '101' for 'rate_limit' \(expected a whole number from 1 to 100\)"),
    "log_level_unknown": (
        sub("min_interval = 1s", "min_interval = 1s\nlog_level = verbose"), "log_level", 1,
        r"bad value 'verbose' for 'log_level' \(allowed: error warn info debug\)"),
    "plain_http_to_remote_host": (
        sub("http://127.0.0.1:9", "http://example.com"), "base_url", 1,
        r"base_url must use https://"),
    "bad_size": (
        sub("base_url = http://127.0.0.1:9", "base_url = http://127.0.0.1:9\nmax_body = 16 MB"), "max_body", 1,
        r"bad size '16 MB' for 'max_body'"),
    "connect_timeout_longer_than_timeout": (
        sub("base_url = http://127.0.0.1:9", "base_url = http://127.0.0.1:9\ntimeout = 2s\nconnect_timeout = 5s"),
        "connect_timeout", 1, r"connect_timeout = 5s is longer than timeout = 2s"),
    "timeout_below_default_connect_timeout": (
        # Only `timeout` is set: the problem is on its line (connect_timeout defaults to 10s).
        sub("base_url = http://127.0.0.1:9", "base_url = http://127.0.0.1:9\ntimeout = 2s"),
        "timeout = 2s", 1, r"timeout = 2s"),
    "bad_location_id": (
        sub("id = testLocation00000001", "id = test-Location!"), "id = test", 1,
        r"id must be the HighLevel locationId: 1-64 letters and digits"),
    "indented_key_value": (
        sub("every = 1m", "every = 1m\n    page_size = 5"), "page_size", 1,
        r"indented line looks like a key but would continue the value of 'every'"),
    "missing_state_dir": (
        sub("state_dir = state\n", ""), "[engine]", 1, r"missing required key 'state_dir' in \[engine\]"),
}


def line_of(text, needle, occurrence):
    n = 0
    for i, line in enumerate(text.split("\n"), 1):
        if needle in line:
            n += 1
            if n == occurrence:
                return i
    raise AssertionError(f"{needle!r} occurs fewer than {occurrence} times")


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pollen-check-")
        self.env = dict(os.environ, POLLEN_CHECK_TOKEN=CANARY, POLLEN_EMPTY_TOKEN="",
                        POLLEN_BROKEN_TOKEN=CANARY + "\nsecond")
        self.env.pop("POLLEN_NO_SUCH_VAR_X", None)
        for name, content, mode in (("token644", FILE_CANARY + "\n", 0o644),
                                    ("token600", FILE_CANARY + "\n", 0o600),
                                    ("token2lines", FILE_CANARY + "\nsecond line\n", 0o600)):
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write(content)
            os.chmod(path, mode)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def pollen(self, *args):
        return subprocess.run([harness.POLLEN_BIN, *args], capture_output=True, text=True,
                              timeout=60, env=self.env)

    def write(self, name, text):
        path = os.path.join(self.dir, name + ".ini")
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_no_secret(self, proc, what):
        out = proc.stdout + proc.stderr
        for secret in (CANARY, LITERAL, FILE_CANARY):
            self.assertNotIn(secret, out, f"{what}: a token appeared in the output")

    def test_broken_configurations(self):
        self.assertGreaterEqual(len(CASES), 20)
        state = os.path.join(self.dir, "state")
        for name, (text, needle, occurrence, rx) in CASES.items():
            with self.subTest(name):
                path = self.write(name, text)
                line = line_of(text, needle, occurrence)
                rx = rx.replace("{first}", str(line_of(text, needle, 1)))

                proc = self.pollen("check", "-c", path)
                self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
                self.assertEqual(proc.stdout, "", "problems go to stderr only")
                self.assert_no_secret(proc, "check")
                lines = proc.stderr.splitlines()
                self.assertTrue(lines, "check printed nothing")
                for ln in lines:
                    self.assertRegex(ln, "^" + re.escape(path) + r":\d+: \S",
                                     "every problem is reported as FILE:LINE: message")
                prefix = f"{path}:{line}: "
                at_line = [ln[len(prefix):] for ln in lines if ln.startswith(prefix)]
                self.assertTrue(at_line, f"expected a problem at line {line}, got:\n{proc.stderr}")
                self.assertTrue(any(re.search(rx, m) for m in at_line),
                                f"line {line}: /{rx}/ not in {at_line}")

                proc = self.pollen("run", "-c", path, "--once")
                self.assertEqual(proc.returncode, 2, "run must refuse a broken configuration:\n"
                                 + proc.stderr)
                self.assertIn(prefix, proc.stderr)
                self.assertIn("not starting", proc.stderr)
                self.assert_no_secret(proc, "run")
                self.assertFalse(os.path.exists(state), "run created the state directory")

                proc = self.pollen("tail", "-c", path)
                self.assert_no_secret(proc, "tail")
                self.assertFalse(os.path.exists(state), "tail created the state directory")

    def test_good_configuration(self):
        text = BASE + "; " + "c" * 196 + "\n"   # a line of exactly 198 bytes is allowed
        for token in ("env:POLLEN_CHECK_TOKEN", "file:token600"):
            with self.subTest(token):
                path = self.write("good", text.replace("env:POLLEN_CHECK_TOKEN", token))
                proc = self.pollen("check", "-c", path)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertRegex(proc.stdout, r"ok: 1 location\(s\), 2 trigger\(s\)")
                self.assert_no_secret(proc, "check")
                self.assertFalse(os.path.exists(os.path.join(self.dir, "state")),
                                 "check must write nothing")

    def test_dlq_and_tail_before_the_engine_ran(self):
        """Before any run there is no store: tail, dlq and outbox say the state directory
        holds no state and exit 2 (a wrong state_dir must not look like an empty log or
        queue); none creates anything; bad dlq and outbox arguments are usage errors."""
        path = self.write("good", BASE)
        state = os.path.join(self.dir, "state")
        for args in (("tail",), ("dlq", "list"), ("dlq", "list", "--json"), ("dlq", "retry", "3"),
                     ("dlq", "retry", "--all"), ("dlq", "drop", "3"), ("outbox", "list")):
            proc = self.pollen(*args, "-c", path)
            self.assertEqual((proc.returncode, proc.stdout), (2, ""), (args, proc.stderr))
            self.assertIn(f"pollen {args[0]}: {state} holds no state", proc.stderr)
        self.assertFalse(os.path.exists(state), "a reader created the state directory")
        for args, rx in ((("dlq", "list", "extra"), r"unexpected argument 'extra'"),
                         (("dlq", "retry"), r"dlq retry needs the numeric id"),
                         (("dlq", "drop", "x1"), r"dlq drop needs the numeric id"),
                         (("dlq", "purge"), r"dlq needs list, retry ID\|--all or drop ID"),
                         (("dlq", "list", "--all"), r"--all goes with dlq retry"),
                         (("dlq", "drop", "--all"), r"--all goes with dlq retry"),
                         (("dlq", "retry", "--json", "1"), r"--json goes with dlq list"),
                         (("dlq", "retry", "--all", "1"), r"unexpected argument '1'"),
                         (("outbox",), r"outbox needs list"),
                         (("outbox", "list", "x"), r"unexpected argument 'x'"),
                         (("outbox", "show"), r"outbox needs list")):
            proc = self.pollen(*args, "-c", path)
            self.assertEqual(proc.returncode, 2, args)
            self.assertRegex(proc.stderr, rx)

    def test_every_problem_at_once(self):
        text = (sub("min_interval = 1s", "min_interval = 1s\nstate_dri = x")
                .replace("every = 1m", "every = 99h")
                .replace("for_each = contacts", "for_each = contacts\nemit = made"))
        path = self.write("many", text)
        proc = self.pollen("check", "-c", path)
        self.assertEqual(proc.returncode, 2)
        got = [int(m.group(1)) for m in re.finditer("^" + re.escape(path) + r":(\d+): ",
                                                    proc.stderr, re.M)]
        want = [line_of(text, "state_dri", 1), line_of(text, "every = 99h", 1),
                line_of(text, "emit = made", 1)]
        self.assertEqual(got, want, proc.stderr)


class ScriptsTest(unittest.TestCase):
    def script(self, name, *args, env=None):
        """Runs scripts/NAME in its own process group: if it hangs (a demo that did
        not refuse), the whole group is killed, its engine and sandbox included."""
        proc = subprocess.Popen([os.path.join(harness.SOURCE_ROOT, "scripts", name), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **(env or {})), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def test_demo_refuses_a_busy_port(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(4)
            port = busy.getsockname()[1]
            proc = self.script("demo", env={"POLLEN_DEMO_PORT": str(port)})
            self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
            self.assertIn(f"pollen demo: port {port} on 127.0.0.1 is busy", proc.stderr)
            self.assertIn("POLLEN_DEMO_PORT=", proc.stderr)
            busy.setblocking(False)
            with self.assertRaises(BlockingIOError, msg="the demo talked to a server it did "
                                                         "not start"):
                busy.accept()

    def test_build_prints_the_meson_error(self):
        tmp = tempfile.mkdtemp(prefix="pollen-build-")
        self.addCleanup(shutil.rmtree, tmp, True)
        proc = self.script("build", os.path.join(tmp, "b"), "-Dnosuchopt=1",
                           env={"TMPDIR": tmp})
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn('Unknown options: "nosuchopt"', proc.stderr)
        self.assertIn("pollen: build failed: meson setup", proc.stderr)


if __name__ == "__main__":
    harness.main()
