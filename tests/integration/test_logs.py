"""Log formats: `[engine] log_format = json` writes one JSON object per line
(time, level, module, trigger, location, message, traceId) for every line
`run` writes on stderr, a configuration warning and an API error included;
POLLEN_LOG_FORMAT=json covers the errors that keep a configuration from
loading; text stays the default."""
import json
import re

import harness

FAST = "rate_limit = 100\nrate_window = 1s\n"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# A rule that fires only on created events but reads `changes`: check warns
# while loading (the warning comes before the file's log_format is known).
WARNED_RULE = ("[rule hook]\non = c:created\ndo = http\n"
               "url = http://127.0.0.1:9/{{changes.firstName.old}}\n")


class LogsTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def json_lines(self, stderr):
        """Every stderr line parsed as JSON (the test fails on the first that is not)."""
        lines = []
        for line in stderr.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"not a JSON line: {line!r}\nwhole stderr:\n{stderr[-3000:]}")
            self.assertIsInstance(obj, dict, line)
            self.assertRegex(obj.get("time", ""), TIME, line)
            self.assertIn(obj.get("level"), ("error", "warn", "info", "debug"), line)
            self.assertIsInstance(obj.get("message"), str, line)
            lines.append(obj)
        self.assertTrue(lines, "nothing was logged")
        return lines

    def test_json_lines_with_an_api_error_and_a_config_warning(self):
        self.sandbox.seed(20)
        cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\n" + WARNED_RULE,
                                engine="log_format = json", location=FAST)
        # The baseline: the configuration warning, the trigger's info lines.
        proc = self.pollen("run", "-c", cfg, "--once")
        lines = self.json_lines(proc.stderr)
        (warned,) = [o for o in lines if "reads changes" in o["message"]]
        self.assertEqual((warned["level"], warned["module"]), ("warn", "config"))
        self.assertTrue(warned["message"].startswith(cfg + ":"), warned)
        mine = [o for o in lines if o.get("trigger") == "c"]
        self.assertTrue(mine, "no line names the trigger")
        for o in mine:
            self.assertEqual((o["module"], o["location"]), ("trigger", "main"), o)
            self.assertNotIn("traceId", o, "no API error yet")
        self.assertTrue(any("baseline recorded: 20 records" in o["message"] for o in mine))

        # An API error the sandbox answers with a traceId in its body.
        self.sandbox.faults([{"kind": "status", "status": 422,
                              "path": "^/contacts/search$", "count": 50}])
        proc = self.pollen("run", "-c", cfg, "--once", check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
        lines = self.json_lines(proc.stderr)
        traced = [o for o in lines if "traceId" in o]
        self.assertTrue(traced, "no line carries the failed request's traceId:\n" + proc.stderr)
        for o in traced:
            self.assertEqual((o["trigger"], o["location"]), ("c", "main"), o)
            self.assertIn(o["level"], ("warn", "error"), o)
            self.assertIn("HTTP 422", o["message"])
            # The same id the message shows, taken from the body (not the message).
            self.assertIn("traceId " + o["traceId"], o["message"])

    def test_config_errors_in_json_with_the_environment(self):
        cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\nbogus = 1\n",
                                engine="log_format = json")
        env = dict(self.env, POLLEN_LOG_FORMAT="json")
        proc = self.pollen("run", "-c", cfg, check=False, env=env)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        lines = self.json_lines(proc.stderr)
        self.assertTrue(all(o["level"] == "error" and o["module"] == "config" for o in lines),
                        lines)
        self.assertTrue(any(re.match(re.escape(cfg) + r":\d+: unknown key 'bogus'", o["message"])
                            for o in lines), lines)
        self.assertIn("has errors; not starting", lines[-1]["message"])

        # Without it, the file's log_format is not known yet: the problems stay text.
        proc = self.pollen("run", "-c", cfg, check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertRegex(proc.stderr, re.escape(cfg) + r":\d+: unknown key 'bogus'")
        self.assertIn("pollen: " + cfg + " has errors; not starting", proc.stderr)

    def test_environment_overrides_the_file_and_text_is_the_default(self):
        self.sandbox.seed(3)
        cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\n", location=FAST)
        proc = self.pollen("run", "-c", cfg, "--once")
        self.assertRegex(proc.stderr.splitlines()[0],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|debug|warn) ")
        self.assertRegex(proc.stderr, r"(?m) info \[trigger:c\] .*baseline recorded: 3 records")
        proc = self.pollen("run", "-c", cfg, "--once",
                           env=dict(self.env, POLLEN_LOG_FORMAT="json"))
        self.json_lines(proc.stderr)
        json_cfg = self.write_config("[trigger c]\nuse = contacts.search\nevery = 1s\n",
                                     engine="log_format = json", location=FAST, name="j.ini")
        proc = self.pollen("run", "-c", json_cfg, "--once",
                           env=dict(self.env, POLLEN_LOG_FORMAT="text"))
        self.assertFalse(proc.stderr.lstrip().startswith("{"), proc.stderr[:300])
        proc = self.pollen("run", "-c", cfg, "--once", check=False,
                           env=dict(self.env, POLLEN_LOG_FORMAT="yaml"))
        self.assertEqual(proc.returncode, 2)
        self.assertIn("POLLEN_LOG_FORMAT", proc.stderr)


if __name__ == "__main__":
    harness.main()
