"""examples/ruby-app: the example user's app for the two-way sync (issue #13),
started on an ephemeral port with a temporary SQLite database.

- test_auth: no token or a wrong one is a 401 JSON error; /_log answers on
  loopback without it.
- test_customer_crud, test_todo_crud: create, read, patch (partial, custom
  merged), delete; a PATCH that changes nothing keeps updated_at.
- test_paging: 120 customers with limit 50 come back each exactly once in
  updated_at order, in pages of 50, 50, 20, next_cursor null at the end.
- test_updated_since: only records updated at or after the mark.
- test_updated_at_increases: rapid writes, and concurrent ones, get strictly
  increasing updated_at; a PATCH moves the record to the end of the list.
- test_delete_cascades: deleting a customer deletes its todos, and both show
  in /deleted (since, kind, paging).
- test_errors: duplicate email 409 with the holder's id; validation 400
  (bad email, unknown field, read-only field, bad JSON, bad cursor) with a
  JSON body; unknown routes 404 JSON.
- test_idempotency: a replayed Idempotency-Key returns the same record and
  makes no second row, even after the records were deleted; the same key
  with another body is 422; a key whose create failed is free to retry.
- test_restart_keeps_data_and_clock: after a restart on the same database,
  records, tombstones and idempotency keys are there and updated_at goes on.
- test_log_counts_writes: /_log records each request with its status; the
  writes it counts are exactly the ones made.

Without ruby and its Debian packages the test skips (exit 77), or fails when
CI is set.
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

SOURCE_ROOT = os.environ.get(
    "SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP = os.path.join(SOURCE_ROOT, "examples", "ruby-app", "app.rb")
TOKEN = "app-test-token"
REQUIRES = 'require "sinatra/base"; require "sqlite3"; require "webrick"'


def ruby_missing():
    """Why the app cannot run here, or None."""
    if not shutil.which("ruby"):
        return "ruby is not installed"
    r = subprocess.run(["ruby", "-e", REQUIRES], capture_output=True, text=True)
    if r.returncode != 0:
        return "ruby lacks sinatra/sqlite3/webrick: " + r.stderr.strip()
    return None


class RubyApp:
    """examples/ruby-app/app.rb as a subprocess on 127.0.0.1:<free port>."""

    def __init__(self, workdir):
        env = dict(os.environ, APP_TOKEN=TOKEN, APP_PORT="0",
                   APP_DB=os.path.join(workdir, "app.db"))
        self.err = open(os.path.join(workdir, "app.err"), "w+")
        self.proc = subprocess.Popen(["ruby", APP], stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, env=env)
        line = self.proc.stdout.readline()  # "listening on 127.0.0.1:PORT"
        if not line.startswith("listening on 127.0.0.1:"):
            self.stop()
            self.err.seek(0)
            raise RuntimeError(f"app did not start: {line!r} {self.err.read()}")
        self.url = "http://" + line.split()[-1]

    def call(self, method, path, body=None, token=TOKEN, headers=None):
        """(status, parsed JSON body, response headers); errors are answers too."""
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null"), resp.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), e.headers

    def ok(self, method, path, body=None, status=200, **kw):
        code, obj, _ = self.call(method, path, body, **kw)
        if code != status:
            raise AssertionError(f"{method} {path}: {code} {obj}, expected {status}")
        return obj

    def all_pages(self, path, limit=50):
        """Every record of a list, following next_cursor; also the page sizes."""
        sep = "&" if "?" in path else "?"
        records, sizes, cursor = [], [], None
        while True:
            page = self.ok("GET", f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
            records += page["data"]
            sizes.append(len(page["data"]))
            cursor = page["next_cursor"]
            if cursor is None:
                return records, sizes

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.close()


class RubyAppTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pollen-ruby-app-")
        cls.app = RubyApp(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.app.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.app.ok("POST", "/_reset", token=None)

    def customer(self, n, **fields):
        return self.app.ok("POST", "/customers", {"email": f"user{n}@example.com", **fields}, 201)

    def test_auth(self):
        for token in (None, "wrong"):
            code, body, headers = self.app.call("GET", "/customers", token=token)
            self.assertEqual(code, 401)
            self.assertIn("token", body["error"])
            self.assertEqual(headers["Content-Type"], "application/json")
        code, _, _ = self.app.call("POST", "/customers", {"email": "x@example.com"}, token=None)
        self.assertEqual(code, 401)
        self.assertEqual(self.app.ok("GET", "/customers")["data"], [])
        self.app.ok("GET", "/_log", token=None)

    def test_customer_crud(self):
        c = self.customer(1, first_name="Ada", last_name="Lovelace", phone="+1 512 555 0100",
                          company="Engines", tags=["vip"], custom={"plan": "gold", "seats": 3})
        self.assertTrue(c["id"])
        self.assertEqual(c["created_at"], c["updated_at"])
        self.assertRegex(c["updated_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(self.app.ok("GET", f"/customers/{c['id']}"), c)
        p = self.app.ok("PATCH", f"/customers/{c['id']}",
                        {"company": "Analytical", "custom": {"seats": None, "region": "eu"}})
        self.assertEqual(p["company"], "Analytical")
        self.assertEqual(p["first_name"], "Ada")  # partial: the rest is kept
        self.assertEqual(p["custom"], {"plan": "gold", "region": "eu"})
        self.assertGreater(p["updated_at"], c["updated_at"])
        self.assertEqual(p["created_at"], c["created_at"])
        same = self.app.ok("PATCH", f"/customers/{c['id']}", {"company": "Analytical"})
        self.assertEqual(same["updated_at"], p["updated_at"])  # no change, no write
        self.app.ok("DELETE", f"/customers/{c['id']}")
        self.assertEqual(self.app.call("GET", f"/customers/{c['id']}")[0], 404)
        self.assertEqual(self.app.call("DELETE", f"/customers/{c['id']}")[0], 404)

    def test_todo_crud(self):
        c = self.customer(1)
        t = self.app.ok("POST", f"/customers/{c['id']}/todos",
                        {"title": "Call", "notes": "about the plan", "due_at": "2027-01-02T03:04:05Z"}, 201)
        self.assertEqual((t["customer_id"], t["done"], t["due_at"]),
                         (c["id"], False, "2027-01-02T03:04:05.000Z"))
        self.assertEqual(self.app.ok("GET", f"/todos/{t['id']}"), t)
        done = self.app.ok("PATCH", f"/todos/{t['id']}", {"done": True})
        self.assertTrue(done["done"])
        self.assertEqual(done["title"], "Call")
        self.assertGreater(done["updated_at"], t["updated_at"])
        other = self.app.ok("POST", f"/customers/{self.customer(2)['id']}/todos", {"title": "x"}, 201)
        self.assertEqual([x["id"] for x in self.app.ok("GET", f"/customers/{c['id']}/todos")["data"]],
                         [t["id"]])
        self.assertEqual([x["id"] for x in self.app.ok("GET", f"/todos?customer_id={c['id']}")["data"]],
                         [t["id"]])
        self.assertEqual(len(self.app.ok("GET", "/todos")["data"]), 2)
        self.assertEqual(self.app.call("POST", "/customers/nope/todos", {"title": "x"})[0], 404)
        self.assertEqual(self.app.call("POST", f"/customers/{c['id']}/todos", {"notes": "x"})[0], 400)
        self.assertEqual(self.app.call("PATCH", f"/todos/{t['id']}", {"done": "yes"})[0], 400)
        gone = self.app.ok("DELETE", f"/todos/{t['id']}")
        self.assertEqual(self.app.call("GET", f"/todos/{t['id']}")[0], 404)
        deleted = self.app.ok("GET", "/deleted")["data"]
        self.assertEqual(deleted, [{"kind": "todo", "id": t["id"], "customer_id": c["id"],
                                    "deleted_at": gone["deleted_at"]}])
        self.app.ok("GET", f"/todos/{other['id']}")

    def test_paging(self):
        made = [self.customer(n)["id"] for n in range(120)]
        records, sizes = self.app.all_pages("/customers", limit=50)
        self.assertEqual(sizes, [50, 50, 20])
        self.assertEqual([r["id"] for r in records], made)  # each once, in write order
        stamps = [r["updated_at"] for r in records]
        self.assertEqual(stamps, sorted(stamps))
        # limit is capped at 200, and a bad one is a 400
        self.assertEqual(len(self.app.ok("GET", "/customers?limit=500")["data"]), 120)
        self.assertIsNone(self.app.ok("GET", "/customers?limit=500")["next_cursor"])
        self.assertEqual(self.app.call("GET", "/customers?limit=0")[0], 400)

    def test_updated_since(self):
        first = [self.customer(n) for n in range(5)]
        mark = first[-1]["updated_at"]
        later = [self.customer(n) for n in range(5, 8)]
        got = self.app.ok("GET", f"/customers?updated_since={mark}")["data"]
        self.assertEqual([r["id"] for r in got], [first[-1]["id"]] + [r["id"] for r in later])
        self.app.ok("PATCH", f"/customers/{first[0]['id']}", {"first_name": "Changed"})
        got, _ = self.app.all_pages(f"/customers?updated_since={later[-1]['updated_at']}", limit=1)
        self.assertEqual([r["id"] for r in got], [later[-1]["id"], first[0]["id"]])
        self.assertEqual(self.app.call("GET", "/customers?updated_since=yesterday")[0], 400)

    def test_updated_at_increases(self):
        c = self.customer(1)
        stamps = [c["updated_at"]]
        for i in range(30):
            stamps.append(self.app.ok("PATCH", f"/customers/{c['id']}", {"first_name": f"n{i}"})["updated_at"])
            stamps.append(self.app.ok("POST", f"/customers/{c['id']}/todos", {"title": f"t{i}"}, 201)["updated_at"])
        self.assertEqual(len(set(stamps)), len(stamps))
        self.assertEqual(stamps, sorted(stamps))
        # Concurrent clients too: one clock, no two writes with one time.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            made = list(pool.map(lambda n: self.customer(n)["updated_at"], range(100, 140)))
        self.assertEqual(len(set(made)), 40)
        self.assertGreater(min(made), max(stamps))
        d = self.customer(2)
        self.app.ok("PATCH", f"/customers/{c['id']}", {"company": "last"})
        self.assertEqual([r["id"] for r in self.app.ok("GET", "/customers")["data"]][-2:],
                         [d["id"], c["id"]])

    def test_delete_cascades(self):
        keep = self.customer(0)
        c = self.customer(1)
        todos = [self.app.ok("POST", f"/customers/{c['id']}/todos", {"title": f"t{i}"}, 201)["id"]
                 for i in range(3)]
        kept_todo = self.app.ok("POST", f"/customers/{keep['id']}/todos", {"title": "k"}, 201)
        before = self.app.ok("GET", f"/customers/{keep['id']}")["updated_at"]
        res = self.app.ok("DELETE", f"/customers/{c['id']}")
        self.assertEqual(res["todos_deleted"], 3)
        for t in todos:
            self.assertEqual(self.app.call("GET", f"/todos/{t}")[0], 404)
        self.assertEqual([t["id"] for t in self.app.ok("GET", "/todos")["data"]], [kept_todo["id"]])
        deleted, sizes = self.app.all_pages(f"/deleted?since={before}", limit=2)
        self.assertEqual(sizes, [2, 2])
        self.assertEqual(sorted((d["kind"], d["id"]) for d in deleted),
                         sorted([("todo", t) for t in todos] + [("customer", c["id"])]))
        self.assertTrue(all(d["customer_id"] == c["id"] for d in deleted if d["kind"] == "todo"))
        stamps = [d["deleted_at"] for d in deleted]
        self.assertEqual(stamps, sorted(set(stamps)))
        self.assertEqual([d["id"] for d in self.app.ok("GET", "/deleted?kind=customer")["data"]], [c["id"]])
        self.assertEqual(self.app.ok("GET", f"/deleted?since={res['deleted_at']}")["data"][0]["id"], c["id"])
        self.assertEqual(self.app.call("GET", f"/customers/{c['id']}/todos")[0], 404)

    def test_errors(self):
        c = self.customer(1)
        code, body, _ = self.app.call("POST", "/customers", {"email": "USER1@example.com"})
        self.assertEqual((code, body["field"], body["id"]), (409, "email", c["id"]))
        other = self.customer(2)
        code, body, _ = self.app.call("PATCH", f"/customers/{other['id']}", {"email": "user1@example.com"})
        self.assertEqual((code, body["field"]), (409, "email"))
        cases = [
            ("POST", "/customers", {"email": "not-an-email"}, "email"),
            ("POST", "/customers", {"email": "a@example.com", "favourite": 1}, "favourite"),
            ("POST", "/customers", {"id": "mine"}, "id"),
            ("POST", "/customers", {"tags": "vip"}, "tags"),
            ("PATCH", f"/customers/{c['id']}", {"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
            ("POST", "/customers", b"{not json", None),
            ("POST", "/customers", [1], None),
            ("GET", "/customers?cursor=garbage", None, "cursor"),
        ]
        for method, path, payload, field in cases:
            code, body, headers = self.app.call(method, path, payload)
            self.assertEqual((code, body["field"]), (400, field), (method, path, payload, body))
            self.assertTrue(body["error"])
            self.assertEqual(headers["Content-Type"], "application/json")
        for path in ("/customers/nope", "/todos/nope", "/no/such/route"):
            code, body, headers = self.app.call("GET", path)
            self.assertEqual(code, 404)
            self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(len(self.app.ok("GET", "/customers")["data"]), 2)

    def test_idempotency(self):
        key = {"Idempotency-Key": "create-42"}
        code, first, h1 = self.app.call("POST", "/customers", {"email": "once@example.com"}, headers=key)
        self.assertEqual(code, 201)
        self.assertIsNone(h1.get("Idempotency-Replayed"))
        code, again, h2 = self.app.call("POST", "/customers", {"email": "once@example.com"}, headers=key)
        self.assertEqual((code, again, h2.get("Idempotency-Replayed")), (201, first, "true"))
        self.assertEqual(len(self.app.ok("GET", "/customers")["data"]), 1)
        code, body, _ = self.app.call("POST", "/customers", {"email": "other@example.com"}, headers=key)
        self.assertEqual((code, body["field"]), (422, "Idempotency-Key"))
        tkey = {"Idempotency-Key": "todo-1"}
        t1 = self.app.ok("POST", f"/customers/{first['id']}/todos", {"title": "t"}, 201, headers=tkey)
        t2 = self.app.ok("POST", f"/customers/{first['id']}/todos", {"title": "t"}, 201, headers=tkey)
        self.assertEqual(t1["id"], t2["id"])
        self.assertEqual(len(self.app.ok("GET", "/todos")["data"]), 1)
        # A replay answers as the first time did, even after the records went.
        self.app.ok("DELETE", f"/customers/{first['id']}")
        again = self.app.ok("POST", f"/customers/{first['id']}/todos", {"title": "t"}, 201, headers=tkey)
        self.assertEqual(again, t1)
        self.assertEqual(self.app.ok("GET", "/todos")["data"], [])
        # Without a key, the same body is a second create (here refused: same email).
        self.app.ok("POST", "/customers", {"email": "dup@example.com"}, 201)
        self.assertEqual(self.app.call("POST", "/customers", {"email": "dup@example.com"})[0], 409)
        # A failed create stores nothing under its key: the retry runs anew.
        fkey = {"Idempotency-Key": "fails-first"}
        self.assertEqual(self.app.call("POST", "/customers", {"email": "bad"}, headers=fkey)[0], 400)
        self.assertEqual(self.app.call("POST", "/customers", {"email": "dup@example.com"}, headers=fkey)[0], 409)
        self.app.ok("POST", "/customers", {"email": "fixed@example.com"}, 201, headers=fkey)

    def test_log_counts_writes(self):
        since = self.app.ok("GET", "/_log", token=None)["last_seq"]  # kept across /_reset
        c = self.customer(1)
        self.app.ok("PATCH", f"/customers/{c['id']}", {"phone": "+15125550100"})
        t = self.app.ok("POST", f"/customers/{c['id']}/todos", {"title": "x"}, 201,
                        headers={"Idempotency-Key": "k"})
        self.app.ok("POST", f"/customers/{c['id']}/todos", {"title": "x"}, 201,
                    headers={"Idempotency-Key": "k"})
        self.app.ok("DELETE", f"/todos/{t['id']}")
        self.app.ok("GET", "/customers")
        self.app.call("GET", "/customers", token=None)
        log = self.app.ok("GET", f"/_log?since={since}", token=None)["requests"]
        self.assertEqual([(e["method"], e["path"], e["status"]) for e in log], [
            ("POST", "/customers", 201), ("PATCH", f"/customers/{c['id']}", 200),
            ("POST", f"/customers/{c['id']}/todos", 201), ("POST", f"/customers/{c['id']}/todos", 201),
            ("DELETE", f"/todos/{t['id']}", 200), ("GET", "/customers", 200), ("GET", "/customers", 401)])
        seqs = [e["seq"] for e in log]
        self.assertEqual(seqs, list(range(since + 1, since + 8)))
        writes = [e for e in log if e["method"] != "GET" and e["status"] < 300 and not e["replayed"]]
        self.assertEqual(len(writes), 4)
        self.assertTrue(all(e["time"].endswith("Z") for e in log))


class RestartTest(unittest.TestCase):
    def test_restart_keeps_data_and_clock(self):
        """Records, tombstones, idempotency keys and the clock live in the database:
        after a restart on the same file, updated_at goes on from where it was."""
        with tempfile.TemporaryDirectory(prefix="pollen-ruby-app-") as tmp:
            app = RubyApp(tmp)
            try:
                key = {"Idempotency-Key": "k"}
                c = app.ok("POST", "/customers", {"email": "a@example.com"}, 201, headers=key)
                gone = app.ok("POST", "/customers", {"email": "b@example.com"}, 201)
                mark = app.ok("DELETE", f"/customers/{gone['id']}")["deleted_at"]
            finally:
                app.stop()
            app = RubyApp(tmp)
            try:
                self.assertEqual(app.ok("GET", "/customers")["data"], [c])
                self.assertEqual([d["id"] for d in app.ok("GET", "/deleted")["data"]], [gone["id"]])
                again = app.ok("POST", "/customers", {"email": "a@example.com"}, 201, headers=key)
                self.assertEqual(again, c)
                later = app.ok("PATCH", f"/customers/{c['id']}", {"company": "x"})["updated_at"]
                self.assertGreater(later, mark)
            finally:
                app.stop()


def main():
    why = ruby_missing()
    if why:
        if os.environ.get("CI"):
            print(f"FAIL: {why}; scripts/setup installs ruby ruby-sinatra ruby-sqlite3 ruby-webrick",
                  file=sys.stderr)
            sys.exit(1)
        print(f"SKIP: {why} (apt-get install ruby ruby-sinatra ruby-sqlite3 ruby-webrick)")
        sys.exit(77)
    result = unittest.main(module="__main__", exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
