"""The systemd unit and the engine's side of the service protocol (issue
#14): the installed pollen.service passes `systemd-analyze verify` and
carries the hardening the README documents; under a NOTIFY_SOCKET the engine
sends READY=1 once its triggers started, WATCHDOG=1 from its loop at half of
WATCHDOG_USEC, and STOPPING=1 on SIGTERM; SIGHUP (ExecReload=) sends
RELOADING=1, then READY=1 once the new configuration runs. The notify socket is a Python AF_UNIX datagram socket."""
import os
import shutil
import signal
import socket
import subprocess
import time

import harness
from test_install import Install

HAVE_SYSTEMD = os.environ.get("POLLEN_HAVE_SYSTEMD", "1") == "1"
FAST = "rate_limit = 100\nrate_window = 1s\n"
CONTACTS = "[trigger contacts]\nuse = contacts.search\nevery = 1s\n"


def analyze_verify(unit, cwd):
    return subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


class UnitTest(harness.PollenTest):
    @classmethod
    def setUpClass(cls):
        cls.inst = Install()
        by_name = {os.path.basename(src): dst for src, dst in cls.inst.installed.items()}
        cls.unit_path = by_name["pollen.service"]
        with open(cls.inst.staged(cls.unit_path)) as f:
            cls.unit = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.inst.remove()

    def test_unit_is_installed_with_the_install_paths_and_hardening(self):
        self.assertTrue(self.unit_path.endswith("/lib/systemd/system/pollen.service"))
        lines = set(self.unit.splitlines())
        prefix = self.inst.bin_path.rsplit("/bin/", 1)[0]
        exec_start = [line for line in lines if line.startswith("ExecStart=")]
        self.assertEqual(len(exec_start), 1)
        self.assertRegex(exec_start[0], "^ExecStart=" + self.inst.bin_path
                         + r" run -c /\S*etc/pollen/pollen\.ini$")
        self.assertTrue(exec_start[0].split(" -c ")[1].startswith(("/etc/", prefix + "/etc/")))
        expected = {"StateDirectory=pollen", "ProtectSystem=strict", "NoNewPrivileges=yes",
                    "ExecReload=/bin/kill -HUP $MAINPID"}
        if HAVE_SYSTEMD:
            expected |= {"Type=notify", "WatchdogSec=30s"}
        else:
            expected |= {"Type=exec"}
        self.assertEqual(expected - lines, set())
        self.assertIn("User=pollen", lines)
        users = self.inst.staged(self.inst.bin_path.rsplit("/bin/", 1)[0]
                                 + "/lib/sysusers.d/pollen.conf")
        with open(users) as f:
            self.assertIn('u pollen - "pollen daemon" /var/lib/pollen', f.read())

    def test_systemd_analyze_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed")
        # Whether verify can run here at all (a container without systemd's
        # pieces cannot): a trivial unit must pass first.
        probe = os.path.join(self.dir, "pollen-probe.service")
        with open(probe, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n")
        proc = analyze_verify(probe, self.dir)
        if proc.returncode != 0:
            self.skipTest("systemd-analyze verify cannot run in this environment: "
                          + proc.stderr.strip()[-500:])
        # ExecStart= must name an executable that exists: the staged binary.
        unit = os.path.join(self.dir, "pollen.service")
        with open(unit, "w") as f:
            f.write(self.unit.replace("=" + self.inst.bin_path + " ", "=" + self.inst.bin + " "))
        proc = analyze_verify(unit, self.dir)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([line for line in proc.stderr.splitlines() if "pollen" in line], [],
                         proc.stderr)
        # It does catch mistakes: a misspelt key is reported.
        with open(unit, "a") as f:
            f.write("[Service]\nProtectSystm=strict\n")
        proc = analyze_verify(unit, self.dir)
        self.assertIn("Unknown key 'ProtectSystm'", proc.stderr)


class NotifyTest(harness.PollenTest):
    sandbox_args = ("--rate-limit", "0")

    def setUp(self):
        super().setUp()
        if not HAVE_SYSTEMD:
            self.skipTest("built without libsystemd (-Dsystemd=disabled): sd_notify is a no-op")
        self.sock_path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.addCleanup(self.sock.close)
        self.messages = []  # (monotonic time, {KEY: value})

    def receive(self, until, timeout):
        """Reads notifications until until(message) is true; returns that message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), msg))
            if until(msg):
                return msg
        self.fail(f"no such notification within {timeout}s; got {[m for _, m in self.messages]}"
                  f"\nengine log:\n{self.engine_log_text()[-3000:]}")

    def start(self, **extra):
        self.sandbox.seed(5)
        cfg = self.write_config(CONTACTS, location=FAST)
        env = dict(self.env, NOTIFY_SOCKET=self.sock_path, **extra)
        env.pop("WATCHDOG_PID", None)
        if "WATCHDOG_USEC" not in extra:
            env.pop("WATCHDOG_USEC", None)
        return self.start_engine(cfg, env=env)

    def test_ready_watchdog_and_stopping(self):
        self.start(WATCHDOG_USEC="400000")  # a ping every 200 ms
        ready = self.receive(lambda m: "READY" in m, 60)
        self.assertEqual(ready["READY"], "1")
        self.assertEqual(ready["STATUS"], "running: 1 trigger(s), 1 location(s)")
        # The triggers were started before READY: the engine said so first.
        self.assertIn("running: 1 trigger(s)", self.engine_log_text())
        first_ping = [t for t, m in self.messages if m.get("WATCHDOG") == "1"]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            self.receive(lambda m: m.get("WATCHDOG") == "1", 5)
        pings = [t for t, m in self.messages if m.get("WATCHDOG") == "1"]
        self.assertTrue(first_ping, "a ping is sent at start")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # Half of WATCHDOG_USEC (0.2 s), within what a loaded machine allows.
        self.assertGreaterEqual(len(pings), 6, gaps)
        self.assertLess(sorted(gaps)[len(gaps) // 2], 0.35, gaps)
        self.assertGreater(sorted(gaps)[len(gaps) // 2], 0.15, gaps)
        self.engine.send_signal(signal.SIGTERM)
        stopping = self.receive(lambda m: "STOPPING" in m, 30)
        self.assertEqual(stopping["STOPPING"], "1")
        self.assertEqual(stopping["STATUS"], "stopping (SIGTERM)")
        self.assertEqual(self.engine.wait(30), 0)

    def test_no_watchdog_pings_unless_asked(self):
        self.start()
        self.receive(lambda m: "READY" in m, 60)
        time.sleep(1.0)
        self.engine.send_signal(signal.SIGTERM)
        self.receive(lambda m: "STOPPING" in m, 30)
        self.assertEqual(self.engine.wait(30), 0)
        self.assertEqual([m for _, m in self.messages if "WATCHDOG" in m], [])

    def test_sighup_from_exec_reload_reloads_and_keeps_pinging(self):
        """ExecReload= sends SIGHUP: the engine says RELOADING=1, rebuilds its
        runtime from the file, says READY=1 again and keeps pinging."""
        self.start(WATCHDOG_USEC="400000")
        self.receive(lambda m: "READY" in m, 60)
        self.engine.send_signal(signal.SIGHUP)
        self.receive(lambda m: m.get("RELOADING") == "1", 30)
        self.receive(lambda m: m.get("READY") == "1", 30)
        self.assertIn("reload: starting again", self.engine_log_text())
        n = len(self.messages)
        self.receive(lambda m: m.get("WATCHDOG") == "1", 5)
        self.assertGreater(len(self.messages), n)
        self.assertIsNone(self.engine.poll())


if __name__ == "__main__":
    harness.main()
