"""Tiny helper to run the sandbox from tests (standard library only).

    from client import Sandbox
    with Sandbox.start(seed_contacts=50, rate_limit=0) as sbx:
        status, headers, body = sbx.api("GET", "/contacts/", query={"locationId": sbx.location})
        sbx.control("POST", "/_control/mutate", {"random": 10})

Keyword options of start() map to CLI flags: seed_contacts=50 -> --seed-contacts 50, quiet=True -> --quiet,
token=["tok=LOCATIONID", ...] -> repeated --token.  Unknown options raise TypeError.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
SANDBOX = os.path.join(HERE, "sandbox.py")
DEFAULT_TOKEN = "pit-demo-token"
DEFAULT_LOCATION = "demoLocation00000001"
VERSION = "2021-07-28"

_FLAGS = {"host", "port", "seed_contacts", "tasks_per_contact", "notes_per_contact", "seed", "activity",
          "rate_limit", "rate_window_ms", "daily_limit", "deleted_status", "tls_cert", "tls_key",
          "opportunities_default_status", "user_delete_delay_ms"}


class ControlError(Exception):
    def __init__(self, status, body):
        super().__init__("control API answered %s: %s" % (status, body))
        self.status, self.body = status, body


class Sandbox:
    def __init__(self, proc, port, tmpdir, token, location, scheme="http"):
        self.proc = proc
        self.port = port
        self.url = "%s://127.0.0.1:%d" % (scheme, port)
        self.token = token
        self.location = location
        self._tmpdir = tmpdir

    @classmethod
    def start(cls, quiet=True, token=None, timeout=60.0, extra_args=(), **opts):
        """Launch sandbox.py on an ephemeral port and wait until it answers."""
        bad = set(opts) - _FLAGS
        if bad:
            raise TypeError("unknown sandbox options: %s" % ", ".join(sorted(bad)))
        tmpdir = tempfile.mkdtemp(prefix="pollen-sandbox-")
        port_file = os.path.join(tmpdir, "port")
        args = [sys.executable, SANDBOX, "--port", str(opts.pop("port", 0)), "--port-file", port_file]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        tokens = [token] if isinstance(token, str) else list(token or [])
        for t in tokens:
            args += ["--token", t]
        if quiet:
            args.append("--quiet")
        args += list(extra_args)
        # stderr is inherited: with --quiet it only carries start-up errors and tracebacks.
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if proc.poll() is not None:
                raise RuntimeError("sandbox exited with %s before listening" % proc.returncode)
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("sandbox did not start within %.0fs" % timeout)
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read().strip())
        first = tokens[0] if tokens else "%s=%s" % (DEFAULT_TOKEN, DEFAULT_LOCATION)
        tok, _, loc = first.partition("=")
        return cls(proc, port, tmpdir, tok, loc, "https" if opts.get("tls_cert") else "http")

    # --- HTTP --------------------------------------------------------------------------------

    def _conn(self, timeout=30):
        if self.url.startswith("https"):
            import ssl
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def raw(self, method, path, body=None, headers=None, timeout=30):
        """One request on a fresh connection -> (status, headers dict, raw bytes)."""
        conn = self._conn(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def control(self, method, path, body=None, query=None):
        """Call the control API; returns the parsed JSON, raises ControlError on >= 400."""
        if not path.startswith("/_control/"):
            path = "/_control/" + path.lstrip("/")
        if query:
            path += "?" + urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = self.raw(method, path, data, {"Content-Type": "application/json"} if data else {})
        parsed = json.loads(raw) if raw else None
        if status >= 400:
            raise ControlError(status, parsed)
        return parsed

    def api(self, method, path, body=None, query=None, token=None, version=VERSION, headers=None, form=None):
        """Call the public API with the default token and Version header.

        body: JSON-encoded unless bytes; form: dict sent as x-www-form-urlencoded.
        token=False / version=None omit the header.  Returns (status, headers, parsed JSON or raw bytes)."""
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if version:
            h["Version"] = version
        data = None
        if form is not None:
            data = urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        status, rh, raw = self.raw(method, path, data, h)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return status, rh, parsed

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            for name in os.listdir(self._tmpdir):
                os.unlink(os.path.join(self._tmpdir, name))
            os.rmdir(self._tmpdir)
        except OSError:
            pass
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

