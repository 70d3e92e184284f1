"""Shared fixtures for the integration tests: a sandbox API on an ephemeral
127.0.0.1 port, a temporary state directory, configuration files, the real
`pollen` binary, and readers for its event log.

Environment (set by meson): POLLEN_BIN (the binary), SOURCE_ROOT.
"""
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SOURCE_ROOT = os.environ.get(
    "SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
POLLEN_BIN = os.environ.get("POLLEN_BIN", os.path.join(SOURCE_ROOT, "build", "pollen"))
SANDBOX = os.path.join(SOURCE_ROOT, "tests", "sandbox", "sandbox.py")
LOCATION_ID = "testLocation00000001"
TOKEN = "pit-test-token-0123456789"


FAILPOINT_VARS = ("POLLEN_FAILPOINT", "POLLEN_FAILPOINT_ERROR", "POLLEN_WALL_OFFSET_MS")
NO_FAILPOINTS = ("this pollen binary has no failpoints (built with -Dfailpoints=disabled or "
                 "buildtype=release): the crash and clock-step tests need a test build "
                 "(debug or debugoptimized, the default)")
_failpoints = None


def has_failpoints():
    """Asks the binary once: `pollen __failpoints` lists its crash points, or
    exits 1 in a build without them."""
    global _failpoints
    if _failpoints is None:
        proc = subprocess.run([POLLEN_BIN, "__failpoints"], capture_output=True, text=True,
                              timeout=60)
        _failpoints = proc.returncode == 0 and bool(proc.stdout.split())
    return _failpoints


def needs_failpoints(test):
    """Decorator: the test skips, saying why, on a binary without failpoints."""
    @functools.wraps(test)
    def wrapper(self, *args, **kw):
        if not has_failpoints():
            self.skipTest(NO_FAILPOINTS)
        return test(self, *args, **kw)
    return wrapper


class Sandbox:
    """The fake HighLevel API as a subprocess."""

    def __init__(self, workdir, *extra_args, tokens=None):
        self.port_file = os.path.join(workdir, "sandbox.port")
        self.log_path = os.path.join(workdir, "sandbox.log")
        args = [sys.executable, SANDBOX, "--port", "0", "--port-file", self.port_file, "--quiet"]
        for tok, loc in (tokens or {TOKEN: LOCATION_ID}).items():
            args += ["--token", f"{tok}={loc}"]
        args += list(extra_args)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("sandbox did not start: " + open(self.log_path).read())
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def seed(self, contacts, tasks=0, notes=0, seed=1):
        return self.control("POST", "/_control/seed", {
            "contacts": contacts, "tasks_per_contact": tasks, "notes_per_contact": notes,
            "seed": seed})

    def mutate(self, ops):
        return self.control("POST", "/_control/mutate", {"ops": ops})["changes"]

    def changes(self, since=0):
        return self.control("GET", f"/_control/changes?since={since}")["changes"]

    def requests(self, since=0):
        return self.control("GET", f"/_control/requests?since={since}")["requests"]

    def faults(self, faults):
        return self.control("POST", "/_control/faults", {"faults": faults})

    def clear_faults(self):
        return self.control("DELETE", "/_control/faults")

    def state(self):
        return self.control("GET", "/_control/state")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PollenTest(unittest.TestCase):
    """Base class: a fresh sandbox and state directory per test."""

    sandbox_args = ()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pollen-it-")
        self.sandbox = Sandbox(self.dir, *self.sandbox_args)
        self.engine = None
        self.engine_log = None
        # Proxies from the environment must not capture loopback traffic.
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        self.env["POLLEN_TEST_TOKEN"] = TOKEN

    def tearDown(self):
        self.stop_engine()
        self.sandbox.stop()
        if os.environ.get("POLLEN_KEEP_TMP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- configuration ------------------------------------------------------

    def write_config(self, triggers, engine="", location="", api="", name="pollen.ini"):
        text = (
            "[engine]\n"
            "state_dir = state\n"
            "min_interval = 1s\n"
            "log_level = debug\n"
            f"{engine}\n"
            "[api]\n"
            f"base_url = {self.sandbox.url}\n"
            "timeout = 10s\n"
            f"{api}\n"
            "[location main]\n"
            f"id = {LOCATION_ID}\n"
            "token = env:POLLEN_TEST_TOKEN\n"
            f"{location}\n"
            f"{triggers}\n"
        )
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- running the engine ---------------------------------------------------

    def require_failpoints(self, env):
        """A run that arms a failpoint or shifts the clock cannot test
        anything with a binary that ignores those variables: skip the test."""
        if env is not None and any(env.get(v) for v in FAILPOINT_VARS) and not has_failpoints():
            self.skipTest(NO_FAILPOINTS)

    def pollen(self, *args, timeout=300, check=True, env=None):
        self.require_failpoints(env)
        proc = subprocess.run([POLLEN_BIN, *args], capture_output=True, text=True,
                              timeout=timeout, env=env or self.env)
        if check and proc.returncode != 0:
            self.fail(f"pollen {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return proc

    def run_once(self, config, **kw):
        return self.pollen("run", "-c", config, "--once", **kw)

    def start_engine(self, config, env=None):
        self.require_failpoints(env)
        self.engine_log = open(os.path.join(self.dir, "engine.log"), "a")
        self.engine = subprocess.Popen([POLLEN_BIN, "run", "-c", config], stdout=self.engine_log,
                                       stderr=subprocess.STDOUT, env=env or self.env)
        return self.engine

    def stop_engine(self, sig=signal.SIGTERM):
        if self.engine is None:
            return None
        if self.engine.poll() is None:
            self.engine.send_signal(sig)
            try:
                self.engine.wait(30)
            except subprocess.TimeoutExpired:
                self.engine.kill()
                self.engine.wait()
        rc = self.engine.returncode
        self.engine = None
        self.engine_log.close()
        return rc

    def engine_log_text(self):
        path = os.path.join(self.dir, "engine.log")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    # -- reading events -------------------------------------------------------

    def events(self, config, *args):
        """The events `pollen tail` prints; none before an engine created the state directory
        (tail exits 2 then, saying so)."""
        proc = self.pollen("tail", "-c", config, *args, check=False)
        if proc.returncode == 2 and "holds no state" in proc.stderr:
            return []
        if proc.returncode != 0:
            self.fail(f"pollen tail {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]

    def wait_for(self, predicate, timeout=60, interval=0.2, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        tail = "\n".join(self.engine_log_text().splitlines()[-40:])
        self.fail(f"timed out after {timeout}s waiting for {what}"
                  + (f"\nlast lines of the engine log:\n{tail}" if tail else ""))


def main():
    """Runs the calling module's tests; exit status 0 only if all passed."""
    result = unittest.main(module="__main__", exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


# -- helpers added for test_crash and the benchmarks (append-only) -----------

def mutate_random(sandbox, n, kinds=None, seed=None):
    """`n` weighted random realistic mutations (/_control/mutate {"random": n});
    kinds: a subset of ["contact", "task", "note"] (None: all). Returns the change entries."""
    body = {"random": int(n)}
    if kinds is not None:
        body["kinds"] = list(kinds)
    if seed is not None:
        body["seed"] = str(seed)
    return sandbox.control("POST", "/_control/mutate", body)["changes"]


def change_log_seq(sandbox):
    """The sandbox change log's last sequence number (0 when nothing was logged)."""
    return sandbox.control("GET", "/_control/changes?limit=1")["last_seq"]


# -- helpers added for test_faults' memory checks (append-only) --------------

def rss(pid):
    """Memory of a live process in KiB, from /proc/PID/status: VmRSS (resident), VmHWM (peak
    resident since start or since reset_peak_rss), RssAnon (heap and anonymous maps) and RssFile
    (mapped files: libraries, the LMDB map)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def reset_peak_rss(pid):
    """Resets VmHWM to the current VmRSS (writing 5 to /proc/PID/clear_refs, Linux >= 4.0), so
    that it measures the peak from now on. False if the kernel refused: VmHWM then still counts
    from the start of the process."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
