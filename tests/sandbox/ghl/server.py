"""The HTTP layer: request parsing, the public-API pipeline, the request log and fault writing.

Pipeline of a public request:
    route (404 "Cannot GET /x") -> token (401) -> rate limit (429) -> fault injection
    -> body parse error (400) -> Version header (400) -> scope / token type (401/403) -> handler.
Handlers run under the store lock; slow writes (delay, trickle, huge bodies) happen outside it.
"""

import email.utils
import itertools
import os
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import api, associations, businesses, faults, opportunities, snapshots, tasks, users, util, workflows
from .auth import Auth
from .control import Control
from .limits import RateLimiter
from .store import Store
from .util import ApiError

MAX_BODY = 10 * 1024 * 1024
# Benchmarks (tests/bench/bench_poll.py): while the directory this variable names exists, every
# response body is also written into it, before it is sent, as NNNNNNNN-STATUS-METHOD-PATH.json:
# the exact bytes the client received, for a parse floor measured on them.
RECORD_DIR = os.environ.get("SANDBOX_RECORD_BODIES")
_recorded = itertools.count()
LOGGED_HEADERS = ("Version", "Idempotency-Key", "Content-Type", "User-Agent")
MAX_REQUEST_LOG = 200_000   # request-log entries kept (the oldest half is dropped beyond)


