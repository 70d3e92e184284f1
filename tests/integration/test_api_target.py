"""[api NAME]: the user's own API as data (issue #13, first step), against the
example app (examples/ruby-app) started on an ephemeral port, behind a small
recording proxy that keeps each request's headers.

- test_events: a [trigger] with `api = app` and `use = customers.list` (the
  app's catalog, examples/ruby-app/catalog) records a silent baseline, then
  reports created, updated (with the field's old and new value) and deleted
  (confirmed by GET /customers/{id} answering 404) customers with their ids;
  events carry "api": "app" and no location. Pages follow next_cursor
  (page_size 2). Every request carries `Authorization: Bearer <token>` and no
  HighLevel header (Version) or locationId.
- test_incremental: with the catalog's incremental.query.updated_since, the
  cycles after the baseline (a full reconcile) ask only for what changed
  since the watermark, as ISO-8601, and report it; no deletion is decided
  there (reconcile = 0s in test_events makes every cycle a full one).
- test_auth_header: auth_header and auth_scheme = none send the bare value in
  the named header (the app answers 401, and the run fails).
- test_catalog_command: `pollen catalog -c FILE --api app [NAME]` lists and
  shows the app's definitions; an unknown api, or --api without -c, exits 2.
- test_check: `pollen check` refuses, with FILE:LINE, an unknown api, a
  trigger naming both api and location, a use that is not in the api's
  catalog, a plain-http base_url to another host, a literal auth, an unknown
  [api] key, and a user catalog with HighLevel's `version` key.

Without ruby and its Debian packages the test skips (exit 77), or fails when
CI is set.
"""
import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

from harness import SOURCE_ROOT, PollenTest, main
from test_ruby_app import TOKEN, RubyApp, ruby_missing

CATALOG = os.path.join(SOURCE_ROOT, "examples", "ruby-app", "catalog")


def edit(path, old, new):
    """Replaces old by new in the file at path (old must be there)."""
    with open(path) as f:
        text = f.read()
    assert old in text, (path, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new))


