"""The engine's loopback listener ([engine] listen): the status page at /
rendered in headless Chromium (Debian's chromium; every trigger shown, its
numbers those of `pollen status --json` run beside it, hourly charts);
/metrics in the Prometheus text exposition format, its numbers matching what happened
(cycles, records, requests counted by the sandbox, events in the log) and
passing `promtool check metrics`; /healthz answering 200 while the triggers
succeed and 503, naming the trigger, once one has been failing for more than
3 of its intervals, and 200 again after it recovers; `pollen check` refusing
a listen address that is not loopback, with FILE:LINE; a port in use stops
the engine with exit 1 and says why."""
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request

import harness

PORT_RX = re.compile(r"status page, metrics and health on http://127\.0\.0\.1:(\d+)/")
SAMPLE_RX = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LISTEN = "listen = 127.0.0.1:0\n"


def parse_metrics(text):
    """{(name, labels-string): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE_RX.match(line)
        assert m, f"not a sample line: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class MonitorTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def start(self, triggers, location=""):
        cfg = self.write_config(triggers, engine=LISTEN, location=location)
        self.cfg = cfg
        self.start_engine(cfg)
        m = self.wait_for(lambda: PORT_RX.search(self.engine_log_text()),
                          what="the listener's port in the log")
        self.port = int(m.group(1))
        return cfg

    def get(self, path):
        """(status, body) of GET path on the engine's listener."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        status, text = self.get("/metrics")
        self.assertEqual(status, 200, text)
        return text, parse_metrics(text)

    def test_metrics_match_what_happened(self):
        self.sandbox.seed(30, seed=41)
        # every = 1m: after the first cycle nothing moves, so the numbers are still.
        cfg = self.start("[trigger contacts]\nuse = contacts.search\nevery = 1m\n"
                         "first_poll = emit\n")
        lbl = '{trigger="contacts",result="ok"}'
        self.wait_for(lambda: self.metrics()[1].get(("pollen_cycles_total", lbl)) == 1,
                      what="one completed cycle in /metrics")
        text, m = self.metrics()
        searches = [r for r in self.sandbox.requests() if r["path"].endswith("/contacts/search")]
        self.assertEqual(m[("pollen_trigger_requests_total", '{trigger="contacts"}')],
                         len(searches))
        self.assertEqual(m[("pollen_http_requests_total", '{location="main",class="2xx"}')],
                         len(searches))
        self.assertEqual(m[("pollen_records_total", '{trigger="contacts"}')], 30)
        created = [e for e in self.events(cfg) if e["type"] == "created"]
        self.assertEqual(len(created), 30)
        self.assertEqual(m[("pollen_events_total", '{trigger="contacts",type="created"}')], 30)
        self.assertEqual(m[("pollen_cycles_total", '{trigger="contacts",result="failed"}')], 0)
        self.assertEqual(m[("pollen_cycle_duration_seconds_count", '{trigger="contacts"}')], 1)
        self.assertEqual(m[("pollen_cycle_duration_seconds_bucket",
                            '{trigger="contacts",le="+Inf"}')], 1)
        self.assertEqual(m[("pollen_rate_daily_limit", '{location="main"}')], 200000)
        self.assertGreater(m[("pollen_db_size_bytes", "")], 0)
        self.assertEqual(m[("pollen_outbox_pending", "")], 0)
        self.assertIn('pollen_build_info{version="', text)
        self.assertIn("# TYPE pollen_cycle_duration_seconds histogram", text)
        promtool = shutil.which("promtool")
        if promtool is None:
            if os.environ.get("CI"):
                self.fail("promtool is missing (scripts/setup installs Debian's prometheus)")
            self.skipTest("promtool not installed")
        proc = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(self.get("/nope")[0], 404)

    def test_status_page_renders_what_status_says(self):
        self.sandbox.seed(20, seed=43)
        cfg = self.start("[trigger contacts]\nuse = contacts.search\nevery = 1m\n"
                         "first_poll = emit\n"
                         "[trigger people]\nuse = contacts.search\nevery = 1m\n")
        self.wait_for(lambda: all(t["last_cycle"] for t in self.status_json()["triggers"]),
                      what="both triggers' first cycle")
        status = self.status_json()
        chromium = shutil.which("chromium")
        if chromium is None:
            if os.environ.get("CI"):
                self.fail("chromium is missing (scripts/setup installs Debian's chromium)")
            self.skipTest("chromium not installed")
        proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                               "--virtual-time-budget=10000", "--dump-dom",
                               f"http://127.0.0.1:{self.port}/"],
                              capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        self.assertIn('data-ready="1"', dom, proc.stderr[-2000:])
        for t in status["triggers"]:
            row = re.search(r'<tr data-trigger="%s">(.*?)</tr>' % re.escape(t["name"]), dom)
            self.assertIsNotNone(row, f"no row for trigger {t['name']}")
            cells = dict(re.findall(r'<td class="(?:num )?(\w+)[^"]*">([^<]*)</td>', row.group(1)))
            c = t["last_cycle"]
            self.assertEqual(cells["state"], t["state"])
            self.assertEqual(int(cells["cycles"]), t["cycles"])
            self.assertEqual(int(cells["records"]), c["records"])
            self.assertEqual(int(cells["events"]), c["events"])
            self.assertEqual(int(cells["requests"]), c["requests"])
            self.assertEqual(row.group(1).count('class="ev"'), 24, "a 24-hour chart")
        self.assertEqual(status["triggers"][0]["last_cycle"]["events"], 20)
        # The hourly charts: this hour holds the cycle's events and requests.
        page = json.loads(self.get("/status.json")[1])
        hourly = {t["name"]: t["hourly"] for t in page["triggers"]}
        self.assertEqual(hourly["contacts"]["events"][-1], 20)
        self.assertEqual(sum(hourly["people"]["events"]), 0)
        self.assertGreaterEqual(hourly["contacts"]["requests"][-1], 1)

    def status_json(self):
        """`pollen status --json`, run beside the engine."""
        proc = self.pollen("status", "-c", self.cfg, "--json", check=False)
        return json.loads(proc.stdout)

    def test_healthz_turns_503_while_a_trigger_keeps_failing(self):
        self.sandbox.seed(5, seed=42)
        self.start("[trigger contacts]\nuse = contacts.search\nevery = 1s\n",
                   location="rate_limit = 100\nrate_window = 1s\n")
        self.wait_for(lambda: self.get("/healthz") == (200, "ok\n"), what="healthz 200")
        self.sandbox.faults([{"kind": "status", "status": 500, "window_s": 600,
                              "path": "/contacts/search$"}])
        status, body = self.wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            self.get("/healthz")), timeout=90, what="healthz 503")
        self.assertIn("failing: trigger contacts", body)
        self.sandbox.clear_faults()
        self.wait_for(lambda: self.get("/healthz") == (200, "ok\n"), timeout=120,
                      what="healthz 200 after the trigger recovered")

    def test_check_refuses_a_listen_address_that_is_not_loopback(self):
        cfg = self.write_config("[trigger contacts]\nuse = contacts.search\n",
                                engine="listen = 0.0.0.0:9464\n")
        proc = self.pollen("check", "-c", cfg, check=False)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertRegex(proc.stderr, r"pollen\.ini:\d+: bad value '0\.0\.0\.0:9464' for "
                                      r"'listen'.*loopback")

    def test_a_port_in_use_stops_the_engine(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            port = busy.getsockname()[1]
            cfg = self.write_config("[trigger contacts]\nuse = contacts.search\n",
                                    engine=f"listen = 127.0.0.1:{port}\n")
            proc = subprocess.run([harness.POLLEN_BIN, "run", "-c", cfg], capture_output=True,
                                  text=True, timeout=60, env=self.env)
            self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
            self.assertIn(f"listen = 127.0.0.1:{port}: cannot listen there", proc.stderr)
        finally:
            busy.close()


if __name__ == "__main__":
    harness.main()
