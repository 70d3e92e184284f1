"""Fault injection: which request gets which misbehaviour, plus the hostile bodies.

A fault matches on method, path (regex searched in the path without query) and location (the
token's location).  It applies to the next `count` matching requests after skipping the first
`after` ones, or to every matching request for `window_s` seconds (counted from its creation).
`drop_page` only matches list/search requests that are not the first page.
"""

import re
import struct
import threading
import time
import zlib

from .util import ApiError

KINDS = ("status", "rate_limit", "delay", "reset", "truncate", "invalid_json", "empty_list", "huge",
         "gzip_bomb", "deep_json", "redirect", "trickle", "drop_page", "bad_id", "repeat_page")
LIST_ONLY = ("empty_list", "bad_id", "repeat_page")
MIB = 1024 * 1024


class Fault:
    def __init__(self, spec, fid):
        if not isinstance(spec, dict):
            raise ApiError(400, "each fault must be an object")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ApiError(400, "fault kind must be one of: " + ", ".join(KINDS))
        self.id = fid
        self.kind = kind
        self.spec = spec
        self.count = int(spec.get("count", 1))
        self.after = int(spec.get("after", 0))
        self.window_s = spec.get("window_s")
        self.method = spec.get("method", "").upper() or None
        try:
            self.path = re.compile(spec["path"]) if spec.get("path") else None
        except re.error as e:
            raise ApiError(400, "invalid path regex: %s" % e)
        self.location = spec.get("location")
        self.status = int(spec.get("status", {"status": 500, "rate_limit": 429, "redirect": 302}.get(kind, 0)))
        self.ms = float(spec.get("ms", 1000))
        self.retry_after = spec.get("retry_after")
        self.size = int(spec.get("size", 100 * MIB))
        self.depth = int(spec.get("depth", 10000))
        self.bytes_per_s = float(spec.get("bytes_per_s", 10))
        self.redirect_to = spec.get("location_header", spec.get("to", "http://127.0.0.2:1/x"))
        if kind == "redirect" and isinstance(self.location, str) and "/" in self.location:
            # `location` doubles as the redirect target when it looks like a URL.
            self.redirect_to, self.location = self.location, None
        self.process = bool(spec.get("process", False))
        self.body = spec.get("body")
        self.index = int(spec.get("index", 0))
        self.value = spec.get("value")
        self.created = time.monotonic()
        self.seen = 0
        self.applied = 0

    def expired(self, now):
        if self.window_s is not None:
            return now >= self.created + float(self.window_s)
        return self.applied >= self.count

    def matches(self, method, path, location, first_page):
        if self.method and self.method != method:
            return False
        if self.path and not self.path.search(path):
            return False
        if self.location and self.location != location:
            return False
        if self.kind == "drop_page" and first_page is not False:
            return False
        return True

    def describe(self):
        return {"id": self.id, "kind": self.kind, "spec": self.spec, "seen": self.seen, "applied": self.applied}


class FaultRegistry:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []
        self.next_id = 1

    def add(self, specs):
        if not isinstance(specs, list):
            raise ApiError(400, "faults must be an array")
        new = []
        for spec in specs:
            new.append(Fault(spec, self.next_id))
            self.next_id += 1
        with self.lock:
            self.faults.extend(new)
        return [f.id for f in new]

    def clear(self):
        with self.lock:
            self.faults = []

    def list(self):
        with self.lock:
            return [f.describe() for f in self.faults]

    def pick(self, method, path, location, first_page):
        """The fault to apply to this request, or None.  Every matching fault counts the request."""
        now = time.monotonic()
        chosen = None
        with self.lock:
            self.faults = [f for f in self.faults if not f.expired(now)]
            for f in self.faults:
                if not f.matches(method, path, location, first_page):
                    continue
                f.seen += 1
                if chosen is None and f.seen > f.after:
                    chosen = f
            if chosen is not None:
                chosen.applied += 1
        return chosen


# --- hostile bodies ------------------------------------------------------------------------------

INVALID_JSON = b'{"contacts":[{"id":"0000000000000000000a","firstName":"Trunc\\u00'


def deep_json(depth):
    return b'{"contacts":' + b"[" * depth + b"]" * depth + b"}"


def huge_chunks(size, chunk=64 * 1024):
    """A valid JSON document of about `size` bytes, produced lazily in `chunk`-byte pieces."""
    head = b'{"contacts":['
    item = b'{"id":"0000000000000000000x","pad":"' + b"x" * 200 + b'"},'
    tail = b'{"id":"00000000000000000end"}],"total":0}'
    per = max(1, chunk // len(item))
    block = item * per
    yield head
    sent = len(head)
    while sent + len(block) + len(tail) < size:
        yield block
        sent += len(block)
    rest = max(0, (size - sent - len(tail)) // len(item))
    if rest:
        yield item * rest
    yield tail


_bomb_cache = {}
_bomb_lock = threading.Lock()


def gzip_bomb(size):
    """gzip of '{"contacts":[],"pad":"<size spaces>"}' (about 1 KiB per MiB of output); cached.

    Built from one compressed MiB of spaces repeated: after a Z_FULL_FLUSH the deflate state is
    reset, so identical input blocks compress to identical bytes that can simply be concatenated."""
    with _bomb_lock:
        if size not in _bomb_cache:
            head, tail = b'{"contacts":[],"pad":"', b'"}'
            blocks, rest = divmod(size, MIB)
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            out = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
            block = b" " * MIB
            crc = zlib.crc32(head)
            if blocks:
                out.append((c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)) * blocks)
                for _ in range(blocks):
                    crc = zlib.crc32(block, crc)
            out.append(c.compress(block[:rest] + tail) + c.flush())
            crc = zlib.crc32(block[:rest] + tail, crc)
            total = len(head) + size + len(tail)
            _bomb_cache[size] = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"".join(out)
                                 + struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
        return _bomb_cache[size]


# --- answers that are altered, not replaced ------------------------------------------------------

PAGING_QUERY = ("skip", "startAfter", "startAfterId", "page")


def strip_paging(ctx):
    """repeat_page: forget the request's position, so the handler answers the first page."""
    for name in PAGING_QUERY:
        ctx.query.pop(name, None)
        ctx.query_lists.pop(name, None)
    if isinstance(ctx.body, dict) and "searchAfter" in ctx.body:
        ctx.body = dict(ctx.body)
        del ctx.body["searchAfter"]
        ctx.body["page"] = 1
    if isinstance(ctx.body, dict) and "skip" in ctx.body:   # body paging (filter users by email)
        ctx.body = dict(ctx.body)
        del ctx.body["skip"]


def blank_id(obj, list_key, fault):
    """bad_id: the `index`-th record of the list answers `"id": value` (default null)."""
    items = obj.get(list_key) if isinstance(obj, dict) else None
    if isinstance(items, list) and 0 <= fault.index < len(items) and isinstance(items[fault.index], dict):
        items[fault.index] = dict(items[fault.index], id=fault.value)