class BodyError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class RequestLog:
    """Every public-API request, in arrival order (including 401s, 404s, 429s and faulted ones)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = []
        self.seq = 0

    def clear(self):
        with self.lock:
            self.entries = []

    def start(self, t, method, path, query, headers, body):
        with self.lock:
            self.seq += 1
            entry = {"seq": self.seq, "time": t, "method": method, "path": path, "query": query,
                     "operation": None, "location": None, "status": None, "headers": headers, "body": body}
            self.entries.append(entry)
            if len(self.entries) > MAX_REQUEST_LOG:
                del self.entries[: MAX_REQUEST_LOG // 2]
            return entry

    def since(self, seq):
        with self.lock:
            if not self.entries:
                return []
            start = max(0, seq - self.entries[0]["seq"] + 1)
            return [dict(e) for e in self.entries[start:]]

    def max_window(self, location, window_ms, exclude_429=False):
        """Max number of requests (of `location`, or all) whose arrival times fit in any window."""
        with self.lock:
            times = [e["time"] for e in self.entries
                     if (location is None or e["location"] == location)
                     and not (exclude_429 and e["status"] == 429)]
        times.sort()
        best, best_start, lo = 0, None, 0
        w = window_ms / 1000.0
        for hi, t in enumerate(times):
            while t - times[lo] >= w:
                lo += 1
            if hi - lo + 1 > best:
                best, best_start = hi - lo + 1, times[lo]
        return best, best_start


class Ctx:
    """What a handler sees of a request."""

    def __init__(self, app, method, path, query, headers, body, body_kind, base_url):
        self.app = app
        self.method = method
        self.path = path
        self.query = {k: v[-1] for k, v in query.items()}
        self.query_lists = query
        self.headers = headers
        self.body = body
        self.body_kind = body_kind   # "json" | "form" | "none" | "other"
        self.body_error = None
        self.base_url = base_url
        self.token = None
        self.params = {}
        self.source = "api"


class App:
    def __init__(self, opts):
        self.opts = opts
        self.cli_config = {
            "rate_limit": opts.rate_limit, "rate_window_ms": opts.rate_window_ms, "daily_limit": opts.daily_limit,
            "deleted_status": opts.deleted_status, "search_lag_ms": 0, "allow_duplicates": False,
            "strict_bodies": True, "quiet": opts.quiet,
            "opportunities_default_status": opts.opportunities_default_status,
            "opportunities_allow_duplicates": False,
            "user_delete_delay_ms": opts.user_delete_delay_ms, "user_deleted_visible_ms": opts.user_delete_delay_ms,
        }
        self.config = dict(self.cli_config)
        self.store = Store(opts.seed, self.config)
        self.auth = Auth(self.store, opts.seed)
        self.limiter = RateLimiter(opts.rate_limit, opts.rate_window_ms, opts.daily_limit)
        self.faults = faults.FaultRegistry()
        self.requests = RequestLog()
        self.router = api.Router(api.ROUTES + opportunities.ROUTES + users.ROUTES + businesses.ROUTES
                                 + workflows.ROUTES + snapshots.ROUTES + associations.ROUTES + tasks.ROUTES)
        self.store.tickers.append(users.settle)
        self.control = Control(self)
        self.base_url = None
        self.default_location = None
        for spec in opts.token:
            token, _, location = spec.partition("=")
            if not token or not location:
                raise SystemExit("--token expects TOKEN=LOCATIONID, got %r" % spec)
            self.auth.add_static(token, location)
            if self.default_location is None:
                self.default_location = location

    def configure(self, changes):
        self.config.update(changes)
        self.limiter.limit = int(self.config["rate_limit"])
        self.limiter.window_ms = int(self.config["rate_window_ms"])
        self.limiter.daily_limit = int(self.config["daily_limit"])

    def reset(self):
        """Wipe all state but keep tokens, OAuth clients and locations; back to CLI settings."""
        with self.store.lock:
            self.config.clear()
            self.config.update(self.cli_config)
            self.configure({})
            self.store.reset()
            self.auth.reset()
            self.limiter.reset()
            self.faults.clear()
            self.requests.clear()

    # --- entry point from the HTTP handler ---------------------------------------------------

    def handle(self, h):
        t0 = time.time()
        method = h.command.upper()
        split = urlsplit(h.path)
        path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        try:
            raw = read_body(h)
        except BodyError as e:
            h.close_connection = True
            send(h, e.status, [], util.dumps(util.error_body(e.status, e.message)))
            return
        if path == "/_control" or path.startswith("/_control/"):
            self.handle_control(h, method, path, query, raw)
            return
        self.handle_api(h, t0, method, path, query, raw)

    def handle_control(self, h, method, path, query, raw):
        body = None
        if raw:
            try:
                body = util.loads(raw)
            except util.JsonError as e:
                send(h, 400, [], util.dumps({"error": str(e)}))
                return
        status, obj = self.control.handle(method, path, query, body)
        send(h, status, [], util.dumps(obj))

    def handle_api(self, h, t0, method, path, query, raw):
        headers = h.headers
        body, kind, body_error = parse_body(raw, (headers.get("Content-Type") or "").lower())
        logged = {name: headers.get(name) for name in LOGGED_HEADERS if headers.get(name) is not None}
        logged["Authorization"] = headers.get("Authorization") is not None
        entry = self.requests.start(t0, method, path, {k: v[-1] if len(v) == 1 else v for k, v in query.items()},
                                    logged, body if kind in ("json", "form") else None)
        ctx = Ctx(self, method, path, query, headers, body, kind, self.base_url_for(h))
        ctx.body_error = body_error
        rl_headers = self.limiter.idle_headers()
        fault = None
        route = None
        try:
            route, ctx.params = self.router.match(method, path)
            if route is None:
                raise ApiError(404, "Cannot %s %s" % (method, path))
            entry["operation"] = route.op
            with self.store.lock:
                token = self.auth.resolve(headers.get("Authorization")) if route.auth else None
                if route.auth and token is None:
                    raise ApiError(401, "Invalid token: access token is invalid")
                ctx.token = token
                if token is not None:
                    entry["location"] = token.location_id or token.resource
                    allowed, rl_headers = self.limiter.hit(token.resource, int(t0 * 1000))
                    if not allowed:
                        raise ApiError(429, "Too Many Requests")
                first_page = route.first_page(ctx) if route.first_page else None
            fault = self.pick_fault(method, path, entry["location"], route, first_page)
            if fault is not None:
                entry["fault"] = fault.kind
                entry["fault_id"] = fault.id
                if fault.kind == "rate_limit":
                    rl_headers = self.limiter.exhausted_headers()
                if self.fault_preempts(h, entry, fault, route, rl_headers, ctx):
                    return
            status, obj = self.run_handler(route, ctx)
            if fault is not None and fault.kind == "bad_id" and status == 200:
                faults.blank_id(obj, route.list_key, fault)
            extra_headers = []
        except ApiError as e:
            status = e.status
            obj = e.body if e.body is not None else util.error_body(e.status, e.message, e.extra)
            extra_headers = e.headers
        except Exception:  # a sandbox bug: answer like NestJS does and keep serving
            traceback.print_exc()
            status, obj, extra_headers = 500, util.error_body(500, "Internal server error"), []
        if isinstance(obj, dict) and not (route is not None and route.bare and 200 <= status < 300):
            # a record answered bare keeps its shape: a traceId inside it would change it on every read
            obj = dict(obj)
            obj.setdefault("traceId", util.trace_id())
        if fault is not None and fault.retry_after is not None:
            extra_headers = extra_headers + [("Retry-After", str(fault.retry_after))]
        self.finish(h, entry, t0, status, rl_headers + extra_headers, util.dumps(obj), fault)

    def run_handler(self, route, ctx):
        with self.store.lock:
            self.store.tick()
            if ctx.body_error:
                raise ApiError(400, ctx.body_error)
            if route.version is not None:
                v = ctx.headers.get("Version")
                if v is None:
                    raise ApiError(400, "Version header is required (Version: %s)" % route.version)
                if v != route.version:
                    raise ApiError(400, "Invalid Version header %r: this endpoint requires Version: %s"
                                   % (v, route.version))
            tok = ctx.token
            if route.auth == "location" and tok.user_type != "Location":
                raise ApiError(403, "The token does not have access to this location")
            if route.auth == "agency" and tok.user_type != "Company":
                raise ApiError(401, "This route requires an Agency (Company) access token")
            if route.auth == "company" and (tok.user_type != "Company" or tok.kind != "oauth"):
                raise ApiError(401, "This route requires an Agency (Company) OAuth access token")
            if route.scope and tok is not None and tok.scopes is not None and route.scope not in tok.scopes:
                raise ApiError(401, "The token is not authorized for this scope.")
            return route.handler(ctx)

    def pick_fault(self, method, path, location, route, first_page):
        if not self.faults.faults:
            return None
        f = self.faults.pick(method, path, location, first_page)
        if f is not None and f.kind in faults.LIST_ONLY and not route.list_key:
            return None
        return f

    def base_url_for(self, h):
        host = h.headers.get("Host")
        if host:
            return "%s://%s" % ("https" if self.opts.tls else "http", host)
        return self.base_url

    # --- faults ------------------------------------------------------------------------------

    def fault_preempts(self, h, entry, fault, route, rl_headers, ctx):
        """Apply a fault that replaces the answer.  Returns True when the request is finished."""
        kind = fault.kind
        t0 = entry["time"]
        extra = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
        if kind == "delay":
            time.sleep(fault.ms / 1000.0)
            return False
        if kind == "repeat_page":
            faults.strip_paging(ctx)
            return False
        if kind in ("truncate", "trickle", "bad_id"):
            return False
        if fault.process and kind in ("status", "reset", "drop_page", "rate_limit"):
            try:
                self.run_handler(route, ctx)
            except ApiError:
                pass
        if kind == "reset" or (kind == "drop_page" and not fault.spec.get("status")):
            self.finish_log(entry, t0, None)
            reset_connection(h)
            return True
        if kind in ("status", "drop_page", "rate_limit"):
            status = fault.status
            if fault.body is not None:
                payload = fault.body.encode() if isinstance(fault.body, str) else util.dumps(fault.body)
                ctype = "text/html; charset=utf-8" if isinstance(fault.body, str) else None
            else:
                body = util.error_body(status)
                body["traceId"] = util.trace_id()
                payload, ctype = util.dumps(body), None
            self.finish(h, entry, t0, status, rl_headers + extra, payload, None, ctype)
            return True
        if kind == "redirect":
            self.finish(h, entry, t0, 302, rl_headers + [("Location", fault.redirect_to)] + extra, b"", None)
            return True
        if kind == "invalid_json":
            self.finish(h, entry, t0, 200, rl_headers + extra, faults.INVALID_JSON, None)
            return True
        if kind == "deep_json":
            self.finish(h, entry, t0, 200, rl_headers + extra, faults.deep_json(fault.depth), None)
            return True
        if kind == "empty_list":
            body = api.empty_list_body(route)
            body["traceId"] = util.trace_id()
            self.finish(h, entry, t0, 200, rl_headers + extra, util.dumps(body), None)
            return True
        if kind == "gzip_bomb":
            payload = faults.gzip_bomb(int(fault.spec.get("size", 1 << 30)))
            self.finish(h, entry, t0, 200, rl_headers + extra + [("Content-Encoding", "gzip")], payload, None)
            return True
        if kind == "huge":
            self.finish_log(entry, t0, 200)
            send_chunked(h, 200, rl_headers + extra, faults.huge_chunks(fault.size))
            return True
        return False

    def finish_log(self, entry, t0, status):
        entry["status"] = status
        entry["duration_ms"] = round((time.time() - t0) * 1000, 3)
        if not self.config.get("quiet"):
            sys.stderr.write("%s %s -> %s%s %.1fms\n" % (entry["method"], entry["path"], status,
                                                        " [fault %s]" % entry["fault"] if "fault" in entry else "",
                                                        entry["duration_ms"]))

    def finish(self, h, entry, t0, status, headers, payload, fault, ctype=None):
        self.finish_log(entry, t0, status)
        if fault is not None and fault.kind == "truncate":
            send(h, status, headers, payload, ctype, truncate=True)
        elif fault is not None and fault.kind == "trickle":
            send(h, status, headers, payload, ctype, bytes_per_s=fault.bytes_per_s)
        else:
            send(h, status, headers, payload, ctype)


# --- body parsing and raw socket writes ----------------------------------------------------------

def read_body(h):
    te = (h.headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        out = bytearray()
        while True:
            line = h.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise BodyError(400, "Invalid chunked encoding")
            if size == 0:
                while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline(1024)
            if len(out) > MAX_BODY:
                raise BodyError(413, "request entity too large")
    length = h.headers.get("Content-Length")
    if not length:
        return b""
    try:
        n = int(length)
        if n < 0:
            raise ValueError
    except ValueError:
        raise BodyError(400, "Invalid Content-Length")
    if n > MAX_BODY:
        raise BodyError(413, "request entity too large")
    data = h.rfile.read(n)
    if len(data) < n:
        raise BodyError(400, "Incomplete request body")
    return data


def parse_body(raw, ctype):
    """-> (body, kind, error) following Express: JSON for */json, urlencoded forms, else ignored."""
    if not raw:
        return None, "none", None
    if "json" in ctype:
        try:
            return util.loads(raw), "json", None
        except util.JsonError as e:
            return None, "json", str(e)
    if "application/x-www-form-urlencoded" in ctype:
        try:
            pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None, "form", "Request body is not valid UTF-8"
        return {k: v[-1] for k, v in pairs.items()}, "form", None
    return None, "other", None


def _head(h, status, headers, length=None, ctype=None, chunked=False):
    reason = h.responses.get(status, ("Unknown",))[0]
    lines = ["HTTP/1.1 %d %s" % (status, reason),
             "Date: " + email.utils.formatdate(usegmt=True),
             "Content-Type: " + (ctype or "application/json; charset=utf-8")]
    lines += ["%s: %s" % kv for kv in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append("Content-Length: %d" % length)
    lines.append("Connection: %s" % ("close" if h.close_connection else "keep-alive"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _record(h, status, payload):
    if RECORD_DIR and os.path.isdir(RECORD_DIR):
        name = "%08d-%d-%s-%s.json" % (next(_recorded), status, h.command,
                                       urlsplit(h.path).path.strip("/").replace("/", "-"))
        with open(os.path.join(RECORD_DIR, name), "wb") as f:
            f.write(payload)


def send(h, status, headers, payload, ctype=None, truncate=False, bytes_per_s=None):
    head_only = h.command == "HEAD"
    _record(h, status, payload)
    try:
        if truncate:
            h.close_connection = True
            h.wfile.write(_head(h, status, headers, len(payload), ctype) + payload[: len(payload) // 2])
            return
        if bytes_per_s:
            h.wfile.write(_head(h, status, headers, len(payload), ctype))
            step = max(1, int(bytes_per_s / 10))
            for i in range(0, len(payload), step):
                h.wfile.write(payload[i:i + step])
                time.sleep(step / bytes_per_s)
            return
        h.wfile.write(_head(h, status, headers, len(payload), ctype) + (b"" if head_only else payload))
    except (OSError, ValueError):
        h.close_connection = True


def send_chunked(h, status, headers, chunks):
    h.close_connection = True
    try:
        h.wfile.write(_head(h, status, headers, chunked=True))
        for c in chunks:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
        h.wfile.write(b"0\r\n\r\n")
    except (OSError, ValueError):
        pass


def reset_connection(h):
    """Close the connection with an RST (SO_LINGER 0) without answering."""
    h.close_connection = True
    try:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.rfile.close()
        h.connection.close()
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pollen-sandbox"
    sys_version = ""
    timeout = 300          # idle keep-alive connections are closed after this many seconds

    def setup(self):
        if getattr(self.server, "tls_handshake", False):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (OSError, ValueError):
                self.request.close()
                raise ConnectionAbortedError("TLS handshake failed")
        super().setup()

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = ""
                self.request_version = self.protocol_version
                self.command = ""
                self.send_error(414)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.server.app.handle(self)
            if not self.close_connection:
                self.wfile.flush()
        except OSError:  # the client went away (reset, broken pipe, timeout)
            self.close_connection = True
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            try:
                body = util.dumps(util.error_body(500, "Internal server error"))
                self.wfile.write(_head(self, 500, [], len(body)) + body)
            except (OSError, ValueError):
                pass

    def log_message(self, fmt, *args):
        if not self.server.app.config.get("quiet"):
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, app, ssl_context=None):
        super().__init__(addr, Handler)
        self.app = app
        self.tls_handshake = False
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
            self.tls_handshake = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            return
        super().handle_error(request, client_address)
