#!/usr/bin/env python3
"""HTTP/1.1 fixture server for tests/unit/test_http.c (stdlib only).

Listens on 127.0.0.1 with an ephemeral port, prints "PORT <n>" on stdout,
and exits as soon as stdin reaches EOF, so it never outlives the test.
Keep-alive is on (HTTP/1.1 with Content-Length), so the test can count
connections against requests.

Routes (query parameters in brackets):
  /echo                  JSON {method, path, headers: [[k, v]...], body}
  /ratelimit             200 with the five X-RateLimit-* headers, in odd cases
  /status [code, retry_after]   that status, with Retry-After if given
  /big [n]               n bytes with Content-Length
  /chunked [n]           n bytes, chunked, no Content-Length
  /gzip [n]              n zero bytes, gzip-encoded (a bomb for large n)
  /redirect [to]         302 to `to` (default file:///etc/passwd)
  /sleep [ms]            answers after ms milliseconds
  /drip [n, ms]          Content-Length n, then one byte every ms
  /reset                 promises 100000 bytes, sends 1000, then RST
  /vanish                reads the request, then closes the connection with no
                         answer at all (a server that dies after doing the work)
  /stats [reset]         {"connections", "requests", "paths"}; not counted itself
"""
import gzip
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()
STATS = {"connections": 0, "requests": 0, "paths": {}}
GZIP_CACHE = {}
MAX_N = 256 << 20


def qint(q, name, default):
    try:
        return max(0, min(int(q.get(name, default)), MAX_N))
    except ValueError:
        return default


def r_echo(h, q, body):
    doc = {
        "method": h.command,
        "path": h.path,
        "headers": [[k, v] for k, v in h.headers.items()],
        "body": body.decode("latin-1"),
    }
    h.send_body(200, json.dumps(doc).encode())


def r_ratelimit(h, q, body):
    h.send_body(200, b"{}", [
        ("x-ratelimit-limit-daily", "200000"),
        ("X-RATELIMIT-DAILY-REMAINING", "199990"),
        ("X-RateLimit-Interval-Milliseconds", "10000"),
        ("x-RateLimit-Max", "100"),
        ("X-Ratelimit-Remaining", " 97 "),
    ])


def r_status(h, q, body):
    extra = []
    if "retry_after" in q:
        extra.append(("Retry-After", q["retry_after"]))
    h.send_body(qint(q, "code", 200), b'{"status":"scripted"}', extra)


def r_big(h, q, body):
    h.send_body(200, b"a" * qint(q, "n", 0), ctype="application/octet-stream")


def r_chunked(h, q, body):
    n = qint(q, "n", 0)
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    sent = 0
    while sent < n:
        part = min(65536, n - sent)
        h.wfile.write(b"%x\r\n" % part + b"c" * part + b"\r\n")
        sent += part
    h.wfile.write(b"0\r\n\r\n")


def r_gzip(h, q, body):
    n = qint(q, "n", 0)
    with LOCK:
        data = GZIP_CACHE.get(n)
    if data is None:
        data = gzip.compress(bytes(n), compresslevel=9, mtime=0)
        with LOCK:
            GZIP_CACHE[n] = data
    h.send_body(200, data, [("Content-Encoding", "gzip")], ctype="application/octet-stream")


def r_redirect(h, q, body):
    h.send_body(302, b"", [("Location", q.get("to", "file:///etc/passwd"))])


def r_sleep(h, q, body):
    time.sleep(qint(q, "ms", 0) / 1000.0)
    h.send_body(200, b'{"slept":true}')


def r_drip(h, q, body):
    n = qint(q, "n", 10)
    pause = qint(q, "ms", 100) / 1000.0
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(n))
    h.end_headers()
    for _ in range(n):
        h.wfile.write(b"d")
        h.wfile.flush()
        time.sleep(pause)


def r_lie(h, q, body):
    """Announces Content-Length cl, sends n bytes of 'l', then closes."""
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(qint(q, "cl", 0)))
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"l" * qint(q, "n", 0))
    h.wfile.flush()
    h.close_connection = True


def r_reset(h, q, body):
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    h.wfile.write(b"r" * 1000)
    h.wfile.flush()
    time.sleep(0.05)
    # SO_LINGER 0 turns close() into a RST. rfile holds a reference to the
    # socket, so close it first or the fd would stay open.
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.rfile.close()
    h.connection.close()
    h.close_connection = True


def r_vanish(h, q, body):
    h.close_connection = True
    h.wfile.flush()
    h.connection.shutdown(socket.SHUT_RDWR)


def r_stats(h, q, body):
    with LOCK:
        doc = json.dumps(STATS).encode()
        if "reset" in q:
            STATS["connections"] = 0
            STATS["requests"] = 0
            STATS["paths"] = {}
    h.send_body(200, doc)


ROUTES = {
    "/echo": r_echo,
    "/ratelimit": r_ratelimit,
    "/status": r_status,
    "/big": r_big,
    "/chunked": r_chunked,
    "/gzip": r_gzip,
    "/redirect": r_redirect,
    "/sleep": r_sleep,
    "/drip": r_drip,
    "/lie": r_lie,
    "/reset": r_reset,
    "/vanish": r_vanish,
    "/stats": r_stats,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def log_message(self, fmt, *args):
        pass

    def send_body(self, code, data, headers=(), ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, MAX_N)) if n > 0 else b""
        if url.path != "/stats":
            with LOCK:
                STATS["requests"] += 1
                STATS["paths"][url.path] = STATS["paths"].get(url.path, 0) + 1
        route = ROUTES.get(url.path)
        try:
            if route is None:
                self.send_body(404, b'{"error":"no such route"}')
            else:
                route(self, q, body)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_DELETE = handle_any
    do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # clients abort on purpose (caps, timeouts, cancels)


def main():
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    # The test holds our stdin open; EOF means it is done (or died).
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