class RecordingProxy:
    """Forwards every request to the app and keeps (method, path, headers)."""

    def __init__(self, upstream):
        self.seen = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                proxy.seen.append((self.command, self.path, dict(self.headers.items())))
                req = urllib.request.Request(upstream + self.path, method=self.command,
                                             headers={k: v for k, v in self.headers.items()
                                                      if k.lower() not in ("host", "accept-encoding")})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, body = e.code, e.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ApiTargetTest(PollenTest):
    def setUp(self):
        super().setUp()
        self.app = RubyApp(self.dir)
        self.proxy = RecordingProxy(self.app.url)
        self.env["APP_TEST_TOKEN"] = TOKEN

    def tearDown(self):
        self.proxy.stop()
        self.app.stop()
        super().tearDown()

    def api_config(self, trigger_extra="", api_extra="", catalog=CATALOG, name="pollen.ini"):
        return self.write_config(
            "[api app]\n"
            f"base_url = {self.proxy.url}\n"
            "auth = env:APP_TEST_TOKEN\n"
            f"catalog = {catalog}\n"
            "timeout = 10s\n"
            f"{api_extra}\n"
            "[trigger customers]\n"
            "api = app\n"
            "use = customers.list\n"
            "every = 1s\n"
            f"{trigger_extra}\n", name=name)

    def customer(self, email, first):
        return self.app.ok("POST", "/customers", {"email": email, "first_name": first},
                           status=201)["id"]

    def test_events(self):
        ada = self.customer("ada@example.com", "Ada")
        bob = self.customer("bob@example.com", "Bob")
        cy = self.customer("cy@example.com", "Cy")
        config = self.api_config(trigger_extra="page_size = 2\nreconcile = 0s")
        self.run_once(config)
        self.assertEqual(self.events(config), [], "the first poll is a silent baseline")

        self.app.ok("PATCH", f"/customers/{ada}", {"first_name": "Augusta"})
        self.app.ok("DELETE", f"/customers/{bob}")
        dan = self.customer("dan@example.com", "Dan")
        self.proxy.seen.clear()
        self.run_once(config)
        events = self.events(config)
        by_type = {(e["type"], e["record_id"]): e for e in events}
        self.assertEqual(sorted(by_type), sorted([("created", dan), ("updated", ada),
                                                  ("deleted", bob)]), events)
        upd = by_type[("updated", ada)]
        self.assertEqual(upd["changes"]["first_name"], {"old": "Ada", "new": "Augusta"})
        self.assertIn("updated_at", upd["changes"])
        self.assertEqual(by_type[("created", dan)]["record"]["email"], "dan@example.com")
        self.assertEqual(by_type[("deleted", bob)]["record"]["email"], "bob@example.com")
        for e in events:
            self.assertEqual(e["api"], "app")
            self.assertEqual(e["trigger"], "customers")
            self.assertNotIn("location", e)
        self.assertNotIn(cy, [e["record_id"] for e in events], "an unchanged record is quiet")

        paths = [p for _, p, _ in self.proxy.seen]
        self.assertTrue(any(p.startswith("/customers?limit=2&cursor=") for p in paths), paths)
        self.assertIn(f"/customers/{bob}", paths, "the deletion was confirmed by id")
        for method, path, headers in self.proxy.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            self.assertEqual(lower.get("authorization"), "Bearer " + TOKEN, path)
            self.assertNotIn("version", lower, path)
            self.assertNotIn("locationId", path)
            self.assertEqual(method, "GET")

        # `pollen status` reads the api trigger's records under its api's name.
        status = json.loads(self.pollen("status", "-c", config, "--json").stdout)
        (trig,) = [t for t in status["triggers"] if t["name"] == "customers"]
        self.assertEqual(trig["state"], "idle", trig)
        self.assertEqual(trig["last_cycle"]["events"], 3, trig)

    def test_incremental(self):
        ids = [self.customer(f"c{i}@example.com", f"C{i}") for i in range(7)]
        # The reconcile's watermark is the newest updated_at less the reconcile's
        # own duration: a record written 2 s before the last is behind it.
        time.sleep(2)
        self.customer("marker@example.com", "Marker")
        config = self.api_config(trigger_extra="page_size = 2\nwatermark_lag = 0s")
        self.run_once(config)  # the baseline is a full reconcile: 4 pages, no filter
        listing = [p for _, p, _ in self.proxy.seen if p.startswith("/customers?")]
        self.assertEqual(len(listing), 4, listing)
        self.assertFalse([p for p in listing if "updated_since" in p], listing)

        self.app.ok("PATCH", f"/customers/{ids[1]}", {"first_name": "Changed"})
        new = self.customer("new@example.com", "New")
        self.app.ok("DELETE", f"/customers/{ids[3]}")
        self.proxy.seen.clear()
        self.run_once(config)
        listing = [p for _, p, _ in self.proxy.seen if p.startswith("/customers?")]
        self.assertTrue(listing and all("updated_since=" in p for p in listing), listing)
        # The marker (at the watermark), the update and the create: 2 pages of 2.
        self.assertLessEqual(len(listing), 2, "only the records updated since the watermark")
        since = listing[0].split("updated_since=")[1].split("&")[0]
        self.assertRegex(since, r"^\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\d\.\d{3}Z$")
        got = sorted((e["type"], e["record_id"]) for e in self.events(config))
        # An incremental cycle never decides a deletion: the reconcile does.
        self.assertEqual(got, sorted([("created", new), ("updated", ids[1])]))

    def test_auth_header(self):
        self.customer("ada@example.com", "Ada")
        config = self.api_config(api_extra="auth_header = X-App-Key\nauth_scheme = none")
        proc = self.run_once(config, check=False)
        self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
        self.assertTrue(self.proxy.seen)
        for _, path, headers in self.proxy.seen:
            lower = {k.lower(): v for k, v in headers.items()}
            self.assertEqual(lower.get("x-app-key"), TOKEN, path)
            self.assertNotIn("authorization", lower, path)
        self.assertNotIn(TOKEN, proc.stderr, "the credential is never logged")

    def test_catalog_command(self):
        config = self.api_config()
        proc = self.pollen("catalog", "-c", config, "--api", "app")
        self.assertIn("customers.list", proc.stdout)
        self.assertIn("todos.list", proc.stdout)
        self.assertNotIn("contacts.search", proc.stdout)
        proc = self.pollen("catalog", "-c", config, "--api", "app", "customers.list")
        self.assertIn("/customers", proc.stdout)
        self.assertIn("cursor", proc.stdout)
        proc = self.pollen("catalog", "-c", config, "--api", "nope", check=False)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("has no [api nope]", proc.stderr)
        proc = self.pollen("catalog", "--api", "app", check=False)
        self.assertEqual(proc.returncode, 2)

    def check_error(self, config, needle, expect):
        """pollen check exits 2 and names FILE:LINE of the line holding needle."""
        with open(config) as f:
            line = next(i for i, text in enumerate(f, 1) if needle in text)
        proc = self.pollen("check", "-c", config, check=False)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{config}:{line}: {expect}", proc.stderr)
        return proc

    def test_check(self):
        self.pollen("check", "-c", self.api_config())
        config = self.api_config(name="a.ini")
        edit(config, "api = app\n", "api = nope\n")
        self.check_error(config, "api = nope", "unknown api 'nope'")

        config = self.api_config(trigger_extra="location = main", name="b.ini")
        self.check_error(config, "api = app", "[trigger customers] names both api and location")

        config = self.api_config(trigger_extra="", name="c.ini")
        edit(config, "customers.list", "customer.list")
        self.check_error(config, "use = customer.list",
                         "use: unknown catalog trigger 'customer.list'; did you mean "
                         "'customers.list'?")

        config = self.api_config(name="d.ini")
        edit(config, self.proxy.url, "http://example.com")
        self.check_error(config, "http://example.com", "base_url")

        config = self.api_config(name="e.ini")
        edit(config, "env:APP_TEST_TOKEN", "secret-literal-token")
        proc = self.check_error(config, "auth = ", "auth must be env:VAR or file:PATH")
        self.assertNotIn("secret-literal-token", proc.stderr)

        config = self.api_config(api_extra="rate = 5", name="f.ini")
        self.check_error(config, "rate = 5", "unknown key")

        bad = os.path.join(self.dir, "badcat")
        os.makedirs(os.path.join(bad, "triggers"))
        with open(os.path.join(CATALOG, "triggers", "app.ini")) as f:
            src = f.read()
        with open(os.path.join(bad, "triggers", "app.ini"), "w") as f:
            f.write(src.replace("method = GET\npath = /customers\n",
                                "method = GET\npath = /customers\nversion = 2021-07-28\n"))
        config = self.api_config(catalog=bad, name="g.ini")
        proc = self.pollen("check", "-c", config, check=False)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        with open(os.path.join(bad, "triggers", "app.ini")) as f:
            line = next(i for i, t in enumerate(f, 1) if t.startswith("version"))
        self.assertIn(f"{os.path.join(bad, 'triggers', 'app.ini')}:{line}: version is "
                      "HighLevel's Version header", proc.stderr)


if __name__ == "__main__":
    why = ruby_missing()
    if why:
        print("skipping:", why, file=sys.stderr)
        sys.exit(1 if os.environ.get("CI") else 77)
    main()
