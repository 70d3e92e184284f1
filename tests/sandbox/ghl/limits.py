"""Per-resource rate limiter: a sliding window of `limit` requests per `window_ms` plus a daily counter.

A resource is the token's location, or the company for agency tokens (docs/oauth/Authorization.md).
Requests rejected with 429 do not consume budget.  A limit of 0 disables that limit; the headers
then report DISABLED_VALUE so that clients never see a misleading Remaining of 0.
"""

import collections

DISABLED_VALUE = 1000000
DAY_MS = 86400000


class RateLimiter:
    def __init__(self, limit=100, window_ms=10000, daily_limit=200000):
        self.limit = limit
        self.window_ms = window_ms
        self.daily_limit = daily_limit
        self.reset()

    def reset(self):
        self.windows = collections.defaultdict(collections.deque)
        self.daily = {}  # resource -> (utc day number, count)

    def _headers(self, window_len, daily_count):
        limit = self.limit if self.limit > 0 else DISABLED_VALUE
        daily = self.daily_limit if self.daily_limit > 0 else DISABLED_VALUE
        return [
            ("X-RateLimit-Limit-Daily", str(daily)),
            ("X-RateLimit-Daily-Remaining", str(max(0, daily - daily_count))),
            ("X-RateLimit-Interval-Milliseconds", str(self.window_ms)),
            ("X-RateLimit-Max", str(limit)),
            ("X-RateLimit-Remaining", str(max(0, limit - window_len))),
        ]

    def idle_headers(self):
        """Headers for requests that are not attributed to any resource (e.g. bad token)."""
        return self._headers(0, 0)

    def hit(self, resource, now_ms):
        """Count one request.  Returns (allowed, headers)."""
        day = now_ms // DAY_MS
        d, count = self.daily.get(resource, (day, 0))
        if d != day:
            count = 0
        window = self.windows[resource]
        cutoff = now_ms - self.window_ms
        while window and window[0] <= cutoff:
            window.popleft()
        burst_full = self.limit > 0 and len(window) >= self.limit
        daily_full = self.daily_limit > 0 and count >= self.daily_limit
        if burst_full or daily_full:
            self.daily[resource] = (day, count)
            return False, self._headers(len(window) if self.limit > 0 else 0, count)
        window.append(now_ms)
        count += 1
        self.daily[resource] = (day, count)
        return True, self._headers(len(window) if self.limit > 0 else 0, count)

    def exhausted_headers(self):
        """Headers for a fault-injected 429: an exhausted burst window."""
        return [(k, "0") if k == "X-RateLimit-Remaining" else (k, v) for k, v in self._headers(0, 0)]
