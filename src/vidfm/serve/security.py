"""API keys (constant-time, never logged) and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time


def key_id(key: str) -> str:
    """What logs and metrics may show instead of a key: a short digest."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyChecker:
    def __init__(self, keys: list[str]):
        # Compare digests: equal lengths, so compare_digest's time does not depend on the key.
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def valid(self, candidate: str | None) -> bool:
        if candidate is None:
            return False
        d = hashlib.sha256(candidate.encode("utf-8", "surrogateescape")).digest()
        ok = False
        for known in self._digests:  # no early exit: every key is compared
            ok |= hmac.compare_digest(d, known)
        return ok


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, refilled at ``per_minute``."""

    def __init__(self, per_minute: float, burst: int):
        self.rate, self.burst = per_minute / 60.0, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
