"""Small helpers shared by the whole sandbox: ids, timestamps, JSON, errors."""

import calendar
import datetime
import json
import re
import string
import time
import uuid

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"

_ID_RE = re.compile(r"^[A-Za-z0-9]{20}$")
_OBJECT_ID_RE = re.compile(r"^[0-9a-f]{24}$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ApiError(Exception):
    """An error answer of the public API.

    `message` is a string, or a list of strings for 422 (NestJS class-validator style).
    `extra` is merged into the body (e.g. `meta` of the duplicate-contact error).
    `body` replaces the body entirely (OAuth errors: {"error", "error_description"}).
    """

    def __init__(self, status, message, extra=None, headers=None, body=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers = headers or []
        self.body = body


REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def error_body(status, message=None, extra=None):
    """The error shapes of common-schemas.json: 400 {statusCode, message:str}; 401 adds
    error:"Unauthorized"; 422 has message as an array plus error; others {statusCode, message}."""
    reason = REASONS.get(status, "Error")
    if message is None:
        message = [reason] if status == 422 else reason
    if status == 422 and not isinstance(message, list):
        message = [message]
    body = {"statusCode": status, "message": message}
    if status in (401, 422):
        body["error"] = reason
    if extra:
        body.update(extra)
    return body


# --- ids -------------------------------------------------------------------

def is_id(value):
    """True for a 20-char [A-Za-z0-9] Firebase-style id."""
    return isinstance(value, str) and _ID_RE.match(value) is not None


def is_object_id(value):
    return isinstance(value, str) and _OBJECT_ID_RE.match(value) is not None


def is_uuid(value):
    return isinstance(value, str) and _UUID_RE.match(value) is not None


def is_email(value):
    return isinstance(value, str) and _EMAIL_RE.match(value) is not None


# 256-entry translation tables: random bytes -> id alphabets (a tiny bias is irrelevant here).
_ALNUM_TABLE = bytes((ALNUM * 5)[:256], "ascii")
_HEX_TABLE = bytes((HEX * 16)[:256], "ascii")


def new_id(rng):
    return rng.getrandbits(160).to_bytes(20, "big").translate(_ALNUM_TABLE).decode("ascii")


def new_object_id(rng):
    return rng.getrandbits(192).to_bytes(24, "big").translate(_HEX_TABLE).decode("ascii")


def new_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def trace_id():
    return str(uuid.uuid4())


# --- time ------------------------------------------------------------------

def now_ms():
    return int(time.time() * 1000)


_day_prefix = {}


def iso(ms):
    """Epoch milliseconds -> '2026-11-26T19:46:53.123Z' (date part cached per day: seeding hot path)."""
    day, rem = divmod(int(ms), 86400000)
    prefix = _day_prefix.get(day)
    if prefix is None:
        t = time.gmtime(day * 86400)
        prefix = _day_prefix[day] = "%04d-%02d-%02dT" % (t.tm_year, t.tm_mon, t.tm_mday)
    sec, milli = divmod(rem, 1000)
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return "%s%02d:%02d:%02d.%03dZ" % (prefix, hour, minute, sec, milli)


def iso_space(ms):
    """Epoch milliseconds -> '2021-07-16 11:00:00' (contact appointments style)."""
    t = time.gmtime(int(ms) // 1000)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def parse_iso(value):
    """ISO-8601 date or date-time string -> epoch ms (UTC if no offset). None if invalid."""
    if not isinstance(value, str) or not value:
        return None
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def to_ms(value):
    """A date given as epoch ms (number or digit string) or ISO string -> epoch ms, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        return parse_iso(value)
    return None


_DOB_FORMATS = [
    (re.compile(r"^(\d{4})([/\-._])(\d{1,2})\2(\d{1,2})$"), ("y", "m", "d")),
    (re.compile(r"^(\d{1,2})([/\-._])(\d{1,2})\2(\d{4})$"), ("m", "d", "y")),
]


def parse_date_of_birth(value):
    """Accepts the formats of CreateContactDto.dateOfBirth (YYYY/MM/DD, MM/DD/YYYY, with
    separators / - . _), ISO date-times and epoch ms.  Returns '1990-09-25T00:00:00.000Z' or None."""
    if isinstance(value, str):
        s = value.strip()
        for rx, order in _DOB_FORMATS:
            m = rx.match(s)
            if m:
                parts = [m.group(1), m.group(3), m.group(4)]
                fields = dict(zip(order, (int(p) for p in parts)))
                try:
                    d = datetime.date(fields["y"], fields["m"], fields["d"])
                except ValueError:
                    return None
                return d.strftime("%Y-%m-%dT00:00:00.000Z")
    ms = to_ms(value)
    if ms is None:
        return None
    return iso(ms - ms % 86400000)


# --- JSON ------------------------------------------------------------------

def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class JsonError(ValueError):
    pass


def loads(raw):
    """Parse a request body; raises JsonError with an Express-like message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonError("Request body is not valid UTF-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        token = text[e.pos] if e.pos < len(text) else "end of input"
        raise JsonError("Unexpected token %s in JSON at position %d" % (token, e.pos))
    except RecursionError:
        raise JsonError("JSON nesting too deep")
    except ValueError as e:  # e.g. integers longer than sys.get_int_max_str_digits()
        raise JsonError("Invalid JSON: %s" % e)
